"""Malformed git requests get a git protocol error or a 4xx: never a 500, never an HTML page."""
from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib

import pytest
import requests

from tests.support import raw_request

UPLOAD = "application/x-git-upload-pack-request"
RECEIVE = "application/x-git-receive-pack-request"


@pytest.fixture
def repo_url(tenant, git, tmp_path):
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    return tenant.plain_url(repo), {"Authorization": f"Bearer {tenant.keys['admin']}"}


BODIES = [
    b"",
    b"garbage",
    b"zzzz",
    b"0000",
    b"0032want " + b"f" * 40 + b"\n00000009done\n",
    b"ffff" + b"x" * 100,
    b"0004" * 10,
    b"0014command=ls-refs\n0000",
    b"\x00\xff" * 5000,
]


def assert_clean(response):
    assert response.status_code < 500, response.text
    assert "<html" not in response.text.lower()
    if response.status_code >= 400:
        assert response.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("service,ctype", [("git-upload-pack", UPLOAD), ("git-receive-pack", RECEIVE)])
def test_garbage_bodies(repo_url, body, service, ctype):
    url, auth = repo_url
    response = requests.post(f"{url}/{service}", data=body, headers={**auth, "Content-Type": ctype}, timeout=30)
    assert_clean(response)


@pytest.mark.parametrize("protocol", ["version=2", "version=1", "version=2:object-format=sha1", "x;rm -rf /", "\x01"])
def test_git_protocol_header_values(repo_url, protocol):
    url, auth = repo_url
    response = requests.get(f"{url}/info/refs?service=git-upload-pack",
                            headers={**auth, "Git-Protocol": protocol.encode("latin-1")}, timeout=30)
    if protocol == "\x01":  # not a valid header value: refused at the HTTP layer, in JSON
        assert response.status_code == 400 and response.json()["success"] is False
        return
    assert response.status_code == 200
    if protocol.startswith("version=2"):
        assert response.content.startswith(b"000eversion 2\n")
    else:
        assert b"# service=git-upload-pack" in response.content


def test_v2_ls_refs_roundtrip(repo_url):
    url, auth = repo_url
    body = b"0014command=ls-refs\n0001" + b"0009peel\n" + b"0000"
    response = requests.post(f"{url}/git-upload-pack", data=body,
                             headers={**auth, "Content-Type": UPLOAD, "Git-Protocol": "version=2"}, timeout=30)
    assert response.status_code == 200
    assert b"refs/heads/main" in response.content


def test_wrong_content_type_and_method(repo_url):
    url, auth = repo_url
    assert_clean(wrong := requests.post(f"{url}/git-upload-pack", data=b"0000", headers={**auth, "Content-Type": "text/plain"}))
    assert wrong.status_code == 415
    assert requests.get(f"{url}/git-upload-pack", headers=auth).status_code == 405
    assert requests.post(f"{url}/info/refs?service=git-upload-pack", headers=auth).status_code == 405
    evil = requests.get(f"{url}/info/refs?service=git-evil", headers=auth)
    assert evil.status_code == 403 and "unsupported service 'git-evil'" in evil.text  # was "dumb HTTP" 404
    assert requests.get(f"{url}/info/refs", headers=auth).status_code == 404  # a dumb client's first request
    encoded = requests.Request("GET", f"{url}/info/refs", headers=auth).prepare()
    encoded.url += "?service=git%2Dupload-pack"  # decoded as http-backend decodes it (requests would unquote it)
    assert b"# service=git-upload-pack" in requests.Session().send(encoded, timeout=30).content


@pytest.mark.parametrize("encoding,payload", [
    ("gzip", b"not gzip at all"),
    ("gzip", gzip.compress(b"0000", mtime=0)[:-6]),
    ("deflate", b"\x00\x01\x02"),
    ("br", b"whatever"),
])
def test_broken_content_encoding(repo_url, encoding, payload):
    url, auth = repo_url
    response = requests.post(f"{url}/git-upload-pack", data=payload,
                             headers={**auth, "Content-Type": UPLOAD, "Content-Encoding": encoding}, timeout=30)
    assert_clean(response)


def test_gzip_bomb_is_bounded(repo_url):
    url, auth = repo_url
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"0" * (1024 * 1024)
    bomb = b"".join(compressor.compress(block) for _ in range(300)) + compressor.flush()  # 300 MiB inflated
    response = requests.post(f"{url}/git-upload-pack", data=bomb,
                             headers={**auth, "Content-Type": UPLOAD, "Content-Encoding": "gzip"}, timeout=60)
    assert_clean(response)


@pytest.mark.parametrize("path", [
    "/%2e%2e/etc/info/refs?service=git-upload-pack",
    "/..%2f..%2fetc/info/refs?service=git-upload-pack",
    "/-rf/info/refs?service=git-upload-pack",
])
def test_hostile_repo_segments(server, tenant, path):
    response = requests.get(f"{server.url}/{tenant.org}{path}",
                            headers={"Authorization": f"Bearer {tenant.keys['admin']}"}, timeout=10)
    assert response.status_code in (400, 404)
    assert "<html" not in response.text.lower()


def test_an_empty_body_is_a_400(repo_url):
    url, auth = repo_url
    host, _, rest = url.removeprefix("http://").partition("/")
    for service, content_type in (("git-upload-pack", UPLOAD), ("git-receive-pack", RECEIVE)):
        response = requests.post(f"{url}/{service}", data=b"", timeout=30,
                                 headers={**auth, "Content-Type": content_type, "Content-Length": "0"})
        assert response.status_code == 400 and "empty request body" in response.text
        # no Content-Length and no Transfer-Encoding at all (requests always sends one, so a raw socket)
        with socket.create_connection(tuple(host.split(":")[:1]) + (int(host.split(":")[1]),), timeout=30) as sock:
            sock.sendall(f"POST /{rest}/{service} HTTP/1.1\r\nHost: h\r\nGit-Protocol: version=2\r\n"
                         f"Authorization: {auth['Authorization']}\r\nContent-Type: {content_type}\r\n"
                         "Connection: close\r\n\r\n".encode())
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400") and b"empty request body" in answer, answer[:200]


def test_a_body_shorter_than_announced_changes_nothing(tenant, git, tmp_path):
    """A delete needs nothing after its command list, so git could act on the first half of a request whose
    rest never comes; a small body is read whole before git starts."""
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    git("push", "-q", tenant.url(repo), "main", "main:refs/heads/keep", cwd=work)
    head = git.out("rev-parse", "HEAD", cwd=work)
    command = f"{head} {'0' * 40} refs/heads/keep\0report-status\n".encode()
    body = b"%04x" % (len(command) + 4) + command + b"0000"
    response = raw_request(tenant.server, f"POST /{tenant.org}/{repo}.git/git-receive-pack HTTP/1.1\r\nHost: h\r\n"
                                          f"Authorization: Bearer {tenant.keys['admin']}\r\nContent-Type: {RECEIVE}\r\n"
                                          f"Content-Length: {len(body) + 500}\r\n\r\n", body)
    assert response.startswith(b"HTTP/1.1 400"), response[:200]
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/keep", cwd=work).split()[0] == head


@pytest.mark.parametrize("service,content_type", [("git-receive-pack", RECEIVE), ("git-upload-pack", UPLOAD)])
@pytest.mark.parametrize("framing", [b"zz\r\n0000\r\n0\r\n\r\n",            # a chunk size that is not hex
                                     b"4\r\n0000XX0\r\n\r\n",                # no CRLF after a chunk's data
                                     b"4\r\n0000\r\n",                       # no final 0-chunk
                                     b"ff\r\n0000"])                         # a chunk longer than what came
def test_broken_chunk_framing_is_a_400(tenant, git, tmp_path, service, content_type, framing):
    """A push whose chunked body was malformed or cut short within its first 64 KiB answered 500: gunicorn's
    parse error reached the request thread while the first command was read (libgit2 always chunks)."""
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    response = raw_request(tenant.server, f"POST /{tenant.org}/{repo}.git/{service} HTTP/1.1\r\nHost: h\r\n"
                                          f"Authorization: Bearer {tenant.keys['admin']}\r\n"
                                          f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n",
                           framing)
    assert response.startswith(b"HTTP/1.1 400"), response[:300]
    assert b"text/plain" in response.split(b"\r\n\r\n")[0]


def test_head_requests_get_headers_only(server, repo_url):
    """A HEAD on info/refs started git and wrote its advertisement, which gunicorn then dropped with a
    warning ("WSGI app sent body bytes on a no-body response") on every such request."""
    url, auth = repo_url
    for path, status in (("info/refs?service=git-upload-pack", 200), ("info/refs?service=git-receive-pack", 200),
                         ("git-upload-pack", 405), ("HEAD", 404)):
        answer = requests.head(f"{url}/{path}", headers=auth, timeout=30)
        assert answer.status_code == status and answer.content == b"", (path, answer.status_code)
        if status == 200:
            assert answer.headers["Content-Type"] == f"application/x-{path.split('=')[1]}-advertisement"
    assert requests.head(f"{url}/info/refs?service=git-upload-pack", timeout=30).status_code == 401
    assert "no-body response" not in server.log_text()


@pytest.mark.parametrize("service,content_type", [("git-receive-pack", RECEIVE), ("git-upload-pack", UPLOAD)])
def test_a_body_announced_over_the_limit_is_refused_before_it_is_read(tenant, service, content_type):
    """A Content-Length over the push (or fetch request) limit gets a 413 at once: the server neither waits for
    the body nor hands its start to git."""
    repo = tenant.repo()
    with socket.create_connection(("127.0.0.1", tenant.server.port), timeout=20) as sock:
        sock.sendall(f"POST /{tenant.org}/{repo}.git/{service} HTTP/1.1\r\nHost: h\r\n"
                     f"Authorization: Bearer {tenant.keys['admin']}\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: {64 * 1024 ** 3}\r\n\r\n0000".encode())
        answer = b""
        while not _whole_response(answer):
            chunk = sock.recv(65536)  # times out (a failure) if the server waits for the 64 GiB
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"request body too large" in answer and b"text/plain" in answer


def _whole_response(answer: bytes) -> bool:
    head, found, body = answer.partition(b"\r\n\r\n")
    lengths = [line.split(b":", 1)[1] for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
    return bool(found and lengths) and len(body) >= int(lengths[0])


def test_a_fetch_whose_gzip_body_is_cut_short_is_refused_not_answered(repo_url):
    """t5562 "fetch gzipped truncated": a compressed body was streamed to git, which answered with a whole pack
    (200) before the missing gzip trailer showed; git http-backend refuses it. A small compressed body is now
    read to its end first."""
    url, auth = repo_url
    advertised = requests.get(f"{url}/info/refs?service=git-upload-pack", headers=auth, timeout=30).content
    head = advertised.split(b"0000", 1)[1][4:44].decode()
    request = b"0032want " + head.encode() + b"\n0000" + b"0009done\n"
    whole = gzip.compress(request, mtime=0)
    for body, status in ((whole, 200), (whole[:-4], 400)):
        response = requests.post(f"{url}/git-upload-pack", data=body, timeout=30,
                                 headers={**auth, "Content-Type": UPLOAD, "Content-Encoding": "gzip"})
        assert response.status_code == status, (status, response.content[:200])
        assert (b"PACK" in response.content) is (status == 200)


def _receive_pack_body(commands: list[str], capabilities: str, pack: bytes = b"") -> bytes:
    lines = [(f"{command}\0{capabilities}\n" if index == 0 else f"{command}\n").encode()
             for index, command in enumerate(commands)]
    return b"".join(b"%04x" % (len(line) + 4) + line for line in lines) + b"0000" + pack


@pytest.mark.parametrize("atomic", [False, True])
def test_a_push_request_sent_again_after_it_landed_reports_ok(server, tenant, git, tmp_path, atomic, receiver):
    """libcurl sends a POST again on a new connection when the first one's server died (a killed worker): the
    push had landed, and the second receive-pack, finding the branch already moved, told the pusher "failed to
    update ref" (with --atomic, "atomic transaction failed") for a branch that held exactly what was pushed; the
    rows the killed worker did not write were not written either (here the first request's row is removed). A
    webhook is told of the branch made once (the request sent again told it twice)."""
    import subprocess

    from sqlalchemy import delete, select

    from control.services import repos
    from storage.models import Branch, Event

    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    git("push", "-q", tenant.url(repo), "main", "main:refs/heads/side", cwd=work)
    hook = requests.post(f"{server.url}/v1/repos/{repo}/webhooks", json={"url": receiver.url, "events": ["*"]},
                         headers={"Authorization": f"Bearer {tenant.keys['admin']}"}, timeout=60)
    assert hook.status_code == 201, hook.text
    old = git.out("rev-parse", "HEAD", cwd=work)
    new = git.commit(work, {"b.txt": "b"}, "second")
    pack = subprocess.run(["git", "pack-objects", "--revs", "--stdout", "-q"], cwd=work,
                          input=f"{new}\n^{old}\n".encode(), capture_output=True, check=True).stdout
    refs = ["refs/heads/main", "refs/heads/topic"]
    body = _receive_pack_body([f"{old} {new} refs/heads/main", f"{'0' * 40} {new} refs/heads/topic"],
                              "report-status" + (" atomic" if atomic else ""), pack)
    url, headers = tenant.plain_url(repo), {"Authorization": f"Bearer {tenant.keys['agent']}", "Content-Type": RECEIVE}
    response = requests.post(f"{url}/git-receive-pack", data=body, headers=headers, timeout=60)
    assert all(f"ok {ref}".encode() in response.content for ref in refs), response.content
    with server.context.db.session() as session:  # what a worker killed before the effects leaves: no rows
        session.execute(delete(Branch).where(Branch.name.in_(["main", "topic"])))
    response = requests.post(f"{url}/git-receive-pack", data=body, headers=headers, timeout=60)
    assert all(f"ok {ref}".encode() in response.content for ref in refs), response.content
    listed = requests.get(f"{server.url}/v1/repos/{repo}/branches", headers=headers, timeout=60).json()["data"]
    assert {b["name"]: b["headCommit"] for b in listed} == {"main": new, "topic": new, "side": old}
    with server.context.db.session() as session:  # the second request's event says it found the refs in place
        repo_id = repos.get_repo(session, tenant.org_id, repo).id
        payloads = [event.payload for event in session.scalars(select(Event).where(Event.repo_id == repo_id))]
    resent = [p for p in payloads if any(ref.get("foundInPlace") for ref in p["refs"])]
    assert len(resent) == 1 and {ref["ref"] for ref in resent[0]["refs"]} == set(refs)
    pushes = receiver.wait_for("push", 2)
    admin = {"Authorization": f"Bearer {tenant.keys['admin']}"}
    deliveries = f"{server.url}/v1/repos/{repo}/webhooks/{hook.json()['data']['id']}/deliveries"
    deadline = time.monotonic() + 60
    while any(d["status"] == "pending" for d in requests.get(deliveries, headers=admin, timeout=60).json()["data"]):
        assert time.monotonic() < deadline
        time.sleep(0.1)  # every event of both requests sent: a second `create` would be in
    assert sum(all(ref.get("foundInPlace") for ref in body["refs"]) for _, body in pushes) == 1
    assert [body["ref"] for _, body in receiver.events("create")] == ["refs/heads/topic"]

    git("push", "-q", "-f", tenant.url(repo), f"{old}:refs/heads/topic", cwd=work)  # one ref moved on
    response = requests.post(f"{url}/git-receive-pack", data=body, headers=headers, timeout=60)
    assert b"ng refs/heads/topic" in response.content
    assert (b"ng refs/heads/main" if atomic else b"ok refs/heads/main") in response.content
    stale_delete = _receive_pack_body([f"{old} {'0' * 40} refs/heads/gone"], "report-status")
    response = requests.post(f"{url}/git-receive-pack", data=stale_delete, headers=headers, timeout=60)
    assert b"ng refs/heads/gone" in response.content  # a delete of a missing ref stays git's answer


def test_a_refused_push_is_answered_whole_while_its_body_still_comes(tenant, git, tmp_path):
    """What git leaves of a refused push's body is read (so that a client writing it all first, libgit2 or JGit,
    hears the answer), but only after the answer is sent whole: read before the end of the answer, it held the
    answer back from a client that reads while it writes (the git CLI) until the rest had come, or for 60 s."""
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    start = _receive_pack_body([f"{'0' * 40} {git.out('rev-parse', 'HEAD', cwd=work)} refs/heads/x"],
                               "report-status") + b"PACK\x00\x00\x00\x07broken"
    junk, sent, stop = b"\0" * 65536, [0], threading.Event()
    with socket.create_connection(("127.0.0.1", tenant.server.port), timeout=30) as sock:
        sock.sendall(f"POST /{tenant.org}/{repo}.git/git-receive-pack HTTP/1.1\r\nHost: h\r\n"
                     f"Authorization: Bearer {tenant.keys['admin']}\r\nContent-Type: {RECEIVE}\r\n"
                     f"Transfer-Encoding: chunked\r\n\r\n".encode() + b"%x\r\n%s\r\n" % (len(start), start))

        def keep_sending() -> None:
            try:
                while not stop.is_set() and sent[0] < 512 * 1024 * 1024:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(junk), junk))
                    sent[0] += len(junk)
            except OSError:
                pass

        sender = threading.Thread(target=keep_sending)
        sender.start()
        answer = b""
        while not answer.endswith(b"\r\n0\r\n\r\n"):  # the chunked answer's end
            chunk = sock.recv(65536)
            assert chunk, answer[-300:]
            answer += chunk
        whole_while_sending = sender.is_alive()
        stop.set()
        sender.join(timeout=60)
    assert answer.startswith(b"HTTP/1.1 200") and b"unpack " in answer and b"ng refs/heads/x" in answer, answer[:500]
    assert whole_while_sending, sent[0]
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/x") == ""
