"""POSTing to a URL that storage/git_remote.checked_remote has checked (a webhook's): to the very address checked
(a name that resolves again elsewhere changes nothing), certificates verified for the host name, no redirect
followed, one deadline for the whole exchange (a receiver trickling its answer a byte at a time is cut off with
one that never answers), and at most a little of the answer read."""
from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from .git_remote import Remote

TIMEOUT = 10.0
ANSWER_READ = 64 * 1024


@dataclass(frozen=True)
class Answered:
    status: int
    duration_ms: int


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, remote: Remote, timeout: float):
        super().__init__(remote.host, remote.port, timeout=timeout)
        self.address = remote.address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, remote: Remote, timeout: float):
        super().__init__(remote.host, remote.port, timeout=timeout, context=ssl.create_default_context())
        self.address = remote.address

    def connect(self):
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def post(remote: Remote, body: bytes, headers: dict[str, str], timeout: float = TIMEOUT) -> Answered:
    """POST `body` to remote.url; raises OSError (http.client's errors included) when no answer came."""
    parts = urlsplit(remote.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = (_PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP)(remote, timeout)
    started = time.monotonic()
    cut = threading.Event()  # set once the deadline has shut the socket: what was read then is no answer
    deadline = threading.Timer(timeout, _cut_off, args=(connection, cut))
    deadline.daemon = True
    deadline.start()
    try:
        connection.request("POST", target, body=body, headers={**headers, "Content-Length": str(len(body))})
        response = connection.getresponse()
        response.read(ANSWER_READ)
        status = response.status
    except (OSError, http.client.HTTPException) as error:
        if cut.is_set():
            raise TimeoutError(f"no answer within {timeout:g} s") from None
        if isinstance(error, http.client.HTTPException):
            raise OSError(f"not an HTTP answer: {type(error).__name__}") from None
        raise
    finally:
        deadline.cancel()
        connection.close()
    if cut.is_set():
        raise TimeoutError(f"no answer within {timeout:g} s")
    return Answered(status, int((time.monotonic() - started) * 1000))


def _cut_off(connection: http.client.HTTPConnection, cut: threading.Event) -> None:
    cut.set()
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
