"""A client that stops sending its request body frees its thread after the idle timeout (2 s on this server)
with a clear error, instead of holding a worker thread and a git process for ever."""
from __future__ import annotations

import json
import socket
import time

from tests.support import pkt


def stalled(server, path: str, key: str, content_type: str, partial: bytes) -> tuple[float, bytes]:
    """Send the headers of a 10,000-byte body but only `partial` of it; returns (seconds to close, response)."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: 10000\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(head + partial)
        started = time.monotonic()
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
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
