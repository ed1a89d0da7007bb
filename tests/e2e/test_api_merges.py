"""POST /v1/repos/{repo}/merges on the real server, checked afterwards with a real `git clone`."""
from __future__ import annotations

import subprocess
import threading

import pytest

from storage.ref_turns import turn_file
from tests.support import NUMBERED_TEXT, api, edited, repo_path

SEED_003_FIELDS = {"success", "sha", "head_commit", "already_merged", "target", "conflicts", "message"}


def merge(server, tenant, repo, **body):
    return api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/merges", body)


def heads(git, tenant, repo) -> dict[str, str]:
    out = git.out("ls-remote", "--heads", tenant.url(repo))
    return {ref.split("refs/heads/", 1)[1]: sha for sha, ref in (line.split("\t") for line in out.splitlines())}


@pytest.fixture
def diverged(tenant, git, tmp_path):
    """main and feature diverged from a common base: feature edits line 2 and adds a file in two commits, main
    edits line 16."""
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": NUMBERED_TEXT, "b.txt": "b\n"})
    git("checkout", "-q", "-b", "feature", cwd=work)
    git.commit(work, {"a.txt": edited({1: "feature line 2"})}, "feature: edit line 2")
    git.commit(work, {"c.txt": "new\n"}, "feature: add c.txt")
    git("checkout", "-q", "main", cwd=work)
    git.commit(work, {"a.txt": edited({15: "main line 16"})}, "main: edit line 16")
    git("push", "-q", tenant.url(repo), "main", "feature", cwd=work)
    return {"repo": repo, "work": work, "main": git.out("rev-parse", "main", cwd=work),
            "feature": git.out("rev-parse", "feature", cwd=work)}


def clone(git, tenant, repo, tmp_path, name="clone"):
    target = tmp_path / name
    git("clone", "-q", tenant.url(repo), str(target))
    return target


def test_clean_merge_creates_a_merge_commit(server, tenant, git, tmp_path, diverged):
    response = merge(server, tenant, diverged["repo"], source="feature")
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert set(data) == SEED_003_FIELDS
    assert data["success"] is True and data["already_merged"] is False and data["conflicts"] == []
    assert data["target"] == "main" and data["sha"] == data["head_commit"] and len(data["sha"]) == 40
    assert heads(git, tenant, diverged["repo"])["main"] == data["sha"]

    work = clone(git, tenant, diverged["repo"], tmp_path)
    parents = git.out("log", "-1", "--format=%P", "main", cwd=work).split()
    assert parents == [diverged["main"], diverged["feature"]]
    assert git.out("log", "-1", "--format=%s", cwd=work) == "Merge branch 'feature' into main"
    graph = git.out("log", "--graph", "--format=%s", cwd=work)
    assert graph.splitlines()[0] == "*   Merge branch 'feature' into main" and "|\\" in graph
    assert (work / "a.txt").read_text() == edited({1: "feature line 2", 15: "main line 16"})
    assert (work / "c.txt").read_text() == "new\n"
    git("fsck", "--strict", cwd=work)
    # the commit API knows how the commit was made
    meta = api(server, tenant.keys["read"], "GET", f"/v1/repos/{diverged['repo']}/commits/{data['sha']}").json()
    assert meta["data"]["source"] == "merge"


def test_conflict_lists_paths_and_changes_nothing(server, tenant, git, tmp_path, diverged):
    work = diverged["work"]
    git.commit(work, {"a.txt": edited({1: "main disagrees", 15: "main line 16"}), "b.txt": "main b\n"}, "conflict")
    git("checkout", "-q", "feature", cwd=work)
    git.commit(work, {"b.txt": "feature b\n"}, "feature b")
    git("push", "-q", tenant.url(diverged["repo"]), "main", "feature", cwd=work)
    before = heads(git, tenant, diverged["repo"])
    for strategy in ("merge", "squash", "rebase"):
        response = merge(server, tenant, diverged["repo"], source="feature", strategy=strategy, deleteBranch=True)
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert data["success"] is False and data["sha"] is None
        # rebase stops at the first source commit that does not apply (it touches a.txt only)
        assert sorted(data["conflicts"]) == (["a.txt"] if strategy == "rebase" else ["a.txt", "b.txt"])
        assert data["head_commit"] == before["main"]
        assert "conflict" in data["message"].lower()
    assert heads(git, tenant, diverged["repo"]) == before  # nothing moved, the branch was not deleted


def test_squash_makes_one_commit_on_the_target(server, tenant, git, tmp_path, diverged):
    response = merge(server, tenant, diverged["repo"], source="feature", strategy="squash",
                     message="feat: everything from feature")
    data = response.json()["data"]
    assert data["success"] is True
    work = clone(git, tenant, diverged["repo"], tmp_path)
    assert git.out("log", "-1", "--format=%P", cwd=work) == diverged["main"]
    assert git.out("log", "-1", "--format=%B", cwd=work) == "feat: everything from feature"
    assert git.out("log", "-1", "--format=%an <%ae>", cwd=work) == "Test Agent <agent@example.test>"
    assert (work / "a.txt").read_text() == edited({1: "feature line 2", 15: "main line 16"})
    assert git.out("rev-list", "--count", "main", cwd=work) == "3"  # base, main's commit, the squash
    assert "feature" in heads(git, tenant, diverged["repo"])  # kept unless deleteBranch


def test_a_squash_into_a_record_only_branch_goes_onto_its_base(server, tenant, git, tmp_path, diverged):
    """The squash made a root commit: the branch then shared no history with main (409 on any merge back)."""
    repo = diverged["repo"]
    made = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches", {"name": "rec", "recordOnly": True})
    assert made.status_code == 201, made.text
    squashed = merge(server, tenant, repo, source="feature", target="rec", strategy="squash", message="squashed")
    assert squashed.status_code == 200 and squashed.json()["data"]["success"] is True, squashed.text
    work = clone(git, tenant, repo, tmp_path)
    git("fetch", "-q", "origin", "rec", cwd=work)
    assert git.out("log", "-1", "--format=%P", "FETCH_HEAD", cwd=work) == diverged["main"]
    assert git.out("show", "FETCH_HEAD:a.txt", cwd=work) + "\n" == edited({1: "feature line 2", 15: "main line 16"})
    back = merge(server, tenant, repo, source="rec", target="main", dry_run=True)
    assert back.status_code == 200 and back.json()["data"]["success"] is True, back.text
    api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches", {"name": "rec2", "recordOnly": True})
    nothing_new = merge(server, tenant, repo, source="main", target="rec2", strategy="squash")  # main holds main
    assert nothing_new.json()["data"]["already_merged"] is True, nothing_new.text
    assert heads(git, tenant, repo)["rec2"] == diverged["main"]  # the branch starts where its base is


def test_rebase_replays_the_commits_linearly(server, tenant, git, tmp_path, diverged):
    response = merge(server, tenant, diverged["repo"], source="feature", strategy="rebase")
    data = response.json()["data"]
    assert data["success"] is True
    work = clone(git, tenant, diverged["repo"], tmp_path)
    log = git.out("log", "--format=%P|%s|%an|%at", "main", cwd=work).splitlines()
    assert [entry.split("|")[1] for entry in log] == ["feature: add c.txt", "feature: edit line 2",
                                                       "main: edit line 16", "initial"]
    assert all(len(entry.split("|")[0].split()) <= 1 for entry in log)  # no merge commits
    assert log[1].split("|")[0] == diverged["main"]
    original = git.out("log", "-1", "--format=%an|%at", diverged["feature"], cwd=work)
    assert "|".join(log[0].split("|")[2:]) == original  # authorship kept
    assert git.out("log", "-1", "--format=%cn", "main", cwd=work) == "Driftstone"
    assert git.out("log", "--graph", "--format=%s", "main", cwd=work).count("|") == 0
    assert (work / "a.txt").read_text() == edited({1: "feature line 2", 15: "main line 16"})


def test_dry_run_changes_nothing(server, tenant, git, diverged):
    before = heads(git, tenant, diverged["repo"])
    for body in ({"dry_run": True}, {"dryRun": True, "strategy": "rebase"}, {"dry_run": True, "strategy": "squash"}):
        data = merge(server, tenant, diverged["repo"], source="feature", deleteBranch=True, **body).json()["data"]
        assert data["success"] is True and data["sha"] is None and data["head_commit"] == before["main"]
        assert "dry run" in data["message"].lower()
    assert heads(git, tenant, diverged["repo"]) == before


def test_a_dry_run_does_not_wait_for_the_writers_turn(server, tenant, git, diverged):
    """It writes nothing: a merge's answer to "would this merge?" (and a stack's mergeability) came only once the
    writers queued on the target had gone (a review: 10 s behind a held turn, p50 0.1 -> 0.55 s under load)."""
    turn = turn_file(repo_path(server, tenant, diverged["repo"]), "refs/heads/main")
    turn.parent.mkdir(exist_ok=True)
    holder = subprocess.Popen(["flock", str(turn), "-c", "echo held; sleep 8"], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"held\n"
        data = merge(server, tenant, diverged["repo"], source="feature", dry_run=True).json()["data"]
        assert holder.poll() is None  # answered while a writer still held the turn
        assert data["success"] is True and data["sha"] is None
    finally:
        holder.kill()
        holder.wait()


def test_delete_branch_after_merge(server, tenant, git, diverged):
    data = merge(server, tenant, diverged["repo"], source="feature", deleteBranch=True).json()["data"]
    assert data["success"] is True and "deleted" in data["message"]
    assert set(heads(git, tenant, diverged["repo"])) == {"main"}
    missing = api(server, tenant.keys["read"], "GET", f"/v1/repos/{diverged['repo']}/branches/feature")
    assert missing.status_code == 404


def test_stale_expected_target_head(server, tenant, git, diverged):
    work = diverged["work"]
    git.commit(work, {"b.txt": "moved on\n"}, "main moves again")
    git("push", "-q", tenant.url(diverged["repo"]), "main", cwd=work)
    before = heads(git, tenant, diverged["repo"])
    stale = merge(server, tenant, diverged["repo"], source="feature", expectedTargetHead=diverged["main"])
    assert stale.status_code == 409 and stale.json()["code"] == "stale_ref"
    assert stale.json()["details"]["actualTargetHead"] == before["main"]
    assert heads(git, tenant, diverged["repo"]) == before
    fresh = merge(server, tenant, diverged["repo"], source="feature", expectedTargetHead=before["main"])
    assert fresh.status_code == 200 and fresh.json()["data"]["success"] is True


def test_already_merged_and_fast_forward(server, tenant, git, tmp_path):
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a\n"})
    git("checkout", "-q", "-b", "ahead", cwd=work)
    ahead = git.commit(work, {"a.txt": "b\n"}, "ahead")
    git("push", "-q", tenant.url(repo), "main", "ahead", cwd=work)
    main = git.out("rev-parse", "main", cwd=work)
    done = merge(server, tenant, repo, source="main", target="ahead").json()["data"]
    assert done["success"] is True and done["already_merged"] is True and done["sha"] == ahead
    ff = merge(server, tenant, repo, source="ahead", fastForward=True).json()["data"]
    assert ff["success"] is True and ff["sha"] == ahead and heads(git, tenant, repo)["main"] == ahead
    assert main != ahead


def test_merge_commit_even_when_fast_forward_is_possible(server, tenant, git, tmp_path):
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a\n"})
    git("checkout", "-q", "-b", "topic", cwd=work)
    topic = git.commit(work, {"t.txt": "t\n"}, "topic")
    git("push", "-q", tenant.url(repo), "main", "topic", cwd=work)
    main = git.out("rev-parse", "main", cwd=work)
    data = merge(server, tenant, repo, source="topic").json()["data"]
    assert data["success"] is True
    check = clone(git, tenant, repo, tmp_path)
    assert git.out("log", "-1", "--format=%P", cwd=check).split() == [main, topic]


def test_rename_on_one_side_and_edit_on_the_other_merge_cleanly(server, tenant, git, tmp_path):
    repo = tenant.repo()
    prose = "".join(f"paragraph {i}: some text that stays the same {i * 3}\n" for i in range(30))
    work = git.new_worktree(tmp_path / "w", {"docs/guide.md": prose})
    git("checkout", "-q", "-b", "move", cwd=work)
    git("mv", "docs/guide.md", "handbook.md", cwd=work)
    git("commit", "-q", "-m", "move the guide", cwd=work)
    git("checkout", "-q", "main", cwd=work)
    git.commit(work, {"docs/guide.md": prose.replace("paragraph 7:", "paragraph seven:")}, "edit the guide")
    git("push", "-q", tenant.url(repo), "main", "move", cwd=work)
    data = merge(server, tenant, repo, source="move").json()["data"]
    assert data["success"] is True, data
    check = clone(git, tenant, repo, tmp_path)
    assert not (check / "docs").exists()
    assert "paragraph seven:" in (check / "handbook.md").read_text()


def test_concurrent_merges_lose_nothing(server, tenant, git, tmp_path):
    """Merges into one target take turns (storage/ref_turns.py): each merge commit is made once, on the head the
    merge before it left."""
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": NUMBERED_TEXT})
    names = [f"topic-{i}" for i in range(8)]
    for i, name in enumerate(names):
        git("checkout", "-q", "-b", name, "main", cwd=work)
        git.commit(work, {f"file-{i}.txt": f"{i}\n"}, f"add file {i}")
    git("push", "-q", tenant.url(repo), "main", *names, cwd=work)
    results = {}

    def run(name):
        results[name] = merge(server, tenant, repo, source=name)

    threads = [threading.Thread(target=run, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.status_code == 200 and r.json()["data"]["success"] for r in results.values()), \
        {n: r.text for n, r in results.items()}
    check = clone(git, tenant, repo, tmp_path)
    for i in range(8):
        assert (check / f"file-{i}.txt").read_text() == f"{i}\n"
    assert git.out("rev-list", "--count", "--merges", "main", cwd=check) == "8"
    stored = git.out("cat-file", "--batch-all-objects", "--batch-check=%(objecttype)",
                     cwd=repo_path(server, tenant, repo)).split()
    assert stored.count("commit") == 1 + 8 + 8  # main's, the topics', one merge each


def test_bad_requests(server, tenant, git, diverged):
    repo = diverged["repo"]
    assert merge(server, tenant, repo, source="feature", strategy="octopus").status_code == 422
    itself = merge(server, tenant, repo, source="main", deleteBranch=True).json()["data"]  # like `git merge main`
    assert itself["success"] is True and itself["already_merged"] is True and itself["sha"] == diverged["main"]
    assert merge(server, tenant, repo, source="nope").status_code == 404
    assert merge(server, tenant, repo, source="feature", target="nope").status_code == 404
    assert merge(server, tenant, repo, source="feature", expectedTargetHead="xyz").status_code == 422
    assert merge(server, tenant, repo, source="feature", unknown=1).status_code == 422
    assert merge(server, tenant, repo, source="feature", message="a\u0000b").status_code == 422
    read_only = api(server, tenant.keys["read"], "POST", f"/v1/repos/{repo}/merges", {"source": "feature"})
    assert read_only.status_code == 403
    other = server.tenant()
    assert api(server, other.keys["agent"], "POST", f"/v1/repos/{repo}/merges",
               {"source": "feature"}).status_code == 404
    assert heads(git, tenant, repo) == {"main": diverged["main"], "feature": diverged["feature"]}


def test_unrelated_histories_are_refused(server, tenant, git, tmp_path):
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a\n"})
    git("checkout", "-q", "--orphan", "island", cwd=work)
    git.commit(work, {"z.txt": "z\n"}, "island root")
    git("push", "-q", tenant.url(repo), "main", "island", cwd=work)
    response = merge(server, tenant, repo, source="island")
    assert response.status_code == 409 and response.json()["code"] == "conflict"


def test_identical_merges_at_once_make_one_merge_and_no_500(server, tenant, git, diverged):
    """They write the same pack; the losers of the pack's lock used to get a 500 (dulwich FileLocked)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: merge(server, tenant, diverged["repo"], source="feature", target="main",
                                                message="same"), range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert all(s < 500 for s in statuses), [a.text for a in answers if a.status_code >= 500]
    assert statuses.count(200) + statuses.count(201) >= 1
    git("fetch", "-q", tenant.url(diverged["repo"]), "main", cwd=diverged["work"])
    merged = git.out("rev-list", "--merges", f"{diverged['main']}..FETCH_HEAD", cwd=diverged["work"]).split()
    assert len(merged) >= 1  # the winner's merge; the others either merged again on top or were refused
