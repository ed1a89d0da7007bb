"""Named remotes beside `origin` on a real server (DESIGN.md's Remote; seed 003 lists `upstream` beside `origin`
and lists a named remote's refs): added through /v1, listed by hoody, their refs read with the token kept for
them. The private remote is a repository on this same server, over http on 127.0.0.1 (allowed here), which asks
for a key as any git server asks for its token."""
from __future__ import annotations

import uuid

from sqlalchemy import text

from tests.support import api, at_once


def made_workspace(server, tenant, **fields) -> dict:
    slug = f"nr-{uuid.uuid4().hex[:8]}"
    made = api(server, tenant.keys["admin"], "POST", "/api/v1/workspaces", {"name": slug, "slug": slug, **fields})
    assert made.status_code == 201, made.text
    return made.json()["data"]


def remotes_path(slug: str) -> str:
    return f"/v1/repos/{slug}/remotes"


def test_a_named_remote_is_listed_beside_origin_and_its_refs_read_with_its_own_token(server, tenant, git,
                                                                                     tmp_path):
    upstream = tenant.repo()
    work = git.new_worktree(tmp_path / "up", {"a.txt": "a\n"})
    git("push", "-q", tenant.url(upstream), "HEAD:main", "HEAD:refs/heads/release/1", "HEAD:refs/tags/v1", cwd=work)
    ws = made_workspace(server, tenant, repository_url="https://github.com/acme/widgets.git")
    token = tenant.keys["read"]
    admin = tenant.keys["admin"]

    put = api(server, admin, "PUT", f"{remotes_path(ws['slug'])}/upstream",
              {"url": tenant.plain_url(upstream), "token": token})
    assert put.status_code == 200, put.text
    assert put.json()["data"] == {"name": "upstream", "url": tenant.plain_url(upstream), "hasToken": True}
    assert token not in put.text
    with server.context.db.session() as session:
        kept = session.execute(text("SELECT credentials FROM remotes WHERE name = 'upstream'")).scalars().all()
    assert kept and all(token not in value for value in kept)

    listed = api(server, tenant.keys["read"], "GET", remotes_path(ws["slug"])).json()["data"]
    assert [(r["name"], r["hasToken"]) for r in listed] == [("origin", False), ("upstream", True)]
    hoody = f"/api/v1/workspaces/{ws['id']}/branches"
    info = api(server, tenant.keys["read"], "GET", f"{hoody}/remote").json()
    assert info["defaultRemote"] == "origin"
    assert [(r["name"], r["authenticated"], r["repo"]) for r in info["remotes"]] == [
        ("origin", False, "widgets"), ("upstream", True, upstream)]
    refs = api(server, tenant.keys["read"], "GET", f"{hoody}/remote-refs", params={"remote": "upstream"})
    assert refs.status_code == 200, refs.text
    assert refs.json() == {"branches": ["refs/heads/main", "refs/heads/release/1"], "tags": ["refs/tags/v1"]}

    # the URL moved to another repository: the token stays behind, and the remote reads anonymously (refused)
    other = tenant.repo()
    moved = api(server, admin, "PUT", f"{remotes_path(ws['slug'])}/upstream", {"url": tenant.plain_url(other)})
    assert moved.status_code == 200 and moved.json()["data"]["hasToken"] is False
    refused = api(server, tenant.keys["read"], "GET", f"{hoody}/remote-refs", params={"remote": "upstream"})
    assert refused.status_code == 400 and token not in refused.text

    gone = api(server, admin, "DELETE", f"{remotes_path(ws['slug'])}/upstream")
    assert gone.status_code == 200 and gone.json()["data"] == {"name": "upstream", "deleted": True}
    missing = api(server, tenant.keys["read"], "GET", f"{hoody}/remote-refs", params={"remote": "upstream"})
    assert missing.status_code == 404
    assert missing.json()["name"] == "NotFoundError"
    assert missing.json()["data"]["message"] == "Remote 'upstream' not configured"


def test_a_burst_of_calls_to_one_remote_answers_429s_and_no_503(server, tenant, git, tmp_path):
    """Each call held its request's database connection while the rate limit took a second: 64 at once starved the
    pool (15 connections on SQLite for 32 threads a worker): 503s after 30 s, every other request stalled."""
    upstream = tenant.repo()
    work = git.new_worktree(tmp_path / "up", {"a.txt": "a\n"})
    git("push", "-q", tenant.url(upstream), "HEAD:main", cwd=work)
    ws = made_workspace(server, tenant, repository_url=tenant.plain_url(upstream),
                        settings={"credentials": {"git_token": tenant.keys["read"]}})
    path = f"/api/v1/workspaces/{ws['id']}/branches/remote-refs"
    rounds = at_once(64, lambda _: [api(server, tenant.keys["read"], "GET", path).status_code for _ in range(5)])
    assert None not in rounds, "calls still waiting after two minutes"
    statuses = sorted(status for answered in rounds for status in answered)
    # no 503 and none left waiting (the limit's count itself: test_api_hoody_branches, test_rate_limits); how many
    # pass depends on how many minute windows the burst spans, on a loaded machine more than two
    assert set(statuses) == {200, 429}, statuses


def test_without_origin_the_first_named_remote_is_the_default(server, tenant, git, tmp_path):
    upstream = tenant.repo()
    work = git.new_worktree(tmp_path / "up", {"a.txt": "a\n"})
    git("push", "-q", tenant.url(upstream), "HEAD:main", cwd=work)
    ws = made_workspace(server, tenant)
    assert api(server, tenant.keys["admin"], "PUT", f"{remotes_path(ws['slug'])}/mirror",
               {"url": tenant.plain_url(upstream), "token": tenant.keys["read"]}).status_code == 200
    hoody = f"/api/v1/workspaces/{ws['id']}/branches"
    assert api(server, tenant.keys["read"], "GET", f"{hoody}/remote").json()["defaultRemote"] == "mirror"
    assert api(server, tenant.keys["read"], "GET", f"{hoody}/remote-refs").json()["branches"] == ["refs/heads/main"]
    assert api(server, tenant.keys["admin"], "PUT", f"{remotes_path(ws['slug'])}/sub",
               {"url": "https://gitlab.com/group/sub/widgets.git"}).status_code == 200
    listed = {r["name"]: r for r in api(server, tenant.keys["read"], "GET", f"{hoody}/remote").json()["remotes"]}
    assert (listed["sub"]["provider"], listed["sub"]["owner"], listed["sub"]["repo"]) == (
        "gitlab", "group/sub", "widgets")  # a GitLab subgroup is part of the owner


def test_remote_refusals_change_nothing_and_never_answer_a_token(server, tenant):
    ws = made_workspace(server, tenant)
    admin = tenant.keys["admin"]
    path = remotes_path(ws["slug"])
    token = f"ghp_{uuid.uuid4().hex}"
    for name, body, status in [
            ("origin", {"url": "https://example.com/a.git"}, 400),  # origin is the workspace's repository_url
            ("bad name", {"url": "https://example.com/a.git"}, 400),
            ("-x", {"url": "https://example.com/a.git"}, 400),
            ("ORIGIN", {"url": "https://example.com/a.git"}, 400),
            ("up", {"url": "file:///etc/passwd"}, 422),
            ("up", {"url": "https://example.com/a\tb.git"}, 422),  # git refuses it; urlsplit drops the tab
            ("up", {"url": "https://exa\nmple.com/a.git"}, 422),
            ("up", {"url": "https://user:pw@example.com/a.git"}, 400),
            ("up", {"url": "ssh://git@example.com/a.git", "token": token}, 400),  # a token goes with http(s) only
            ("up", {"url": "https://example.com/a.git", "token": "has space"}, 422),
            ("up", {"url": "https://example.com:99999/a.git"}, 400),
            ("up", {"url": "https://example.com/a.git", "extra": 1}, 422)]:
        refused = api(server, admin, "PUT", f"{path}/{name}", body)
        assert refused.status_code == status, (name, body, refused.text)
        assert refused.json()["success"] is False and token not in refused.text
    assert api(server, tenant.keys["agent"], "PUT", f"{path}/up", {"url": "https://example.com/a.git"}).status_code == 403
    assert api(server, server.tenant().keys["admin"], "PUT", f"{path}/up",
               {"url": "https://example.com/a.git"}).status_code == 404
    assert api(server, admin, "DELETE", f"{path}/nothing").status_code == 404
    for number in range(20):
        assert api(server, admin, "PUT", f"{path}/r{number}", {"url": "https://example.com/a.git"}).status_code == 200
    assert api(server, admin, "PUT", f"{path}/r20", {"url": "https://example.com/a.git"}).status_code == 409
    assert [r["name"] for r in api(server, admin, "GET", path).json()["data"]] == sorted(f"r{n}" for n in range(20))
