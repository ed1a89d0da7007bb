"""Seed 000's Driftstone /v1 surface run as documented (curl examples and the endpoint table) on a real server."""
from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.support import api, remote_ref, repo_path, wait_until_gone


def test_seed_curl_repo_create(server, tenant):
    """`curl -X POST .../v1/repos -H "Authorization: Bearer dk-..." -d '{"name":"agent-work"}'` as written."""
    result = subprocess.run(["curl", "-s", "-X", "POST", f"{server.url}/v1/repos",
                             "-H", f"Authorization: Bearer {tenant.keys['admin']}",
                             "-d", '{"name":"agent-work"}'], capture_output=True, text=True, check=True)
    body = json.loads(result.stdout)
    assert body["success"] is True
    repo = body["data"]
    assert repo["slug"] == "agent-work" and repo["defaultBranch"] == "main"
    assert repo["cloneUrl"].endswith(f"/{tenant.org}/agent-work.git")
    duplicate = api(server, tenant.keys["admin"], "POST", "/v1/repos", {"name": "agent-work"})
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "conflict"


def test_repo_table_endpoints(server, tenant, git, tmp_path):
    key = tenant.keys["admin"]
    created = api(server, key, "POST", "/v1/repos", {"name": "Hello World", "description": "demo"})
    assert created.status_code == 201
    slug = created.json()["data"]["slug"]
    assert slug == "hello-world"
    listed = api(server, key, "GET", "/v1/repos").json()
    assert slug in [r["slug"] for r in listed["data"]] and listed["pagination"]["page"] == 1
    got = api(server, key, "GET", f"/v1/repos/{slug}").json()["data"]
    assert got["description"] == "demo" and got["mainHeadCommit"] is None
    by_id = api(server, key, "GET", f"/v1/repos/{got['id']}")  # the id the creation answered names it too
    assert by_id.status_code == 200 and by_id.json()["data"]["slug"] == slug, by_id.text
    posing = api(server, key, "POST", "/v1/repos", {"name": got["id"]})  # a slug that would take that id over
    assert posing.status_code == 422 and "shape of an id" in posing.json()["error"], posing.text
    assert posing.json()["details"]["fields"] == [{"loc": "name", "msg": "the shape of an id"}]  # as every 422's
    bad = api(server, key, "POST", "/v1/repos", {"name": "...."})
    assert bad.status_code == 422 and bad.json()["details"]["fields"][0]["loc"] == "name", bad.text
    assert api(server, key, "POST", "/v1/repos", {"name": "repo_" + "0" * 24}).status_code == 422
    assert api(server, server.tenant().keys["admin"], "GET", f"/v1/repos/{got['id']}").status_code == 404
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    git("push", "-q", got["cloneUrl"].replace("http://", f"http://x:{key}@"), "main", cwd=work)
    head = git.out("rev-parse", "HEAD", cwd=work)
    assert api(server, key, "GET", f"/v1/repos/{slug}").json()["data"]["mainHeadCommit"] == head
    deleted = api(server, key, "DELETE", f"/v1/repos/{slug}")
    assert deleted.status_code == 200 and deleted.json()["data"]["deleted"] is True
    assert api(server, key, "GET", f"/v1/repos/{slug}").status_code == 404
    assert api(server, key, "GET", f"/v1/repos/{got['id']}").status_code == 404
    assert git("ls-remote", got["cloneUrl"].replace("http://", f"http://x:{key}@"), check=False).returncode != 0
    assert api(server, key, "POST", "/v1/repos", {"name": "Hello World"}).status_code == 201  # slug is free again


def test_deleted_repository_is_purged_by_a_job(server, tenant):
    key = tenant.keys["admin"]
    data = api(server, key, "POST", "/v1/repos", {"name": "to-purge"}).json()["data"]
    path = server.context.store.path_for(data["id"])
    assert path.exists()
    api(server, key, "DELETE", "/v1/repos/to-purge")
    wait_until_gone(path)


def test_repos_pagination(server):
    tenant = server.tenant()
    for i in range(5):
        tenant.repo(f"p{i}")
    first = api(server, tenant.keys["read"], "GET", "/v1/repos?perPage=2").json()
    assert len(first["data"]) == 2 and first["pagination"]["hasMore"] is True
    last = api(server, tenant.keys["read"], "GET", "/v1/repos?perPage=2&page=3").json()
    assert len(last["data"]) == 1 and last["pagination"]["hasMore"] is False
    slugs = [r["slug"] for p in (1, 2, 3) for r in api(server, tenant.keys["read"], "GET", f"/v1/repos?perPage=2&page={p}").json()["data"]]
    assert sorted(slugs) == [f"p{i}" for i in range(5)]


def test_branch_table_endpoints(server, tenant, git, tmp_path):
    key = tenant.keys["agent"]
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    main = git.out("rev-parse", "HEAD", cwd=work)
    created = api(server, key, "POST", f"/v1/repos/{repo}/branches", {"name": "feature/x"})
    assert created.status_code == 201
    assert created.json()["data"]["headCommit"] == main and created.json()["data"]["baseBranch"] == "main"
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/feature/x").split()[0] == main
    one = api(server, key, "GET", f"/v1/repos/{repo}/branches/feature/x").json()["data"]
    assert one["name"] == "feature/x" and one["status"] == "ready"
    names = [b["name"] for b in api(server, key, "GET", f"/v1/repos/{repo}/branches").json()["data"]]
    assert names == ["feature/x", "main"]
    assert api(server, key, "POST", f"/v1/repos/{repo}/branches", {"name": "feature/x"}).status_code == 409
    bad = api(server, key, "POST", f"/v1/repos/{repo}/branches", {"name": "-evil"})
    assert bad.status_code == 422
    assert api(server, key, "DELETE", f"/v1/repos/{repo}/branches/feature/x").status_code == 200
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/feature/x") == ""
    assert api(server, key, "GET", f"/v1/repos/{repo}/branches/feature/x").status_code == 404
    assert api(server, key, "DELETE", f"/v1/repos/{repo}/branches/main").status_code == 409


def test_a_branch_whose_delete_was_killed_after_the_ref_went_can_be_made_again(server, tenant, git, tmp_path):
    """A DELETE killed between the ref's removal and its transaction's end left the branch's row: GET and the list
    said 404, and creating it again said 409 "already exists" (crash sweep: 3 in ~100 kills)."""
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    key = tenant.keys["agent"]
    assert api(server, key, "POST", f"/v1/repos/{repo}/branches", {"name": "half"}).status_code == 201
    git("update-ref", "-d", "refs/heads/half", cwd=repo_path(server, tenant, repo))  # what the killed DELETE did
    assert api(server, key, "GET", f"/v1/repos/{repo}/branches/half").status_code == 404
    beside = api(server, key, "POST", f"/v1/repos/{repo}/branches", {"name": "half/inside"})
    assert beside.status_code == 201, beside.text  # was 409: cannot exist beside branch 'half'
    assert api(server, key, "DELETE", f"/v1/repos/{repo}/branches/half/inside").status_code == 200
    again = api(server, key, "POST", f"/v1/repos/{repo}/branches", {"name": "half"})
    assert again.status_code == 201, again.text
    listed = api(server, key, "GET", f"/v1/repos/{repo}/branches").json()["data"]
    assert [b["name"] for b in listed] == ["half", "main"]
    assert remote_ref(git, tenant.url(repo), "refs/heads/half") == git.out("rev-parse", "HEAD", cwd=work)


def test_record_only_branch_and_branch_from_sha(server, tenant, git, tmp_path):
    key = tenant.keys["agent"]
    repo = tenant.repo()
    waiting = api(server, key, "POST", f"/v1/repos/{repo}/branches", {"name": "later"})
    assert waiting.status_code == 201 and waiting.json()["data"]["headCommit"] is None  # empty repo: a record
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    first = git.out("rev-parse", "HEAD", cwd=work)
    git.commit(work, {"b.txt": "b"}, "second")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    record = api(server, key, "POST", f"/v1/repos/{repo}/branches", {"name": "rec", "recordOnly": True})
    assert record.json()["data"]["headCommit"] is None
    from_sha = api(server, key, "POST", f"/v1/repos/{repo}/branches", {"name": "old", "from": first}).json()["data"]
    assert from_sha["headCommit"] == first
    listed = {b["name"]: b["headCommit"] for b in api(server, key, "GET", f"/v1/repos/{repo}/branches").json()["data"]}
    assert listed == {"later": None, "rec": None, "old": first, "main": git.out("rev-parse", "HEAD", cwd=work)}
    missing = api(server, key, "POST", f"/v1/repos/{repo}/branches", {"name": "x", "from": "nope"})
    assert missing.status_code == 404

    # the record is a branch without commits, not a missing one: found, listed, and answered as such everywhere
    assert api(server, key, "GET", f"/v1/repos/{repo}/commits", params={"branch": "rec"}).json()["data"] == []
    for method, path, body, params in (
            ("GET", "tree", None, {"ref": "rec"}), ("GET", "tree", None, {"ref": "refs/heads/rec"}),
            ("GET", "contents/a.txt", None, {"ref": "rec"}),
            ("GET", "diff", None, {"head": "rec"}), ("POST", "merges", {"source": "rec"}, None),
            ("POST", "branches", {"name": "from-rec", "from": "rec"}, None),
            ("POST", "branches", {"name": "from-rec", "from": "rec", "recordOnly": True}, None)):
        answer = api(server, key, method, f"/v1/repos/{repo}/{path}", body, params=params)
        assert answer.status_code == 409 and "no commits yet" in answer.json()["error"], (path, answer.text)
    assert api(server, key, "GET", f"/v1/repos/{repo}/tree", params={"ref": "nope"}).status_code == 404


def test_a_protected_record_only_branch_is_not_deleted(server, tenant):
    """A branch with no ref yet passed no checks when deleted: protection did not hold for it, and its received
    upload went with it (security sweep)."""
    from control.services import repos as repo_service

    key = tenant.keys["agent"]
    repo = tenant.repo()
    with server.context.db.session() as session:
        repo_service.protect_branch(session, repo_service.get_repo(session, tenant.org_id, repo), "prot*")
    for name in ("prot-rel", "free"):
        assert api(server, key, "POST", f"/v1/repos/{repo}/branches", {"name": name, "recordOnly": True}) \
            .status_code == 201
    refused = api(server, key, "DELETE", f"/v1/repos/{repo}/branches/prot-rel")
    assert refused.status_code == 403 and "protected branch" in refused.json()["error"], refused.text
    assert api(server, key, "GET", f"/v1/repos/{repo}/branches/prot-rel").status_code == 200
    assert api(server, key, "DELETE", f"/v1/repos/{repo}/branches/free").status_code == 200


@pytest.mark.parametrize("first,second", [("feat", "feat/v2"), ("feat/v2", "feat"), ("main", "main/x")])
def test_branch_names_that_would_be_file_and_directory_of_each_other_are_refused(server, tenant, git, tmp_path,
                                                                                   first, second):
    """git cannot hold refs `a` and `a/b` at once; a record-only pair used to be accepted, and their uploads then
    collided in storage (a 500, or a PUT answered 200 whose file landed in the other upload's directory)."""
    key = tenant.keys["agent"]
    repo = tenant.repo()
    git("push", "-q", tenant.url(repo), "main", cwd=git.new_worktree(tmp_path / "w", {"a.txt": "a"}))
    if first != "main":
        assert api(server, key, "POST", f"/v1/repos/{repo}/branches",
                   {"name": first, "recordOnly": True}).status_code == 201
    for record_only in (True, False):
        refused = api(server, key, "POST", f"/v1/repos/{repo}/branches", {"name": second, "recordOnly": record_only})
        assert refused.status_code == 409 and refused.json()["details"]["clashesWith"] == first, refused.text
    names = {b["name"] for b in api(server, key, "GET", f"/v1/repos/{repo}/branches").json()["data"]}
    assert second not in names


def test_commit_metadata_for_pushed_commits(server, tenant, git, tmp_path):
    key = tenant.keys["read"]
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    git("commit", "-q", "--allow-empty", "-m", "Add login\n\nIntent-Goal: let users sign in\nIntent-Confidence: high",
        cwd=work)
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    head = git.out("rev-parse", "HEAD", cwd=work)
    listed = api(server, key, "GET", f"/v1/repos/{repo}/commits?branch=main").json()
    assert [c["sha"] for c in listed["data"]] == [head, git.out("rev-parse", "HEAD~1", cwd=work)]
    top = listed["data"][0]
    assert top["source"] == "push" and top["author"]["email"] == "agent@example.test"
    assert top["intent"] == {"goal": "let users sign in", "confidence": "high"}
    assert top["parents"] == [listed["data"][1]["sha"]]
    one = api(server, key, "GET", f"/v1/repos/{repo}/commits/{head}").json()["data"]
    assert one["message"].startswith("Add login")
    assert api(server, key, "GET", f"/v1/repos/{repo}/commits/{'0' * 40}").status_code == 404
    assert api(server, key, "GET", f"/v1/repos/{repo}/commits/zzz").status_code == 422
    paged = api(server, key, "GET", f"/v1/repos/{repo}/commits?perPage=1&page=2").json()
    assert len(paged["data"]) == 1 and paged["pagination"]["hasMore"] is False


def test_keys_issue_list_revoke(server, tenant, git, tmp_path):
    admin = tenant.keys["admin"]
    issued = api(server, admin, "POST", "/v1/keys", {"name": "ci", "scope": "agent"})
    assert issued.status_code == 201
    secret = issued.json()["data"]["key"]
    key_id = issued.json()["data"]["id"]
    assert secret.startswith("dk-")
    listing = api(server, admin, "GET", "/v1/keys")
    assert secret not in listing.text and key_id in listing.text
    repo = tenant.repo()
    assert api(server, secret, "GET", f"/v1/repos/{repo}").status_code == 200
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    git("push", "-q", f"http://x:{secret}@127.0.0.1:{server.port}/{tenant.org}/{repo}.git", "main", cwd=work)
    assert api(server, admin, "DELETE", f"/v1/keys/{key_id}").status_code == 200
    assert api(server, secret, "GET", f"/v1/repos/{repo}").status_code == 401
    assert git("push", f"http://x:{secret}@127.0.0.1:{server.port}/{tenant.org}/{repo}.git", "main",
               cwd=work, check=False).returncode != 0
    assert api(server, admin, "DELETE", f"/v1/keys/{key_id}").status_code == 404


def test_key_with_repo_allow_list_and_expiry(server, tenant):
    admin = tenant.keys["admin"]
    allowed, hidden = tenant.repo(), tenant.repo()
    issued = api(server, admin, "POST", "/v1/keys", {"name": "one", "scope": "read", "repos": [allowed]}).json()["data"]
    assert issued["repos"] == [allowed]
    assert api(server, issued["key"], "GET", f"/v1/repos/{allowed}").status_code == 200
    assert api(server, issued["key"], "GET", f"/v1/repos/{hidden}").status_code == 404
    past = api(server, admin, "POST", "/v1/keys", {"name": "old", "scope": "read", "expiresAt": "2000-01-01T00:00:00Z"})
    assert past.status_code == 422
    too_far = api(server, admin, "POST", "/v1/keys", {"name": "far", "scope": "read",
                                                      "expiresAt": "9999-12-31T23:59:59-23:59"})
    assert too_far.status_code == 422 and "out of range" in too_far.json()["error"]


def test_a_repo_limited_key_pages_through_its_own_repositories_only(server):
    """The listing was paged first and filtered after: such a key got empty pages with `hasMore`, and their
    count told how many repositories it may not see."""
    tenant = server.tenant()
    admin = tenant.keys["admin"]
    slugs = [tenant.repo() for _ in range(5)]
    seen = [slugs[1], slugs[3]]
    limited = api(server, admin, "POST", "/v1/keys", {"name": "two", "scope": "read", "repos": seen}).json()["data"]
    pages = [api(server, limited["key"], "GET", f"/v1/repos?perPage=1&page={page}").json() for page in (1, 2, 3)]
    assert [[r["slug"] for r in page["data"]] for page in pages] == [[seen[0]], [seen[1]], []]
    assert [page["pagination"]["hasMore"] for page in pages] == [True, False, False], pages
    everything = api(server, admin, "GET", "/v1/repos?perPage=100").json()["data"]
    assert [r["slug"] for r in everything] == slugs


def test_a_repo_limited_key_cannot_make_or_revoke_a_broader_key(server, tenant):
    admin = tenant.keys["admin"]
    mine, other = tenant.repo(), tenant.repo()
    limited = api(server, admin, "POST", "/v1/keys", {"name": "lim", "scope": "admin", "repos": [mine]}).json()["data"]
    assert api(server, limited["key"], "POST", "/v1/keys", {"name": "all", "scope": "admin"}).status_code == 403
    wider = api(server, limited["key"], "POST", "/v1/keys", {"name": "w", "scope": "read", "repos": [mine, other]})
    assert wider.status_code == 404  # it cannot see `other`: to it, that repository does not exist
    narrower = api(server, limited["key"], "POST", "/v1/keys", {"name": "ok", "scope": "read", "repos": [mine]})
    assert narrower.status_code == 201 and narrower.json()["data"]["repos"] == [mine]
    unrestricted_id = api(server, admin, "POST", "/v1/keys", {"name": "u", "scope": "read"}).json()["data"]["id"]
    refused = api(server, limited["key"], "DELETE", f"/v1/keys/{unrestricted_id}")
    missing = api(server, limited["key"], "DELETE", "/v1/keys/key_000000000000000000000000")
    # a key it cannot list answers as one that does not exist: a 403 told which ids were real
    assert refused.status_code == missing.status_code == 404
    assert refused.json()["code"] == missing.json()["code"]
    assert unrestricted_id in [k["id"] for k in api(server, admin, "GET", "/v1/keys?perPage=100").json()["data"]]
    assert api(server, limited["key"], "DELETE", f"/v1/keys/{narrower.json()['data']['id']}").status_code == 200
    assert api(server, admin, "GET", f"/v1/repos/{other}").status_code == 200


def test_a_repo_limited_key_cannot_create_a_repository_it_could_not_see(server, tenant):
    admin = tenant.keys["admin"]
    limited = api(server, admin, "POST", "/v1/keys", {"name": "lim", "scope": "admin",
                                                      "repos": [tenant.repo()]}).json()["data"]["key"]
    refused = api(server, limited, "POST", "/v1/repos", {"name": "taken-by-a-limited-key"})
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert api(server, admin, "GET", "/v1/repos/taken-by-a-limited-key").status_code == 404
    assert api(server, admin, "POST", "/v1/repos", {"name": "taken-by-a-limited-key"}).status_code == 201


def test_health_and_readiness(server):
    assert requests.get(server.url + "/healthz", timeout=10).json() == {"success": True, "data": {"status": "ok", "checks": None}}
    ready = requests.get(server.url + "/readyz", timeout=10).json()
    assert ready["data"]["status"] == "ready"
    assert set(ready["data"]["checks"]) >= {"database", "repoStore", "blobStore"}


def test_branch_names_git_or_the_disk_would_refuse_are_4xx(server, tenant, git, tmp_path):
    admin = tenant.keys["admin"]
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    git("push", "-q", tenant.url(repo), "main", "main:refs/heads/deep/a", cwd=work)
    for name, status in (("main/x", 409), ("deep", 409), ("HEAD", 422), ("\u00e9" * 200, 422)):
        answer = api(server, admin, "POST", f"/v1/repos/{repo}/branches", {"name": name})
        assert answer.status_code == status, (name[:20], answer.text)
        assert answer.json()["success"] is False
    dojo = f"/api/repos/{tenant.org}/{repo}/workspaces"
    for name in ("a.lock", "a/.b", "a//b", "a/-b", "a/", "a."):
        assert api(server, admin, "POST", dojo, {"name": name, "agent_name": "x"}).status_code == 400, name
    assert git.out("ls-remote", tenant.url(repo), cwd=work).count("refs/heads/") == 2


def test_the_same_repository_created_at_once_is_one_201_and_409s(server, tenant):
    """The existence check and the insert race; the loser's unique-constraint error used to be a 500."""
    from concurrent.futures import ThreadPoolExecutor

    admin = tenant.keys["admin"]
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda _: api(server, admin, "POST", "/v1/repos", {"name": "same-moment"})
                                   .status_code, range(8)))
    assert statuses == [201] + [409] * 7, statuses
    assert api(server, admin, "GET", "/v1/repos/same-moment").status_code == 200


def test_of_simultaneous_deletes_of_a_repository_exactly_one_succeeds(server, tenant):
    """Each delete read the repository, then marked it deleted: several callers were told they deleted it and
    several purge jobs ran."""
    from tests.support import at_once

    key = tenant.keys["admin"]
    api(server, key, "POST", "/v1/repos", {"name": "deleted-once"})
    responses = at_once(8, lambda i: api(server, key, "DELETE", "/v1/repos/deleted-once"))
    assert sorted(r.status_code for r in responses) == [200] + [404] * 7, [r.text for r in responses]
    assert all(r.json()["code"] == "not_found" for r in responses if r.status_code == 404)


def test_a_push_whose_repository_is_deleted_while_its_body_arrives_gets_404(server, tenant):
    """A small push body is read whole before git starts; a repository deleted (and purged) meanwhile made the
    start fail with a 500. The client now hears that the repository is gone."""
    from tests.support import pkt, request_interrupted

    key = tenant.keys["admin"]
    repo = api(server, key, "POST", "/v1/repos", {"name": "gone-mid-push"}).json()["data"]
    path = server.context.store.path_for(repo["id"])
    body = (pkt(b"0" * 40 + b" " + b"1" * 40 + b" refs/heads/x\0report-status\n") + b"0000"
            + b"PACK\0\0\0\2\0\0\0\0" + bytes.fromhex("029d08823bd8a8eab510ad6ac75c823cfd3ed31e"))
    head = (f"POST /{tenant.org}/gone-mid-push.git/git-receive-pack HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/x-git-receive-pack-request\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    def delete_and_purge() -> None:
        assert api(server, key, "DELETE", "/v1/repos/gone-mid-push").status_code == 200
        wait_until_gone(path)

    answer = request_interrupted(server, head, body, 20, delete_and_purge)
    assert answer.startswith(b"HTTP/1.1 404"), answer[:200]
    assert b"repository not found" in answer


def test_a_repo_limited_key_lists_only_repositories_that_still_exist(server, tenant):
    """A key limited to a repository since deleted (and its name re-used) listed the new one's slug, which the key
    cannot reach: the listing names what the key can reach."""
    key = tenant.keys["admin"]
    api(server, key, "POST", "/v1/repos", {"name": "limited-to"})
    api(server, key, "POST", "/v1/repos", {"name": "kept"})
    issued = api(server, key, "POST", "/v1/keys", {"name": "limited", "scope": "read", "repos": ["limited-to", "kept"]})
    assert issued.status_code == 201, issued.text
    assert api(server, key, "DELETE", "/v1/repos/limited-to").status_code == 200
    api(server, key, "POST", "/v1/repos", {"name": "limited-to"})
    listed = {k["id"]: k for k in api(server, key, "GET", "/v1/keys").json()["data"]}
    assert listed[issued.json()["data"]["id"]]["repos"] == ["kept"]


def test_a_key_that_expires_cannot_make_one_that_outlives_it(server, tenant):
    """A leaked short-lived key could otherwise make itself permanent."""
    soon = (datetime.now(timezone.utc) + timedelta(minutes=10)).replace(microsecond=0)
    short = api(server, tenant.keys["admin"], "POST", "/v1/keys",
                {"name": "short", "scope": "admin", "expiresAt": soon.isoformat()}).json()["data"]["key"]
    forever = api(server, short, "POST", "/v1/keys", {"name": "forever", "scope": "read"})
    assert forever.status_code == 403 and "outlive" in forever.json()["error"]
    later = api(server, short, "POST", "/v1/keys", {"name": "later", "scope": "read",
                                                   "expiresAt": (soon + timedelta(seconds=1)).isoformat()})
    assert later.status_code == 403
    within = api(server, short, "POST", "/v1/keys", {"name": "within", "scope": "read",
                                                    "expiresAt": (soon - timedelta(minutes=1)).isoformat()})
    assert within.status_code == 201, within.text
    names = {k["name"] for k in api(server, tenant.keys["admin"], "GET", "/v1/keys").json()["data"]}
    assert "within" in names and not names & {"forever", "later"}


def test_a_repo_limited_key_lists_only_keys_within_its_reach(server, tenant):
    """Another key's limits name repositories: a limited key must not learn of those it cannot see."""
    admin = tenant.keys["admin"]
    mine, hidden = tenant.repo(), tenant.repo()
    limited = api(server, admin, "POST", "/v1/keys", {"name": "lim", "scope": "admin", "repos": [mine]}).json()["data"]
    api(server, admin, "POST", "/v1/keys", {"name": "on-hidden", "scope": "read", "repos": [hidden]})
    api(server, admin, "POST", "/v1/keys", {"name": "on-mine", "scope": "read", "repos": [mine]})
    listed = api(server, limited["key"], "GET", "/v1/keys")
    assert listed.status_code == 200
    assert sorted(k["name"] for k in listed.json()["data"]) == ["lim", "on-mine"]
    assert hidden not in listed.text
    everything = {k["name"] for k in api(server, admin, "GET", "/v1/keys").json()["data"]}
    assert {"lim", "on-hidden", "on-mine", "admin"} <= everything


def test_a_limited_key_reads_the_same_not_found_for_an_excluded_and_a_missing_repo(server, tenant):
    admin = tenant.keys["admin"]
    mine, hidden = tenant.repo(), tenant.repo()
    limited = api(server, admin, "POST", "/v1/keys", {"name": "lim", "scope": "read", "repos": [mine]}).json()["data"]
    missing = "x" * len(hidden)
    for spelled in (hidden, hidden.upper()):
        excluded = api(server, limited["key"], "GET", f"/v1/repos/{spelled}")
        absent = api(server, limited["key"], "GET", f"/v1/repos/{missing.upper() if spelled.isupper() else missing}")
        assert excluded.status_code == absent.status_code == 404
        assert excluded.json()["error"].replace(hidden, "?") == absent.json()["error"].replace(missing, "?")


def test_branches_keys_and_locks_come_whole_or_by_the_page_asked_for(server, tenant, git, tmp_path):
    """page / perPage were ignored on these lists: 5,000 branches came in one answer, and a stack list ran a dry-run
    merge for every stack. Without them a list still comes whole, as the document describes it."""
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    git("push", "-q", tenant.url(repo), "main", *[f"main:refs/heads/b{i}" for i in range(5)], cwd=work)
    agent = tenant.keys["agent"]
    whole = api(server, agent, "GET", f"/v1/repos/{repo}/branches").json()
    assert [b["name"] for b in whole["data"]] == ["b0", "b1", "b2", "b3", "b4", "main"] and "pagination" not in whole
    pages = [api(server, agent, "GET", f"/v1/repos/{repo}/branches?page={page}&perPage=4").json()
             for page in (1, 2, 3)]
    assert [[b["name"] for b in page["data"]] for page in pages] == [["b0", "b1", "b2", "b3"], ["b4", "main"], []]
    assert [page["pagination"] for page in pages] == [{"page": n, "perPage": 4, "hasMore": n == 1} for n in (1, 2, 3)]
    assert api(server, agent, "GET", f"/v1/repos/{repo}/branches?perPage=0").status_code == 422

    keys = api(server, tenant.keys["admin"], "GET", "/v1/keys?perPage=2").json()
    assert len(keys["data"]) == 2 and keys["pagination"]["hasMore"] is True  # admin, agent, read
    everything = api(server, tenant.keys["admin"], "GET", "/v1/keys").json()["data"]
    second = api(server, tenant.keys["admin"], "GET", "/v1/keys?page=2&perPage=2").json()["data"]
    assert [k["id"] for k in keys["data"] + second] == [k["id"] for k in everything]

    workspace = requests.post(f"{server.url}/api/repos/{tenant.org}/{repo}/workspaces", json={"name": "w"},
                              headers={"Authorization": f"Bearer {agent}"}, timeout=60).json()["workspace"]
    for pattern in ("x/*", "y/*", "z/*"):
        assert requests.post(f"{server.url}/api/repos/{tenant.org}/{repo}/workspaces/{workspace['id']}/lock",
                             json={"patterns": [pattern]}, headers={"Authorization": f"Bearer {agent}"},
                             timeout=60).status_code == 201
    locks = [api(server, agent, "GET", f"/v1/repos/{repo}/locks?page={page}&perPage=2").json()["data"]
             for page in (1, 2)]
    assert [lock["patterns"] for page in locks for lock in page] == [["x/*"], ["y/*"], ["z/*"]]
