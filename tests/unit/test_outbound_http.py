"""storage/outbound_http.py against real sockets on 127.0.0.1: one deadline for the whole exchange, no redirect
followed, the checked address used whatever the host name says."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from storage import outbound_http
from storage.git_remote import Remote


def serve_once(answer) -> int:
    """A listener on 127.0.0.1 whose first connection gets `answer(connection)`; its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def run():
        connection, _ = listener.accept()
        try:
            connection.recv(65536)
            answer(connection)
        except OSError:
            pass
        finally:
            connection.close()
            listener.close()

    threading.Thread(target=run, daemon=True).start()
    return listener.getsockname()[1]


def remote(port: int) -> Remote:
    # the host name resolves nowhere: the address checked is the one connected to
    return Remote(url=f"http://hooks.invalid:{port}/in", host="hooks.invalid", port=port, address="127.0.0.1")


def test_a_receiver_trickling_its_answer_is_cut_off_at_the_deadline():
    def trickle(connection):
        connection.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(40):
            connection.sendall(b"X")
            time.sleep(0.25)

    port = serve_once(trickle)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="within 1 s"):
        outbound_http.post(remote(port), b"{}", {"Content-Type": "application/json"}, timeout=1)
    assert time.monotonic() - started < 3


def test_a_redirect_is_an_answer_not_followed():
    def redirect(connection):
        connection.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n")

    answered = outbound_http.post(remote(serve_once(redirect)), b"{}", {})
    assert answered.status == 302


def test_no_listener_is_an_oserror():
    with pytest.raises(OSError):
        outbound_http.post(remote(1), b"{}", {}, timeout=2)
