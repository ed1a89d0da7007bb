"""hoody's Branches API (seed 003) on a real server: a workspace's branches by id, as the document writes them
(the objects themselves; errors {"success": false, "errors"}, {"name": "NotFoundError"}, {"error",
"retryAfterMs"}), with the real git CLI on the repository behind them."""
from __future__ import annotations

import functools
import os
import http.server
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from control.services import repos as repo_service
from tests.support import api, at_once, remote_ref, repo_path


def workspace(server, tenant, git, tmp_path, files: dict[str, str] | None = None, **fields) -> dict:
    slug = f"hb-{uuid.uuid4().hex[:8]}"
    made = api(server, tenant.keys["admin"], "POST", "/api/v1/workspaces", {"name": slug, "slug": slug, **fields})
    assert made.status_code == 201, made.text
    work = tmp_path / f"work-{slug}"
    git("clone", "-q", tenant.url(slug), str(work))
    git.commit(work, files or {"README.md": "hello\n", "src/app.py": "print('hi')\n"}, "first")
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    return {**made.json()["data"], "work": work}


def branches(ws: dict) -> str:
    return f"/api/v1/workspaces/{ws['id']}/branches"


def call(server, tenant, method, path, body=None, key="agent", **kwargs):
    return api(server, tenant.keys[key], method, path, body, **kwargs)


def create(server, tenant, ws, **body):
    made = call(server, tenant, "POST", branches(ws), body)
    assert made.status_code == 201, made.text
    return made.json()


def hoody_error(response, status: int, only_hoodys: bool = True) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["data"] is None, body
    assert set(body) == {"success", "errors", "data"} or not only_hoodys, body
    return body["errors"][0]["message"]


def not_found(response) -> str:
    assert response.status_code == 404, response.text
    body = response.json()
    assert body["name"] == "NotFoundError", body
    return body["data"]["message"]


def test_list_and_create_answer_the_documented_objects_and_the_branch_clones(server, tenant, git, tmp_path):
    ws = workspace(server, tenant, git, tmp_path)
    main_head = remote_ref(git, tenant.url(ws["slug"]), "refs/heads/main")
    listed = call(server, tenant, "GET", branches(ws), key="read")
    assert listed.status_code == 200, listed.text
    [main] = listed.json()
    assert set(main) == {"id", "path", "branch", "name", "status", "base_branch", "base_commit", "created_at",
                         "updated_at"}
    assert main["branch"] == main["name"] == "main" and main["status"] == "ready" and main["id"].startswith("br_")
    assert isinstance(main["created_at"], int) and main["created_at"] > 1_700_000_000_000

    made = create(server, tenant, ws, name="Billing portal MVP", baseBranch="main")
    assert (made["branch"], made["name"], made["status"], made["base_branch"], made["base_commit"]) == (
        "billing-portal-mvp", "Billing portal MVP", "ready", "main", main_head)
    assert made["path"] == f"/{tenant.org}/{ws['slug']}/branches/{made['id']}"
    assert remote_ref(git, tenant.url(ws["slug"]), "refs/heads/billing-portal-mvp") == main_head
    again = create(server, tenant, ws, name="Billing portal MVP")
    assert again["branch"] == "billing-portal-mvp-2" and again["id"] != made["id"]
    named = create(server, tenant, ws, name="Exact", branch="feature/exact")
    assert named["branch"] == "feature/exact"
    assert [b["branch"] for b in call(server, tenant, "GET", branches(ws)).json()] == [
        "main", "billing-portal-mvp", "billing-portal-mvp-2", "feature/exact"]
    assert "start_command" not in made and "startCommand" not in made


def test_a_branch_pushed_by_git_is_listed_and_renamed_by_display_name_only(server, tenant, git, tmp_path):
    ws = workspace(server, tenant, git, tmp_path)
    git("push", "-q", "origin", "HEAD:refs/heads/from-git", cwd=ws["work"])
    pushed = next(b for b in call(server, tenant, "GET", branches(ws)).json() if b["branch"] == "from-git")
    assert pushed["name"] == "from-git"
    renamed = call(server, tenant, "PATCH", f"{branches(ws)}/{pushed['id']}", {"name": "Work from git (rev 2)"})
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["branch"]) == ("Work from git (rev 2)", "from-git")
    assert renamed.json()["updated_at"] >= pushed["updated_at"]
    assert remote_ref(git, tenant.url(ws["slug"]), "refs/heads/from-git")
    assert hoody_error(call(server, tenant, "PATCH", f"{branches(ws)}/{pushed['id']}", {}), 400)
    assert hoody_error(call(server, tenant, "PATCH", f"{branches(ws)}/{pushed['id']}", {"name": ""}), 400)


def test_status_diff_and_disk_usage_follow_the_commits_pushed_to_branch_and_base(server, tenant, git, tmp_path):
    ws = workspace(server, tenant, git, tmp_path)
    made = create(server, tenant, ws, name="oauth")
    one = f"{branches(ws)}/{made['id']}"
    work = ws["work"]
    git("fetch", "-q", "origin", cwd=work)
    git("checkout", "-q", "-b", "oauth", "origin/oauth", cwd=work)
    git.commit(work, {"src/app.py": "print('hi')\nprint('oauth')\n", "src/oauth.py": "TOKEN_TTL = 3600\n"}, "oauth")
    git("push", "-q", "origin", "oauth", cwd=work)
    status = call(server, tenant, "GET", f"{one}/status", key="read").json()
    assert status == {"branch": "oauth", "ahead": 1, "behind": 0, "staged": 0, "unstaged": 0, "untracked": 0,
                      "clean": True}
    git("checkout", "-q", "main", cwd=work)
    git.commit(work, {"README.md": "hello again\n"}, "main moves")
    git("push", "-q", "origin", "main", cwd=work)
    assert call(server, tenant, "GET", f"{one}/status").json()["behind"] == 1

    summary = call(server, tenant, "GET", f"{one}/diff", key="read")
    assert summary.status_code == 200, summary.text
    body = summary.json()
    assert body["base_commit"] == made["base_commit"] and body["truncated"] is False  # from where it left main
    assert body["head_commit"] == remote_ref(git, tenant.url(ws["slug"]), "refs/heads/oauth")
    assert {(f["path"], f["status"], f["insertions"], f["deletions"]) for f in body["files"]} == {
        ("src/app.py", "modified", 1, 0), ("src/oauth.py", "added", 1, 0)}  # README's change on main is not here
    assert all("hunks" not in f for f in body["files"])
    full = call(server, tenant, "GET", f"{one}/diff", params={"format": "full", "file": "src/app.py"}).json()
    [app] = full["files"]
    assert app["hunks"][0]["lines"][-1] == {"type": "add", "content": "print('oauth')"}
    against_main = call(server, tenant, "GET", f"{one}/diff", params={"base": "main"}).json()
    assert against_main["base_commit"] == made["base_commit"]  # main's new commit is not the branch's change
    assert hoody_error(call(server, tenant, "GET", f"{one}/diff", params={"format": "patch"}), 400)
    assert hoody_error(call(server, tenant, "GET", f"{one}/diff", params={"file": "../etc/passwd"}), 400)

    usage = call(server, tenant, "GET", f"{branches(ws)}/disk-usage", key="read")
    assert usage.status_code == 200, usage.text
    sizes = {entry["id"]: entry["bytes"] for entry in usage.json()}
    files = {"README.md": "hello again\n", "src/app.py": "print('hi')\nprint('oauth')\n",
             "src/oauth.py": "TOKEN_TTL = 3600\n"}
    assert sizes[made["id"]] == sum(len(files[name]) for name in ("src/app.py", "src/oauth.py")) + len("hello\n")
    only = call(server, tenant, "GET", f"{branches(ws)}/disk-usage", params={"id": made["id"]}).json()
    assert only == [{"id": made["id"], "directory": made["path"], "bytes": sizes[made["id"]]}]
    assert not_found(call(server, tenant, "GET", f"{branches(ws)}/disk-usage", params={"id": "br_nope"}))


def test_reset_moves_the_branch_back_to_its_base_commit_unless_protected(server, tenant, git, tmp_path):
    ws = workspace(server, tenant, git, tmp_path)
    made = create(server, tenant, ws, name="experiment")
    work = ws["work"]
    git("fetch", "-q", "origin", cwd=work)
    git("checkout", "-q", "-b", "experiment", "origin/experiment", cwd=work)
    git.commit(work, {"junk.txt": "junk\n"}, "junk")
    git("push", "-q", "origin", "experiment", cwd=work)
    reset = call(server, tenant, "POST", f"{branches(ws)}/{made['id']}/reset")
    assert reset.status_code == 200, reset.text
    assert reset.json()["status"] == "ready" and reset.json()["base_commit"] == made["base_commit"]
    assert remote_ref(git, tenant.url(ws["slug"]), "refs/heads/experiment") == made["base_commit"]

    guarded = create(server, tenant, ws, name="guarded", branch="guarded")
    git("fetch", "-q", "origin", cwd=work)
    git("checkout", "-q", "-b", "guarded", "origin/guarded", cwd=work)
    kept = git.commit(work, {"keep.txt": "keep\n"}, "keep")
    git("push", "-q", "origin", "guarded", cwd=work)
    with server.context.db.session() as session:
        repo_service.protect_branch(session, repo_service.get_repo(session, tenant.org_id, ws["slug"]), "guarded")
    refused = call(server, tenant, "POST", f"{branches(ws)}/{guarded['id']}/reset")
    assert "protected" in hoody_error(refused, 403)
    assert remote_ref(git, tenant.url(ws["slug"]), "refs/heads/guarded") == kept


def test_merge_into_the_base_with_strategies_dry_runs_conflicts_and_branch_deletion(server, tenant, git, tmp_path):
    ws = workspace(server, tenant, git, tmp_path)
    made = create(server, tenant, ws, name="feature")
    work = ws["work"]
    git("fetch", "-q", "origin", cwd=work)
    git("checkout", "-q", "-b", "feature", "origin/feature", cwd=work)
    git.commit(work, {"a.txt": "a\n"}, "a")
    git.commit(work, {"b.txt": "b\n"}, "b")
    git("push", "-q", "origin", "feature", cwd=work)
    one = f"{branches(ws)}/{made['id']}"
    main_before = remote_ref(git, tenant.url(ws["slug"]), "refs/heads/main")
    dry = call(server, tenant, "POST", f"{one}/merge", {"strategy": "squash", "dry_run": True}).json()
    assert dry["success"] is True and dry["sha"] is None and dry["target"] == "main"
    assert remote_ref(git, tenant.url(ws["slug"]), "refs/heads/main") == main_before
    merged = call(server, tenant, "POST", f"{one}/merge", {"strategy": "squash", "message": "feat: a and b",
                                                           "deleteBranch": True})
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert set(body) == {"success", "sha", "head_commit", "already_merged", "target", "conflicts", "message"}
    assert body["success"] is True and body["already_merged"] is False and body["conflicts"] == []
    assert remote_ref(git, tenant.url(ws["slug"]), "refs/heads/main") == body["sha"] == body["head_commit"]
    git("fetch", "-q", "origin", cwd=work)
    assert git.out("log", "-1", "--format=%s%n%P", "origin/main", cwd=work).split("\n") == ["feat: a and b",
                                                                                             main_before]
    assert remote_ref(git, tenant.url(ws["slug"]), "refs/heads/feature") == ""  # deleted
    assert not_found(call(server, tenant, "GET", f"{one}/status")) == "Branch not found"

    clash = create(server, tenant, ws, name="clash")
    git("fetch", "-q", "origin", cwd=work)
    git("checkout", "-q", "-b", "clash", "origin/clash", cwd=work)
    git.commit(work, {"README.md": "theirs\n"}, "theirs")
    git("push", "-q", "origin", "clash", cwd=work)
    git("checkout", "-q", "main", cwd=work)
    git("merge", "-q", "--ff-only", "origin/main", cwd=work)
    git.commit(work, {"README.md": "ours\n"}, "ours")
    git("push", "-q", "origin", "main", cwd=work)
    conflicted = call(server, tenant, "POST", f"{branches(ws)}/{clash['id']}/merge", {}).json()
    assert conflicted["success"] is False and conflicted["conflicts"] == ["README.md"] and conflicted["sha"] is None
    assert hoody_error(call(server, tenant, "POST", f"{branches(ws)}/{clash['id']}/merge",
                            {"strategy": "octopus"}), 400)


def test_delete_removes_ref_and_entry_and_the_default_branch_stays(server, tenant, git, tmp_path):
    ws = workspace(server, tenant, git, tmp_path)
    made = create(server, tenant, ws, name="short-lived")
    gone = call(server, tenant, "DELETE", f"{branches(ws)}/{made['id']}")
    assert gone.status_code == 200 and gone.json() == {"success": True}, gone.text
    assert remote_ref(git, tenant.url(ws["slug"]), "refs/heads/short-lived") == ""
    assert [b["branch"] for b in call(server, tenant, "GET", branches(ws)).json()] == ["main"]
    assert not_found(call(server, tenant, "DELETE", f"{branches(ws)}/{made['id']}")) == "Branch not found"
    main = call(server, tenant, "GET", branches(ws)).json()[0]
    assert "default branch" in hoody_error(call(server, tenant, "DELETE", f"{branches(ws)}/{main['id']}"), 409)


def test_refusals_answer_in_hoodys_shapes_and_change_nothing(server, tenant, git, tmp_path):
    ws = workspace(server, tenant, git, tmp_path)
    other = server.tenant()
    assert not_found(api(server, other.keys["admin"], "GET", branches(ws))) == "Project not found"  # another org's
    assert not_found(call(server, tenant, "GET", "/api/v1/workspaces/nope/branches"))
    assert hoody_error(api(server, "dk-wrong", "GET", branches(ws)), 401)
    assert hoody_error(call(server, tenant, "POST", branches(ws), {"name": "x"}, key="read"), 403)
    assert hoody_error(call(server, tenant, "POST", branches(ws), {"name": 5}), 400)
    assert "worktree" in hoody_error(call(server, tenant, "POST", branches(ws), {"name": "x",
                                                                                 "startCommand": "pnpm dev"}), 400)
    assert not_found(call(server, tenant, "POST", branches(ws), {"name": "x", "baseBranch": "nope"}))
    assert hoody_error(call(server, tenant, "POST", branches(ws), {"branch": "bad..name"}), 400)
    made = create(server, tenant, ws, name="kept")
    assert "failed" in hoody_error(call(server, tenant, "POST", f"{branches(ws)}/{made['id']}/retry"), 400)
    assert not_found(call(server, tenant, "GET", f"{branches(ws)}/br_{'0' * 24}/status"))
    assert not_found(call(server, tenant, "GET", f"{branches(ws)}/not-an-id/status"))
    unpushed = call(server, tenant, "POST", f"{branches(ws)}/{made['id']}/push")
    assert not_found(unpushed).startswith("Remote 'origin' not configured")
    assert [b["branch"] for b in call(server, tenant, "GET", branches(ws)).json()] == ["main", "kept"]


class DumbHttpRemote:
    """A real git repository served over git's dumb HTTP protocol by Python's http.server: a public remote
    without credentials (the shared server's own URLs need a key). `work` is a clone that pushes to it."""

    def __init__(self, root: Path):
        self.root = root
        self.env = {"GIT_AUTHOR_NAME": "r", "GIT_AUTHOR_EMAIL": "r@r", "GIT_COMMITTER_NAME": "r",
                    "GIT_COMMITTER_EMAIL": "r@r", "PATH": "/usr/bin:/bin", "HOME": str(root)}
        self.bare = root / "served" / "upstream.git"
        self.work = root / "work"
        self.git("init", "-q", "--bare", "-b", "main", str(self.bare))
        self.git("clone", "-q", str(self.bare), str(self.work))
        self.commit({"a.txt": "remote\n"}, "remote")
        handler = functools.partial(QuietHandler, directory=str(root / "served"))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/upstream.git"

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], check=True, env=self.env, capture_output=True).stdout.decode().strip()

    def commit(self, files: dict[str, str | bytes], message: str, branch: str = "main") -> str:
        for name, content in files.items():
            if isinstance(content, bytes):
                (self.work / name).write_bytes(content)
            else:
                (self.work / name).write_text(content)
        self.git("-C", str(self.work), "add", "-A")
        self.git("-C", str(self.work), "commit", "-q", "-m", message)
        self.git("-C", str(self.work), "push", "-q", "origin", f"HEAD:{branch}")
        self.git("-C", str(self.bare), "update-server-info")
        return self.git("-C", str(self.work), "rev-parse", "HEAD")

    def close(self):
        self.httpd.shutdown()
        shutil.rmtree(self.root, ignore_errors=True)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def dumb_http_remote(tmp_path_factory):
    remote = DumbHttpRemote(tmp_path_factory.mktemp("remote"))
    remote.git("-C", str(remote.work), "branch", "release/1")
    remote.git("-C", str(remote.work), "tag", "v1.0.0")
    remote.git("-C", str(remote.work), "tag", "-a", "-m", "annotated", "v1.1.0")
    remote.git("-C", str(remote.work), "push", "-q", "origin", "release/1", "v1.0.0", "v1.1.0")
    remote.git("-C", str(remote.bare), "update-server-info")
    yield remote.url
    remote.close()


@pytest.fixture
def own_remote(tmp_path):
    remote = DumbHttpRemote(tmp_path / "own-remote")
    yield remote
    remote.close()


def test_the_remote_is_the_repository_url_and_its_refs_are_listed(server, tenant, git, tmp_path, dumb_http_remote):
    ws = workspace(server, tenant, git, tmp_path, repository_url="https://github.com/acme/widgets.git")
    info = call(server, tenant, "GET", f"{branches(ws)}/remote", key="read")
    assert info.status_code == 200, info.text
    assert info.json() == {"remotes": [{"name": "origin", "url": "https://github.com/acme/widgets.git",
                                        "provider": "github", "owner": "acme", "repo": "widgets",
                                        "authenticated": False}], "defaultRemote": "origin"}
    bare = workspace(server, tenant, git, tmp_path)
    assert call(server, tenant, "GET", f"{branches(bare)}/remote").json() == {"remotes": [], "defaultRemote": None}
    unset = call(server, tenant, "GET", f"{branches(bare)}/remote-refs")
    assert not_found(unset) == "Remote 'origin' not configured"
    assert unset.json()["data"]["code"] == "REMOTE_NOT_CONFIGURED"  # the document's table names it so
    bare_main = call(server, tenant, "GET", branches(bare)).json()[0]
    no_upstream = call(server, tenant, "GET", f"{branches(bare)}/{bare_main['id']}/remote-status")
    assert no_upstream.status_code == 200, no_upstream.text  # the document: whether the branch has an upstream
    assert no_upstream.json() == {"hasUpstream": False, "ahead": 0, "behind": 0, "remoteBranch": None}
    pushed = call(server, tenant, "POST", f"{branches(bare)}/{bare_main['id']}/push")
    assert not_found(pushed) == "Remote 'origin' not configured: set the workspace's repository_url"  # as a pull's

    served = workspace(server, tenant, git, tmp_path, repository_url=dumb_http_remote)
    refs = call(server, tenant, "GET", f"{branches(served)}/remote-refs", params={"remote": "origin"}, key="read")
    assert refs.status_code == 200, refs.text
    assert refs.json() == {"branches": ["refs/heads/main", "refs/heads/release/1"],
                           "tags": ["refs/tags/v1.0.0", "refs/tags/v1.1.0"]}
    unsafe = call(server, tenant, "GET", f"{branches(served)}/remote-refs", params={"remote": "a;rm -rf /"})
    assert "Unsafe remote name" in hoody_error(unsafe, 400)
    assert unsafe.json()["errors"][0]["code"] == "INVALID_REMOTE_NAME"
    assert not_found(call(server, tenant, "GET", f"{branches(served)}/remote-refs",
                          params={"remote": "upstream"})) == "Remote 'upstream' not configured"
    made = create(server, tenant, served, name="to-push")
    assert "credentials" in hoody_error(call(server, tenant, "POST", f"{branches(served)}/{made['id']}/push"), 400)


def test_remote_listings_are_rate_limited_per_remote(server, tenant, git, tmp_path, dumb_http_remote):
    """10 a minute to one remote, counted across the server's processes (each kept its own count: 10 a process).
    21 calls: at most one minute's boundary falls among them, so one minute holds 11 of them at least. Listings and
    status count apart from pulls and pushes: a client polling a branch's remote status could not push it."""
    from control.services.branch_remotes import REMOTE_CALLS_PER_MINUTE

    served = workspace(server, tenant, git, tmp_path, repository_url=dumb_http_remote)
    answers = [call(server, tenant, "GET", f"{branches(served)}/remote-refs")
               for _ in range(2 * REMOTE_CALLS_PER_MINUTE + 1)]
    statuses = [answer.status_code for answer in answers]
    assert 429 not in statuses[:REMOTE_CALLS_PER_MINUTE] and 429 in statuses, statuses
    body = answers[statuses.index(429)].json()
    assert set(body) == {"error", "retryAfterMs", "code"} and body["error"] == "Rate limit exceeded"
    assert body["code"] == "REMOTE_RATE_LIMITED"
    assert 0 < body["retryAfterMs"] <= 60_000
    [main] = call(server, tenant, "GET", branches(served)).json()
    assert call(server, tenant, "GET", f"{branches(served)}/{main['id']}/remote-status").status_code == 429
    pulled = call(server, tenant, "POST", f"{branches(served)}/{main['id']}/pull")  # the remote is another history
    assert pulled.status_code == 409 and "share no history" in pulled.text, pulled.text


def test_a_request_line_over_the_servers_limit_answers_an_error_hoody_clients_read(server, tenant, git, tmp_path):
    """gunicorn refuses it before any route is known: its JSON body reads as hoody's error shape too."""
    ws = workspace(server, tenant, git, tmp_path)
    made = create(server, tenant, ws, name="long")
    too_long = call(server, tenant, "GET", f"{branches(ws)}/{made['id']}/diff", params={"file": "a" * 9000})
    assert "Request Line" in hoody_error(too_long, 414, only_hoodys=False)


def mirrored_workspace(server, tenant, git, tmp_path, remote: DumbHttpRemote) -> dict:
    """A workspace whose repository_url is `remote` and whose main is the remote's main (pushed by git)."""
    slug = f"hb-{uuid.uuid4().hex[:8]}"
    made = api(server, tenant.keys["admin"], "POST", "/api/v1/workspaces",
               {"name": slug, "slug": slug, "repository_url": remote.url})
    assert made.status_code == 201, made.text
    work = tmp_path / f"work-{slug}"
    git("clone", "-q", str(remote.bare), str(work))
    git("push", "-q", tenant.url(slug), "main", cwd=work)
    git("remote", "set-url", "origin", tenant.url(slug), cwd=work)
    return {**made.json()["data"], "work": work}


def test_pull_fast_forwards_merges_and_stops_at_conflicts_and_remote_status_counts(server, tenant, git, tmp_path,
                                                                                   own_remote):
    ws = mirrored_workspace(server, tenant, git, tmp_path, own_remote)
    main = call(server, tenant, "GET", branches(ws)).json()[0]
    one = f"{branches(ws)}/{main['id']}"
    in_sync = call(server, tenant, "GET", f"{one}/remote-status", key="read")
    assert in_sync.status_code == 200, in_sync.text
    assert in_sync.json() == {"hasUpstream": True, "ahead": 0, "behind": 0, "remoteBranch": "origin/main"}
    assert call(server, tenant, "POST", f"{one}/pull").json() == {"success": True, "conflicts": [],
                                                                   "message": "Already up to date."}

    theirs = own_remote.commit({"b.txt": "from upstream\n"}, "upstream b")
    assert call(server, tenant, "GET", f"{one}/remote-status").json()["behind"] == 1
    pulled = call(server, tenant, "POST", f"{one}/pull")
    assert pulled.status_code == 200 and pulled.json()["success"] is True, pulled.text
    assert "Fast-forwarded" in pulled.json()["message"]
    assert remote_ref(git, tenant.url(ws["slug"]), "refs/heads/main") == theirs

    work = ws["work"]
    git("pull", "-q", "--ff-only", "origin", "main", cwd=work)
    ours = git.commit(work, {"c.txt": "ours\n"}, "ours")
    git("push", "-q", "origin", "main", cwd=work)
    theirs = own_remote.commit({"d.txt": "theirs\n"}, "upstream d")
    assert call(server, tenant, "GET", f"{one}/remote-status").json() == {
        "hasUpstream": True, "ahead": 1, "behind": 1, "remoteBranch": "origin/main"}
    merged = call(server, tenant, "POST", f"{one}/pull").json()
    assert merged["success"] is True and merged["message"].startswith("Merged origin/main"), merged
    git("pull", "-q", "--ff-only", "origin", "main", cwd=work)
    assert git.out("log", "-1", "--format=%P", cwd=work).split() == [ours, theirs]
    assert (work / "d.txt").read_text() == "theirs\n"

    git.commit(work, {"a.txt": "ours again\n"}, "ours again")
    git("push", "-q", "origin", "main", cwd=work)
    before = remote_ref(git, tenant.url(ws["slug"]), "refs/heads/main")
    own_remote.commit({"a.txt": "theirs again\n"}, "theirs again")
    stopped = call(server, tenant, "POST", f"{one}/pull").json()
    assert stopped["success"] is False and stopped["conflicts"] == ["a.txt"], stopped
    assert remote_ref(git, tenant.url(ws["slug"]), "refs/heads/main") == before
    objects = repo_path(server, tenant, ws["slug"]) / "objects"
    assert not [p.name for p in objects.iterdir() if p.name.startswith("driftstone-fetch-")]  # quarantines gone


def test_a_branch_the_remote_lacks_has_no_upstream_and_is_not_pulled(server, tenant, git, tmp_path, own_remote):
    ws = mirrored_workspace(server, tenant, git, tmp_path, own_remote)
    made = create(server, tenant, ws, name="local only")
    one = f"{branches(ws)}/{made['id']}"
    assert call(server, tenant, "GET", f"{one}/remote-status").json() == {
        "hasUpstream": False, "ahead": 0, "behind": 0, "remoteBranch": None}
    assert not_found(call(server, tenant, "POST", f"{one}/pull")) == "Remote branch 'origin/local-only' not found"
    upstream = own_remote.commit({"e.txt": "e\n"}, "e", branch="local-only")
    status = call(server, tenant, "GET", f"{one}/remote-status").json()
    assert status == {"hasUpstream": True, "ahead": 0, "behind": 1, "remoteBranch": "origin/local-only"}
    assert call(server, tenant, "POST", f"{one}/pull").json()["success"] is True
    assert remote_ref(git, tenant.url(ws["slug"]), "refs/heads/local-only") == upstream
    bare = workspace(server, tenant, git, tmp_path)
    bare_main = call(server, tenant, "GET", branches(bare)).json()[0]
    assert not_found(call(server, tenant, "POST", f"{branches(bare)}/{bare_main['id']}/pull")) == (
        "Remote 'origin' not configured")


def test_a_pull_bringing_a_file_over_the_size_limit_is_refused_and_changes_nothing(pulling_server, git, tmp_path,
                                                                                    own_remote):
    """The pulled commits pass the checks of any change: here the object size limit (1 MiB on that server)."""
    server = pulling_server
    tenant = server.tenant()
    ws = mirrored_workspace(server, tenant, git, tmp_path, own_remote)
    before = remote_ref(git, tenant.url(ws["slug"]), "refs/heads/main")
    own_remote.commit({"big.bin": "x" * (2 * 1024 * 1024)}, "too big")
    main = call(server, tenant, "GET", branches(ws)).json()[0]
    refused = call(server, tenant, "POST", f"{branches(ws)}/{main['id']}/pull")
    assert "larger than" in hoody_error(refused, 413)
    assert remote_ref(git, tenant.url(ws["slug"]), "refs/heads/main") == before


def test_a_pull_request_is_a_stack_of_the_branch_reviewed_and_merged_with_it(server, tenant, git, tmp_path):
    ws = workspace(server, tenant, git, tmp_path)
    made = create(server, tenant, ws, name="Add OAuth provider")
    one = f"{branches(ws)}/{made['id']}"
    assert call(server, tenant, "GET", f"{one}/pr", key="read").json() == {
        "exists": False, "url": None, "number": None, "state": None, "ci": None, "reviewStatus": None}
    assert "no commits" in hoody_error(call(server, tenant, "POST", f"{one}/pr"), 400)
    work = ws["work"]
    git("fetch", "-q", "origin", cwd=work)
    git("checkout", "-q", "-b", "oauth", "origin/add-oauth-provider", cwd=work)
    first = git.commit(work, {"oauth.py": "v1\n"}, "oauth v1")
    git("push", "-q", "origin", "HEAD:add-oauth-provider", cwd=work)

    opened = call(server, tenant, "POST", f"{one}/pr")
    assert opened.status_code == 200, opened.text
    body = opened.json()
    assert (body["success"], body["provider"], body["message"]) == (True, "driftstone", "Pull request opened.")
    stack = api(server, tenant.keys["read"], "GET", body["url"].removeprefix(server.url))
    assert stack.status_code == 200, stack.text
    stack = stack.json()["data"]
    assert (stack["bookmark"], stack["baseBranch"], stack["headCommit"], stack["commits"], stack["title"]) == (
        "add-oauth-provider", "main", first, [first], "Add OAuth provider")
    status = call(server, tenant, "GET", f"{one}/pr").json()
    assert status == {"exists": True, "url": body["url"], "number": body["number"], "state": "open",
                      "ci": {"status": "none", "url": None}, "reviewStatus": "pending"}

    reviewed = api(server, tenant.keys["admin"], "POST", f"/v1/repos/{ws['slug']}/stacks/{stack['id']}/reviews",
                   {"state": "approve"})  # another key than the one that opened it
    assert reviewed.status_code == 201, reviewed.text
    assert call(server, tenant, "GET", f"{one}/pr").json()["reviewStatus"] == "approved"
    second = git.commit(work, {"oauth.py": "v2\n"}, "oauth v2")
    git("push", "-q", "origin", "HEAD:add-oauth-provider", cwd=work)
    assert call(server, tenant, "GET", f"{one}/pr").json()["reviewStatus"] == "pending"  # approved an older head
    again = call(server, tenant, "POST", f"{one}/pr").json()
    assert again["number"] == body["number"] and again["message"] == "Pull request updated to the branch's head."
    updated = api(server, tenant.keys["read"], "GET", again["url"].removeprefix(server.url)).json()["data"]
    assert updated["headCommit"] == second and updated["commits"] == [first, second]

    other = create(server, tenant, ws, name="other", branch="other")
    git("fetch", "-q", "origin", cwd=work)
    git("checkout", "-q", "-b", "other", "origin/other", cwd=work)
    git.commit(work, {"other.txt": "o\n"}, "other")
    git("push", "-q", "origin", "HEAD:other", cwd=work)
    assert call(server, tenant, "POST", f"{branches(ws)}/{other['id']}/pr").json()["number"] == body["number"] + 1

    merged = call(server, tenant, "POST", f"{one}/merge", {"strategy": "squash"}).json()
    assert merged["success"] is True, merged
    assert call(server, tenant, "GET", f"{one}/pr").json()["state"] == "merged"
    main = call(server, tenant, "GET", branches(ws)).json()[0]
    assert "own base" in hoody_error(call(server, tenant, "POST", f"{branches(ws)}/{main['id']}/pr"), 400)


def test_remote_status_leaves_nothing_behind_and_a_fetch_over_the_push_limit_is_stopped(pulling_server, git,
                                                                                        tmp_path, own_remote):
    """A read key's remote-status fetches what it needs into a quarantine removed afterwards; what the remote sends
    past the push size limit (4 MiB on that server) stops the fetch: nothing of it stays."""
    server = pulling_server
    tenant = server.tenant()
    ws = mirrored_workspace(server, tenant, git, tmp_path, own_remote)
    main = call(server, tenant, "GET", branches(ws)).json()[0]
    one = f"{branches(ws)}/{main['id']}"
    small = own_remote.commit({"small.txt": "small\n"}, "small")
    assert call(server, tenant, "GET", f"{one}/remote-status", key="read").json()["behind"] == 1
    bare = repo_path(server, tenant, ws["slug"])
    assert git("cat-file", "-e", small, cwd=bare, check=False).returncode != 0  # counted, not kept

    before = sum(f.stat().st_size for f in (bare / "objects").rglob("*") if f.is_file())
    own_remote.commit({f"big{i}.bin": os.urandom(900 * 1024) for i in range(6)}, "5.4 MiB that does not compress")
    for route, method, key in ((f"{one}/remote-status", "GET", "read"), (f"{one}/pull", "POST", "agent")):
        refused = call(server, tenant, method, route, key=key)
        assert "brings more than the 4194304 byte limit" in hoody_error(refused, 413), route
    after = sum(f.stat().st_size for f in (bare / "objects").rglob("*") if f.is_file())
    assert after == before
    assert not [p.name for p in (bare / "objects").iterdir() if p.name.startswith("driftstone-fetch-")]


def push_commit(git, work: Path, branch: str, files: dict[str, str], message: str) -> str:
    git("fetch", "-q", "origin", cwd=work)
    git("checkout", "-q", "-B", branch, f"origin/{branch}", cwd=work)
    sha = git.commit(work, files, message)
    git("push", "-q", "origin", f"HEAD:{branch}", cwd=work)
    return sha


def test_a_pull_racing_a_delete_never_brings_the_deleted_branch_back(server, tenant, git, tmp_path, own_remote):
    """A pull's merge that lost its compare-and-swap to the delete tried again, found no branch and made it anew:
    the DELETE answered 200 and the branch was back (a review saw it in 5 of 25 rounds on PostgreSQL)."""
    ws = mirrored_workspace(server, tenant, git, tmp_path, own_remote)
    for round_ in range(9):  # one pull each: within the 10 calls a minute one remote may have from one process
        name = f"v{round_}"
        made = create(server, tenant, ws, name=name, branch=name)
        push_commit(git, ws["work"], name, {f"{name}.txt": "ours\n"}, "ours")
        own_remote.git("-C", str(own_remote.work), "checkout", "-q", "main")
        own_remote.commit({f"{name}-theirs.txt": "theirs\n"}, "theirs", branch=name)
        one = f"{branches(ws)}/{made['id']}"

        def race(i: int):
            if i == 0:
                return call(server, tenant, "POST", f"{one}/pull")
            time.sleep(0.04 * round_)  # lands in the pull's fetch, its merge, its ref change or after
            return call(server, tenant, "DELETE", one)

        pulled, deleted = at_once(2, race)
        assert pulled.status_code in (200, 404, 409) and deleted.status_code in (200, 404, 409), (
            pulled.text, deleted.text)
        if deleted.status_code == 200:
            assert remote_ref(git, tenant.url(ws["slug"]), f"refs/heads/{name}") == "", (round_, pulled.text)


def test_resets_and_renames_racing_a_delete_answer_cleanly(server, tenant, git, tmp_path):
    """They answered 500 (a row deleted under the reset's refresh, or the rename's flush) in about 1 round of 8."""
    ws = workspace(server, tenant, git, tmp_path)
    for round_ in range(8):
        name = f"r{round_}"
        made = create(server, tenant, ws, name=name, branch=name)
        push_commit(git, ws["work"], name, {f"{name}.txt": "x\n"}, "x")
        one = f"{branches(ws)}/{made['id']}"
        requests_ = [("DELETE", one, None), ("POST", f"{one}/reset", None)] + [("PATCH", one, {"name": "rn"})] * 3
        answers = at_once(len(requests_), lambda i: call(server, tenant, *requests_[i]))
        assert all(answer.status_code in (200, 404, 409) for answer in answers), [a.text for a in answers]
        if answers[0].status_code == 200:  # else the reset moved it first (409 stale_ref): it stays
            assert remote_ref(git, tenant.url(ws["slug"]), f"refs/heads/{name}") == ""


def test_the_default_branch_is_not_reset_merged_into_itself_or_based_on_itself(server, tenant, git, tmp_path):
    ws = workspace(server, tenant, git, tmp_path)
    head = remote_ref(git, tenant.url(ws["slug"]), "refs/heads/main")
    main = call(server, tenant, "GET", branches(ws)).json()[0]
    assert "default branch" in hoody_error(call(server, tenant, "POST", f"{branches(ws)}/{main['id']}/reset"), 400)
    assert remote_ref(git, tenant.url(ws["slug"]), "refs/heads/main") == head
    assert "own base" in hoody_error(call(server, tenant, "POST", branches(ws), {"branch": "main"}), 400)
    sha_like = "abcdef0123456789abcdef0123456789abcdef01"
    assert "commit id" in hoody_error(call(server, tenant, "POST", branches(ws), {"branch": sha_like}), 400)
    refused = git("push", "origin", f"HEAD:refs/heads/{sha_like}", cwd=ws["work"], check=False)
    assert refused.returncode != 0 and b"commit id" in refused.stderr
    assert [b["branch"] for b in call(server, tenant, "GET", branches(ws)).json()] == ["main"]


def test_a_branch_without_commits_is_not_merged(server, tenant, git, tmp_path):
    slug = f"hb-{uuid.uuid4().hex[:8]}"
    made = api(server, tenant.keys["admin"], "POST", "/api/v1/workspaces", {"name": slug, "slug": slug})
    ws = made.json()["data"]
    waiting = create(server, tenant, ws, name="feat")
    assert waiting["status"] == "failed" and waiting["base_commit"] is None
    assert "no commits" in hoody_error(call(server, tenant, "POST", f"{branches(ws)}/{waiting['id']}/merge"), 400)


def test_a_branch_made_in_an_empty_repository_fails_and_is_retried_once_there_is_a_commit(server, tenant, git,
                                                                                          tmp_path):
    """It read `creating` for ever (a client polling for `ready`, as the document's lifecycle has it, never
    stopped): with nothing to start from it fails, and its retry starts it from its base's head once there is one."""
    slug = f"hb-{uuid.uuid4().hex[:8]}"
    ws = api(server, tenant.keys["admin"], "POST", "/api/v1/workspaces", {"name": slug, "slug": slug}).json()["data"]
    made = create(server, tenant, ws, name="Early work")
    assert (made["status"], made["branch"]) == ("failed", "early-work")
    assert "no commits yet" in hoody_error(call(server, tenant, "POST", f"{branches(ws)}/{made['id']}/retry"), 409)
    assert [b["status"] for b in call(server, tenant, "GET", branches(ws)).json()] == ["failed"]
    work = tmp_path / "first"
    git("init", "-q", "-b", "main", str(work))
    first = git.commit(work, {"README.md": "hello\n"}, "first")
    git("push", "-q", tenant.url(slug), "main", cwd=work)
    retried = call(server, tenant, "POST", f"{branches(ws)}/{made['id']}/retry")
    assert retried.status_code == 200, retried.text
    assert (retried.json()["status"], retried.json()["base_commit"]) == ("ready", first)
    assert remote_ref(git, tenant.url(slug), "refs/heads/early-work") == first
    assert api(server, tenant.keys["agent"], "POST", f"/v1/repos/{slug}/branches",
               {"name": "still-waiting", "recordOnly": True}).status_code == 201
    assert "no commits yet" in hoody_error(call(server, tenant, "GET", f"{branches(ws)}/{made['id']}/diff",
                                                params={"base": "still-waiting"}), 409)
    assert "only a failed branch" in hoody_error(call(server, tenant, "POST", f"{branches(ws)}/{made['id']}/retry"),
                                                 400)


def test_a_retry_racing_the_branchs_delete_answers_cleanly(server, tenant, git, tmp_path):
    """The retry's re-read of a row the delete had just removed answered 500 (a hostile review)."""
    slug = f"hb-{uuid.uuid4().hex[:8]}"
    ws = api(server, tenant.keys["admin"], "POST", "/api/v1/workspaces", {"name": slug, "slug": slug}).json()["data"]
    made = [create(server, tenant, ws, name=f"early {n}") for n in range(6)]
    work = tmp_path / "first"
    git("init", "-q", "-b", "main", str(work))
    git.commit(work, {"README.md": "hello\n"}, "first")
    git("push", "-q", tenant.url(slug), "main", cwd=work)
    for branch in made:
        one = f"{branches(ws)}/{branch['id']}"
        requests_ = [("POST", f"{one}/retry"), ("DELETE", one)]
        retried, deleted = at_once(2, lambda i: call(server, tenant, *requests_[i]))
        assert retried.status_code in (200, 404, 409) and deleted.status_code in (200, 404), (retried.text,
                                                                                              deleted.text)
        if deleted.status_code == 200:
            assert remote_ref(git, tenant.url(slug), f"refs/heads/{branch['branch']}") == ""


def test_a_branch_made_again_under_a_name_does_not_take_the_old_ones_pull_request(server, tenant, git, tmp_path):
    ws = workspace(server, tenant, git, tmp_path)
    first = create(server, tenant, ws, name="Feat")
    push_commit(git, ws["work"], "feat", {"f.txt": "1\n"}, "one")
    old = call(server, tenant, "POST", f"{branches(ws)}/{first['id']}/pr").json()
    assert call(server, tenant, "DELETE", f"{branches(ws)}/{first['id']}").status_code == 200
    again = create(server, tenant, ws, name="Feat")
    assert again["branch"] == "feat" and again["id"] != first["id"]
    assert call(server, tenant, "GET", f"{branches(ws)}/{again['id']}/pr").json()["exists"] is False
    push_commit(git, ws["work"], "feat", {"g.txt": "2\n"}, "two")
    new = call(server, tenant, "POST", f"{branches(ws)}/{again['id']}/pr").json()
    assert new["message"] == "Pull request opened." and new["number"] == old["number"] + 1
    stale = api(server, tenant.keys["read"], "GET", old["url"].removeprefix(server.url)).json()["data"]
    assert stale["status"] == "closed"


def test_a_branch_whose_base_was_merged_and_deleted_goes_onto_the_default_branch(server, tenant, git, tmp_path):
    ws = workspace(server, tenant, git, tmp_path)
    parent = create(server, tenant, ws, name="parent")
    push_commit(git, ws["work"], "parent", {"p.txt": "p\n"}, "parent")
    child = create(server, tenant, ws, name="child", baseBranch="parent")
    assert child["base_branch"] == "parent"
    push_commit(git, ws["work"], "child", {"c.txt": "c\n"}, "child")
    assert call(server, tenant, "POST", f"{branches(ws)}/{child['id']}/pr").status_code == 200
    merged = call(server, tenant, "POST", f"{branches(ws)}/{parent['id']}/merge",
                  {"strategy": "squash", "deleteBranch": True}).json()
    assert merged["success"] is True, merged
    again = call(server, tenant, "POST", f"{branches(ws)}/{child['id']}/pr").json()
    stack = api(server, tenant.keys["read"], "GET", again["url"].removeprefix(server.url)).json()["data"]
    assert stack["baseBranch"] == "main" and len(stack["commits"]) == 2  # parent's and its own, not all history
    result = call(server, tenant, "POST", f"{branches(ws)}/{child['id']}/merge").json()
    assert result["success"] is True and result["target"] == "main", result
    listed = {row["id"]: row for row in call(server, tenant, "GET", branches(ws)).json()}
    assert listed[child["id"]]["base_branch"] == "main"  # retargeted when its merged base was deleted


def _parent_and_child(server, tenant, git, ws) -> tuple[dict, dict]:
    parent = create(server, tenant, ws, name="parent")
    push_commit(git, ws["work"], "parent", {"abandoned.txt": "do not ship\n"}, "parent")
    child = create(server, tenant, ws, name="child", baseBranch="parent")
    push_commit(git, ws["work"], "child", {"child.txt": "c\n"}, "child")
    return parent, child


def test_a_branch_whose_base_was_deleted_unmerged_is_merged_nowhere(server, tenant, git, tmp_path):
    """Its merge went into the default branch, bringing the deleted base's unreviewed commits with it."""
    ws = workspace(server, tenant, git, tmp_path)
    parent, child = _parent_and_child(server, tenant, git, ws)
    one = f"{branches(ws)}/{child['id']}"
    assert call(server, tenant, "DELETE", f"{branches(ws)}/{parent['id']}").status_code == 200
    main = remote_ref(git, tenant.url(ws["slug"]), "refs/heads/main")
    for strategy in ("squash", "merge", "rebase"):
        refused = call(server, tenant, "POST", f"{one}/merge", {"strategy": strategy})
        assert "deleted or rewritten without" in hoody_error(refused, 409)
    assert "deleted or rewritten without" in hoody_error(call(server, tenant, "POST", f"{one}/pr"), 409)
    assert remote_ref(git, tenant.url(ws["slug"]), "refs/heads/main") == main
    status = call(server, tenant, "GET", f"{one}/status")
    assert status.status_code == 200 and status.json()["ahead"] == 1  # against the commit it was made from


def test_a_branch_whose_base_was_merged_by_its_pull_request_or_by_git_goes_onto_where_it_went(server, tenant, git,
                                                                                               tmp_path):
    ws = workspace(server, tenant, git, tmp_path)
    parent, child = _parent_and_child(server, tenant, git, ws)
    assert call(server, tenant, "POST", f"{branches(ws)}/{parent['id']}/pr").status_code == 200
    merged = call(server, tenant, "POST", f"{branches(ws)}/{parent['id']}/merge", {"strategy": "squash"}).json()
    assert merged["success"] is True, merged
    assert call(server, tenant, "DELETE", f"{branches(ws)}/{parent['id']}").status_code == 200
    result = call(server, tenant, "POST", f"{branches(ws)}/{child['id']}/merge", {"strategy": "squash"}).json()
    assert result["success"] is True and result["target"] == "main", result

    ws = workspace(server, tenant, git, tmp_path)
    parent, child = _parent_and_child(server, tenant, git, ws)
    git("push", "-q", "origin", "origin/parent:main", cwd=ws["work"])  # merged by a fast-forward push
    git("push", "-q", "origin", ":parent", cwd=ws["work"])
    result = call(server, tenant, "POST", f"{branches(ws)}/{child['id']}/merge").json()
    assert result["success"] is True and result["target"] == "main", result


def test_a_branch_retargeted_onto_where_its_base_was_squashed_merges_there_with_its_conflicts(server, tenant, git,
                                                                                              tmp_path):
    """A review: retargeted onto `develop`, which then changed a file the squashed base had brought, the child's
    merge answered 409 "deleted or rewritten" (the commit it was made from is not in develop after a squash)."""
    ws = workspace(server, tenant, git, tmp_path)
    create(server, tenant, ws, name="develop")
    parent = create(server, tenant, ws, name="parent", baseBranch="develop")
    push_commit(git, ws["work"], "parent", {"x.txt": "one\n"}, "parent")
    child = create(server, tenant, ws, name="child", baseBranch="parent")
    push_commit(git, ws["work"], "child", {"child.txt": "c\n"}, "child")
    merged = call(server, tenant, "POST", f"{branches(ws)}/{parent['id']}/merge",
                  {"strategy": "squash", "deleteBranch": True}).json()
    assert merged["success"] is True and merged["target"] == "develop", merged
    push_commit(git, ws["work"], "develop", {"x.txt": "two\n"}, "develop changes x")
    result = call(server, tenant, "POST", f"{branches(ws)}/{child['id']}/merge")
    assert result.status_code == 200, result.text
    assert (result.json()["success"], result.json()["target"], result.json()["conflicts"]) == (
        False, "develop", ["x.txt"])


def _base_after_a_v1_merge_deleting_parent(server, tenant, ws, child, **merge) -> str:
    """The child's base branch once `parent` is merged (and deleted) through POST /v1/repos/{repo}/merges."""
    merged = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{ws['slug']}/merges",
                 {"source": "parent", "delete_branch": True, **merge})
    assert merged.status_code == 200 and merged.json()["data"]["success"] is True, merged.text
    return {row["id"]: row for row in call(server, tenant, "GET", branches(ws)).json()}[child["id"]]["base_branch"]


def test_a_base_squashed_without_a_pull_request_then_deleted_is_followed_and_a_recreated_one_is_not(
        server, tenant, git, tmp_path):
    """A review of the 409 above: a base squash-merged with no pull request and deleted by a later request read as
    deleted unmerged; one deleted by the /v1 merge kept its branches' base; a base deleted and made again under its
    name took the abandoned commits its branches were made from."""
    ws = workspace(server, tenant, git, tmp_path)
    parent, child = _parent_and_child(server, tenant, git, ws)
    merged = call(server, tenant, "POST", f"{branches(ws)}/{parent['id']}/merge", {"strategy": "squash"}).json()
    assert merged["success"] is True, merged
    assert call(server, tenant, "DELETE", f"{branches(ws)}/{parent['id']}").status_code == 200
    result = call(server, tenant, "POST", f"{branches(ws)}/{child['id']}/merge").json()
    assert result["success"] is True and result["target"] == "main", result

    ws = workspace(server, tenant, git, tmp_path)
    parent, child = _parent_and_child(server, tenant, git, ws)
    assert _base_after_a_v1_merge_deleting_parent(server, tenant, ws, child, strategy="squash") == "main"

    ws = workspace(server, tenant, git, tmp_path)  # merged into its own child: the child is no base of itself
    parent, child = _parent_and_child(server, tenant, git, ws)
    assert _base_after_a_v1_merge_deleting_parent(server, tenant, ws, child, target="child") == "parent"
    refused = call(server, tenant, "POST", f"{branches(ws)}/{child['id']}/merge")
    assert "deleted or rewritten without" in hoody_error(refused, 409)

    ws = workspace(server, tenant, git, tmp_path)
    parent, child = _parent_and_child(server, tenant, git, ws)
    assert call(server, tenant, "DELETE", f"{branches(ws)}/{parent['id']}").status_code == 200
    create(server, tenant, ws, name="parent")  # again, from main
    refused = call(server, tenant, "POST", f"{branches(ws)}/{child['id']}/merge")
    assert "deleted or rewritten without" in hoody_error(refused, 409)
    git("fetch", "-q", "origin", cwd=ws["work"])
    assert "abandoned.txt" not in git.out("ls-tree", "--name-only", "origin/parent", cwd=ws["work"]).split()


def test_names_are_checked_for_what_they_say(server, tenant, git, tmp_path, dumb_http_remote):
    ws = workspace(server, tenant, git, tmp_path, repository_url=dumb_http_remote)
    assert create(server, tenant, ws, name="Été à Paris")["branch"] == "ete-a-paris"
    assert hoody_error(call(server, tenant, "POST", branches(ws), {"name": "   "}), 400)
    made = create(server, tenant, ws, name="kept")
    assert hoody_error(call(server, tenant, "PATCH", f"{branches(ws)}/{made['id']}", {"name": " \t "}), 400)
    assert "Unsafe" in hoody_error(call(server, tenant, "GET", f"{branches(ws)}/remote-refs",
                                        params={"remote": "origin\n"}), 400)


def test_a_refused_pull_keeps_nothing_it_fetched(server, tenant, git, tmp_path, own_remote):
    """A pull stopped by conflicts or refused by the checks took the remote's objects into the repository all
    the same, where anyone who may read it could fetch them by id: they are checked while still apart."""
    ws = mirrored_workspace(server, tenant, git, tmp_path, own_remote)
    main = call(server, tenant, "GET", branches(ws)).json()[0]
    one = f"{branches(ws)}/{main['id']}"
    bare = repo_path(server, tenant, ws["slug"])
    git.commit(ws["work"], {"a.txt": "ours\n"}, "ours")
    git("push", "-q", "origin", "main", cwd=ws["work"])
    theirs = own_remote.commit({"a.txt": "theirs\n", "secret.txt": "only upstream\n"}, "theirs")
    stopped = call(server, tenant, "POST", f"{one}/pull").json()
    assert stopped["success"] is False and stopped["conflicts"] == ["a.txt"], stopped
    assert git("cat-file", "-e", theirs, cwd=bare, check=False).returncode != 0

    own_remote.git("-C", str(own_remote.work), "reset", "-q", "--hard", "HEAD~1")
    blob = own_remote.git("-C", str(own_remote.work), "hash-object", "-w", "--stdin")  # empty file
    tree = subprocess.run(["git", "-C", str(own_remote.work), "mktree"], input=f"100644 blob {blob}\ta\\b\n".encode(),
                          check=True, capture_output=True, env=own_remote.env).stdout.decode().strip()
    parent = own_remote.git("-C", str(own_remote.work), "rev-parse", "HEAD")
    bad = subprocess.run(["git", "-C", str(own_remote.work), "commit-tree", tree, "-p", parent, "-m", "backslash"],
                         check=True, capture_output=True, env=own_remote.env).stdout.decode().strip()
    own_remote.git("-C", str(own_remote.work), "push", "-q", "-f", "origin", f"{bad}:refs/heads/main")
    own_remote.git("-C", str(own_remote.bare), "update-server-info")
    refused = call(server, tenant, "POST", f"{one}/pull")
    assert "backslash" in hoody_error(refused, 400)
    assert git("cat-file", "-e", bad, cwd=bare, check=False).returncode != 0
    assert not [p.name for p in (bare / "objects").iterdir() if "driftstone-fetch-" in p.name]


def test_a_merge_into_a_branch_without_commits_racing_its_delete_does_not_bring_it_back(server, tenant, git,
                                                                                        tmp_path):
    """Such a branch is deleted without a ref change, so the merge's compare-and-swap (from no ref) passed after
    the delete: both answered 200 and the branch was back (a review: 11 rounds of 12 on PostgreSQL)."""
    slug = f"hb-{uuid.uuid4().hex[:8]}"
    ws = api(server, tenant.keys["admin"], "POST", "/api/v1/workspaces", {"name": slug, "slug": slug}).json()["data"]
    work = tmp_path / "src"
    git("init", "-q", "-b", "src", str(work))
    git.commit(work, {"s.txt": "s\n"}, "src")
    git("push", "-q", tenant.url(slug), "src", cwd=work)
    for round_ in range(8):
        target = create(server, tenant, ws, name=f"ro{round_}", branch=f"ro{round_}")
        assert target["status"] == "failed"
        requests_ = [("POST", f"/v1/repos/{slug}/merges", {"source": "src", "target": f"ro{round_}"}),
                     ("DELETE", f"{branches(ws)}/{target['id']}", None)]
        merged, deleted = at_once(2, lambda i: call(server, tenant, *requests_[i]))
        assert merged.status_code in (200, 404) and deleted.status_code in (200, 404), (merged.text, deleted.text)
        if deleted.status_code == 200:
            assert remote_ref(git, tenant.url(slug), f"refs/heads/ro{round_}") == "", (round_, merged.text)
