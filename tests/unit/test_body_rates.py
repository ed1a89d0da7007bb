"""The minimum body rate counts only time spent waiting on the client (real sockets, real threads)."""
from __future__ import annotations

import socket
import threading
import time
from types import SimpleNamespace

from control.gunicorn_worker import BodyMeter, BodyRates


def test_only_time_blocked_in_recv_counts():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        meter = BodyMeter(ours)
        theirs.sendall(b"ready")
        time.sleep(0.3)  # the server busy elsewhere (git working through what it got): not the client's time
        assert meter.recv(1024) == b"ready"
        assert meter.waited < 0.1 and meter.received == 5
        threading.Timer(0.3, theirs.sendall, args=(b"late",)).start()
        assert meter.recv(1024) == b"late"
        assert 0.25 < meter.waited < 1 and meter.received == 9


def test_a_body_under_the_rate_is_reported_once_and_its_socket_given_back():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        rates = BodyRates(grace=0.2, min_rate=1000)
        unreader = SimpleNamespace(sock=ours)
        rates.start(unreader)
        assert isinstance(unreader.sock, BodyMeter)
        reader = threading.Thread(target=unreader.sock.recv, args=(1024,))
        reader.start()  # blocked: nothing was sent
        assert rates.too_slow(time.monotonic()) == []
        time.sleep(0.35)
        assert rates.too_slow(time.monotonic()) == [ours]
        assert rates.too_slow(time.monotonic()) == []
        theirs.sendall(b"x")
        reader.join(timeout=5)


def test_received_bytes_buy_waiting_time():
    with socket.socket() as sock:
        rates = BodyRates(grace=1, min_rate=1000)
        unreader = SimpleNamespace(sock=sock)
        rates.start(unreader)
        unreader.sock.waited, unreader.sock.received = 10.0, 20_000
        assert rates.too_slow(time.monotonic()) == []  # 10 s waited, 1 + 20 allowed
        unreader.sock.waited = 22.0
        assert rates.too_slow(time.monotonic()) == [sock]


def test_done_reads_the_next_request_from_the_socket_itself():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        rates = BodyRates(grace=30, min_rate=1000)
        unreader = SimpleNamespace(sock=ours)
        rates.start(unreader)
        rates.done()
        assert unreader.sock is ours
        rates.done()  # nothing metered on this thread any more: no error
