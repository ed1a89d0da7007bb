"""An elastic worker pool: gunicorn's master keeps its fewest workers while requests come one at a time, adds one
(up to `workers`) as soon as a worker has two requests in flight, and lets an added worker go once it has been idle
for a while (PHP-FPM's `pm = dynamic`, uWSGI's cheaper mode).

Each worker forked from the master that built the application shares its pages until it writes to them, and serving
writes to many of them (CPython's reference counts): a worker holds 12-22 MiB of its own. A second worker is what
lets two requests run Python on two cores at once, and costs those megabytes even while requests come one at a
time, as an agent's pushes and clones mostly do (server tree after small requests: 100 MiB with one worker, 122 MiB
with two; bench/RESULTS.md). A worker forked from the preloaded master answers within milliseconds, so the second
one is there when two requests overlap, and gone again when they have stopped.

The master learns how busy each worker is from a page of memory it shares with them (`Board`): each worker writes
its own seat, the master reads them all.
"""
from __future__ import annotations

import mmap
import struct
import threading
import time
from dataclasses import dataclass

# pid, requests in flight, when two or more were last in flight at once, when it last had anything in hand, whether
# the master asked it to leave
_SEAT = struct.Struct("=qqddq")


@dataclass(frozen=True)
class SeatState:
    pid: int
    in_flight: int
    crowded_at: float
    active_at: float
    leave: bool = False


class Board:
    """Seats in a shared anonymous mapping the master makes before forking; time is CLOCK_MONOTONIC, one clock
    for every process of the machine."""

    def __init__(self, seats: int):
        self.seats = seats
        self._map = mmap.mmap(-1, _SEAT.size * seats)  # MAP_SHARED | MAP_ANONYMOUS: the forks write into it

    def read(self, seat: int) -> SeatState:
        pid, in_flight, crowded_at, active_at, leave = _SEAT.unpack_from(self._map, seat * _SEAT.size)
        return SeatState(pid, in_flight, crowded_at, active_at, bool(leave))

    def write(self, seat: int, state: SeatState) -> None:
        _SEAT.pack_into(self._map, seat * _SEAT.size, state.pid, state.in_flight, state.crowded_at, state.active_at,
                        int(state.leave))

    def ask_to_leave(self, seat: int) -> None:
        """The worker goes at its next look with no connection open and nothing in hand (it, not the master, decides
        when: a request it accepts meanwhile is served, not cut off by a stop)."""
        state = self.read(seat)
        self.write(seat, SeatState(state.pid, state.in_flight, state.crowded_at, state.active_at, True))

    def free_seat(self, taken_by: set[int]) -> int | None:
        """A seat no live worker holds (its pid gone, or never written), cleared for the next."""
        for seat in range(self.seats):
            if self.read(seat).pid not in taken_by:
                self.write(seat, SeatState(0, 0, 0.0, time.monotonic()))
                return seat
        return None


@dataclass
class Seat:
    """A worker's place on the board, given by the master before the fork. `added`: forked because requests
    overlapped, rather than to keep the fewest workers (the start-up job then is not asked for again)."""

    board: Board
    number: int
    added: bool

    def __post_init__(self):
        self._lock = threading.Lock()
        self._in_flight = 0
        self._crowded_at = 0.0

    def taken(self, pid: int) -> None:
        self._publish(pid, time.monotonic())

    def request_started(self) -> None:
        with self._lock:
            self._in_flight += 1
            now = time.monotonic()
            if self._in_flight >= 2:
                self._crowded_at = now
            self._publish(None, now)

    def request_finished(self) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            self._publish(None, time.monotonic())

    def busy(self) -> None:
        """Work in hand that is no request (a job of the in-process queue): not idle."""
        with self._lock:
            self._publish(None, time.monotonic())

    def asked_to_leave(self) -> bool:
        return self.board.read(self.number).leave

    def _publish(self, pid: int | None, now: float) -> None:
        state = self.board.read(self.number)
        self.board.write(self.number, SeatState(state.pid if pid is None else pid, self._in_flight, self._crowded_at,
                                                now, state.leave))


@dataclass(frozen=True)
class PoolLimits:
    fewest: int
    most: int
    idle_seconds: float


@dataclass(frozen=True)
class Step:
    add: bool = False
    retire: int | None = None  # the pid of an idle worker to let go


def next_step(limits: PoolLimits, workers: dict[int, SeatState | None], started: dict[int, float],
              last_look: float, now: float) -> Step:
    """What the master does on one look. `workers`: the ones staying (not already leaving), with their seat's state
    (None: no seat, never counted idle); `started`: when each was forked."""
    if len(workers) < limits.most and any(state is not None and state.crowded_at > last_look
                                          for state in workers.values()):
        return Step(add=True)
    if len(workers) <= limits.fewest:
        return Step()
    idle = [pid for pid, state in workers.items()
            if state is not None and state.pid == pid and state.in_flight == 0
            and now - max(state.active_at, started.get(pid, now)) >= limits.idle_seconds]
    if not idle:
        return Step()
    return Step(retire=max(idle, key=lambda pid: started.get(pid, 0.0)))  # the youngest goes
