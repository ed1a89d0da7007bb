"""A client that stops sending its request body frees its thread after the idle timeout (2 s on this server)
with a clear error, instead of holding a worker thread and a git process for ever."""
from __future__ import annotations

import base64
import json
import socket
import time

import requests

from tests.support import pkt


def read_until_closed(sock: socket.socket) -> bytes:
    response = b""
    while chunk := sock.recv(65536):
        response += chunk
    return response


def stalled(server, path: str, key: str, content_type: str, partial: bytes) -> tuple[float, bytes]:
    """Send the headers of a 10,000-byte body but only `partial` of it; returns (seconds to close, response)."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: 10000\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(head + partial)
        started = time.monotonic()
        response = read_until_closed(sock)
        return time.monotonic() - started, response


def test_a_stalled_push_body_is_given_up(small_limits_server):
    tenant = small_limits_server.tenant()
    repo = tenant.repo()
    command = pkt(f"{'0' * 40} {'1' * 40} refs/heads/main\0report-status\n".encode())
    seconds, response = stalled(small_limits_server, f"/{tenant.org}/{repo}.git/git-receive-pack",
                                tenant.keys["admin"], "application/x-git-receive-pack-request", command)
    assert seconds < 30
    status = response.split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.1 4"), response[:200]
    assert b"<html" not in response.lower()


def test_a_stalled_api_body_gets_408_in_the_api_envelope(small_limits_server):
    tenant = small_limits_server.tenant()
    seconds, response = stalled(small_limits_server, "/v1/repos", tenant.keys["admin"], "application/json",
                                b'{"name": "slow')
    assert seconds < 30
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), response[:300]
    assert json.loads(body)["success"] is False


def test_half_sent_request_heads_get_408_and_free_their_threads(small_limits_server):
    """More connections than the server has threads (2 workers x 32) each send half a request head and stop:
    without a deadline on heads each would hold a worker thread for as long as it stays open and the server
    would answer nobody. Each gets a 408 once DRIFTSTONE_REQUEST_HEAD_TIMEOUT (2 s here) has passed, and the
    server answers a normal request."""
    connections = [socket.create_connection(("127.0.0.1", small_limits_server.port), timeout=60) for _ in range(80)]
    try:
        for sock in connections:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
        responses = [read_until_closed(sock) for sock in connections]
    finally:
        for sock in connections:
            sock.close()
    assert all(response.startswith(b"HTTP/1.1 408 ") for response in responses), responses[:3]
    with socket.create_connection(("127.0.0.1", small_limits_server.port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert read_until_closed(sock).startswith(b"HTTP/1.1 200 ")


def test_a_head_trickled_faster_than_the_idle_timeout_still_gets_408(small_limits_server):
    """A byte every half second never trips the idle timeout (2 s); the head's deadline (2 s) ends it."""
    with socket.create_connection(("127.0.0.1", small_limits_server.port), timeout=60) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        started = time.monotonic()
        sock.settimeout(0.5)
        response = b""
        while time.monotonic() - started < 60:
            try:
                sock.sendall(b"a")
            except OSError:  # the server shut the connection after answering
                pass
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            response += chunk
    assert response.startswith(b"HTTP/1.1 408 "), response[:200]


def test_a_crowd_of_half_sent_heads_is_cut_short_and_a_real_request_gets_through(server):
    """200 connections, more than both workers' 64 threads, send half a head each (the default server: heads get
    30 s). Once more than half of a worker's threads wait on heads, a head not in after 1 s gets its 408, so a
    real request sent behind them is answered well before 30 s, where the per-head deadline alone would have
    let the crowd hold every thread. (The last few of a worker's crowd, no longer a crowd, get the full 30 s.)"""
    connections = [socket.create_connection(("127.0.0.1", server.port), timeout=20) for _ in range(200)]
    try:
        for sock in connections:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", server.port), timeout=25) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert read_until_closed(sock).startswith(b"HTTP/1.1 200 ")
        assert read_until_closed(connections[0]).startswith(b"HTTP/1.1 408 ")  # the oldest: in the first cut
    finally:
        for sock in connections:
            sock.close()


def test_a_connection_silent_longer_than_the_head_timeout_is_still_served(small_limits_server):
    """The head's time starts with its first bytes: a client that connects and only sends its request 3 s later
    (the head timeout is 2 s here) gets its answer, as it did before heads had a deadline."""
    with socket.create_connection(("127.0.0.1", small_limits_server.port), timeout=30) as sock:
        time.sleep(3)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert read_until_closed(sock).startswith(b"HTTP/1.1 200 ")


def test_silent_connections_do_not_make_a_crowd(small_limits_server):
    """40 connections that have sent nothing (20 a worker, more than half its 32 threads) are not heads being
    read: a real client whose head comes in two parts 1.5 s apart (under the 2 s head timeout, over the
    crowd's 1 s) is served."""
    silent = [socket.create_connection(("127.0.0.1", small_limits_server.port), timeout=30) for _ in range(40)]
    try:
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", small_limits_server.port), timeout=30) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            time.sleep(1.5)
            sock.sendall(b"Connection: close\r\n\r\n")
            assert read_until_closed(sock).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in silent:
            sock.close()


def trickled(server, head: bytes, piece: bytes, every: float, limit: float = 60) -> tuple[float, bytes]:
    """Send `head`, then `piece` every `every` seconds until the server closes the connection; returns
    (seconds until it did, what it answered)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=limit) as sock:
        sock.sendall(head)
        started = time.monotonic()
        sock.settimeout(every)
        response = b""
        while time.monotonic() - started < limit:
            try:
                sock.sendall(piece)
            except OSError:
                pass
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            response += chunk
        return time.monotonic() - started, response


def test_an_api_body_trickled_inside_the_idle_timeout_is_cut_off(small_limits_server):
    """50 bytes every 0.5 s never leave the connection idle for the 2 s timeout, so before the minimum body rate
    this held a thread for as long as the sender liked (100 KB: over half an hour). Held to 4 s of waiting plus
    1 s per 2,000 bytes, it is cut off after ~4.2 s, nothing is created, and the server answers."""
    tenant = small_limits_server.tenant()
    head = (f"POST /v1/repos HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {tenant.keys['admin']}\r\n"
            f"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n").encode()
    seconds, _ = trickled(small_limits_server, head + b'{"name": "trickled", "description": "', b"x" * 50, 0.5)
    assert 3.5 < seconds < 15
    headers = {"Authorization": f"Bearer {tenant.keys['admin']}"}
    assert requests.get(f"{small_limits_server.url}/v1/repos/trickled", headers=headers, timeout=10).status_code == 404


def test_a_push_body_trickled_inside_the_idle_timeout_is_cut_off_and_moves_nothing(small_limits_server, git):
    tenant = small_limits_server.tenant()
    repo = tenant.repo()
    head = (f"POST /{tenant.org}/{repo}.git/git-receive-pack HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {tenant.keys['admin']}\r\nContent-Type: application/x-git-receive-pack-request\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n").encode()
    command = pkt(f"{'0' * 40} {'1' * 40} refs/heads/main\0report-status\n".encode()) + b"0000PACK"
    first = b"%x\r\n%s\r\n" % (len(command), command)
    seconds, _ = trickled(small_limits_server, head + first, b"1\r\nx\r\n", 0.5)
    assert 3.5 < seconds < 15
    assert git.out("ls-remote", tenant.url(repo)) == ""


def test_a_slow_but_steady_body_outlasts_the_grace_and_lands(small_limits_server, git, tmp_path):
    """The limit is a rate, not a deadline: 96 KB at ~16 KB/s takes ~6 s, past the 4 s grace, and is stored."""
    tenant = small_limits_server.tenant()
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "seed", {"a.txt": "a\n"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    dojo = f"/api/repos/{tenant.org}/{repo}/workspaces"
    headers = {"Authorization": f"Bearer {tenant.keys['agent']}"}
    ws = requests.post(small_limits_server.url + dojo, json={"name": "slow"}, headers=headers, timeout=30)
    payload = bytes(range(256)) * 384
    head = (f"PUT {dojo}/{ws.json()['workspace']['id']}/files/slow.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {tenant.keys['agent']}\r\nContent-Length: {len(payload)}\r\n"
            f"Connection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", small_limits_server.port), timeout=60) as sock:
        sock.sendall(head)
        started = time.monotonic()
        for offset in range(0, len(payload), 4096):
            sock.sendall(payload[offset:offset + 4096])
            time.sleep(0.25)
        response = read_until_closed(sock)
    assert time.monotonic() - started > 5
    assert response.startswith(b"HTTP/1.1 200 "), response[:300]
    read = requests.get(f"{small_limits_server.url}{dojo}/{ws.json()['workspace']['id']}/files/slow.bin",
                        headers=headers, timeout=30)
    assert read.status_code == 200 and read.json()["content"] == base64.b64encode(payload).decode()
