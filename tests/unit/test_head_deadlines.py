"""The bookkeeping of control.gunicorn_worker: which request heads are past their time."""
from __future__ import annotations

import socket
import threading
import time

from control.gunicorn_worker import CROWDED_GRACE, HeadDeadlines


def _reading_in_threads(deadlines: HeadDeadlines, count: int) -> list[socket.socket]:
    """`count` threads each start reading a head (the registry is keyed by thread) and stay alive."""
    started, release = threading.Barrier(count + 1), threading.Event()

    def reader(sock):
        deadlines.start(sock)
        started.wait()
        release.wait()

    pairs = [socket.socketpair() for _ in range(count)]
    threads = [threading.Thread(target=reader, args=(a,), daemon=True) for a, _ in pairs]
    for thread in threads:
        thread.start()
    started.wait()
    release.set()
    for thread in threads:
        thread.join()
    for _, other_end in pairs:
        other_end.close()
    return [sock for sock, _ in pairs]


def test_a_head_is_late_only_after_its_timeout():
    deadlines = HeadDeadlines(30, threads=32)
    (sock,) = _reading_in_threads(deadlines, 1)
    now = time.monotonic()
    assert deadlines.expired(now + 29) == []
    assert deadlines.expired(now + 31) == [sock]
    assert deadlines.expired(now + 60) == []  # handed out once
    sock.close()


def test_a_crowd_of_heads_gets_the_short_grace():
    deadlines = HeadDeadlines(30, threads=32)
    crowd = _reading_in_threads(deadlines, 17)  # more than half of 32
    now = time.monotonic()
    late = deadlines.expired(now + CROWDED_GRACE + 0.1)
    assert sorted(s.fileno() for s in late) == sorted(s.fileno() for s in crowd)
    for sock in crowd:
        sock.close()


def test_half_the_threads_or_fewer_are_not_a_crowd():
    deadlines = HeadDeadlines(30, threads=32)
    few = _reading_in_threads(deadlines, 16)
    assert deadlines.expired(time.monotonic() + CROWDED_GRACE + 0.1) == []
    for sock in few:
        sock.close()


def test_a_head_read_in_full_is_forgotten():
    deadlines = HeadDeadlines(30, threads=32)
    a, b = socket.socketpair()
    deadlines.start(a)
    assert deadlines.done() is True
    assert deadlines.expired(time.monotonic() + 60) == []
    a.close()
    b.close()


def test_a_head_completed_just_after_it_was_given_up_on_is_not_served():
    """The main loop gave up (and answered 408) a moment before the reading thread got the whole head."""
    deadlines = HeadDeadlines(30, threads=32)
    a, b = socket.socketpair()
    deadlines.start(a)
    assert deadlines.expired(time.monotonic() + 31) == [a]
    assert deadlines.done() is False
    deadlines.start(a)  # the same thread's next request starts clean
    assert deadlines.done() is True
    a.close()
    b.close()


def test_one_thread_reading_a_head_is_no_crowd_even_with_one_or_two_threads():
    for threads in (1, 2, 3):
        deadlines = HeadDeadlines(30, threads=threads)
        (sock,) = _reading_in_threads(deadlines, 1)
        assert deadlines.expired(time.monotonic() + CROWDED_GRACE + 0.1) == []
        sock.close()
