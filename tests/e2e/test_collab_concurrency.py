"""Eight workspaces committing, submitting and merging into the same base at once."""
from __future__ import annotations

import threading

import requests

from tests.support import at_once


def _pushed_repo(tenant, git, tmp_path):
    """A repository whose main holds one file, and the work tree that pushed it."""
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "seed", {"a.txt": "a\n"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    return repo, work


def test_eight_workspaces_merge_into_one_base(server, tenant, git, tmp_path):
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "seed", {"shared.txt": "line 1\nline 2\nline 3\n", "README.md": "r\n"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    original = git.out("rev-parse", "HEAD", cwd=work)
    headers = {"Authorization": f"Bearer {tenant.keys['agent']}"}
    dojo = f"{server.url}/api/repos/{tenant.org}/{repo}/workspaces"
    v1 = f"{server.url}/v1/repos/{repo}"
    barrier = threading.Barrier(8)
    results: list[dict] = [{} for _ in range(8)]
    statuses: list[int] = []

    def agent(i: int) -> None:
        def call(method, url, **kwargs):
            response = requests.request(method, url, headers=headers, timeout=120, **kwargs)
            statuses.append(response.status_code)
            return response

        ws = call("POST", dojo, json={"name": f"agent-{i}", "agent_name": f"bot-{i}"}).json()["workspace"]
        files = {f"agents/{i}.txt": f"agent {i}\n"}
        if i < 3:  # three agents rewrite the same line: at most one of them can merge cleanly
            files["shared.txt"] = f"line 1 by agent {i}\nline 2\nline 3\n"
        barrier.wait()
        for path, content in files.items():
            call("PUT", f"{dojo}/{ws['id']}/files/{path}", data=content.encode())
        commit = call("POST", f"{dojo}/{ws['id']}/commit", json={"message": f"agent {i}"}).json()["commit"]
        stack = call("POST", f"{dojo}/{ws['id']}/submit", json={"title": f"agent {i}"}).json()["stack"]
        merged = call("POST", f"{v1}/stacks/{stack['id']}/merge", json={"strategy": "merge"})
        results[i] = {"commit": commit["sha"], "merge": merged.json()["data"], "stack": stack["id"]}

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert all(code < 500 for code in statuses), statuses
    assert all(results), results

    clone = tmp_path / "final"
    git("clone", "-q", tenant.url(repo), str(clone))
    assert git("merge-base", "--is-ancestor", original, "HEAD", cwd=clone, check=False).returncode == 0
    merged = [i for i in range(8) if results[i]["merge"]["success"]]
    conflicted = [i for i in range(8) if not results[i]["merge"]["success"]]
    assert set(range(3, 8)) <= set(merged), results  # agents touching only their own file always merge
    assert len([i for i in merged if i < 3]) == 1
    for i in merged:
        assert git("merge-base", "--is-ancestor", results[i]["commit"], "HEAD", cwd=clone,
                   check=False).returncode == 0, f"agent {i}'s commit was lost"
        assert (clone / f"agents/{i}.txt").read_text() == f"agent {i}\n"
    for i in conflicted:
        assert results[i]["merge"]["conflicts"] == ["shared.txt"]
        assert not (clone / f"agents/{i}.txt").exists()


def test_one_of_eight_simultaneous_locks_on_the_same_paths_wins(server, tenant, git, tmp_path):
    """Checking for an overlapping lock and inserting one happen as one step: sent at once, exactly one
    workspace gets the lock and the others a 423 naming it (3-8 of them used to hold it together)."""
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "seed", {"shared/a.txt": "a\n"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    headers = {"Authorization": f"Bearer {tenant.keys['agent']}"}
    dojo = f"{server.url}/api/repos/{tenant.org}/{repo}/workspaces"
    workspaces = [requests.post(dojo, json={"name": f"w{i}"}, headers=headers, timeout=60).json()["workspace"]["id"]
                  for i in range(8)]
    responses = at_once(8, lambda i: requests.post(f"{dojo}/{workspaces[i]}/lock", json={"patterns": ["shared/*"]},
                                                    headers=headers, timeout=60))
    assert sorted(r.status_code for r in responses) == [201] + [423] * 7, [r.text for r in responses]
    held = requests.get(f"{server.url}/v1/repos/{repo}/locks", headers=headers, timeout=60).json()["data"]
    assert len(held) == 1


def test_one_of_eight_simultaneous_workspaces_with_one_name_is_created(server, tenant, git, tmp_path):
    repo, work = _pushed_repo(tenant, git, tmp_path)
    headers = {"Authorization": f"Bearer {tenant.keys['agent']}"}
    dojo = f"{server.url}/api/repos/{tenant.org}/{repo}/workspaces"
    responses = at_once(8, lambda i: requests.post(dojo, json={"name": "same"}, headers=headers, timeout=60))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 7, [r.text for r in responses]
    listed = requests.get(dojo, headers=headers, timeout=60).json()["workspaces"]
    assert [w["name"] for w in listed] == ["same"]


def test_simultaneous_record_only_branches_with_one_name_get_409_not_500(server, tenant):
    repo = tenant.repo()
    headers = {"Authorization": f"Bearer {tenant.keys['agent']}"}
    url = f"{server.url}/v1/repos/{repo}/branches"
    responses = at_once(8, lambda i: requests.post(url, json={"name": "rec", "recordOnly": True}, headers=headers,
                                                    timeout=60))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 7, [r.text for r in responses]
    assert all(r.json()["code"] == "conflict" for r in responses if r.status_code == 409)


def test_one_branch_name_created_at_once_with_and_without_record_only_gets_one_201(server, tenant, git, tmp_path):
    """A record-only create and a create from main both answered 201 (29 of 30 rounds on PostgreSQL): the
    record-only caller was told "creating, no head" for a branch that was already at main."""
    repo, work = _pushed_repo(tenant, git, tmp_path)
    headers = {"Authorization": f"Bearer {tenant.keys['agent']}"}
    url = f"{server.url}/v1/repos/{repo}/branches"
    for round_ in range(4):
        responses = at_once(8, lambda i: requests.post(url, json={"name": f"b{round_}", "recordOnly": i % 2 == 0},
                                                        headers=headers, timeout=60))
        assert sorted(r.status_code for r in responses) == [201] + [409] * 7, [r.text for r in responses]


def test_simultaneous_deletes_of_one_branch_or_key_succeed_once(server, tenant, git, tmp_path):
    repo, work = _pushed_repo(tenant, git, tmp_path)
    admin = {"Authorization": f"Bearer {tenant.keys['admin']}"}
    branches = f"{server.url}/v1/repos/{repo}/branches"
    for name, body in (("pushed", {"name": "pushed"}), ("recorded", {"name": "recorded", "recordOnly": True})):
        assert requests.post(branches, json=body, headers=admin, timeout=60).status_code == 201
        deletes = at_once(16, lambda i: requests.delete(f"{branches}/{name}", headers=admin, timeout=60))
        assert sorted(r.status_code for r in deletes) == [200] + [404] * 15, [r.text for r in deletes]
    key = requests.post(f"{server.url}/v1/keys", json={"name": "k", "scope": "read"}, headers=admin,
                        timeout=60).json()["data"]
    revokes = at_once(16, lambda i: requests.delete(f"{server.url}/v1/keys/{key['id']}", headers=admin, timeout=60))
    assert sorted(r.status_code for r in revokes) == [200] + [404] * 15, [r.text for r in revokes]


def test_reconcile_beside_branch_changes_keeps_every_rows_metadata(server, tenant, git, tmp_path):
    """Reconcile read the refs, then the rows, outside the repository's write turn: it failed on a unique key,
    made API creates answer 500, and stripped branches created meanwhile of their base (PostgreSQL sweep)."""
    from sqlalchemy import select

    from control.services import repos as repo_service
    from storage.models import Branch, Repository

    repo, work = _pushed_repo(tenant, git, tmp_path)
    headers = {"Authorization": f"Bearer {tenant.keys['agent']}"}
    done, failures = threading.Event(), []

    def reconcile_until_done():
        while not done.is_set():
            try:
                with server.context.db.session() as session:
                    row = session.scalar(select(Repository).where(Repository.org_id == tenant.org_id,
                                                                  Repository.slug == repo))
                    repo_service.reconcile_branches(session, server.context.store, row)
            except Exception as error:  # noqa: BLE001 - every failure is the finding
                failures.append(repr(error))

    reconciler = threading.Thread(target=reconcile_until_done)
    reconciler.start()
    try:
        created = at_once(12, lambda i: requests.post(f"{server.url}/v1/repos/{repo}/branches",
                                                      json={"name": f"feature-{i}"}, headers=headers, timeout=60))
    finally:
        done.set()
        reconciler.join(timeout=60)
    assert [r.status_code for r in created] == [201] * 12, [r.text for r in created]
    assert failures == []
    with server.context.db.session() as session:
        rows = {b.name: b for b in session.scalars(select(Branch).join(Repository).where(
            Repository.org_id == tenant.org_id, Repository.slug == repo))}
    assert all(rows[f"feature-{i}"].base_branch == "main" for i in range(12)), {
        n: (b.base_branch, b.base_commit) for n, b in rows.items()}


def test_a_resubmit_racing_the_stacks_merge_never_marks_unmerged_commits_merged(server, tenant, git, tmp_path):
    """Merge and resubmit sent together: whichever comes second sees the first (9 of 9 runs used to end with
    the stack "merged" at a head whose commit never reached main)."""
    repo, work = _pushed_repo(tenant, git, tmp_path)
    headers = {"Authorization": f"Bearer {tenant.keys['agent']}"}
    dojo = f"{server.url}/api/repos/{tenant.org}/{repo}/workspaces"
    v1 = f"{server.url}/v1/repos/{repo}"
    for round_ in range(5):
        ws = requests.post(dojo, json={"name": f"race-{round_}"}, headers=headers, timeout=60).json()["workspace"]
        requests.put(f"{dojo}/{ws['id']}/files/one-{round_}.txt", data=b"1", headers=headers, timeout=60)
        requests.post(f"{dojo}/{ws['id']}/commit", json={"message": "one"}, headers=headers, timeout=60)
        stack = requests.post(f"{dojo}/{ws['id']}/submit", json={"title": "t"}, headers=headers,
                              timeout=60).json()["stack"]
        requests.put(f"{dojo}/{ws['id']}/files/two-{round_}.txt", data=b"2", headers=headers, timeout=60)
        requests.post(f"{dojo}/{ws['id']}/commit", json={"message": "two"}, headers=headers, timeout=60)
        answers = at_once(2, lambda i: requests.post(f"{v1}/stacks/{stack['id']}/merge", json={}, headers=headers,
                                                     timeout=60)
                          if i == 0 else requests.post(f"{dojo}/{ws['id']}/submit", json={"title": "t"},
                                                       headers=headers, timeout=60))
        assert all(a.status_code < 500 for a in answers), [a.text for a in answers]  # a deadlock on PostgreSQL
        final = requests.get(f"{v1}/stacks/{stack['id']}", headers=headers, timeout=60).json()["data"]
        if final["status"] == "merged":
            git("fetch", "-q", tenant.url(repo), "main", cwd=work)
            assert git("merge-base", "--is-ancestor", final["headCommit"], "FETCH_HEAD", cwd=work,
                       check=False).returncode == 0, final


def test_a_parent_stack_and_its_child_merged_at_once_take_turns(server, tenant, git, tmp_path):
    """The merge route locked the stack's row before the repository's and a restack the other way round: on
    PostgreSQL the child's merge died in a deadlock (500) in 5-7 of 10 rounds."""
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "seed", {"base.txt": "base\n"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    headers = {"Authorization": f"Bearer {tenant.keys['agent']}"}
    dojo = f"{server.url}/api/repos/{tenant.org}/{repo}/workspaces"

    def post(url, **kwargs):
        return requests.post(url, headers=headers, timeout=60, **kwargs)

    for round_ in range(4):
        parent_ws = post(dojo, json={"name": f"p{round_}"}).json()["workspace"]
        requests.put(f"{dojo}/{parent_ws['id']}/files/p{round_}.txt", data=b"p", headers=headers, timeout=60)
        parent_commit = post(f"{dojo}/{parent_ws['id']}/commit", json={"message": "p"}).json()["commit"]["sha"]
        parent = post(f"{dojo}/{parent_ws['id']}/submit", json={"title": "p"}).json()["stack"]
        child_ws = post(dojo, json={"name": f"c{round_}", "base_commit": parent_commit}).json()["workspace"]
        requests.put(f"{dojo}/{child_ws['id']}/files/c{round_}.txt", data=b"c", headers=headers, timeout=60)
        post(f"{dojo}/{child_ws['id']}/commit", json={"message": "c"})
        child = post(f"{dojo}/{child_ws['id']}/submit", json={"title": "c"}).json()["stack"]
        assert child["parent_stack_id"] == parent["id"]
        answers = at_once(2, lambda i: post(f"{server.url}/v1/repos/{repo}/stacks/{(parent, child)[i]['id']}/merge",
                                            json={}))
        assert answers[0].status_code == 200, answers[0].text
        assert answers[1].status_code in (200, 409), answers[1].text


def test_sixteen_merges_at_once_beside_a_repack_all_answer_cleanly(server, tenant, git, tmp_path):
    """Merges write their objects as packs. dulwich's pack writer listed the repository's packs while another
    writer or a housekeeping repack replaced them: a 500 (PackFileDisappeared) and a temporary pack left behind.
    And a read that raced the repack's move of a loose object into a pack answered 404 for an existing commit.
    And a repack that listed the packs while index-pack moved a merge's pack in deleted it: 'bad object', a 500,
    the merge's commit gone."""
    import subprocess

    from storage.housekeeping import HousekeepingLimits, housekeep
    from tests.support import repo_path

    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "seed", {"base.txt": "base\n"})
    for i in range(16):
        git("checkout", "-q", "-b", f"f{i}", "main", cwd=work)
        git.commit(work, {f"f{i}.txt": f"{i}\n"}, f"f{i}")
    git("checkout", "-q", "main", cwd=work)
    git.commit(work, {"main.txt": "diverged\n"}, "main moves on")
    git("push", "-q", tenant.url(repo), "--all", cwd=work)
    path = repo_path(server, tenant, repo)
    headers = {"Authorization": f"Bearer {tenant.keys['agent']}"}
    stop = threading.Event()

    def repack() -> None:  # housekeeping's repack, again and again (with nothing pinned: a merge's objects are new),
        # under its lock, as the server's own housekeeping of this repository may run meanwhile
        while not stop.is_set():
            housekeep(path, HousekeepingLimits(max_packs=0), lambda: ())

    housekeeping = threading.Thread(target=repack)
    housekeeping.start()
    try:
        responses = at_once(16, lambda i: requests.post(f"{server.url}/v1/repos/{repo}/merges", headers=headers,
                                                         json={"source": f"f{i}", "target": "main"}, timeout=120))
    finally:
        stop.set()
        housekeeping.join()
    assert all(r.status_code in (200, 409) for r in responses), [r.text for r in responses if r.status_code >= 500]
    merged = [r.json()["data"]["sha"] for r in responses if r.status_code == 200]
    missing = [sha for sha in merged
               if subprocess.run(["git", "-C", str(path), "cat-file", "-e", sha], capture_output=True).returncode]
    assert not missing, "a merge's commit was lost to the repack"
    left = [p.name for p in (path / "objects" / "pack").glob("tmp*.pack") if not p.name.startswith("tmp_pack_")]
    assert not left, left  # dulwich's temporary packs (git's own are tmp_pack_*, and may belong to a live repack)
    git("fetch", "-q", tenant.url(repo), "main", cwd=work)
    merged = [i for i, r in enumerate(responses) if r.status_code == 200]
    for i in merged:
        assert git("merge-base", "--is-ancestor", f"f{i}", "FETCH_HEAD", cwd=work, check=False).returncode == 0


def test_a_repository_deleted_under_api_commits_answers_them_404_not_500(server, tenant):
    """The purge removed the git directory while commits wrote objects into it: 15-16 of them answered 500
    (PostgreSQL sweep, 4 workers)."""
    import base64
    import os
    import time

    admin = {"Authorization": f"Bearer {tenant.keys['admin']}"}
    name = f"gone-{os.urandom(4).hex()}"
    assert requests.post(f"{server.url}/v1/repos", json={"name": name}, headers=admin, timeout=60).status_code == 201
    stop, codes = threading.Event(), []

    def commit_until_stopped(i: int) -> None:
        k = 0
        while not stop.is_set():
            k += 1
            ops = [{"action": "create", "path": f"d{j}/a{i}_{k}.txt",
                    "content": base64.b64encode(os.urandom(20000)).decode()} for j in range(20)]
            codes.append(requests.post(f"{server.url}/v1/repos/{name}/commits", headers=admin, timeout=60,
                                       json={"branch": "main", "message": "m", "operations": ops}).status_code)

    writers = [threading.Thread(target=commit_until_stopped, args=(i,)) for i in range(8)]
    for writer in writers:
        writer.start()
    time.sleep(1.5)
    assert requests.delete(f"{server.url}/v1/repos/{name}", headers=admin, timeout=60).status_code == 200
    time.sleep(1.5)
    stop.set()
    for writer in writers:
        writer.join(timeout=120)
    assert 201 in codes and 404 in codes
    assert all(code < 500 for code in codes), sorted(set(codes))


def test_a_record_only_branchs_first_write_racing_its_delete_never_answers_500(server, tenant, git, tmp_path):
    """The write read the branch row, the delete removed it, the write updated it: StaleDataError, a 500 in 4-6
    of 10 rounds (PostgreSQL sweep)."""
    import random
    import time

    repo, _work = _pushed_repo(tenant, git, tmp_path)
    admin = {"Authorization": f"Bearer {tenant.keys['admin']}"}
    v1 = f"{server.url}/v1/repos/{repo}"
    outcomes = []
    for n in range(10):
        branch = f"ro{n}"
        assert requests.post(f"{v1}/branches", json={"name": branch, "recordOnly": True}, headers=admin,
                             timeout=60).status_code == 201

        def race(i: int, branch=branch):
            if i == 0:
                return requests.post(f"{v1}/commits", headers=admin, timeout=60, json={
                    "branch": branch, "message": "m", "operations": [
                        {"action": "create", "path": "new.txt", "content": "eA=="}]})
            time.sleep(random.random() * 0.03)
            return requests.delete(f"{v1}/branches/{branch}", headers=admin, timeout=60)

        write, deleted = at_once(2, race)
        outcomes.append((write.status_code, deleted.status_code))
        assert write.status_code in (201, 404) and deleted.status_code in (200, 404), (write.text, deleted.text)
    assert all(code < 500 for pair in outcomes for code in pair), outcomes
