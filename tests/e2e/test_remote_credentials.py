"""A workspace's token for its remote on a real server: given as agirunner's settings.credentials.git_token (seed
002), kept sealed, shown only as redacted, sent only for the repository it was given for, and used by hoody's remote
calls (seed 003) against a real private repository: this same server's, over http on 127.0.0.1 (allowed here),
which asks for a key as any git server asks for its token."""
from __future__ import annotations

import base64
import hashlib
import uuid

from sqlalchemy import text

from control.services.remote_credentials import REDACTED
from tests.support import api, remote_ref


def made_workspace(server, tenant, **fields):
    slug = f"rc-{uuid.uuid4().hex[:8]}"
    made = api(server, tenant.keys["admin"], "POST", "/api/v1/workspaces", {"name": slug, "slug": slug, **fields})
    assert made.status_code == 201, made.text
    return made.json()["data"]


def commit(server, tenant, slug: str, branch: str, files: dict[str, str], message: str = "change") -> str:
    operations = [{"action": "create", "path": path, "content": base64.b64encode(body.encode()).decode()}
                  for path, body in files.items()]
    answer = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{slug}/commits",
                 {"branch": branch, "message": message, "operations": operations})
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["data"]["sha"]


def kept_column(server, workspace_id: str) -> tuple[str | None, str]:
    with server.context.db.session() as session:
        row = session.execute(text("SELECT upstream_credentials, settings FROM repositories WHERE id = :id"),
                              {"id": workspace_id}).one()
    return row[0], str(row[1])


def test_the_token_is_kept_sealed_shown_redacted_and_changed_only_when_asked(server, tenant):
    token = tenant.keys["read"]
    remote = tenant.repo()
    ws = made_workspace(server, tenant, repository_url=tenant.plain_url(remote),
                        settings={"credentials": {"git_token": token}, "workspace_storage_type": "git_remote"})
    assert ws["settings"]["credentials"] == {"git_token": REDACTED, "git_token_configured": True}
    sealed, settings = kept_column(server, ws["id"])
    assert sealed and token not in sealed and token[3:20] not in sealed and token not in settings
    path = f"/api/v1/workspaces/{ws['id']}"
    admin = tenant.keys["admin"]

    def credentials():
        answer = api(server, tenant.keys["agent"], "GET", path)
        assert token not in answer.text
        return answer.json()["data"]["settings"]["credentials"]

    # a settings round trip (the redacted value sent back), another setting, null: the token stays
    shown = api(server, admin, "GET", path).json()["data"]["settings"]
    assert api(server, admin, "PATCH", path, {"settings": shown}).status_code == 200
    assert api(server, admin, "PATCH", path, {"settings": {"credentials": {"git_token": None}}}).status_code == 200
    assert api(server, admin, "PATCH", path, {"settings": {"workspace_storage_type": "git_remote"}}).status_code == 200
    assert kept_column(server, ws["id"])[0] == sealed
    # a token that cannot be one: refused, nothing changed, not repeated back
    bad = api(server, admin, "PATCH", path, {"settings": {"credentials": {"git_token": "ghp_\r\nX-Evil: 1"}}})
    assert bad.status_code == 400 and "ghp_" not in bad.text and "X-Evil" not in bad.text
    assert kept_column(server, ws["id"])[0] == sealed
    # the same repository spelt otherwise keeps it; another repository, on the same server too, drops it
    respelt = api(server, admin, "PATCH", path, {"repository_url": tenant.plain_url(remote, suffix="/")})
    assert respelt.status_code == 200 and credentials()["git_token_configured"] is True
    for elsewhere in (tenant.plain_url("elsewhere"), tenant.plain_url(remote).replace("127.0.0.1", "localhost")):
        again = {"repository_url": tenant.plain_url(remote), "settings": {"credentials": {"git_token": token}}}
        assert api(server, admin, "PATCH", path, again).status_code == 200
        assert api(server, admin, "PATCH", path, {"repository_url": elsewhere}).status_code == 200
        assert credentials() == {"git_token": None, "git_token_configured": False}
        assert kept_column(server, ws["id"])[0] is None
    shapeless = api(server, admin, "PATCH", path, {"settings": {"credentials": token}})
    assert shapeless.status_code == 400 and token not in shapeless.text
    # given again, then forgotten with ""
    again = {"repository_url": tenant.plain_url(remote), "settings": {"credentials": {"git_token": token}}}
    assert api(server, admin, "PATCH", path, again).status_code == 200 and credentials()["git_token_configured"]
    assert api(server, admin, "PATCH", path, {"settings": {"credentials": {"git_token": ""}}}).status_code == 200
    assert credentials()["git_token_configured"] is False
    assert token not in server.log_text()


def test_verify_git_access_preserves_the_kept_token_for_its_server_only(server, tenant, git, tmp_path):
    remote = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a\n"})
    git("push", "-q", tenant.url(remote), "HEAD:main", cwd=work)
    url = tenant.plain_url(remote)
    ws = made_workspace(server, tenant, repository_url=url,
                        settings={"credentials": {"git_token": tenant.keys["read"]}})

    def verify(**body):
        return api(server, tenant.keys["admin"], "POST", f"/api/v1/workspaces/{ws['id']}/verify-git-access", body)

    kept = verify(repository_url=url, default_branch="main", git_token_mode="preserve")
    assert kept.status_code == 200 and kept.json()["data"]["branch_verified"] is True, kept.text
    cleared = verify(repository_url=url, git_token_mode="clear")
    assert cleared.status_code == 400 and "Check the repository token" in cleared.text
    # another repository of the same server (readable with that token), or this one under another host name: the
    # kept token is not sent there, so the server asks for one
    other = tenant.repo()
    git("push", "-q", tenant.url(other), "HEAD:main", cwd=work)
    for elsewhere_url in (tenant.plain_url(other), url.replace("127.0.0.1", "localhost")):
        elsewhere = verify(repository_url=elsewhere_url, git_token_mode="preserve")
        assert elsewhere.status_code == 400 and "Check the repository token" in elsewhere.text, elsewhere.text
    assert api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{ws['id']}").json()["data"]["settings"][
        "credentials"]["git_token_configured"] is True  # a check changes nothing kept
    for answer in (kept, cleared, elsewhere):
        assert tenant.keys["read"] not in answer.text
    assert tenant.keys["read"] not in server.log_text()


def hoody(server, tenant, method, path, body=None, key="agent"):
    return api(server, tenant.keys[key], method, path, body)


def seeded(server, tenant, git, tmp_path, remote: str, **fields) -> dict:
    """A workspace whose main is the remote's (one history, as a clone of it would have)."""
    ws = made_workspace(server, tenant, repository_url=tenant.plain_url(remote), **fields)
    seed = tmp_path / "seed"
    if not seed.exists():
        git.new_worktree(seed, {"README.md": "remote\n"})
        git("push", "-q", tenant.url(remote), "HEAD:main", cwd=seed)
    git("push", "-q", tenant.url(ws["slug"]), "HEAD:main", cwd=seed)
    return ws


def test_hoody_lists_pulls_and_pushes_a_private_remote_with_the_kept_token(server, tenant, git, tmp_path):
    remote = tenant.repo()
    token = tenant.keys["agent"]
    url = tenant.plain_url(remote)
    ws = seeded(server, tenant, git, tmp_path, remote, settings={"credentials": {"git_token": token}})
    anonymous = made_workspace(server, tenant, repository_url=url)
    branches = f"/api/v1/workspaces/{ws['id']}/branches"

    info = hoody(server, tenant, "GET", f"{branches}/remote", key="read").json()
    assert info["remotes"][0]["authenticated"] is True and info["remotes"][0]["url"] == url
    refs = hoody(server, tenant, "GET", f"{branches}/remote-refs", key="read")
    assert refs.status_code == 200 and refs.json()["branches"] == ["refs/heads/main"], refs.text
    denied = hoody(server, tenant, "GET", f"/api/v1/workspaces/{anonymous['id']}/branches/remote-refs")
    assert denied.status_code == 400 and denied.json()["success"] is False, denied.text

    [main] = hoody(server, tenant, "GET", branches).json()
    pulled = hoody(server, tenant, "POST", f"{branches}/{main['id']}/pull")
    assert pulled.json() == {"success": True, "conflicts": [], "message": "Already up to date."}, pulled.text
    made = hoody(server, tenant, "POST", branches, {"name": "Out going", "baseBranch": "main"}).json()
    head = commit(server, tenant, ws["slug"], made["branch"], {"src/new.py": "print(1)\n"})
    pushed = hoody(server, tenant, "POST", f"{branches}/{made['id']}/push")
    assert pushed.status_code == 200, pushed.text
    assert pushed.json() == {"success": True, "ref": "refs/heads/out-going", "remote": "origin", "url": url,
                             "message": "Branch pushed successfully."}
    assert remote_ref(git, tenant.url(remote), "refs/heads/out-going") == head
    timeline = api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{ws['id']}/timeline").json()["data"]
    [event] = [entry for entry in timeline if entry.get("type") == "remote.push"]
    assert event["payload"] == {"remote": "origin", "url": url, "ref": "refs/heads/out-going", "new": head}
    status = hoody(server, tenant, "GET", f"{branches}/{made['id']}/remote-status", key="read").json()
    assert status == {"hasUpstream": True, "ahead": 0, "behind": 0, "remoteBranch": "origin/out-going"}

    # the remote branch moves on: a push without its commits is refused (no force), a pull then a push land
    theirs = tmp_path / "theirs"
    git("clone", "-q", "-b", "out-going", tenant.url(remote), str(theirs))
    git.commit(theirs, {"docs/theirs.md": "theirs\n"}, "theirs")
    git("push", "-q", "origin", "HEAD:out-going", cwd=theirs)
    commit(server, tenant, ws["slug"], made["branch"], {"src/ours.py": "ours\n"})
    behind = hoody(server, tenant, "POST", f"{branches}/{made['id']}/push")
    assert behind.status_code == 409 and "pull first" in behind.json()["errors"][0]["message"], behind.text
    assert hoody(server, tenant, "POST", f"{branches}/{made['id']}/pull").json()["success"] is True
    assert hoody(server, tenant, "POST", f"{branches}/{made['id']}/push").status_code == 200
    assert remote_ref(git, tenant.url(remote), "refs/heads/out-going") == remote_ref(
        git, tenant.url(ws["slug"]), "refs/heads/out-going")

    for answer in (info, refs, denied, pulled, pushed, behind):
        assert token not in str(answer if isinstance(answer, dict) else answer.text)
    assert token not in server.log_text()


def test_hoody_push_with_a_token_the_remote_refuses_says_so_without_the_token(server, tenant, git, tmp_path):
    remote = tenant.repo()
    token = tenant.keys["read"]  # may read the remote, not push to it
    ws = seeded(server, tenant, git, tmp_path, remote, settings={"credentials": {"git_token": token}})
    branches = f"/api/v1/workspaces/{ws['id']}/branches"
    made = hoody(server, tenant, "POST", branches, {"name": "refused"}).json()
    commit(server, tenant, ws["slug"], made["branch"], {"a.txt": "a\n"})
    refused = hoody(server, tenant, "POST", f"{branches}/{made['id']}/push")
    assert refused.status_code == 400 and refused.json()["success"] is False, refused.text
    assert "could not be pushed" in refused.json()["errors"][0]["message"]
    assert token not in refused.text and token not in server.log_text()
    assert remote_ref(git, tenant.url(remote), "refs/heads/refused") == ""
    unkept = seeded(server, tenant, git, tmp_path, remote)
    other = hoody(server, tenant, "POST", f"/api/v1/workspaces/{unkept['id']}/branches", {"name": "x"}).json()
    no_token = hoody(server, tenant, "POST", f"/api/v1/workspaces/{unkept['id']}/branches/{other['id']}/push")
    assert no_token.status_code == 400 and "git_token" in no_token.json()["errors"][0]["message"]


def test_authenticated_says_whether_the_remote_took_the_kept_token_when_last_sent(server, tenant, git, tmp_path):
    """Seed 003's `authenticated`: "whether the stored credentials are valid". A kept token reads true until the
    remote refuses it (no such key here: 401, as a revoked token gets), and again once a new one is given or the
    remote takes it; each remote's verdict is its own. A token refused earlier is set up in the database."""
    remote = tenant.repo()
    bogus = f"ds_{uuid.uuid4().hex}"
    ws = seeded(server, tenant, git, tmp_path, remote, settings={"credentials": {"git_token": bogus}})
    assert api(server, tenant.keys["admin"], "PUT", f"/v1/repos/{ws['slug']}/remotes/upstream",
               {"url": tenant.plain_url(remote), "token": tenant.keys["read"]}).status_code == 200
    branches = f"/api/v1/workspaces/{ws['id']}/branches"

    def authenticated() -> dict[str, bool]:
        listed = hoody(server, tenant, "GET", f"{branches}/remote", key="read")
        assert listed.status_code == 200, listed.text
        return {entry["name"]: entry["authenticated"] for entry in listed.json()["remotes"]}

    assert authenticated() == {"origin": True, "upstream": True}  # never sent yet
    refused = hoody(server, tenant, "GET", f"{branches}/remote-refs", key="read")
    assert refused.status_code == 400 and bogus not in refused.text, refused.text
    assert authenticated() == {"origin": False, "upstream": True}
    assert hoody(server, tenant, "GET", f"{branches}/remote-refs", key="read").status_code == 400  # asked again
    assert authenticated() == {"origin": False, "upstream": True}

    # a token given since has no verdict yet, and one the remote takes reads true
    assert api(server, tenant.keys["admin"], "PATCH", f"/api/v1/workspaces/{ws['id']}",
               {"settings": {"credentials": {"git_token": tenant.keys["agent"]}}}).status_code == 200
    assert authenticated() == {"origin": True, "upstream": True}
    assert hoody(server, tenant, "GET", f"{branches}/remote-refs", key="read").status_code == 200
    assert authenticated() == {"origin": True, "upstream": True}

    # a token that may read but not push (403) is still valid: the access was refused, not the credentials
    assert api(server, tenant.keys["admin"], "PATCH", f"/api/v1/workspaces/{ws['id']}",
               {"settings": {"credentials": {"git_token": tenant.keys["read"]}}}).status_code == 200
    made = hoody(server, tenant, "POST", branches, {"name": "Read only", "baseBranch": "main"}).json()
    commit(server, tenant, ws["slug"], made["branch"], {"r.txt": "r\n"})
    pushed = hoody(server, tenant, "POST", f"{branches}/{made['id']}/push")
    assert pushed.status_code == 400 and "403" in pushed.text, pushed.text
    assert authenticated() == {"origin": True, "upstream": True}

    # the remote refused the upstream's token once, then takes it: true again
    with server.context.db.session() as connection:
        sealed = connection.execute(text("SELECT credentials FROM remotes WHERE repo_id = :id"),
                                    {"id": ws["id"]}).scalar_one()
        connection.execute(text("UPDATE remotes SET credentials_refused = :verdict WHERE repo_id = :id"),
                           {"verdict": hashlib.sha256(sealed.encode()).hexdigest(), "id": ws["id"]})
    assert authenticated() == {"origin": True, "upstream": False}
    upstream_refs = api(server, tenant.keys["read"], "GET", f"{branches}/remote-refs", params={"remote": "upstream"})
    assert upstream_refs.status_code == 200, upstream_refs.text
    assert authenticated() == {"origin": True, "upstream": True}
