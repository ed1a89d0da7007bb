"""Seed 004 (dojo workspaces) run as documented against a real server, plus locks enforced on git pushes."""
from __future__ import annotations

import base64
import os
import socket
import subprocess
import threading
import time

import pytest
import requests
from sqlalchemy import select

from tests.support import Dojo, at_once, repo_path, request_interrupted, submit_work, v1


@pytest.fixture
def seeded(server, tenant, git, tmp_path):
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "seed", {"README.md": "# demo\n", "package.json": '{"name": "demo"}\n',
                                                "src/old-auth.ts": "export const legacy = true;\n",
                                                "src/app.ts": "import { legacy } from './old-auth';\n"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    return repo, work, git.out("rev-parse", "HEAD", cwd=work)


def test_seed_workspace_flow(server, tenant, git, tmp_path, seeded):
    repo, work, main = seeded
    dojo = Dojo(server, tenant, repo)
    created = dojo("POST", "/workspaces", {"name": "feature-auth", "agent_name": "claude"})
    assert created.status_code == 201
    ws = created.json()["workspace"]
    assert ws["name"] == "feature-auth" and ws["agent_name"] == "claude" and ws["status"] == "active"
    assert ws["base_commit"] == ws["current_commit"] == main
    ws_id = ws["id"]
    assert [w["id"] for w in dojo("GET", "/workspaces").json()["workspaces"]] == [ws_id]

    auth_ts = tmp_path / "auth.ts"
    auth_ts.write_text("export function login() {}\n")
    curl = subprocess.run(["curl", "-s", "-X", "PUT", f"{dojo.base}/workspaces/{ws_id}/files/src/auth.ts",
                           "-H", f"Authorization: Bearer {tenant.keys['agent']}", "--data-binary", f"@{auth_ts}"],
                          capture_output=True, text=True, check=True)
    assert '"path":"src/auth.ts"' in curl.stdout.replace(" ", "")
    assert dojo("PUT", f"/workspaces/{ws_id}/files/src/middleware.ts", data=b"export {}\n").status_code == 200
    assert dojo("PUT", f"/workspaces/{ws_id}/files/package.json", data=b'{"name": "demo", "v": 2}\n').status_code == 200
    assert dojo("DELETE", f"/workspaces/{ws_id}/files/src/old-auth.ts").status_code == 200

    read = dojo("GET", f"/workspaces/{ws_id}/files/src/auth.ts").json()
    assert read == {"path": "src/auth.ts", "content": base64.b64encode(b"export function login() {}\n").decode(),
                    "encoding": "base64", "source": "overlay"}
    assert dojo("GET", f"/workspaces/{ws_id}/files/README.md").json()["source"] == "base"
    assert dojo("GET", f"/workspaces/{ws_id}/files/src/old-auth.ts").status_code == 404
    assert dojo("GET", f"/workspaces/{ws_id}/status").json() == {
        "added": ["src/auth.ts", "src/middleware.ts"], "modified": ["package.json"], "deleted": ["src/old-auth.ts"]}

    listed = dojo("GET", f"/workspaces/{ws_id}/tree", params={"recursive": "true"}).json()
    assert {e["path"]: e["source"] for e in listed["entries"]} == {
        "README.md": "base", "package.json": "overlay", "src/app.ts": "base", "src/auth.ts": "overlay",
        "src/middleware.ts": "overlay"}
    assert {"name": "app.ts", "kind": "file", "path": "src/app.ts", "size": 37} \
        .items() <= next(e for e in listed["entries"] if e["path"] == "src/app.ts").items()
    root = dojo("GET", f"/workspaces/{ws_id}/tree").json()  # one level, directories first (dojo's Tree Browsing)
    assert [(e["name"], e["kind"], e["source"]) for e in root["entries"]] == [
        ("src", "dir", "overlay"), ("README.md", "file", "base"), ("package.json", "file", "overlay")]
    assert root["entries"][0]["blob_id"] is None and root["entries"][1]["blob_id"] == root["entries"][1]["sha"]
    src = dojo("GET", f"/workspaces/{ws_id}/tree", params={"path": "src", "ref": "main"}).json()
    assert [e["path"] for e in src["entries"]] == ["src/app.ts", "src/auth.ts", "src/middleware.ts"]
    found = dojo("GET", f"/workspaces/{ws_id}/search", params={"q": "login"}).json()
    assert [(r["path"], r["line"], r["source"]) for r in found["results"]] == [("src/auth.ts", 1, "overlay")]
    base_hit = dojo("GET", f"/workspaces/{ws_id}/search", params={"q": "legacy"}).json()["results"]
    assert [(r["path"], r["source"]) for r in base_hit] == [("src/app.ts", "base")]  # old-auth.ts is deleted here

    committed = dojo("POST", f"/workspaces/{ws_id}/commit", {
        "message": "Implement OAuth flow", "author_name": "claude", "author_email": "claude@agent.dev",
        "intent": {"goal": "Add GitHub OAuth authentication",
                   "plan": "Create OAuth handler, session middleware, user model",
                   "confidence": "high", "agent": "claude-code"}})
    assert committed.status_code == 201, committed.text
    sha = committed.json()["commit"]["sha"]
    assert committed.json()["commit"]["parents"] == [main]
    assert committed.json()["workspace"]["current_commit"] == sha
    assert dojo("GET", f"/workspaces/{ws_id}/status").json() == {"added": [], "modified": [], "deleted": []}
    assert dojo("GET", f"/workspaces/{ws_id}/files/src/auth.ts").json()["source"] == "base"

    submitted = dojo("POST", f"/workspaces/{ws_id}/submit", {"title": "Add authentication system"})
    assert submitted.status_code == 201, submitted.text
    stack = submitted.json()["stack"]
    assert stack["commits"] == [sha] and stack["base_branch"] == "main"
    clone = tmp_path / "clone"
    git("clone", "-q", "-b", submitted.json()["bookmark"], tenant.url(repo), str(clone))
    assert (clone / "src/auth.ts").read_text() == "export function login() {}\n"
    assert not (clone / "src/old-auth.ts").exists()
    message = git.out("log", "-1", "--format=%B", cwd=clone)
    assert "Intent-Goal: Add GitHub OAuth authentication" in message and "Intent-Confidence: high" in message
    assert git.out("log", "-1", "--format=%an <%ae>", cwd=clone) == "claude <claude@agent.dev>"

    commits = requests.get(f"{server.url}/v1/repos/{repo}/commits", params={"branch": submitted.json()["bookmark"]},
                           headers=dojo.headers, timeout=30).json()["data"]
    assert commits[0]["source"] == "workspace" and commits[0]["intent"]["goal"] == "Add GitHub OAuth authentication"

    squashed = v1(server, tenant, "POST", f"{repo}/stacks/{stack['id']}/merge", {"strategy": "squash"})
    assert squashed.status_code == 200 and squashed.json()["data"]["success"] is True, squashed.text
    merged = v1(server, tenant, "GET", f"{repo}/commits?branch=main").json()["data"][0]
    assert merged["message"].startswith("Add authentication system\n\n* Implement OAuth flow"), merged
    assert merged["intent"]["goal"] == "Add GitHub OAuth authentication"  # the squash kept the commit's intent

    deleted = dojo("DELETE", f"/workspaces/{ws_id}")
    assert deleted.status_code == 200
    assert dojo("GET", "/workspaces").json()["workspaces"] == []
    assert git.out("cat-file", "-t", sha, cwd=clone) == "commit"


def test_workspace_on_explicit_base_and_several_commits(server, tenant, seeded):
    repo, work, main = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo("POST", "/workspaces", {"name": "two-commits", "base_commit": main}).json()["workspace"]
    first = None
    for i in range(3):
        dojo("PUT", f"/workspaces/{ws['id']}/files/notes/{i}.md", data=f"note {i}\n".encode())
        result = dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": f"note {i}"}).json()
        assert result["commit"]["parents"] == [first or main]
        first = result["commit"]["sha"]
    assert dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "empty"}).status_code == 400
    assert dojo("POST", "/workspaces", {"name": "bad-base", "base_commit": "f" * 40}).status_code == 404


def test_a_workspace_commit_of_a_gitmodules_git_refuses_leaves_the_repository_fsck_clean(server, tenant, seeded):
    """The commit was refused, but only after its trees were written: they stayed (repacks keep unreachable
    objects) and `git fsck` of the repository failed for good (a hostile-input sweep)."""
    repo, _, main = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("evil-submodule")
    evil = b'[submodule "../../modules/evil"]\n\tpath = x\n\turl = https://example.com/x\n'
    assert dojo("PUT", f"/workspaces/{ws['id']}/files/.gitmodules", data=evil).status_code == 200
    refused = dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "evil"})
    assert refused.status_code == 400 and "gitmodulesName" in refused.json()["error"], refused.text
    served = repo_path(server, tenant, repo)
    fsck = subprocess.run(["git", "fsck", "--no-dangling"], cwd=served, capture_output=True)
    assert fsck.returncode == 0, fsck.stderr
    listed = {w["id"]: w for w in dojo("GET", "/workspaces").json()["workspaces"]}
    assert listed[ws["id"]]["current_commit"] == main


@pytest.mark.parametrize("author", [{"author_name": "A <evil@x>"}, {"author_email": "<a@x>"},
                                    {"author_email": "a@x\nEvil: header"}, {"author_email": "two words@x"}])
def test_an_author_git_could_not_keep_as_given_is_refused(server, tenant, seeded, author):
    """'<' and '>' were dropped and whitespace folded: the commit named someone other than the caller said."""
    repo, _, main = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("authored")
    dojo("PUT", f"/workspaces/{ws['id']}/files/a.txt", data=b"a")
    refused = dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "m", **author})
    assert refused.status_code == 400 and "author" in refused.text, refused.text
    assert dojo("GET", "/workspaces").json()["workspaces"][0]["current_commit"] == main
    assert dojo("GET", f"/workspaces/{ws['id']}/status").json()["added"] == ["a.txt"]


def test_large_and_binary_files(server, tenant, seeded):
    import os
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo("POST", "/workspaces", {"name": "big"}).json()["workspace"]
    payload = os.urandom(12 * 1024 * 1024)
    written = dojo("PUT", f"/workspaces/{ws['id']}/files/assets/blob.bin", data=payload)
    assert written.status_code == 200 and written.json()["size"] == len(payload)
    read = dojo("GET", f"/workspaces/{ws['id']}/files/assets/blob.bin").json()
    assert base64.b64decode(read["content"]) == payload


@pytest.mark.parametrize("path", ["unicode/naïve ü.txt", "with space/a b.md", "deep/" * 10 + "x.txt"])
def test_paths_with_unicode_spaces_and_depth(server, tenant, seeded, path):
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo("POST", "/workspaces", {"name": "paths"}).json()["workspace"]
    assert dojo("PUT", f"/workspaces/{ws['id']}/files/{path}", data=b"x").status_code == 200
    assert dojo("GET", f"/workspaces/{ws['id']}/files/{path}").json()["path"] == path
    assert dojo("GET", f"/workspaces/{ws['id']}/status").json()["added"] == [path]


def test_a_tree_of_a_file_or_of_nothing_is_refused(server, tenant, seeded):
    """These answered 200 with no entries, as if the directory were there and empty (git has no empty
    directories; the /v1 tree answers them 404 and 422)."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("trees")["id"]
    assert dojo("PUT", f"/workspaces/{ws}/files/new/only.txt", data=b"x").status_code == 200
    assert dojo("DELETE", f"/workspaces/{ws}/files/src/app.ts").status_code == 200
    assert dojo("DELETE", f"/workspaces/{ws}/files/src/old-auth.ts").status_code == 200
    for path, status in (("nonexistent", 404), ("src", 404), ("README.md", 400), ("new/only.txt", 400)):
        for recursive in ("false", "true"):
            answer = dojo("GET", f"/workspaces/{ws}/tree", params={"path": path, "recursive": recursive})
            assert answer.status_code == status, (path, answer.text)
            assert path in answer.json()["error"] and "success" not in answer.json()
    listed = dojo("GET", f"/workspaces/{ws}/tree", params={"path": "new"}).json()["entries"]
    assert [entry["path"] for entry in listed] == ["new/only.txt"]


@pytest.mark.parametrize("path", [".git/config", ".GIT/hooks/x", "a/.git/x", "git~1/config", ".git./x", ".git /x",
                                  "x/.git::$INDEX_ALLOCATION/y", ".g\u200cit/x", "a/%2e%2e/b", "a\\b", "a/%2e/b"])
def test_hostile_paths_are_refused(server, tenant, seeded, path):
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo("POST", "/workspaces", {"name": "hostile"}).json()["workspace"]
    response = dojo("PUT", f"/workspaces/{ws['id']}/files/{path}", data=b"evil")
    assert response.status_code in (400, 404), response.text
    assert "success" not in response.json()
    assert dojo("GET", f"/workspaces/{ws['id']}/status").json() == {"added": [], "modified": [], "deleted": []}


def test_two_agents_and_a_lock(server, tenant, git, tmp_path, seeded):
    repo, work, _ = seeded
    dojo = Dojo(server, tenant, repo)
    alice = dojo("POST", "/workspaces", {"name": "alice", "agent_name": "alice-bot"}).json()["workspace"]
    bob = dojo("POST", "/workspaces", {"name": "bob", "agent_name": "bob-bot"}).json()["workspace"]
    lock = dojo("POST", f"/workspaces/{alice['id']}/lock", {"patterns": ["src/auth/*", "package.json"]})
    assert lock.status_code == 201
    lock_id = lock.json()["lock"]["id"]
    assert lock.json()["lock"]["expires_at"].endswith("Z") and alice["created_at"].endswith("Z")  # one format

    refused = dojo("PUT", f"/workspaces/{bob['id']}/files/src/auth/session.ts", data=b"bob's")
    assert refused.status_code == 423
    assert "alice" in refused.json()["error"] and refused.json()["details"] == {
        "path": "src/auth/session.ts", "pattern": "src/auth/*", "lock_id": lock_id, "workspace_id": alice["id"],
        "workspace_name": "alice", "agent_name": "alice-bot"}  # snake_case, as every name on this surface
    assert dojo("PUT", f"/workspaces/{alice['id']}/files/src/auth/session.ts", data=b"alice's").status_code == 200
    assert dojo("PUT", f"/workspaces/{bob['id']}/files/src/other.ts", data=b"fine").status_code == 200
    overlapping = dojo("POST", f"/workspaces/{bob['id']}/lock", {"patterns": ["src/**"]})
    assert overlapping.status_code == 423
    assert overlapping.json()["details"]["held_pattern"] == "src/auth/*"
    assert overlapping.json()["details"]["workspace_id"] == alice["id"]

    conflicts = dojo("GET", f"/workspaces/{alice['id']}/check-conflicts").json()
    assert conflicts["has_conflicts"] is False
    dojo("PUT", f"/workspaces/{bob['id']}/files/src/app.ts", data=b"bob edits app")
    dojo("PUT", f"/workspaces/{alice['id']}/files/src/app.ts", data=b"alice edits app")
    warned = dojo("GET", f"/workspaces/{bob['id']}/check-conflicts").json()
    assert warned["has_conflicts"] is False
    assert warned["warnings"][0]["workspace_id"] == alice["id"] and warned["warnings"][0]["paths"] == ["src/app.ts"]

    git.commit(work, {"src/auth/token.ts": "pushed by someone"}, "touch a locked path")
    pushed = git("push", tenant.url(repo), "main", cwd=work, check=False)
    assert pushed.returncode != 0
    assert b"! [remote rejected] main -> main (src/auth/token.ts matches lock 'src/auth/*' locked by workspace alice" \
        in pushed.stderr
    listed = requests.get(f"{server.url}/v1/repos/{repo}/locks", headers=dojo.headers, timeout=30).json()["data"]
    assert [(l["id"], l["workspaceName"]) for l in listed] == [(lock_id, "alice")]

    not_holder = requests.delete(f"{server.url}/v1/repos/{repo}/locks/{lock_id}", params={"workspaceId": bob["id"]},
                                 headers=dojo.headers, timeout=30)
    assert not_holder.status_code == 403
    released = requests.delete(f"{server.url}/v1/repos/{repo}/locks/{lock_id}", params={"workspaceId": alice["id"]},
                               headers=dojo.headers, timeout=30)
    assert released.status_code == 200
    assert dojo("PUT", f"/workspaces/{bob['id']}/files/src/auth/session.ts", data=b"bob's").status_code == 200
    git("push", "-q", tenant.url(repo), "main", cwd=work)


def test_an_agent_name_cannot_write_to_another_pushers_terminal(server, tenant, git, seeded):
    """A workspace's agent_name took ESC, CR and LF, and a lock refusal copied it into another user's `git push`
    output raw (clear screen, a forged `remote:` line); a line `exit 0` in it ended the hook's verdict early."""
    from sqlalchemy import update

    from storage.models import Workspace

    repo, work, _ = seeded
    dojo = Dojo(server, tenant, repo)
    hostile = "\x1b[2J\x1b[31mEVIL\nexit 0\nremote: forged\r"
    for name in (hostile, "csi\u009b2J"):  # C1 too: U+009B starts a control sequence on some terminals
        refused = dojo("POST", "/workspaces", {"name": "esc", "agent_name": name})
        assert refused.status_code in (400, 422) and "control characters" in refused.text, refused.text
    ws = dojo("POST", "/workspaces", {"name": "esc", "agent_name": "plain"}).json()["workspace"]
    with server.context.db.session() as session:  # a name stored before the rule
        session.execute(update(Workspace).where(Workspace.id == ws["id"]).values(agent_name=hostile))
    assert dojo("POST", f"/workspaces/{ws['id']}/lock", {"patterns": ["esc/**"]}).status_code == 201
    before = git.out("ls-remote", tenant.url(repo), "refs/heads/main", cwd=work)
    git.commit(work, {"esc/f.txt": "x"}, "touch a locked path")
    pushed = git("push", tenant.url(repo), "main", cwd=work, check=False)
    assert pushed.returncode != 0 and b"\x1b" not in pushed.stderr and b"\r" not in pushed.stderr, pushed.stderr
    assert b"agent \\x1b[2J\\x1b[31mEVIL\\x0aexit 0\\x0aremote: forged\\x0d)" in pushed.stderr, pushed.stderr
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/main", cwd=work) == before
    assert "without approval" not in server.log_text()


def test_a_workspace_on_an_older_base_submits_past_a_lock_on_what_main_changed_since(server, tenant, git, seeded):
    """A new branch's paths were its difference from main's head: a workspace based on an older commit could not
    submit (nor a branch made there be pushed) past another workspace's lock on a file main changed since, a file
    it never touched. What a new branch changes is now counted from where it leaves main."""
    repo, work, base = seeded
    git.commit(work, {"docs/d.md": "changed on main since\n"}, "main moves on")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    dojo = Dojo(server, tenant, repo)
    holder = dojo.workspace("holder")
    assert dojo("POST", f"/workspaces/{holder['id']}/lock", {"patterns": ["docs/**"]}).status_code == 201
    _, stack, _ = submit_work(dojo, "older", {"zz/new.txt": "new\n"}, base_commit=base)
    assert stack["bookmark"] == "stacks/older"
    git("checkout", "-q", "-b", "touches-docs", base, cwd=work)
    git.commit(work, {"docs/d.md": "this one does change it\n"}, "a branch that edits the locked file")
    refused = git("push", tenant.url(repo), "touches-docs", cwd=work, check=False)
    assert b"docs/d.md matches lock 'docs/**'" in refused.stderr, refused.stderr


def test_asking_again_for_a_held_lock_renews_it_instead_of_adding_one(server, tenant, seeded):
    """A retried lock request made a second lock on the same paths, left behind when the first was released."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("holder")
    first = dojo("POST", f"/workspaces/{ws['id']}/lock", {"patterns": ["src/*", "README.md"], "ttl_seconds": 60})
    again = dojo("POST", f"/workspaces/{ws['id']}/lock", {"patterns": ["README.md", "src/*"], "ttl_seconds": 600})
    assert first.status_code == again.status_code == 201
    assert again.json()["lock"]["id"] == first.json()["lock"]["id"]
    assert again.json()["lock"]["expires_at"] > first.json()["lock"]["expires_at"]
    shorter = dojo("POST", f"/workspaces/{ws['id']}/lock", {"patterns": ["src/*", "README.md"], "ttl_seconds": 5})
    assert shorter.json()["lock"]["expires_at"] == again.json()["lock"]["expires_at"]  # never cut short
    other = dojo("POST", f"/workspaces/{ws['id']}/lock", {"patterns": ["src/*"]})
    assert other.json()["lock"]["id"] != first.json()["lock"]["id"]  # a different set is a lock of its own
    listed = requests.get(f"{server.url}/v1/repos/{repo}/locks", headers=dojo.headers, timeout=30).json()["data"]
    assert sorted(l["id"] for l in listed) == sorted([first.json()["lock"]["id"], other.json()["lock"]["id"]])


def test_admin_force_releases_and_locks_expire(server, tenant, seeded):
    import time
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    holder = dojo("POST", "/workspaces", {"name": "holder"}).json()["workspace"]
    other = dojo("POST", "/workspaces", {"name": "other"}).json()["workspace"]
    lock = dojo("POST", f"/workspaces/{holder['id']}/lock", {"patterns": ["docs"]}).json()["lock"]
    agent_force = requests.delete(f"{server.url}/v1/repos/{repo}/locks/{lock['id']}", params={"force": "true"},
                                  headers=dojo.headers, timeout=30)
    assert agent_force.status_code == 403
    admin = {"Authorization": f"Bearer {tenant.keys['admin']}"}
    assert requests.delete(f"{server.url}/v1/repos/{repo}/locks/{lock['id']}", params={"force": "true"},
                           headers=admin, timeout=30).status_code == 200
    assert dojo("PUT", f"/workspaces/{other['id']}/files/docs/a.md", data=b"a").status_code == 200
    dojo("POST", f"/workspaces/{holder['id']}/lock", {"patterns": ["lib/*"], "ttl_seconds": 1})
    assert dojo("PUT", f"/workspaces/{other['id']}/files/lib/x.py", data=b"x").status_code == 423
    time.sleep(1.5)
    assert dojo("PUT", f"/workspaces/{other['id']}/files/lib/x.py", data=b"x").status_code == 200


def test_of_simultaneous_releases_of_one_lock_exactly_one_is_told_it_released_it(server, tenant, seeded):
    """The holder's release and an admin's force release raced: both read the lock live, both answered 200, and
    the one that wrote last was recorded as the releaser (1 run in 4 of a hostile-input sweep)."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    holder = dojo("POST", "/workspaces", {"name": "release-race"}).json()["workspace"]
    admin = {"Authorization": f"Bearer {tenant.keys['admin']}"}
    for round_ in range(6):
        lock = dojo("POST", f"/workspaces/{holder['id']}/lock", {"patterns": [f"race{round_}/*"]}).json()["lock"]
        url = f"{server.url}/v1/repos/{repo}/locks/{lock['id']}"

        def release(i: int) -> requests.Response:
            if i % 2:
                return requests.delete(url, params={"force": "true"}, headers=admin, timeout=60)
            return requests.delete(url, params={"workspaceId": holder["id"]}, headers=dojo.headers, timeout=60)

        codes = sorted(response.status_code for response in at_once(8, release))
        assert codes == [200] + [404] * 7, codes


def test_scopes_and_other_orgs(server, tenant, seeded):
    repo, _, _ = seeded
    reader = Dojo(server, tenant, repo, scope="read")
    assert reader("POST", "/workspaces", {"name": "nope"}).status_code == 403
    assert reader("GET", "/workspaces").status_code == 200
    other = server.tenant()
    stranger = Dojo(server, other, repo, scope="admin")
    stranger.base = f"{server.url}/api/repos/{tenant.org}/{repo}"
    assert stranger("GET", "/workspaces").status_code == 404
    assert Dojo(server, tenant, "missing")("GET", "/workspaces").status_code == 404
    unauthenticated = requests.get(f"{server.url}/api/repos/{tenant.org}/{repo}/workspaces", timeout=30)
    assert unauthenticated.status_code == 401 and "success" not in unauthenticated.json()


def test_stack_reviewed_merged_and_cloned(server, tenant, git, tmp_path, seeded):
    repo, work, main = seeded
    dojo = Dojo(server, tenant, repo)
    _, stack, sha = submit_work(dojo, "feature", {"src/feature.ts": "export const feature = 1;\n"})
    listed = v1(server, tenant, "GET", f"{repo}/stacks").json()["data"]
    assert [s["id"] for s in listed] == [stack["id"]]
    got = v1(server, tenant, "GET", f"{repo}/stacks/{stack['id']}").json()["data"]
    assert got["commits"] == [sha] and got["mergeable"] is True and got["reviewDecision"] == "pending"
    review = v1(server, tenant, "POST", f"{repo}/stacks/{stack['id']}/reviews",
                {"state": "request_changes", "body": "name it better"}, scope="admin")  # another key than its author's
    assert review.status_code == 201
    assert v1(server, tenant, "GET", f"{repo}/stacks/{stack['id']}").json()["data"]["reviewDecision"] == \
        "changes_requested"
    v1(server, tenant, "POST", f"{repo}/stacks/{stack['id']}/reviews", {"state": "approve", "reviewerName": "rev"},
       scope="admin")
    assert v1(server, tenant, "GET", f"{repo}/stacks/{stack['id']}").json()["data"]["reviewDecision"] == "approved"
    dry = v1(server, tenant, "POST", f"{repo}/stacks/{stack['id']}/merge", {"dry_run": True}).json()["data"]
    assert dry["success"] is True
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/main").split()[0] == main
    merged = v1(server, tenant, "POST", f"{repo}/stacks/{stack['id']}/merge",
                {"strategy": "merge", "deleteBranch": True}).json()["data"]
    assert set(merged) == {"success", "sha", "head_commit", "already_merged", "target", "conflicts", "message"}
    assert merged["success"] is True and merged["target"] == "main" and merged["conflicts"] == []
    clone = tmp_path / "after"
    git("clone", "-q", tenant.url(repo), str(clone))
    assert (clone / "src/feature.ts").exists()
    assert git.out("log", "-1", "--format=%P", cwd=clone).split() == [main, sha]
    assert git.out("ls-remote", tenant.url(repo), f"refs/heads/{stack['bookmark']}") == ""
    final = v1(server, tenant, "GET", f"{repo}/stacks/{stack['id']}").json()["data"]
    assert final["status"] == "merged" and final["mergedSha"] == merged["head_commit"]
    again = v1(server, tenant, "POST", f"{repo}/stacks/{stack['id']}/merge", {})
    assert again.status_code == 409


def test_conflicting_stack_reports_paths_and_changes_nothing(server, tenant, git, seeded):
    repo, _, main = seeded
    dojo = Dojo(server, tenant, repo)
    _, first, _ = submit_work(dojo, "one", {"README.md": "# one\n"})
    _, second, _ = submit_work(dojo, "two", {"README.md": "# two\n"})
    assert v1(server, tenant, "POST", f"{repo}/stacks/{first['id']}/merge", {"strategy": "squash"}).json()["data"][
        "success"] is True
    head = git.out("ls-remote", tenant.url(repo), "refs/heads/main").split()[0]
    got = v1(server, tenant, "GET", f"{repo}/stacks/{second['id']}").json()["data"]
    assert got["mergeable"] is False and got["conflicts"] == ["README.md"]
    result = v1(server, tenant, "POST", f"{repo}/stacks/{second['id']}/merge", {}).json()["data"]
    assert result["success"] is False and result["conflicts"] == ["README.md"]
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/main").split()[0] == head != main


def test_child_stack_is_restacked_when_its_parent_merges(server, tenant, git, tmp_path, seeded):
    repo, _, main = seeded
    dojo = Dojo(server, tenant, repo)
    _, parent, parent_sha = submit_work(dojo, "parent", {"lib/base.py": "BASE = 1\n"})
    _, child, child_sha = submit_work(dojo, "child", {"lib/child.py": "from base import BASE\n"},
                                      base_commit=parent_sha)
    got = v1(server, tenant, "GET", f"{repo}/stacks/{child['id']}").json()["data"]
    assert got["parentStackId"] == parent["id"] and got["baseBranch"] == parent["bookmark"]
    assert got["commits"] == [child_sha]
    assert v1(server, tenant, "POST", f"{repo}/stacks/{child['id']}/merge", {}).status_code == 409
    squashed = v1(server, tenant, "POST", f"{repo}/stacks/{parent['id']}/merge", {"strategy": "squash"}).json()["data"]
    assert squashed["success"] is True
    restacked = v1(server, tenant, "GET", f"{repo}/stacks/{child['id']}").json()["data"]
    assert restacked["baseBranch"] == "main" and restacked["parentStackId"] is None
    assert restacked["mergeable"] is True and len(restacked["commits"]) == 1
    assert restacked["headCommit"] != child_sha
    assert git.out("ls-remote", tenant.url(repo), f"refs/heads/{child['bookmark']}").split()[0] == \
        restacked["headCommit"]
    merged = v1(server, tenant, "POST", f"{repo}/stacks/{child['id']}/merge", {"strategy": "rebase"}).json()["data"]
    assert merged["success"] is True
    clone = tmp_path / "c"
    git("clone", "-q", tenant.url(repo), str(clone))
    assert (clone / "lib/base.py").exists() and (clone / "lib/child.py").exists()
    subjects = git.out("log", "--format=%s", f"{main}..HEAD", cwd=clone).splitlines()
    assert len(subjects) == 2  # the squash of the parent, then the child's own commit replayed


def test_a_child_on_its_parents_head_keeps_its_commits_and_reviews_when_the_parent_fast_forwards(server, tenant,
                                                                                                 seeded):
    """A rebase merge of a parent that fast-forwarded main to its head rewrote the child already on that head
    (same trees, a new committer): its approvals were dropped and a grandchild was left behind on the old commit."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    _, parent, parent_sha = submit_work(dojo, "ff-parent", {"lib/base.py": "BASE = 1\n"})
    _, child, child_sha = submit_work(dojo, "ff-child", {"lib/child.py": "CHILD = 1\n"}, base_commit=parent_sha)
    path = f"{repo}/stacks/{child['id']}"
    assert v1(server, tenant, "POST", f"{path}/reviews", {"state": "approve"}, scope="admin").status_code == 201
    merged = v1(server, tenant, "POST", f"{repo}/stacks/{parent['id']}/merge", {"strategy": "rebase"}).json()["data"]
    assert merged["success"] and merged["head_commit"] == parent_sha  # main fast-forwarded to the parent's head
    kept = v1(server, tenant, "GET", path).json()["data"]
    assert (kept["headCommit"], kept["commits"], kept["baseCommit"]) == (child_sha, [child_sha], parent_sha)
    assert kept["baseBranch"] == "main" and kept["parentStackId"] is None
    assert kept["reviewDecision"] == "approved" and kept["mergeable"] is True


def test_files_over_the_read_limit_are_refused_not_loaded(server, tenant, seeded):
    """Reading base64's a whole file in memory: past 32 MiB it is a 413 (as on /v1 contents); search skips it."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo("POST", "/workspaces", {"name": "big", "agent_name": "a"}).json()["workspace"]["id"]
    big = (b"needle in a large file\n" * (33 * 1024 * 1024 // 23 + 1))
    assert dojo("PUT", f"/workspaces/{ws}/files/big.txt", data=big).status_code == 200
    read = dojo("GET", f"/workspaces/{ws}/files/big.txt")
    assert read.status_code == 413 and read.json()["code"] == "too_large"
    assert dojo("PUT", f"/workspaces/{ws}/files/small.txt", data=b"a needle\n").status_code == 200
    found = dojo("GET", f"/workspaces/{ws}/search", params={"q": "needle"})
    assert found.status_code == 200
    assert [hit["path"] for hit in found.json()["results"]] == ["small.txt"]


def test_a_file_and_a_path_inside_it_never_both_reach_a_commit(server, tenant, git, tmp_path, seeded):
    """A commit could keep only one of them: the write that would make the clash is refused (409) and the
    overlay keeps what it had; deleting a file first makes way for a directory of the same name."""
    repo, _, main = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo("POST", "/workspaces", {"name": "clash"}).json()["workspace"]["id"]
    put = lambda path, data=b"x\n": dojo("PUT", f"/workspaces/{ws}/files/{path}", data=data)  # noqa: E731
    assert put("src/auth.ts", b"export const auth = 1;\n").status_code == 200
    assert put("notes/todo.md").status_code == 200
    assert put("draft.txt").status_code == 200
    for path in ("src", "notes", "README.md/sub", "draft.txt/inner", "src/app.ts/x"):
        refused = put(path)
        assert refused.status_code == 409, (path, refused.text)
        assert refused.json()["code"] == "conflict" and "success" not in refused.json()
    assert dojo("GET", f"/workspaces/{ws}/status").json() == {
        "added": ["draft.txt", "notes/todo.md", "src/auth.ts"], "modified": [], "deleted": []}

    assert dojo("DELETE", f"/workspaces/{ws}/files/README.md").status_code == 200
    assert put("README.md/index.md", b"# now a directory\n").status_code == 200
    committed = dojo("POST", f"/workspaces/{ws}/commit", {"message": "file to directory"})
    assert committed.status_code == 201, committed.text
    clone = tmp_path / "clone"
    git("clone", "-q", "--branch", "main", tenant.url(repo), str(clone))
    git("fetch", "-q", "origin", committed.json()["commit"]["sha"], cwd=clone)
    files = set(git.out("ls-tree", "-r", "--name-only", "FETCH_HEAD", cwd=clone).splitlines())
    assert files == {"README.md/index.md", "draft.txt", "notes/todo.md", "package.json", "src/app.ts",
                     "src/auth.ts", "src/old-auth.ts"}


def test_a_compressed_overlay_write_is_refused_not_stored_compressed(server, tenant, seeded):
    import gzip
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo("POST", "/workspaces", {"name": "gzip"}).json()["workspace"]["id"]
    refused = requests.put(f"{dojo.base}/workspaces/{ws}/files/hello.txt", data=gzip.compress(b"hello\n"),
                           headers={**dojo.headers, "Content-Encoding": "gzip"}, timeout=60)
    assert refused.status_code == 415 and refused.json()["code"] == "unsupported_media_type"
    assert dojo("GET", f"/workspaces/{ws}/files/hello.txt").status_code == 404


def test_commits_pushed_to_a_stack_branch_are_not_merged_over_nor_orphaned(server, tenant, git, tmp_path, seeded):
    """The stack merges what was submitted; with deleteBranch it used to delete the bookmark from whatever it
    pointed at, leaving a commit pushed there on no branch. A resubmit moved the bookmark back over it."""
    repo, _, main = seeded
    dojo = Dojo(server, tenant, repo)
    ws, stack, _ = submit_work(dojo, "pushed-to", {"x.txt": "x\n"})
    work = tmp_path / "w"
    git("clone", "-q", "--branch", stack["bookmark"], tenant.url(repo), str(work))
    follow_up = git.commit(work, {"y.txt": "y\n"}, "follow-up")
    git("push", "-q", "origin", f"HEAD:{stack['bookmark']}", cwd=work)
    refused = v1(server, tenant, "POST", f"{repo}/stacks/{stack['id']}/merge", {"deleteBranch": True})
    assert refused.status_code == 409 and refused.json()["code"] == "stale_ref", refused.text
    assert git.out("ls-remote", tenant.url(repo), f"refs/heads/{stack['bookmark']}").split()[0] == follow_up
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/main").split()[0] == main
    assert v1(server, tenant, "GET", f"{repo}/stacks/{stack['id']}").json()["data"]["status"] == "open"
    assert dojo("PUT", f"/workspaces/{ws['id']}/files/z.txt", data=b"z").status_code == 200  # nor does a resubmit
    assert dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "more"}).status_code == 201  # move it back
    resubmitted = dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": "again"})
    assert resubmitted.status_code == 409, resubmitted.text
    assert git.out("ls-remote", tenant.url(repo), f"refs/heads/{stack['bookmark']}").split()[0] == follow_up


def test_a_lock_holders_own_stack_merges_over_its_locked_paths(server, tenant, seeded):
    """A lock keeps other workspaces off its paths, not the work of the workspace holding it."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo("POST", "/workspaces", {"name": "holder", "agent_name": "bot"}).json()["workspace"]
    assert dojo("POST", f"/workspaces/{ws['id']}/lock", {"patterns": ["src/*"]}).status_code == 201
    assert dojo("PUT", f"/workspaces/{ws['id']}/files/src/a.txt", data=b"mine").status_code == 200
    assert dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "locked work"}).status_code == 201
    stack = dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": "locked work"}).json()["stack"]
    assert v1(server, tenant, "GET", f"{repo}/stacks/{stack['id']}").json()["data"]["mergeable"] is True
    merged = v1(server, tenant, "POST", f"{repo}/stacks/{stack['id']}/merge", {})
    assert merged.status_code == 200 and merged.json()["data"]["success"] is True, merged.text


def test_a_stack_another_workspaces_lock_would_refuse_does_not_read_mergeable(server, tenant, git, seeded):
    """The dry run behind `mergeable` skipped the checks: it said true, and the merge then got 423."""
    repo, work, _ = seeded
    dojo = Dojo(server, tenant, repo)
    holder, other = dojo.workspace("holder"), dojo.workspace("other")
    dojo("PUT", f"/workspaces/{other['id']}/files/src/a.txt", data=b"theirs")
    dojo("POST", f"/workspaces/{other['id']}/commit", {"message": "touch src"})
    stack = dojo("POST", f"/workspaces/{other['id']}/submit", {"title": "touch src"}).json()["stack"]
    assert v1(server, tenant, "GET", f"{repo}/stacks/{stack['id']}").json()["data"]["mergeable"] is True
    assert dojo("POST", f"/workspaces/{holder['id']}/lock", {"patterns": ["src/*"]}).status_code == 201
    shown = v1(server, tenant, "GET", f"{repo}/stacks/{stack['id']}").json()["data"]
    assert shown["mergeable"] is False and "matches lock 'src/*'" in shown["conflicts"][0], shown
    dry = v1(server, tenant, "POST", f"{repo}/stacks/{stack['id']}/merge", {"dryRun": True})
    merged = v1(server, tenant, "POST", f"{repo}/stacks/{stack['id']}/merge", {})
    assert dry.status_code == merged.status_code == 423, (dry.text, merged.text)
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/main").split()[0] == seeded[2]


def test_a_child_stack_whose_branch_got_new_commits_is_not_restacked_over_them(server, tenant, git, tmp_path,
                                                                               seeded):
    """The parent's merge replayed the child's submitted commits onto main and moved the child's branch there,
    dropping a commit pushed to that branch after the submit: it was left on no branch."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    _, parent, parent_sha = submit_work(dojo, "parent", {"lib/base.py": "BASE = 1\n"})
    _, child, _ = submit_work(dojo, "child", {"lib/child.py": "x\n"}, base_commit=parent_sha)
    clone = tmp_path / "pusher"
    git("clone", "-q", "--branch", child["bookmark"], tenant.url(repo), str(clone))
    pushed = git.commit(clone, {"lib/later.py": "pushed later\n"}, "pushed to the stack's branch")
    git("push", "-q", "origin", child["bookmark"], cwd=clone)
    merged = v1(server, tenant, "POST", f"{repo}/stacks/{parent['id']}/merge", {"strategy": "squash"})
    assert merged.status_code == 200 and merged.json()["data"]["success"] is True, merged.text
    assert git.out("ls-remote", tenant.url(repo), f"refs/heads/{child['bookmark']}").split()[0] == pushed
    shown = v1(server, tenant, "GET", f"{repo}/stacks/{child['id']}").json()["data"]
    assert v1(server, tenant, "POST", f"{repo}/stacks/{child['id']}/merge", {}).status_code == 409, shown


def _lines(changed: dict[int, str]) -> str:
    return "".join(f"{changed.get(n, n)}\n" for n in range(1, 31))


@pytest.mark.parametrize("strategy", ["squash", "merge", "rebase"])
def test_a_child_stack_its_restack_could_not_move_never_merges_over_the_target(server, tenant, git, tmp_path, seeded,
                                                                              strategy):
    """A child whose restack conflicted kept its commits but took the target's head as its base; its squash then
    merged from that base, put the child's tree over main and answered success: main lost a file and a line
    pushed to it (merge sweep). Every strategy must see the conflict that git sees, and leave main alone."""
    repo, work, _ = seeded
    git.commit(work, {"f.txt": _lines({})}, "thirty lines")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    dojo = Dojo(server, tenant, repo)
    _, parent, parent_sha = submit_work(dojo, "parent", {"f.txt": _lines({1: "A1"})})
    _, child, _ = submit_work(dojo, "child", {"f.txt": _lines({1: "A1", 20: "B20"})}, base_commit=parent_sha)
    git.commit(work, {"f.txt": _lines({20: "M20"}), "m.txt": "main's own work\n"}, "main moves on")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    merged = v1(server, tenant, "POST", f"{repo}/stacks/{parent['id']}/merge", {"strategy": strategy})
    assert merged.status_code == 200 and merged.json()["data"]["success"] is True, merged.text
    main = git.out("ls-remote", tenant.url(repo), "refs/heads/main").split()[0]
    shown = v1(server, tenant, "GET", f"{repo}/stacks/{child['id']}").json()["data"]
    assert shown["mergeable"] is False and shown["baseBranch"] == "main", shown
    child_merge = v1(server, tenant, "POST", f"{repo}/stacks/{child['id']}/merge", {"strategy": strategy})
    assert child_merge.status_code in (200, 409), child_merge.text
    if child_merge.status_code == 200:
        assert child_merge.json()["data"]["success"] is False and "f.txt" in str(child_merge.json()["data"])
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/main").split()[0] == main


def test_a_rebase_of_a_later_stack_replays_its_own_commits_only(server, tenant, git, tmp_path, seeded):
    """After a squash of a workspace's first stack, its second stack's rebase replayed the first stack's commits
    too (not in main: main has their squash), and stopped at a conflict with a later change to main (sweep)."""
    repo, work, _ = seeded
    git.commit(work, {"f.txt": _lines({})}, "thirty lines")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("twice")
    for number, change in enumerate(({1: "A1"}, {1: "A1", 2: "A2"})):
        dojo("PUT", f"/workspaces/{ws['id']}/files/f.txt", data=_lines(change).encode())
        assert dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": f"a{number + 1}"}).status_code == 201
    first = dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": "first"}).json()["stack"]
    merged = v1(server, tenant, "POST", f"{repo}/stacks/{first['id']}/merge", {"strategy": "squash"})
    assert merged.status_code == 200 and merged.json()["data"]["success"] is True, merged.text
    git("pull", "-q", "--rebase", tenant.url(repo), "main", cwd=work)
    git.commit(work, {"f.txt": _lines({1: "Z1", 2: "A2"})}, "main changes line 1 again")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    dojo("PUT", f"/workspaces/{ws['id']}/files/f.txt", data=_lines({1: "A1", 2: "A2", 30: "A30"}).encode())
    third = dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "a3"}).json()["commit"]["sha"]
    second = dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": "second"}).json()["stack"]
    assert second["commits"] == [third]
    rebased = v1(server, tenant, "POST", f"{repo}/stacks/{second['id']}/merge", {"strategy": "rebase"})
    assert rebased.status_code == 200 and rebased.json()["data"]["success"] is True, rebased.text
    clone = tmp_path / "final"
    git("clone", "-q", tenant.url(repo), str(clone))
    assert (clone / "f.txt").read_text() == _lines({1: "Z1", 2: "A2", 30: "A30"})
    assert git.out("log", "-1", "--format=%s", cwd=clone) == "a3"


def test_a_parent_stack_merges_when_its_childs_branch_may_not_be_restacked(server, tenant, git, seeded):
    """With the stacks' branches protected (no force), the child's restack (a force move of its branch) was
    refused, and the refusal undid the parent's merge: 403 'force push is not allowed' for a branch the merge
    did not name, while the dry run said it would merge cleanly."""
    from sqlalchemy import select

    from control.services import repos
    from storage.models import Repository

    repo, _, _ = seeded
    with server.context.db.session() as session:
        row = session.scalar(select(Repository).where(Repository.org_id == tenant.org_id, Repository.slug == repo))
        repos.protect_branch(session, row, "stacks/**")
    dojo = Dojo(server, tenant, repo)
    _, parent, parent_sha = submit_work(dojo, "parent", {"lib/base.py": "BASE = 1\n"})
    _, child, child_sha = submit_work(dojo, "child", {"lib/child.py": "x\n"}, base_commit=parent_sha)
    merged = v1(server, tenant, "POST", f"{repo}/stacks/{parent['id']}/merge", {"strategy": "squash"})
    assert merged.status_code == 200 and merged.json()["data"]["success"] is True, merged.text
    main = git.out("ls-remote", tenant.url(repo), "refs/heads/main").split()[0]
    assert main == merged.json()["data"]["head_commit"]
    assert git.out("ls-remote", tenant.url(repo), f"refs/heads/{child['bookmark']}").split()[0] == child_sha
    shown = v1(server, tenant, "GET", f"{repo}/stacks/{child['id']}").json()["data"]
    assert shown["headCommit"] == child_sha and shown["parentStackId"] is None and shown["baseBranch"] == "main"


def test_a_restack_over_the_object_limit_stores_nothing_and_the_parents_merge_stands(small_limits_server, git,
                                                                                       tmp_path):
    """The child's replay made a file over the object limit (main's own change, the parent's and the child's,
    each under it, together over it): its objects were stored before the check refused the move (found by this
    session's review)."""
    from tests.support import repo_path

    def lines(tag: str, count: int) -> str:
        return "".join(f"{tag} line {i} of a file three changes grow\n" for i in range(count))

    server, tenant = small_limits_server, small_limits_server.tenant()
    repo = tenant.repo()
    base = lines("base-a", 5_000) + lines("base-b", 5_000)  # ~0.5 MiB
    work = git.new_worktree(tmp_path / "w", {"f.txt": base})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    dojo = Dojo(server, tenant, repo)
    parent_text = lines("parent", 4_500) + base
    _, parent, parent_sha = submit_work(dojo, "parent", {"f.txt": parent_text})
    child_text = lines("parent", 4_500) + lines("base-a", 5_000) + lines("child", 4_500) + lines("base-b", 5_000)
    _, child, child_sha = submit_work(dojo, "child", {"f.txt": child_text}, base_commit=parent_sha)
    git.commit(work, {"f.txt": base + lines("main", 4_500)}, "main grows too")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    merged = v1(server, tenant, "POST", f"{repo}/stacks/{parent['id']}/merge", {"strategy": "squash"})
    assert merged.status_code == 200 and merged.json()["data"]["success"] is True, merged.text
    shown = v1(server, tenant, "GET", f"{repo}/stacks/{child['id']}")
    assert shown.status_code == 200, shown.text  # was a 413 once dry runs ran the size check
    shown = shown.json()["data"]
    assert shown["headCommit"] == child_sha and shown["baseBranch"] == "main" and shown["mergeable"] is False
    assert "larger than the 1048576 byte limit" in shown["conflicts"][0]
    replayed = (lines("parent", 4_500) + lines("base-a", 5_000) + lines("child", 4_500) + lines("base-b", 5_000)
                + lines("main", 4_500)).encode()
    blob = subprocess.run(["git", "hash-object", "--stdin"], input=replayed, capture_output=True,
                          check=True).stdout.decode().strip()
    stored = subprocess.run(["git", "cat-file", "-e", blob], cwd=repo_path(server, tenant, repo))
    assert len(replayed) > 1024 * 1024 and stored.returncode != 0


def test_deleting_a_directory_is_refused_and_changes_nothing(server, tenant, seeded):
    """The file route deleted a whole directory, past a lock on a file inside it, while reads still showed it."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    alice, bob = dojo.workspace("alice"), dojo.workspace("bob")
    assert dojo("POST", f"/workspaces/{alice['id']}/lock", {"patterns": ["src/app.ts"]}).status_code == 201
    refused = dojo("DELETE", f"/workspaces/{bob['id']}/files/src")
    assert refused.status_code == 400 and "directory" in refused.json()["error"]
    assert dojo("GET", f"/workspaces/{bob['id']}/status").json() == {"added": [], "modified": [], "deleted": []}
    assert dojo("GET", f"/workspaces/{bob['id']}/files/src/app.ts").json()["source"] == "base"


def test_a_file_takes_the_place_of_a_directory_once_its_files_are_deleted(server, tenant, git, seeded):
    """Writing `src` as a file was refused (409) even after every file under it was deleted in the overlay."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("flatten")
    assert dojo("DELETE", f"/workspaces/{ws['id']}/files/src/app.ts").status_code == 200
    kept = dojo("PUT", f"/workspaces/{ws['id']}/files/src", data=b"one file now\n")
    assert kept.status_code == 409, kept.text  # src/old-auth.ts is still there
    assert dojo("DELETE", f"/workspaces/{ws['id']}/files/src/old-auth.ts").status_code == 200
    assert dojo("PUT", f"/workspaces/{ws['id']}/files/src", data=b"one file now\n").status_code == 200
    assert dojo("PUT", f"/workspaces/{ws['id']}/files/src/new.ts", data=b"x").status_code == 409
    assert dojo("GET", f"/workspaces/{ws['id']}/status").json() == {
        "added": ["src"], "modified": [], "deleted": ["src/app.ts", "src/old-auth.ts"]}
    commit = dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "flatten src"})
    assert commit.status_code == 201, commit.text
    work = seeded[1]
    git("fetch", "-q", tenant.url(repo), commit.json()["commit"]["sha"], cwd=work)
    assert git.out("ls-tree", "-r", "FETCH_HEAD", cwd=work).split("\n")[2].split()[:2] == ["100644", "blob"]
    assert git.out("ls-tree", "-r", "--name-only", "FETCH_HEAD", cwd=work).split() == ["README.md", "package.json",
                                                                                         "src"]
    assert git.out("show", "FETCH_HEAD:src", cwd=work) == "one file now"


def test_a_file_written_over_a_directory_is_deleted_and_the_directory_is_back(server, tenant, seeded):
    """Its DELETE was refused as a directory's (the commit's entry was looked at first), and nothing could write
    under the path again: the agent could not undo its own overlay file. A second DELETE of a file is a 404,
    whether the overlay or the commit had it."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("undo")
    files = f"/workspaces/{ws['id']}/files"
    for path in ("src/app.ts", "src/old-auth.ts"):
        assert dojo("DELETE", f"{files}/{path}").status_code == 200
    assert dojo("PUT", f"{files}/src", data=b"one file\n").status_code == 200
    assert dojo("DELETE", f"{files}/src").status_code == 200
    assert dojo("GET", f"/workspaces/{ws['id']}/status").json() == {
        "added": [], "modified": [], "deleted": ["src/app.ts", "src/old-auth.ts"]}
    assert dojo("PUT", f"{files}/src/app.ts", data=b"back\n").status_code == 200
    assert dojo("GET", f"{files}/src/app.ts").json()["source"] == "overlay"
    assert dojo("DELETE", f"{files}/src").status_code == 400  # a directory again
    assert dojo("DELETE", f"{files}/src/old-auth.ts").status_code == 404  # deleted already
    assert dojo("PUT", f"{files}/new.txt", data=b"n\n").status_code == 200
    assert dojo("DELETE", f"{files}/new.txt").status_code == 200
    assert dojo("DELETE", f"{files}/new.txt").status_code == 404
    assert dojo("GET", f"/workspaces/{ws['id']}/status").json() == {
        "added": [], "modified": ["src/app.ts"], "deleted": ["src/old-auth.ts"]}


def test_wildcard_locks_cover_directories_and_overlapping_locks_are_refused(server, tenant, seeded):
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    alice, bob = dojo.workspace("alice"), dojo.workspace("bob")
    assert dojo("POST", f"/workspaces/{alice['id']}/lock", {"patterns": ["src/a?th"]}).status_code == 201
    assert dojo("PUT", f"/workspaces/{bob['id']}/files/src/auth/x.ts", data=b"x").status_code == 423
    for theirs in ("src/au*/x.ts", "*/auth/x.ts", "src"):
        assert dojo("POST", f"/workspaces/{bob['id']}/lock", {"patterns": [theirs]}).status_code == 423, theirs


@pytest.mark.parametrize("pattern", ["./src/auth.ts", "src//auth.ts", "src/./auth.ts", "src\\auth.ts", "src/..",
                                     "ctl\u0001/*", "src/\n*", "src/\x7f", "src/\u009b*", "src/ /x", "src/a::$DATA",
                                     "src/ .", "/abs/*", "x" * 1100])
def test_lock_patterns_no_path_can_match_are_refused(server, tenant, seeded, pattern):
    """Stored paths have no '.', empty parts, backslashes, control characters, blank parts or NTFS streams: such a
    lock was granted and protected nothing."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("w")
    assert dojo("POST", f"/workspaces/{ws['id']}/lock", {"patterns": [pattern]}).status_code == 400


def test_a_path_that_is_not_utf8_is_refused_not_renamed(server, tenant, seeded):
    """werkzeug decoded %ff and %fe both to U+FFFD: the second write replaced the first under a third name."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("w")
    for raw in ("%ff.txt", "dir/%fe%ff"):
        refused = dojo("PUT", f"/workspaces/{ws['id']}/files/{raw}", data=b"x")
        assert refused.status_code == 400 and "UTF-8" in refused.json()["error"]
    assert dojo("PUT", f"/workspaces/{ws['id']}/files/%EF%BF%BD.txt", data=b"x").status_code == 200  # a real U+FFFD
    assert dojo("GET", f"/workspaces/{ws['id']}/status").json()["added"] == ["\ufffd.txt"]


def test_a_lock_racing_its_workspaces_delete_does_not_outlive_it(server, tenant, seeded):
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    for round_ in range(4):
        ws = dojo("POST", "/workspaces", {"name": f"gone-{round_}"}).json()["workspace"]
        answers = at_once(9, lambda i: dojo("DELETE", f"/workspaces/{ws['id']}") if i == 0 else
                          dojo("POST", f"/workspaces/{ws['id']}/lock", {"patterns": [f"r{round_}/p{i}"]}))
        assert answers[0].status_code == 200
        assert {a.status_code for a in answers[1:]} <= {201, 404}
    listed = requests.get(f"{server.url}/v1/repos/{repo}/locks", headers=dojo.headers, timeout=30).json()["data"]
    assert listed == []
    other = dojo("POST", "/workspaces", {"name": "after"}).json()["workspace"]
    assert dojo("PUT", f"/workspaces/{other['id']}/files/r0/p1", data=b"free").status_code == 200


def test_commits_and_submits_racing_their_workspaces_delete_answer_not_found(server, tenant, seeded):
    """On SQLite the workspace was found (active) outside any lock: a commit that waited for a delete went on and
    answered 400 "nothing to commit" (the overlay was gone), and a submit could open a stack for the deleted
    workspace."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    for round_ in range(12):
        ws = dojo.workspace(f"going-{round_}")
        base = f"/workspaces/{ws['id']}"
        assert dojo("PUT", f"{base}/files/first.txt", data=b"1").status_code == 200
        if round_ % 2:
            assert dojo("POST", f"{base}/commit", {"message": "first"}).status_code == 201
        racer = (("POST", f"{base}/submit", {"title": "t"}) if round_ % 2
                 else ("POST", f"{base}/commit", {"message": "m"}))
        answers = at_once(2, lambda i: dojo("DELETE", base) if i == 0 else dojo(*racer))
        assert answers[0].status_code == 200
        assert answers[1].status_code in (201, 404), (racer[1], answers[1].status_code, answers[1].text)


def test_simultaneous_writes_of_one_new_file_all_answer_and_one_wins(server, tenant, seeded):
    """16 writes of one new path: 1-3 answered 500 (a unique-key race) and their content was dropped."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    for round_ in range(8):
        ws = dojo("POST", "/workspaces", {"name": f"w{round_}"}).json()["workspace"]
        answers = at_once(16, lambda i: dojo("PUT", f"/workspaces/{ws['id']}/files/new.txt", data=f"{i}".encode()))
        assert [a.status_code for a in answers] == [200] * 16, [a.text for a in answers if a.status_code != 200]
        final = base64.b64decode(dojo("GET", f"/workspaces/{ws['id']}/files/new.txt").json()["content"])
        assert final.decode() in {str(i) for i in range(16)}


def test_writes_racing_commits_all_land(server, tenant, seeded):
    """A commit clearing the overlay row a write was replacing made the write answer 500 (StaleDataError)."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo("POST", "/workspaces", {"name": "busy"}).json()["workspace"]
    base = f"/workspaces/{ws['id']}"
    statuses, done = [], threading.Event()

    def commit_until_done():
        while not done.is_set():
            statuses.append(dojo("POST", f"{base}/commit", {"message": "c"}).status_code)

    committer = threading.Thread(target=commit_until_done)
    committer.start()
    try:
        for i in range(60):
            statuses.append(dojo("PUT", f"{base}/files/{'ab'[i % 2]}.txt", data=f"v{i}".encode()).status_code)
    finally:
        done.set()
        committer.join(timeout=120)
    assert set(statuses) <= {200, 201, 400, 409}, statuses
    assert dojo("POST", f"{base}/commit", {"message": "last"}).status_code in (201, 400)
    tree = {e["path"]: e["sha"] for e in dojo("GET", f"{base}/tree", params={"recursive": "true"}).json()["entries"]}
    for path, last in (("a.txt", "v58"), ("b.txt", "v59")):
        read = dojo("GET", f"{base}/files/{path}").json()
        assert base64.b64decode(read["content"]).decode() == last and read["source"] == "base", read
        assert path in tree


def test_commits_racing_on_one_workspace_keep_every_answered_commit(server, tenant, seeded):
    """On SQLite the commits' turns were not taken (FOR UPDATE is a no-op there): two commits moved the ref in
    one order and wrote the row in the other, leaving the row behind its ref, commits that had answered 201
    missing from the workspace, and every later commit refused with 409 (sweep: 2 runs in 3 of 12 x 15)."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("crowded")
    base = f"/workspaces/{ws['id']}"
    answered, statuses = [], []

    def commit_in_turns(i: int) -> None:
        for k in range(8):
            dojo("PUT", f"{base}/files/x/{i}_{k}.txt", data=b"v")
            answer = dojo("POST", f"{base}/commit", {"message": f"m{i}_{k}"})
            statuses.append(answer.status_code)
            if answer.status_code == 201:
                answered.append(answer.json()["commit"]["sha"])

    threads = [threading.Thread(target=commit_in_turns, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert set(statuses) <= {201, 400}, statuses
    row = next(w for w in dojo("GET", "/workspaces").json()["workspaces"] if w["id"] == ws["id"])
    path = repo_path(server, tenant, repo)
    ref = subprocess.run(["git", "-C", str(path), "rev-parse", f"refs/driftstone/workspaces/{ws['id']}"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert row["current_commit"] == ref
    for sha in answered:
        assert subprocess.run(["git", "-C", str(path), "merge-base", "--is-ancestor", sha, ref]).returncode == 0, sha
    names = {e["path"] for e in dojo("GET", f"{base}/tree", params={"recursive": "true"}).json()["entries"]}
    assert {f"x/{i}_{k}.txt" for i in range(10) for k in range(8)} <= names
    assert dojo("PUT", f"{base}/files/after.txt", data=b"v").status_code == 200
    assert dojo("POST", f"{base}/commit", {"message": "after the crowd"}).status_code == 201


def test_a_write_whose_key_is_revoked_mid_body_is_refused(server, tenant, seeded):
    repo, _, _ = seeded
    admin = {"Authorization": f"Bearer {tenant.keys['admin']}"}
    issued = requests.post(f"{server.url}/v1/keys", json={"name": "brief", "scope": "agent"}, headers=admin,
                           timeout=30).json()["data"]
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("w")
    body = b"x" * 200_000
    head = (f"PUT /api/repos/{tenant.org}/{repo}/workspaces/{ws['id']}/files/late.txt HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAuthorization: Bearer {issued['key']}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    answer = request_interrupted(server, head, body, 1000, lambda: requests.delete(
        f"{server.url}/v1/keys/{issued['id']}", headers=admin, timeout=30).raise_for_status())
    assert answer.split(b"\r\n", 1)[0].endswith(b"403 FORBIDDEN") or b" 403 " in answer.split(b"\r\n", 1)[0]
    assert dojo("GET", f"/workspaces/{ws['id']}/status").json()["added"] == []


def _git_children(root: int) -> list[str]:
    """Command lines of the git processes below `root`."""
    parents, commands = {}, {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                raw = stat.read()
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                commands[int(entry.name)] = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parents[int(entry.name)] = int(raw[raw.rindex(b")") + 2:].split()[1])

    def below(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 1)
            if pid == root:
                return True
        return False

    return [command for pid, command in commands.items() if "hash-object" in command and below(pid)]


def test_a_refused_or_cut_off_write_leaves_no_git_behind(small_limits_server):
    """Each write over the size limit, or cut off by its client, left a `git hash-object` waiting on its stdin
    for good (~100 MB each at the default limit)."""
    server = small_limits_server
    tenant = server.tenant()
    repo = tenant.repo()
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("w")
    assert dojo("PUT", f"/workspaces/{ws['id']}/files/big.bin", data=b"x" * (2 * 1024 * 1024)).status_code == 413
    head = (f"PUT /api/repos/{tenant.org}/{repo}/workspaces/{ws['id']}/files/cut.bin HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAuthorization: Bearer {tenant.keys['agent']}\r\nContent-Length: 500000\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"y" * 100_000)
        time.sleep(0.5)
    deadline = time.monotonic() + 20
    while _git_children(server.process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _git_children(server.process.pid) == []
    assert dojo("GET", f"/workspaces/{ws['id']}/status").json()["added"] == []


@pytest.mark.parametrize("strategy", ["squash", "merge", "rebase"])
def test_a_line_changed_again_after_a_squash_merges_again(server, tenant, git, tmp_path, seeded, strategy):
    """The second stack holds only the commits made since the first merged, but a squash took git's merge base
    (older: main has the squash, not those commits) and applied the first change again: a conflict."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace(f"twice-{strategy}")
    for round_, text in enumerate((b"v1\n", b"v2\n")):
        dojo("PUT", f"/workspaces/{ws['id']}/files/README.md", data=text)
        dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": f"round {round_}"})
        stack = dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": f"round {round_}"}).json()["stack"]
        merged = v1(server, tenant, "POST", f"{repo}/stacks/{stack['id']}/merge", {"strategy": strategy})
        assert merged.status_code == 200 and merged.json()["data"]["success"], merged.text
    clone = tmp_path / "final"
    git("clone", "-q", tenant.url(repo), str(clone))
    assert (clone / "README.md").read_text() == "v2\n"


@pytest.mark.parametrize("delete_branch", [False, True])
def test_a_workspace_submits_again_after_its_stack_merged(server, tenant, git, tmp_path, seeded, delete_branch):
    """After a merge that kept the bookmark, every later submit was a 409 "branch already exists" for good."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("again")
    dojo("PUT", f"/workspaces/{ws['id']}/files/one.txt", data=b"1")
    dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "one"})
    first = dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": "first"}).json()["stack"]
    merged = v1(server, tenant, "POST", f"{repo}/stacks/{first['id']}/merge", {"deleteBranch": delete_branch})
    assert merged.status_code == 200 and merged.json()["data"]["success"], merged.text
    nothing = dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": "nothing new"})
    assert nothing.status_code == 400, nothing.text
    dojo("PUT", f"/workspaces/{ws['id']}/files/two.txt", data=b"2")
    two = dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "two"}).json()["commit"]["sha"]
    second = dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": "second"})
    assert second.status_code == 201, second.text
    stack = second.json()["stack"]
    assert stack["id"] != first["id"] and stack["bookmark"] == first["bookmark"]
    assert stack["commits"] == [two] and stack["base_commit"] == first["head_commit"]
    # submitted again: the same stack, still without the merged commits (it took them back from the old base)
    again = dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": "second, again"})
    assert again.status_code == 201, again.text
    assert again.json()["stack"]["id"] == stack["id"] and again.json()["stack"]["commits"] == [two]
    assert again.json()["stack"]["base_commit"] == first["head_commit"]
    assert v1(server, tenant, "POST", f"{repo}/stacks/{stack['id']}/merge", {}).json()["data"]["success"]
    clone = tmp_path / "final"
    git("clone", "-q", tenant.url(repo), str(clone))
    assert (clone / "one.txt").read_text() == "1" and (clone / "two.txt").read_text() == "2"


def test_search_follows_dojos_search_api(server, tenant, seeded):
    """docs.dojo.ninja/api/search, which seed 004 points to: one result per file with a >>>>highlighted<<<<
    snippet, a rank and its source; q in FTS syntax, case-insensitive; limit 50 by default; a path filter."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("finder")
    base = f"/workspaces/{ws['id']}"
    dojo("PUT", f"{base}/files/src/new-middleware.ts", data=b"const r = await handleAuth(c.req)\n// TODO oauth\n")
    dojo("PUT", f"{base}/files/docs/notes.md", data=b"OAuth notes: error handling matters\n")

    def paths(q, **params):
        answer = dojo("GET", f"{base}/search", params={"q": q, **params})
        assert answer.status_code == 200, answer.text
        return sorted(hit["path"] for hit in answer.json()["results"])

    found = dojo("GET", f"{base}/search", params={"q": "handleAuth"}).json()
    assert found["query"] == "handleAuth"
    hit = found["results"][0]
    assert hit["path"] == "src/new-middleware.ts" and hit["source"] == "overlay"
    assert hit["snippet"] == "const r = await >>>>handleAuth<<<<(c.req) // TODO oauth" and hit["rank"] < 0
    assert paths("OAUTH") == ["docs/notes.md", "src/new-middleware.ts"]
    assert paths("todo oauth") == ["src/new-middleware.ts"]
    assert paths('"error handling"') == ["docs/notes.md"] and paths('"handling error"') == []
    assert paths("legacy OR notes") == ["docs/notes.md", "src/app.ts", "src/old-auth.ts"]
    assert paths("oauth NOT todo") == ["docs/notes.md"]
    assert paths("hand*") == ["docs/notes.md", "src/new-middleware.ts"] and paths("handle*") == ["src/new-middleware.ts"]
    assert paths("oauth", path="src/") == ["src/new-middleware.ts"]
    assert dojo("GET", f"{base}/search", params={"q": "NOT oauth"}).status_code == 400
    for i in range(55):
        dojo("PUT", f"{base}/files/many/{i:02d}.txt", data=b"needle\n")
    many = dojo("GET", f"{base}/search", params={"q": "needle"}).json()
    assert len(many["results"]) == 50 and many["truncated"] is True
    assert len(dojo("GET", f"{base}/search", params={"q": "needle", "limit": 60}).json()["results"]) == 55
    key = tenant.keys["admin"]
    echoed = dojo("GET", f"{base}/search", params={"q": key})
    assert echoed.status_code == 200 and key not in echoed.text and echoed.json()["query"].startswith("dk-")


def test_base_commit_may_be_a_short_sha(server, tenant, seeded):
    """Seed 004's base_commit is "optional-commit-id"; a 7-digit id answered 404 "branch 'c4ba1c6' not found"."""
    repo, _, main = seeded
    dojo = Dojo(server, tenant, repo)
    created = dojo("POST", "/workspaces", {"name": "short", "base_commit": main[:7]})
    assert created.status_code == 201, created.text
    assert created.json()["workspace"]["base_commit"] == main
    missing = dojo("POST", "/workspaces", {"name": "nope", "base_commit": "0000000"})
    assert missing.status_code == 404 and "0000000" in missing.json()["error"]
    branch = v1(server, tenant, "POST", f"{repo}/branches", {"name": "from-short", "from": main[:10]})
    assert branch.status_code == 201 and branch.json()["data"]["headCommit"] == main, branch.text
    assert branch.json()["data"]["baseBranch"] == "main"  # a commit is no branch: it read "baseBranch": "<sha>"


def _commit_onto_workspace_ref(repo_dir, workspace_id: str, parent: str, files: dict[str, str],
                               message: str = "lost\n\nIntent-Goal: keep it") -> str:
    """What a commit whose worker was killed after it moved the ref leaves: the workspace's ref on a commit of
    (some of) its overlay, the workspace's row and overlay as they were."""
    env = {**os.environ, "GIT_INDEX_FILE": str(repo_dir / "lost-commit.index"), "GIT_AUTHOR_NAME": "a",
           "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@x"}

    def git_in_repo(*args, data=None):
        return subprocess.run(["git", "-C", str(repo_dir), *args], input=data, env=env, capture_output=True,
                              check=True).stdout.decode().strip()

    git_in_repo("read-tree", parent)
    for path, content in files.items():
        blob = git_in_repo("hash-object", "-w", "--stdin", data=content.encode())
        git_in_repo("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
    lost = git_in_repo("commit-tree", git_in_repo("write-tree"), "-p", parent, "-m", message)
    git_in_repo("update-ref", f"refs/driftstone/workspaces/{workspace_id}", lost, "")  # made by the first commit
    (repo_dir / "lost-commit.index").unlink()
    return lost


@pytest.mark.parametrize("lost_holds", [("a.txt", "b.txt"), ("a.txt",)])
def test_a_commit_whose_worker_died_after_the_ref_moved_is_taken_up_by_the_retry(server, tenant, seeded, lost_holds):
    """Seen with kill -9: the ref moved, the row did not; every later commit answered 409 'the workspace moved
    while committing' for good, and only deleting the workspace (and its overlay) got out of it. A retry that
    finds its whole overlay committed answers with that commit, message and intent too (not the retry's)."""
    from tests.support import repo_path

    repo, _, main = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("killed-mid-commit")
    files = {"a.txt": "a\n", "b.txt": "b\n"}
    for path, content in files.items():
        dojo("PUT", f"/workspaces/{ws['id']}/files/{path}", data=content.encode())
    lost = _commit_onto_workspace_ref(repo_path(server, tenant, repo), ws["id"], main,
                                      {p: files[p] for p in lost_holds})
    retried = dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "the retry"})
    assert retried.status_code == 201, retried.text
    if len(lost_holds) == 2:  # the whole overlay was in it: the retry's commit is that one, as it was written
        assert retried.json()["commit"] == {"sha": lost, "parents": [main], "message": "lost",
                                            "intent": {"goal": "keep it"}}
    else:
        assert retried.json()["commit"]["parents"] == [lost]
    assert v1(server, tenant, "GET", f"{repo}/commits/{lost}").json()["data"]["source"] == "workspace"
    assert dojo("GET", f"/workspaces/{ws['id']}/status").json() == {"added": [], "modified": [], "deleted": []}
    dojo("PUT", f"/workspaces/{ws['id']}/files/c.txt", data=b"c\n")
    after = dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "next"})
    assert after.status_code == 201 and after.json()["commit"]["parents"] == [retried.json()["commit"]["sha"]]


def test_a_retry_of_a_commit_whose_worker_died_answers_as_the_first_would_have(server, tenant, seeded):
    """The retry answered with the intent parsed back from the trailers: keys renamed (agentName) and every value
    a string ("0.9"), where the first request's answer echoes what it sent (found by this session's review)."""
    from storage.intent import message_with_intent
    from tests.support import repo_path

    repo, _, main = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("killed-mid-commit-retried")
    dojo("PUT", f"/workspaces/{ws['id']}/files/a.txt", data=b"a\n")
    request = {"message": "add a", "intent": {"agent_name": "bot", "confidence": 0.9, "done": True}}
    lost = _commit_onto_workspace_ref(repo_path(server, tenant, repo), ws["id"], main, {"a.txt": "a\n"},
                                      message_with_intent(request["message"], request["intent"]))
    retried = dojo("POST", f"/workspaces/{ws['id']}/commit", request)
    assert retried.status_code == 201, retried.text
    assert retried.json()["commit"] == {"sha": lost, "parents": [main], **request}


def test_a_workspace_ref_moved_any_other_way_is_still_refused(server, tenant, git, tmp_path, seeded):
    from tests.support import repo_path

    repo, work, main = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("moved-elsewhere")
    dojo("PUT", f"/workspaces/{ws['id']}/files/a.txt", data=b"a\n")
    git.commit(work, {"elsewhere.txt": "x\n"}, "not on the workspace's head")
    git.commit(work, {"elsewhere.txt": "y\n"}, "not the workspace's")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    other = git.out("rev-parse", "HEAD", cwd=work)
    subprocess.run(["git", "-C", str(repo_path(server, tenant, repo)), "update-ref",
                    f"refs/driftstone/workspaces/{ws['id']}", other], check=True)
    refused = dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "m"})
    assert refused.status_code == 409 and "moved" in refused.json()["error"], refused.text


@pytest.mark.parametrize("committed_since", [False, True])
def test_a_submit_whose_worker_died_after_making_the_bookmark_is_taken_up_by_the_next(server, tenant, seeded,
                                                                                      committed_since):
    """Seen with kill -9: the bookmark branch made, the stack not stored; every later submit answered 409
    'branch already exists' for good."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("killed-mid-submit")
    dojo("PUT", f"/workspaces/{ws['id']}/files/a.txt", data=b"a\n")
    head = dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "a"}).json()["commit"]["sha"]
    made = v1(server, tenant, "POST", f"{repo}/branches", {"name": "stacks/killed-mid-submit", "from": head})
    assert made.status_code == 201, made.text  # what the lost submit left
    if committed_since:
        dojo("PUT", f"/workspaces/{ws['id']}/files/b.txt", data=b"b\n")
        head = dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "b"}).json()["commit"]["sha"]
    submitted = dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": "again"})
    assert submitted.status_code == 201, submitted.text
    assert submitted.json()["stack"]["head_commit"] == head


@pytest.mark.parametrize("at", ["theirs", "the workspace's base"])
def test_a_bookmark_branch_that_is_not_the_workspaces_own_is_left_alone(server, tenant, git, tmp_path, seeded, at):
    """Someone else's branch of that name: with commits the workspace lacks, or at the workspace's base (all
    of which the workspace holds: taking it over would have fast-forwarded another key's branch). The submit
    takes the next free name instead (it was refused for good)."""
    repo, work, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("name-taken")
    dojo("PUT", f"/workspaces/{ws['id']}/files/a.txt", data=b"a\n")
    dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "a"})
    if at == "theirs":
        git.commit(work, {"theirs.txt": "theirs\n"}, "someone else's")
    git("push", "-q", tenant.url(repo), "HEAD:refs/heads/stacks/name-taken", cwd=work)
    submitted = dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": "t"})
    assert submitted.status_code == 201 and submitted.json()["bookmark"] == "stacks/name-taken-2", submitted.text
    theirs = git.out("rev-parse", "HEAD", cwd=work)
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/stacks/name-taken", cwd=work).split()[0] == theirs
    again = dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": "t2"})
    assert again.status_code == 201 and again.json()["bookmark"] == "stacks/name-taken-2", again.text


@pytest.mark.parametrize("taken,name,bookmark", [
    ("stacks/dfa", "dfa/b", "stacks/dfa-b"),  # a branch where the bookmark needs a directory
    ("stacks/dfb/c", "dfb", "stacks/dfb-2"),  # and one under where the bookmark would be a file
])
def test_a_branch_that_is_a_prefix_of_the_bookmark_or_under_it_does_not_block_submits(server, tenant, git, seeded,
                                                                                     taken, name, bookmark):
    """A branch `stacks/dfa` made every submit of a workspace `dfa/b` a 409 for good ("clashes with an existing
    ref"), and `stacks/dfb/c` every submit of `dfb`."""
    repo, work, _ = seeded
    git("push", "-q", tenant.url(repo), f"HEAD:refs/heads/{taken}", cwd=work)
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace(name)
    dojo("PUT", f"/workspaces/{ws['id']}/files/a.txt", data=b"a\n")
    dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "a"})
    submitted = dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": "t"})
    assert submitted.status_code == 201 and submitted.json()["bookmark"] == bookmark, submitted.text
    assert git.out("ls-remote", tenant.url(repo), f"refs/heads/{taken}", cwd=work).split()[0] == \
        git.out("rev-parse", "HEAD", cwd=work)


def test_when_every_bookmark_name_is_taken_the_refusal_names_the_last_one_tried(server, tenant, git, seeded):
    """The 409 named `stacks/full/x` to `stacks/full/x-100`, branches no submit tries (the later names are
    flattened: `stacks/full-x-2`, ...)."""
    repo, work, _ = seeded
    taken = ["stacks/full/x", "stacks/full-x", *(f"stacks/full-x-{n}" for n in range(2, 101))]
    git("push", "-q", tenant.url(repo), *(f"HEAD:refs/heads/{name}" for name in taken), cwd=work)  # at its base
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("full/x")
    dojo("PUT", f"/workspaces/{ws['id']}/files/a.txt", data=b"a\n")
    dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "a"})
    refused = dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": "t"})
    assert refused.status_code == 409, refused.text
    assert "'stacks/full/x' to 'stacks/full-x-100' already exist" in refused.json()["error"], refused.text


def test_a_workspace_name_used_again_submits_beside_the_old_stack(server, tenant, seeded):
    """A deleted workspace's stack stays open on stacks/<name>; a new workspace of that name got 'branch
    already exists' at every submit, for good."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    stacks = []
    for round_ in range(2):
        ws = dojo.workspace("feature-auth")["id"]
        assert dojo("PUT", f"/workspaces/{ws}/files/auth{round_}.ts", data=b"x\n").status_code == 200
        assert dojo("POST", f"/workspaces/{ws}/commit", {"message": "auth"}).status_code == 201
        submitted = dojo("POST", f"/workspaces/{ws}/submit", {"title": f"round {round_}"})
        assert submitted.status_code == 201, submitted.text
        stacks.append(submitted.json()["stack"])
        assert dojo("DELETE", f"/workspaces/{ws}").status_code in (200, 204)
    assert [s["bookmark"] for s in stacks] == ["stacks/feature-auth", "stacks/feature-auth-2"]
    assert stacks[0]["status"] == stacks[1]["status"] == "open"


def test_the_same_commit_made_in_several_workspaces_at_once_answers_every_one(server, tenant, seeded):
    """The same change committed in the same second in eight workspaces is one commit sha: the commit's
    metadata row was checked for and then inserted, and on PostgreSQL 3 of 32 such commits answered 500
    (unique violation) after their refs had moved."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    workspaces = [dojo.workspace(f"same-{i}") for i in range(8)]
    for ws in workspaces:
        dojo("PUT", f"/workspaces/{ws['id']}/files/same.txt", data=b"same\n")
    body = {"message": "same", "author_name": "A", "author_email": "a@x"}
    answers = at_once(8, lambda i: dojo("POST", f"/workspaces/{workspaces[i]['id']}/commit", body))
    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers if a.status_code != 201]


def test_one_level_of_the_tree_is_what_the_whole_tree_shows_of_it(server, tenant, git, tmp_path):
    """A directory's own entries are read without walking the whole tree (a root of 11 entries over 100,000
    files took 1.1-1.8 s); a directory the overlay deleted every file of is gone, one it deleted some of or
    added to stays."""
    repo = tenant.repo()
    files = {"top.txt": "t", "keep.txt": "k", "gone/a.txt": "a", "gone/deep/b.txt": "b", "some/a.txt": "a",
             "some/b.txt": "b", "grow/a.txt": "a", "swap/a.txt": "a", "z/y/x.txt": "x"}
    work = git.new_worktree(tmp_path / "w", files)
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("one-level")
    for path in ("top.txt", "gone/a.txt", "gone/deep/b.txt", "some/a.txt", "swap/a.txt"):
        assert dojo("DELETE", f"/workspaces/{ws['id']}/files/{path}").status_code == 200
    for path in ("new.txt", "grow/deeper/c.txt", "swap/b.txt", "fresh/dir/d.txt"):
        assert dojo("PUT", f"/workspaces/{ws['id']}/files/{path}", data=b"new\n").status_code == 200
    every = dojo("GET", f"/workspaces/{ws['id']}/tree", params={"recursive": "true"}).json()["entries"]
    sources = {e["path"]: e["source"] for e in every}
    for prefix in ("", "grow", "z", "some"):
        below = {p: src for p, src in sources.items() if not prefix or p.startswith(prefix + "/")}
        depth = len(prefix.split("/")) if prefix else 0
        expected = {}
        for path, source in below.items():
            parts = path.split("/")
            name = "/".join(parts[:depth + 1])
            if len(parts) == depth + 1:
                expected[name] = ("file", source)
            else:
                expected[name] = ("dir", "overlay" if source == "overlay" or expected.get(name, ("", ""))[1]
                                  == "overlay" else "base")
        params = {"path": prefix} if prefix else {}
        level = dojo("GET", f"/workspaces/{ws['id']}/tree", params=params).json()["entries"]
        assert {e["path"]: (e["kind"], e["source"]) for e in level} == expected, prefix
        assert [e["kind"] for e in level] == sorted((e["kind"] for e in level), key=lambda k: k != "dir")
    assert dojo("GET", f"/workspaces/{ws['id']}/tree", params={"path": "gone"}).status_code == 404


def test_a_lost_commit_whose_file_the_overlay_now_writes_inside_answers_cleanly(server, tenant, seeded):
    """The lost commit made `zz` a file; the overlay, still on the older head, then wrote `zz/b`: every commit
    answered 500 (dulwich's NotTreeError)."""
    from tests.support import repo_path

    repo, _, main = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("file-then-dir")
    dojo("PUT", f"/workspaces/{ws['id']}/files/zz", data=b"a file\n")
    _commit_onto_workspace_ref(repo_path(server, tenant, repo), ws["id"], main, {"zz": "a file\n"})
    assert dojo("DELETE", f"/workspaces/{ws['id']}/files/zz").status_code == 200
    assert dojo("PUT", f"/workspaces/{ws['id']}/files/zz/b", data=b"inside\n").status_code == 200
    answer = dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "m"})
    assert answer.status_code in (201, 409), answer.text
    if answer.status_code == 409:
        assert "zz" in answer.json()["error"]


def test_a_write_keeps_what_the_file_is_executable_or_symlink(server, tenant, git, tmp_path):
    """Every write made a plain file (100644): an edited script lost its executable bit, and a symlink written
    to became a regular file holding the target's text."""
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"run.sh": "#!/bin/sh\necho one\n", "plain.txt": "a\n"})
    os.chmod(work / "run.sh", 0o755)
    os.symlink("plain.txt", work / "link")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "modes", cwd=work)
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("modes")["id"]
    for path, data in (("run.sh", b"#!/bin/sh\necho two\n"), ("link", b"run.sh"), ("plain.txt", b"b\n"),
                       ("new.sh", b"#!/bin/sh\n")):
        assert dojo("PUT", f"/workspaces/{ws}/files/{path}", data=data).status_code == 200
    assert dojo("PUT", f"/workspaces/{ws}/files/run.sh", data=b"#!/bin/sh\necho three\n").status_code == 200
    committed = dojo("POST", f"/workspaces/{ws}/commit", {"message": "edit in place"})
    assert committed.status_code == 201, committed.text
    git("fetch", "-q", tenant.url(repo), committed.json()["commit"]["sha"], cwd=work)
    modes = {line.split("\t")[1]: line.split()[0] for line in git.out("ls-tree", "FETCH_HEAD", cwd=work).splitlines()}
    assert modes == {"run.sh": "100755", "link": "120000", "plain.txt": "100644", "new.sh": "100644"}
    assert git.out("show", "FETCH_HEAD:link", cwd=work) == "run.sh"


def test_an_overlay_that_changes_nothing_is_nothing_to_commit(server, tenant, seeded):
    """A file written back with the bytes it had: status showed no change, and the commit still made an empty
    commit (its tree its parent's), where an empty overlay is refused."""
    repo, _, main = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("same")["id"]
    assert dojo("PUT", f"/workspaces/{ws}/files/README.md", data=b"# demo\n").status_code == 200
    assert dojo("GET", f"/workspaces/{ws}/status").json() == {"added": [], "modified": [], "deleted": []}
    refused = dojo("POST", f"/workspaces/{ws}/commit", {"message": "identical"})
    assert refused.status_code == 400 and "nothing to commit" in refused.json()["error"], refused.text
    assert dojo("PUT", f"/workspaces/{ws}/files/README.md", data=b"# changed\n").status_code == 200
    committed = dojo("POST", f"/workspaces/{ws}/commit", {"message": "now it does"})
    assert committed.status_code == 201 and committed.json()["commit"]["parents"] == [main]


def test_intent_values_that_are_not_strings_are_written_as_json_writes_them(server, tenant, git, tmp_path, seeded):
    """str() wrote Python's spelling into the commit's trailers and the /v1 answer: "True" for true. The trailers
    spell them as JSON does; the /v1 answer keeps them as sent (it gave text while the commit's own answer kept
    the types)."""
    repo, work, _ = seeded
    dojo = Dojo(server, tenant, repo)
    ws = dojo.workspace("typed-intent")["id"]
    assert dojo("PUT", f"/workspaces/{ws}/files/notes.md", data=b"n\n").status_code == 200
    intent = {"confidence": 0.9, "tests_passed": True, "files": 3, "plan": "ship it"}
    committed = dojo("POST", f"/workspaces/{ws}/commit", {"message": "typed", "intent": intent})
    assert committed.status_code == 201, committed.text
    sha = committed.json()["commit"]["sha"]
    v1 = requests.get(f"{server.url}/v1/repos/{repo}/commits/{sha}", timeout=30,
                      headers={"Authorization": f"Bearer {tenant.keys['read']}"}).json()["data"]
    assert v1["intent"] == intent
    git("fetch", "-q", tenant.url(repo), sha, cwd=work)
    assert "Intent-Tests-Passed: true\n" in git.out("log", "-1", "--format=%B", "FETCH_HEAD", cwd=work) + "\n"


def test_a_submit_refused_by_a_lock_names_its_holder_as_a_write_refused_by_it_does(server, tenant, seeded):
    """A write refused by a lock named the holder in its details, a submit only the ref (a conformance review)."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    writer = dojo("POST", "/workspaces", {"name": "writer"}).json()["workspace"]
    holder = dojo("POST", "/workspaces", {"name": "holder", "agent_name": "keeper"}).json()["workspace"]
    assert dojo("PUT", f"/workspaces/{writer['id']}/files/guarded/x.md", data=b"x\n").status_code == 200
    assert dojo("POST", f"/workspaces/{writer['id']}/commit", {"message": "x"}).status_code == 201
    lock = dojo("POST", f"/workspaces/{holder['id']}/lock", {"patterns": ["guarded/*"]}).json()["lock"]
    refused = dojo("POST", f"/workspaces/{writer['id']}/submit", {"title": "guarded"})
    assert refused.status_code == 423, refused.text
    details = refused.json()["details"]
    assert details["path"] == "guarded/x.md" and details["lock_id"] == lock["id"], details
    assert (details["workspace_id"], details["workspace_name"], details["agent_name"]) == (holder["id"], "holder",
                                                                                           "keeper")


def _stack_state(server, tenant, repo, stack_id):
    got = v1(server, tenant, "GET", f"{repo}/stacks/{stack_id}").json()["data"]
    return got["status"], got["mergedSha"]


def test_a_stack_whose_head_is_pushed_onto_its_base_reads_merged(server, tenant, git, tmp_path, seeded):
    """As GitHub and Gitea close a pull request whose head reaches its base: a merge made on a clone and pushed, or
    the base fast-forwarded to the head. Pushing the head elsewhere, or other work to the base, leaves it open."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    _, merged_by_hand, merged_head = submit_work(dojo, "by-hand", {"src/hand.ts": "export const hand = 1;\n"})
    _, waiting, _ = submit_work(dojo, "waiting", {"src/wait.ts": "export const wait = 1;\n"})
    clone = tmp_path / "hand"
    git("clone", "-q", tenant.url(repo), str(clone))
    git("push", "-q", "origin", f"{merged_head}:refs/heads/elsewhere", cwd=clone)
    git.commit(clone, {"notes.txt": "unrelated\n"}, "unrelated work on main")
    git("push", "-q", "origin", "main", cwd=clone)
    assert _stack_state(server, tenant, repo, merged_by_hand["id"]) == ("open", None)

    git("fetch", "-q", "origin", merged_by_hand["bookmark"], cwd=clone)
    git("merge", "-q", "--no-ff", "-m", "merge by hand", "FETCH_HEAD", cwd=clone)
    git("push", "-q", "origin", "main", cwd=clone)
    merge_commit = git.out("rev-parse", "HEAD", cwd=clone)
    assert _stack_state(server, tenant, repo, merged_by_hand["id"]) == ("merged", merge_commit)
    assert _stack_state(server, tenant, repo, waiting["id"]) == ("open", None)
    again = v1(server, tenant, "POST", f"{repo}/stacks/{merged_by_hand['id']}/merge", {})
    assert again.status_code == 409 and "merged" in again.text


def test_a_stack_fast_forwarded_onto_its_base_or_merged_as_a_branch_reads_merged(server, tenant, git, tmp_path,
                                                                                 seeded):
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    _, forwarded, head = submit_work(dojo, "forwarded", {"a.txt": "a\n"})
    clone = tmp_path / "forward"
    git("clone", "-q", "-b", forwarded["bookmark"], tenant.url(repo), str(clone))
    git("push", "-q", "origin", f"{head}:refs/heads/main", cwd=clone)
    assert _stack_state(server, tenant, repo, forwarded["id"]) == ("merged", head)

    _, as_branch, _ = submit_work(dojo, "as-branch", {"b.txt": "b\n"})
    merged = requests.post(f"{server.url}/v1/repos/{repo}/merges", timeout=60,
                           json={"source": as_branch["bookmark"], "target": "main", "strategy": "merge"},
                           headers={"Authorization": f"Bearer {tenant.keys['agent']}"})
    assert merged.status_code in (200, 201), merged.text
    assert _stack_state(server, tenant, repo, as_branch["id"]) == ("merged", merged.json()["data"]["head_commit"])


def test_a_stack_whose_merge_moved_the_base_but_was_not_recorded_is_merged_by_the_reconcile(server, tenant, git,
                                                                                           tmp_path, seeded):
    """A worker killed between the base branch's move and its transaction's commit left the stack open for good;
    the reconcile its ref change asks for now finds the head on the base. The kill is played by moving the ref on
    disk (what the killed merge had done) and running the reconcile the server's next worker runs."""
    from control.services import repos as repo_service
    from storage.models import Repository

    repo, _, main = seeded
    dojo = Dojo(server, tenant, repo)
    _, stack, head = submit_work(dojo, "killed", {"k.txt": "k\n"})
    merged_tree = git.out("rev-parse", f"{head}^{{tree}}", cwd=repo_path(server, tenant, repo))
    merge = git.out("commit-tree", merged_tree, "-p", main, "-p", head, "-m", "merge",
                    cwd=repo_path(server, tenant, repo))
    git("update-ref", "refs/heads/main", merge, main, cwd=repo_path(server, tenant, repo))
    assert _stack_state(server, tenant, repo, stack["id"]) == ("open", None)
    with server.context.db.session() as session:
        row = session.scalar(select(Repository).where(Repository.org_id == tenant.org_id, Repository.slug == repo))
        repo_service.reconcile_branches(session, server.context.store, row)
    assert _stack_state(server, tenant, repo, stack["id"]) == ("merged", merge)


def test_the_child_of_a_stack_merged_by_hand_waits_on_its_parents_base_and_merges_there(server, tenant, git,
                                                                                        tmp_path, seeded):
    """A child stack kept its parent's branch as its base when the parent was merged by a push: its own merge then
    went into that branch, and nothing ever brought its work to main (review of the change that marks such
    parents merged)."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    _, parent, parent_sha = submit_work(dojo, "parent", {"p.txt": "p\n"})
    _, child, child_sha = submit_work(dojo, "child", {"c.txt": "c\n"}, base_commit=parent_sha)
    before = v1(server, tenant, "GET", f"{repo}/stacks/{child['id']}").json()["data"]
    assert (before["baseBranch"], before["parentStackId"]) == (parent["bookmark"], parent["id"])
    clone = tmp_path / "hand"
    git("clone", "-q", tenant.url(repo), str(clone))
    git("fetch", "-q", "origin", parent["bookmark"], cwd=clone)
    git("merge", "-q", "--no-ff", "-m", "parent by hand", "FETCH_HEAD", cwd=clone)
    git("push", "-q", "origin", "main", cwd=clone)
    got = v1(server, tenant, "GET", f"{repo}/stacks/{child['id']}").json()["data"]
    assert (got["status"], got["baseBranch"], got["parentStackId"]) == ("open", "main", None)
    merged = v1(server, tenant, "POST", f"{repo}/stacks/{child['id']}/merge", {"strategy": "merge"})
    assert merged.status_code == 200 and merged.json()["data"]["target"] == "main", merged.text
    git("pull", "-q", "origin", "main", cwd=clone)
    assert git("merge-base", "--is-ancestor", child_sha, "HEAD", cwd=clone, check=False).returncode == 0


def test_locks_taken_and_released_show_in_the_repository_timeline(server, tenant, seeded):
    """Who took which paths and who let them go, as other agents coordinating on them read it afterwards: a new lock
    is `lock.acquired` (its renewal is nothing new), each way of releasing is `lock.released`."""
    repo, _, _ = seeded
    dojo = Dojo(server, tenant, repo)
    holder = dojo.workspace("holder")
    gone = dojo.workspace("gone")
    first = dojo("POST", f"/workspaces/{holder['id']}/lock", {"patterns": ["src/*"]}).json()["lock"]
    dojo("POST", f"/workspaces/{holder['id']}/lock", {"patterns": ["src/*"], "ttl_seconds": 7200})
    forced = dojo("POST", f"/workspaces/{holder['id']}/lock", {"patterns": ["docs/**"]}).json()["lock"]
    left = dojo("POST", f"/workspaces/{gone['id']}/lock", {"patterns": ["lib/*"]}).json()["lock"]
    released = requests.delete(f"{server.url}/v1/repos/{repo}/locks/{first['id']}",
                               params={"workspace_id": holder["id"]}, headers=dojo.headers, timeout=30)
    assert released.status_code == 200, released.text
    admin = {"Authorization": f"Bearer {tenant.keys['admin']}"}
    assert requests.delete(f"{server.url}/v1/repos/{repo}/locks/{forced['id']}", params={"force": "true"},
                           headers=admin, timeout=30).status_code == 200
    assert dojo("DELETE", f"/workspaces/{gone['id']}").status_code == 200

    timeline = requests.get(f"{server.url}/api/v1/workspaces/{repo}/timeline", headers=admin, timeout=30).json()
    locks = [(item["type"], item["payload"]) for item in reversed(timeline["data"])
             if item["kind"] == "event" and item["type"].startswith("lock.")]
    assert [(kind, payload["lockId"]) for kind, payload in locks] == [
        ("lock.acquired", first["id"]), ("lock.acquired", forced["id"]), ("lock.acquired", left["id"]),
        ("lock.released", first["id"]), ("lock.released", forced["id"]), ("lock.released", left["id"])]
    acquired = locks[0][1]
    assert (acquired["workspaceId"], acquired["patterns"]) == (holder["id"], ["src/*"])
    assert acquired["expiresAt"].endswith("Z")
    assert [payload.get("force") for _, payload in locks[3:5]] == [False, True]
    assert locks[5][1]["workspaceDeleted"] is True
    actors = [item["actor_key_id"] for item in reversed(timeline["data"]) if item.get("type") == "lock.released"]
    assert actors[1] != actors[0]  # the admin's key forced the second
