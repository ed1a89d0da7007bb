"""Auth on every git URL: Basic (key as password) and Bearer, scopes, org isolation, revocation."""
from __future__ import annotations

import base64
import http.client
import socket
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import update

from storage.models import ApiKey

GIT_PATHS = [
    ("GET", "/info/refs?service=git-upload-pack"),
    ("GET", "/info/refs?service=git-receive-pack"),
    ("POST", "/git-upload-pack"),
    ("POST", "/git-receive-pack"),
    ("GET", "/info/refs"),
    ("GET", "/HEAD"),
    ("GET", "/objects/info/packs"),
    ("GET", "/objects/ab/" + "c" * 38),
    ("GET", "/objects/pack/pack-" + "d" * 40 + ".pack"),
]


def basic(key: str, user: str = "anything") -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("method,path", GIT_PATHS)
def test_every_git_url_demands_credentials(tenant, method, path):
    repo = tenant.repo()
    for target in (tenant.plain_url(repo), tenant.plain_url(repo, suffix=""), tenant.plain_url("no-such-repo")):
        response = requests.request(method, target + path, timeout=10)
        assert response.status_code == 401, (target, path)
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
        assert "<html" not in response.text.lower()


@pytest.mark.parametrize("make_header", [basic, bearer, lambda k: basic(k, user="")])
def test_basic_and_bearer_are_checked_identically(tenant, make_header):
    repo = tenant.repo()
    url = tenant.plain_url(repo) + "/info/refs?service=git-upload-pack"
    ok = requests.get(url, headers=make_header(tenant.keys["read"]), timeout=10)
    assert ok.status_code == 200
    assert ok.headers["Content-Type"] == "application/x-git-upload-pack-advertisement"
    bad = requests.get(url, headers=make_header("dk-not-a-real-key"), timeout=10)
    assert bad.status_code == 401


def test_git_cli_with_bearer_header(tenant, git, tmp_path):
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    header = f"http.extraHeader=Authorization: Bearer {tenant.keys['agent']}"
    git("-c", header, "push", "-q", tenant.plain_url(repo), "main", cwd=work)
    git("-c", header, "clone", "-q", tenant.plain_url(repo), str(tmp_path / "c"))
    assert (tmp_path / "c" / "a.txt").read_text() == "a"


def test_read_key_cannot_push(tenant, git, tmp_path):
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    result = git("push", tenant.url(repo, "read"), "main", cwd=work, check=False)
    assert result.returncode != 0 and b"403" in result.stderr
    direct = requests.get(tenant.plain_url(repo) + "/info/refs?service=git-receive-pack",
                          headers=bearer(tenant.keys["read"]), timeout=10)
    assert direct.status_code == 403
    git("clone", "-q", tenant.url(repo, "read"), str(tmp_path / "c"))  # reading is fine


def test_other_orgs_repo_is_indistinguishable_from_missing(server, tenant):
    other = server.tenant()
    repo = other.repo()
    path = "/info/refs?service=git-upload-pack"
    theirs = requests.get(other.plain_url(repo) + path, headers=bearer(tenant.keys["admin"]), timeout=10)
    missing = requests.get(tenant.plain_url("does-not-exist") + path, headers=bearer(tenant.keys["admin"]), timeout=10)
    cross = requests.get(f"{server.url}/{tenant.org}/{repo}.git{path}", headers=bearer(other.keys["admin"]), timeout=10)
    assert theirs.status_code == missing.status_code == cross.status_code == 404
    assert theirs.text == missing.text == cross.text
    assert set(theirs.headers) == set(missing.headers)


def test_revoked_and_expired_keys_are_refused(server, tenant):
    repo = tenant.repo()
    url = tenant.plain_url(repo) + "/info/refs?service=git-upload-pack"
    fresh = server.tenant()
    assert requests.get(url, headers=bearer(tenant.keys["agent"]), timeout=10).status_code == 200
    with server.context.db.session() as session:
        session.execute(update(ApiKey).where(ApiKey.org_id == tenant.org_id, ApiKey.scope == "agent")
                        .values(revoked_at=datetime.now(timezone.utc)))
        session.execute(update(ApiKey).where(ApiKey.org_id == tenant.org_id, ApiKey.scope == "read")
                        .values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    assert requests.get(url, headers=bearer(tenant.keys["agent"]), timeout=10).status_code == 401
    assert requests.get(url, headers=bearer(tenant.keys["read"]), timeout=10).status_code == 401
    assert requests.get(url, headers=bearer(tenant.keys["admin"]), timeout=10).status_code == 200
    assert fresh.keys  # other tenants unaffected


def test_key_limited_to_some_repos(server, tenant):
    allowed, hidden = tenant.repo(), tenant.repo()
    from control.services import accounts
    from sqlalchemy import select
    from storage.models import Repository
    with server.context.db.session() as session:
        allowed_id = session.scalar(select(Repository.id).where(Repository.org_id == tenant.org_id,
                                                                Repository.slug == allowed))
        key = accounts.create_key(session, tenant.org_id, "limited", "agent", repo_ids=[allowed_id]).secret
    path = "/info/refs?service=git-upload-pack"
    assert requests.get(tenant.plain_url(allowed) + path, headers=bearer(key), timeout=10).status_code == 200
    assert requests.get(tenant.plain_url(hidden) + path, headers=bearer(key), timeout=10).status_code == 404


def test_keys_never_appear_in_the_server_log(server, tenant, git, tmp_path):
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    requests.get(tenant.plain_url(repo) + "/info/refs?service=git-upload-pack", headers=basic("dk-wrong"), timeout=10)
    log = server.log_text()
    for key in tenant.keys.values():
        assert key not in log
    assert "dk-wrong" not in log


def test_a_key_in_a_header_gunicorn_cannot_parse_is_not_echoed_or_logged(server, tenant):
    """gunicorn quotes the offending header line in its 400 and its log; a key in it must be blanked."""
    key = tenant.keys["admin"]
    basic = base64.b64encode(f"agent:{key}".encode()).decode()
    for bad_line in (f"Authorization Bearer {key}", f"Authorization Basic {basic}", f"X[{key}]: 1"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(f"GET /{tenant.org}/x.git/info/refs HTTP/1.1\r\nHost: h\r\n{bad_line}\r\n\r\n".encode())
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 400"), response[:200]
        assert key.encode() not in response and basic.encode() not in response and b"[redacted]" in response
    time.sleep(0.5)
    assert key not in server.log_text() and basic not in server.log_text()


def test_a_key_after_a_character_gunicorn_prints_as_an_escape_is_blanked(server, tenant):
    """gunicorn quotes a request line or header it cannot parse with its control bytes escaped: a key after
    `\\x01` (or `\\t`) came right after a digit or a letter in the text, so it looked glued to a word and was
    left whole, in the 400 and in the log (a hostile-input sweep)."""
    key = tenant.keys["admin"]
    for head in (b"GET /v1/repos?x=\x01" + key.encode() + b" HTTP/1.1\r\nHost: h\r\n\r\n",
                 b"GET /v1/repos HTTP/1.1\r\nHost: h\r\nX\x00" + key.encode() + b": 1\r\n\r\n",
                 b"GET /v1/repos?x=\t" + key.encode() + b" HTTP/1.1\r\nHost: h\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(head)
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 400"), response[:200]
        assert key.encode() not in response, response
    time.sleep(0.5)
    assert key not in server.log_text()


def test_a_key_put_in_a_url_is_not_written_to_the_access_log_nor_echoed(server, tenant):
    """Keys belong in headers, but a client may put one in a query string (or a path): the request is refused
    and its access-log line carries the key blanked out."""
    key = tenant.keys["admin"]
    marker = uuid.uuid4().hex
    assert requests.get(f"{server.url}/v1/repos", params={"access_token": key, "m": marker},
                        timeout=30).status_code == 401
    assert requests.get(f"{server.url}/{tenant.org}/x.git/info/refs", params={"k": key, "m": marker},
                        timeout=30).status_code == 401
    secret = key[len("dk-"):]
    for encoded in (key.replace("-", "%2D"), "%64" + key[1:], "d%6B%2d" + secret, "DK-" + secret):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)  # requests decodes %64 to d
        connection.request("GET", f"/v1/repos?k={encoded}&m={marker}")
        assert connection.getresponse().status == 401
        connection.close()
    deadline = time.monotonic() + 10
    while server.log_text().count(marker) < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [line for line in server.log_text().splitlines() if marker in line]
    assert len(lines) == 6, lines
    assert all(secret not in line and "[redacted]" in line for line in lines), lines
    echoed = requests.get(f"{server.url}/{key}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert echoed.status_code == 404 and key not in echoed.text


def test_a_key_revoked_while_its_push_body_arrives_moves_nothing(server, tenant, git, tmp_path):
    """The key is checked when the request begins; the pre-receive checks look again, so a key revoked while a
    (slow, large) push was on its way does not get its refs moved."""
    from tests.support import api, pkt, request_interrupted

    admin = tenant.keys["admin"]
    issued = api(server, admin, "POST", "/v1/keys", {"name": "soon-revoked", "scope": "agent"}).json()["data"]
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    head = git.out("rev-parse", "HEAD", cwd=work)
    pack = subprocess.run(["git", "pack-objects", "--stdout", "-q", "--revs"], input=b"HEAD\n", cwd=work,
                          capture_output=True, check=True).stdout
    body = pkt(b"0" * 40 + b" " + head.encode() + b" refs/heads/main\0report-status\n") + b"0000" + pack
    request = (f"POST /{tenant.org}/{repo}.git/git-receive-pack HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Bearer {issued['key']}\r\nContent-Type: application/x-git-receive-pack-request\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    def revoke() -> None:
        assert api(server, admin, "DELETE", f"/v1/keys/{issued['id']}").status_code == 200

    answer = request_interrupted(server, request, body, len(body) - 10, revoke)
    assert b"ng refs/heads/main" in answer and b"revoked" in answer, answer
    assert git.out("ls-remote", tenant.url(repo)) == ""


def test_any_username_bytes_with_the_key_as_password(server, tenant, git, tmp_path):
    """The README says any username: git sends a percent-encoded Latin-1 one as raw bytes, which are not UTF-8."""
    repo = tenant.repo()
    url = f"http://J%F6rg:{tenant.keys['read']}@127.0.0.1:{server.port}/{tenant.org}/{repo}.git"
    assert git("ls-remote", url, check=False).returncode == 0
    header = "Basic " + base64.b64encode(b"J\xf6rg:" + tenant.keys["read"].encode()).decode()
    answer = requests.get(f"{tenant.plain_url(repo)}/info/refs?service=git-upload-pack",
                          headers={"Authorization": header}, timeout=30)
    assert answer.status_code == 200
    wrong = "Basic " + base64.b64encode(b"J\xf6rg:\xff" + tenant.keys["read"].encode()).decode()
    assert requests.get(f"{tenant.plain_url(repo)}/info/refs?service=git-upload-pack",
                        headers={"Authorization": wrong}, timeout=30).status_code == 401


@pytest.mark.parametrize("value", [b"Basic \xc3\xa9", b"Basic \xe9t\xe9", b"Bearer", b"Basic ", b"Basic ===="])
def test_a_credential_that_is_not_base64_at_all_is_a_401(server, tenant, value):
    """A non-ASCII Basic value made b64decode raise ValueError (not binascii.Error): a 500 and a traceback."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(f"GET /{tenant.org}/x.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: h\r\n"
                     f"Connection: close\r\n".encode() + b"Authorization: " + value + b"\r\n\r\n")
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.1 401"), response[:200]
    assert b"www-authenticate: basic" in response.lower()


def test_a_git_url_with_repeated_slashes_is_served_as_web_servers_serve_it(tenant, git, tmp_path):
    """`acme//r1.git` and `r1.git//` reached the control API's JSON 404; lighttpd and Apache merge the slashes."""
    repo = tenant.repo()
    base = f"http://agent:{tenant.keys['read']}@127.0.0.1:{tenant.server.port}"
    for url in (f"{base}/{tenant.org}//{repo}.git", f"{base}/{tenant.org}/{repo}.git//"):
        assert git("ls-remote", url, check=False).returncode == 0, url
