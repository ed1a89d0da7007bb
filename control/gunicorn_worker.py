"""gunicorn's threaded worker with a deadline for reading each request's head.

gthread reads the request line and headers on a pool thread, from a blocking socket with no timeout: a client
that sends part of a head and then nothing (or a byte now and then) holds that thread for as long as it keeps the
connection open, and `threads` such connections per worker stop the server before any key is checked. Here a head
must be complete within `head_timeout` seconds of its first bytes; past that the worker's main loop answers 408
and shuts the socket, which ends the blocked read and frees the thread. While more than half of
the worker's threads wait on heads (many clients sending slowly, or someone opening connections to hold them),
any head not in after CROWDED_GRACE seconds gets the same answer: a whole head takes a client milliseconds.
"""
from __future__ import annotations

import errno
import socket
import threading
import time

from gunicorn.workers.gthread import ThreadWorker

_MESSAGE = b"the request head did not arrive in time\n"
REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(_MESSAGE), _MESSAGE))
CROWDED_GRACE = 1.0


class HeadDeadlines:
    """The sockets whose request head a pool thread is reading, each with the time its first bytes were there."""

    def __init__(self, seconds: float, threads: int):
        self.seconds = seconds
        self.crowd = max(1, threads // 2)  # more heads than this being read at once: CROWDED_GRACE applies
        self._reading: dict[int, tuple[socket.socket, float]] = {}  # thread id -> (socket, started)
        self._cut: set[int] = set()  # threads whose head was given up on: their request must not run
        self._lock = threading.Lock()

    def start(self, sock: socket.socket) -> None:
        with self._lock:
            self._reading[threading.get_ident()] = (sock, time.monotonic())

    def done(self) -> bool:
        """The calling thread has the whole head (or gave the request up); False if it was given up on first."""
        thread = threading.get_ident()
        with self._lock:
            self._reading.pop(thread, None)
            if thread in self._cut:
                self._cut.discard(thread)
                return False
            return True

    def expired(self, now: float) -> list[socket.socket]:
        with self._lock:
            grace = min(CROWDED_GRACE, self.seconds) if len(self._reading) > self.crowd else self.seconds
            late = [thread for thread, (_, started) in self._reading.items() if now - started >= grace]
            self._cut.update(late)
            return [self._reading.pop(thread)[0] for thread in late]


def give_up(sock: socket.socket) -> None:
    """Tell the client why (without waiting on it) and end the read another thread is blocked in."""
    try:
        sock.send(REQUEST_TIMEOUT, socket.MSG_DONTWAIT)
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class HeadDeadlineWorker(ThreadWorker):
    def init_process(self):
        self.head_deadlines = HeadDeadlines(30.0, self.cfg.threads)
        super().init_process()

    def use_head_timeout(self, seconds: float) -> None:
        """The application's setting (gunicorn_conf.post_worker_init)."""
        self.head_deadlines.seconds = seconds

    def head_received(self) -> None:
        """gunicorn_conf.pre_request: the head is in and its deadline no longer applies (the application bounds
        the body itself). A head that came in just as the worker gave up on it is not served: its client already
        has a 408 and a closed connection."""
        if not self.head_deadlines.done():
            raise BrokenPipeError(errno.EPIPE, "the request head arrived after its deadline")

    def handle(self, conn):
        self._start_head_deadline(conn)
        try:
            return super().handle(conn)
        finally:
            self.head_deadlines.done()
            conn.__dict__.pop("wait_for_data", None)

    def _start_head_deadline(self, conn):
        """From the head's first bytes: a new connection that has sent nothing yet is gunicorn's to wait for (it
        hands it back to its poller after a few seconds) and holds no deadline, nor counts toward a crowd."""
        wait_for_data = getattr(conn, "wait_for_data", None)
        if wait_for_data is None or conn.initialized or getattr(conn, "data_ready", True):
            self.head_deadlines.start(conn.sock)
            return

        def wait_then_start(timeout):
            ready = wait_for_data(timeout)
            if ready:
                self.head_deadlines.start(conn.sock)
            return ready

        conn.wait_for_data = wait_then_start

    def murder_keepalived(self, *args, **kwargs):
        """Called by the main loop at least once a second: also gives up on heads past their deadline."""
        super().murder_keepalived(*args, **kwargs)
        late = self.head_deadlines.expired(time.monotonic())
        for sock in late:
            give_up(sock)
        if late:
            self.log.info("answered 408 to %d request head(s) that did not arrive in time", len(late))
