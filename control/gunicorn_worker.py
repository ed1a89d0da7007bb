"""gunicorn's threaded worker with a deadline for reading each request's head and a minimum rate for its body.

gthread reads the request line and headers on a pool thread, from a blocking socket with no timeout: a client
that sends part of a head and then nothing (or a byte now and then) holds that thread for as long as it keeps the
connection open, and `threads` such connections per worker stop the server before any key is checked. Here a head
must be complete within `head_timeout` seconds of its first bytes; past that the worker's main loop answers 408
and shuts the socket, which ends the blocked read and frees the thread. While more than half of
the worker's threads wait on heads (many clients sending slowly, or someone opening connections to hold them),
any head not in after CROWDED_GRACE seconds gets the same answer: a whole head takes a client milliseconds.

A body is bounded as Apache's mod_reqtimeout does (`body=..., MinRate=...`): the time the worker spends waiting
on the client for body bytes may reach `grace` seconds plus one second per `min_rate` bytes received. The socket's
idle timeout ends a body that stops; this ends one trickled a byte at a time just inside that timeout, which
would otherwise hold its thread for as long as the sender likes. Only time blocked in recv() counts: a push that
waits while git works through what it already sent is not slow.
"""
from __future__ import annotations

import errno
import itertools
import os
import socket
import threading
import time

from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, ThreadWorker

from control.worker_memory import MemoryWatch
from control.worker_pool import Seat
from server.heap import large_transfers
from storage.jobs import work_in_hand

_MESSAGE = b"the request head did not arrive in time\n"
REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(_MESSAGE), _MESSAGE))
CROWDED_GRACE = 1.0
GIT_TRANSFERS = ("/info/refs", "/git-upload-pack", "/git-receive-pack")


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


class BodyMeter:
    """Stands in for a request's socket in gunicorn's reader: counts the bytes received and the time spent
    waiting for them. Everything else goes to the socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.received = 0
        self.waited = 0.0
        self.waiting_since: float | None = None

    def recv(self, size: int, *flags) -> bytes:
        self.waiting_since = started = time.monotonic()
        try:
            data = self.sock.recv(size, *flags)
        finally:
            self.waiting_since = None
            self.waited += time.monotonic() - started
        self.received += len(data)
        return data

    def waited_until(self, now: float) -> float:
        since = self.waiting_since
        return self.waited + (now - since if since is not None else 0.0)

    def __getattr__(self, name):
        return getattr(self.sock, name)


class BodyRates:
    """The bodies pool threads are reading, each held to `grace` seconds of waiting plus 1 s per `min_rate`
    bytes received."""

    def __init__(self, grace: float, min_rate: float):
        self.grace, self.min_rate = grace, min_rate
        self._metered: dict[int, tuple[object, BodyMeter]] = {}  # thread id -> (gunicorn's unreader, meter)
        self._lock = threading.Lock()

    def start(self, unreader) -> None:
        """Read the rest of this request (its body) through a meter."""
        sock = getattr(unreader, "sock", None)
        if sock is None or isinstance(sock, BodyMeter):
            return
        meter = BodyMeter(sock)
        unreader.sock = meter
        with self._lock:
            self._metered[threading.get_ident()] = (unreader, meter)

    def done(self) -> None:
        """The calling thread's request is over: its connection's next head is read from the socket itself."""
        with self._lock:
            unreader, meter = self._metered.pop(threading.get_ident(), (None, None))
        if meter is not None and unreader.sock is meter:
            unreader.sock = meter.sock

    def too_slow(self, now: float) -> list[socket.socket]:
        with self._lock:
            slow = [thread for thread, (_, meter) in self._metered.items()
                    if meter.waited_until(now) > self.grace + meter.received / self.min_rate]
            return [self._metered.pop(thread)[1].sock for thread in slow]


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


def cut_off(sock: socket.socket) -> None:
    """End the read another thread is blocked in; no answer, since the application may be writing its own."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class DeadlineWorker(ThreadWorker):
    seat: Seat | None = None  # its place on the elastic pool's board, given before the fork (gunicorn_arbiter.py)
    draining = False  # asked to leave: accepting no connection
    outgrown = False  # asked the elastic pool's master for a fresh fork to take its place
    looks_done = 0  # looks for what a dead worker left undone, of those the master asked of it
    added_seen = 0.0  # the last add of a worker to the pool this worker has seen (Board.added_at)
    spread_until = 0.0  # closing every other connection after its next request until then (_spread_after_an_add)
    spread_turns = itertools.count()

    def init_process(self):
        if self.seat is not None:
            self.seat.taken(os.getpid())
            self.added_seen = self.seat.board.added_at()
        self.in_request: set[int] = set()  # the pool threads serving a request counted on the seat
        self.head_deadlines = HeadDeadlines(30.0, self.cfg.threads)
        self.body_rates = BodyRates(30.0, 1024.0)
        self.memory_watch: MemoryWatch | None = None
        super().init_process()

    def run(self):
        if self.seat is not None:  # started up: what it replaces may go
            self.seat.ready()
        super().run()

    def use_limits(self, head_timeout: float, body_grace: float, body_min_rate: float) -> None:
        """The application's settings (gunicorn_conf.post_worker_init)."""
        self.head_deadlines.seconds = head_timeout
        self.body_rates.grace, self.body_rates.min_rate = body_grace, body_min_rate

    def use_memory_limit(self, limit: int) -> None:
        """Retire once it holds more than `limit` bytes of private memory after a large transfer
        (control.worker_memory); 0: never. Only
        when the master has built the application: a worker forked from one that has not builds its own again,
        all of it private, and cannot answer while it does."""
        if limit and self.cfg.preload_app:
            self.memory_watch = MemoryWatch(limit)

    def _leave_if_idle(self, now: float) -> None:
        """Leave once nothing is in hand, when the elastic pool's master asked it to (it accepts no connection from
        then on), or when it has outgrown its memory (the master then forks a fresh one). Decided here, on the
        thread that accepts connections: none is taken once `alive` is False, so none is cut off."""
        asked = self.seat is not None and self.seat.asked_to_leave()
        if asked and not self.draining:
            self.draining = True
            self.set_accept_enabled(False)
            # as a stopping gthread worker does: kept-alive connections close within STOP_KEEPALIVE_LINGER, and a
            # request that comes on one meanwhile is answered with "Connection: close" (this process's config)
            self.cfg.set("keepalive", 0)
            self._cap_keepalive(time.monotonic() + STOP_KEEPALIVE_LINGER)
        if not self.alive or self.nr_conns:
            return
        watch = self.memory_watch
        if not asked and watch is None:
            return
        if work_in_hand():
            if self.seat is not None:
                self.seat.busy()
            return
        if asked:
            self.log.info("worker idle, as the master asked: leaving")
            self.alive = False
        elif not self.outgrown and watch.outgrown(now, large_transfers()):
            self.log.info("worker holds %d MiB of its own (more than %d MiB): replaced by a fresh fork",
                          watch.last >> 20, watch.limit >> 20)
            if self.seat is None:
                self.alive = False
            else:  # serving on until the elastic pool's master has the fresh fork ready and asks it to leave
                self.outgrown = True
                self.seat.outgrown()

    def set_accept_enabled(self, enabled):
        """gthread's loop enables accepting again whenever it has room: not while this worker is leaving."""
        super().set_accept_enabled(enabled and not self.draining)

    def head_received(self, request) -> None:
        """gunicorn_conf.pre_request: the head is in and its deadline no longer applies; the body is metered. A
        head that came in just as the worker gave up on it is not served: its client already has a 408 and a
        closed connection."""
        if not self.head_deadlines.done():
            raise BrokenPipeError(errno.EPIPE, "the request head arrived after its deadline")
        self.body_rates.start(request.unreader)
        if self.spread_until and time.monotonic() < self.spread_until:
            self._spread(request)
        if self.seat is not None:  # a request, not a kept-alive connection's end nor a new one sending nothing yet
            self.in_request.add(threading.get_ident())
            self.seat.request_started()

    def handle(self, conn):
        self._start_head_deadline(conn)
        try:
            return super().handle(conn)
        finally:
            if threading.get_ident() in self.in_request:
                self.in_request.discard(threading.get_ident())
                self.seat.request_finished()
            self.head_deadlines.done()
            self.body_rates.done()
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
        """Called by the main loop at least once a second: also gives up on heads past their deadline and on
        bodies arriving too slowly, retires the worker once it holds more private memory than its limit, and tells
        the master it is not idle while it holds a job of the in-process queue."""
        super().murder_keepalived(*args, **kwargs)
        now = time.monotonic()
        late = self.head_deadlines.expired(now)
        for sock in late:
            give_up(sock)
        if late:
            self.log.info("answered 408 to %d request head(s) that did not arrive in time", len(late))
        slow = self.body_rates.too_slow(now)
        for sock in slow:
            cut_off(sock)
        if slow:
            self.log.info("closed %d connection(s) whose request body arrived slower than %.0f bytes/s",
                          len(slow), self.body_rates.min_rate)
        if self.seat is not None and work_in_hand():
            self.seat.busy()
        self._look_if_asked()
        self._spread_after_an_add(now)
        self._leave_if_idle(now)

    def _look_if_asked(self) -> None:
        """The master asks a worker staying to look for what a dead one left undone when no fork will (the one
        replacing a worker that outgrew its memory started before that one died)."""
        if self.seat is None:
            return
        asked = self.seat.looks_asked()
        if asked > self.looks_done:
            self.looks_done = asked
            look = getattr(self.wsgi, "look_for_undone_work", None)
            if look is not None:
                look()

    def _spread_after_an_add(self, now: float) -> None:
        """Clients keep their connections to the worker they first reached: one added because requests overlapped
        would serve none of those already connected (wrk's 16 kept-alive connections on a fresh server: ~410 req/s,
        one worker's throughput). For STOP_KEEPALIVE_LINGER seconds after an add, the others answer every other
        connection's next request with "Connection: close"; its client connects again, to the worker accepting
        first, mostly the new one (all of them, when every connection was closed: the same ~410 req/s)."""
        if self.seat is None or self.draining:
            return
        added = self.seat.board.added_at()
        if added > self.added_seen:
            self.added_seen = added
            self.spread_until = now + STOP_KEEPALIVE_LINGER

    def _spread(self, request) -> None:
        """Each connection is decided once an add. A git transfer is left alone: gthread's main thread lingers up
        to 2 s on a connection it closes until the client has read all and closed, and a clone's pack read slowly
        held every other connection of the worker that long; git opens new connections each command anyway.
        Requests closing their connection anyway take no turn."""
        unreader = request.unreader  # one a connection
        if getattr(unreader, "spread_for", None) == self.added_seen or request.should_close() \
                or request.path.endswith(GIT_TRANSFERS):
            return
        unreader.spread_for = self.added_seen
        if next(self.spread_turns) % 2 == 0:
            request.must_close = True
