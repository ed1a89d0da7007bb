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

# A seat's words, each written by one side only, so that neither's write undoes the other's: the worker's pid (the
# master's, after the fork, and the worker's own), its requests in flight, when two or more were last in flight at
# once, when it last had anything in hand (the worker's), whether it is asked to leave (the master's), whether it
# decided to, whether it is serving, whether it asks to be replaced (the worker's), how many looks for what a dead
# worker left undone it is asked for (the master's).
_PID = struct.Struct("=q")
_ACTIVITY = struct.Struct("=qdd")
_FLAG = struct.Struct("=q")
_PID_AT, _ACTIVITY_AT, _LEAVE_AT, _LEFT_AT, _READY_AT, _OUTGROWN_AT, _LOOKS_AT = 0, 8, 32, 40, 48, 56, 64
_SEAT_SIZE = 72
_ADDED = struct.Struct("=d")  # the board's first word, the master's: when it last added a worker


@dataclass(frozen=True)
class SeatState:
    pid: int
    in_flight: int
    crowded_at: float
    active_at: float
    leave: bool = False
    left: bool = False
    ready: bool = False  # past its start-up, accepting connections
    outgrown: bool = False  # holds too much memory of its own: asks for a fresh fork to take its place
    looks: int = 0  # looks for what a dead worker left undone asked of it so far


class Board:
    """Seats in a shared anonymous mapping the master makes before forking; time is CLOCK_MONOTONIC, one clock
    for every process of the machine."""

    def __init__(self, seats: int):
        self.seats = seats
        self._map = mmap.mmap(-1, _ADDED.size + _SEAT_SIZE * seats)  # MAP_SHARED | MAP_ANONYMOUS: shared with forks

    @staticmethod
    def _at(seat: int) -> int:
        return _ADDED.size + seat * _SEAT_SIZE

    def note_added(self, when: float) -> None:
        _ADDED.pack_into(self._map, 0, when)

    def added_at(self) -> float:
        return _ADDED.unpack_from(self._map, 0)[0]

    def read(self, seat: int) -> SeatState:
        at = self._at(seat)
        (pid,) = _PID.unpack_from(self._map, at + _PID_AT)
        in_flight, crowded_at, active_at = _ACTIVITY.unpack_from(self._map, at + _ACTIVITY_AT)
        leave, left, ready, outgrown, looks = (_FLAG.unpack_from(self._map, at + where)[0]
                                               for where in (_LEAVE_AT, _LEFT_AT, _READY_AT, _OUTGROWN_AT, _LOOKS_AT))
        return SeatState(pid, in_flight, crowded_at, active_at, bool(leave), bool(left), bool(ready), bool(outgrown),
                         looks)

    def free_seat(self, taken_by: set[int]) -> int | None:
        """A seat no live worker holds (its pid gone, or never written), cleared for the next."""
        for seat in range(self.seats):
            if self.read(seat).pid not in taken_by:
                at = self._at(seat)
                self._map[at:at + _SEAT_SIZE] = bytes(_SEAT_SIZE)
                self.write_activity(seat, 0, 0.0, time.monotonic())
                return seat
        return None

    def claim(self, seat: int, pid: int) -> None:
        _PID.pack_into(self._map, self._at(seat) + _PID_AT, pid)

    def write_activity(self, seat: int, in_flight: int, crowded_at: float, active_at: float) -> None:
        _ACTIVITY.pack_into(self._map, self._at(seat) + _ACTIVITY_AT, in_flight, crowded_at, active_at)

    def ask_to_leave(self, seat: int) -> None:
        """The worker stops accepting connections and goes once it has none open and nothing in hand (it, not the
        master, decides when: a request it took is served, not cut off by a stop)."""
        self._put(seat, _LEAVE_AT, 1)

    def mark_left(self, seat: int) -> None:
        self._put(seat, _LEFT_AT, 1)

    def mark_ready(self, seat: int) -> None:
        self._put(seat, _READY_AT, 1)

    def mark_outgrown(self, seat: int) -> None:
        self._put(seat, _OUTGROWN_AT, 1)

    def ask_to_look(self, seat: int) -> None:
        """The worker looks for what a dead worker left undone (its start-up job), once more."""
        self._put(seat, _LOOKS_AT, self.read(seat).looks + 1)

    def _put(self, seat: int, where: int, value: int) -> None:
        _FLAG.pack_into(self._map, self._at(seat) + where, value)


@dataclass
class Seat:
    """A worker's place on the board, given by the master before the fork. `added`: forked because requests
    overlapped, rather than to keep the fewest workers or to replace one (the start-up job is not asked for);
    `replacing`: forked to take the place of one that outgrew its memory and leaves nothing undone (neither)."""

    board: Board
    number: int
    added: bool
    replacing: bool = False

    def __post_init__(self):
        self._lock = threading.Lock()
        self._in_flight = 0
        self._crowded_at = 0.0

    def taken(self, pid: int) -> None:
        self.board.claim(self.number, pid)

    def request_started(self) -> None:
        with self._lock:
            self._in_flight += 1
            now = time.monotonic()
            if self._in_flight >= 2:
                self._crowded_at = now
            self.board.write_activity(self.number, self._in_flight, self._crowded_at, now)

    def request_finished(self) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            self.board.write_activity(self.number, self._in_flight, self._crowded_at, time.monotonic())

    def busy(self) -> None:
        """Work in hand that is no request (a job of the in-process queue): not idle."""
        with self._lock:
            self.board.write_activity(self.number, self._in_flight, self._crowded_at, time.monotonic())

    def asked_to_leave(self) -> bool:
        return self.board.read(self.number).leave

    def looks_asked(self) -> int:
        return self.board.read(self.number).looks

    def leaving(self) -> None:
        """It has nothing in hand and accepts nothing more: its end loses nothing, however it comes."""
        self.board.mark_left(self.number)

    def ready(self) -> None:
        self.board.mark_ready(self.number)

    def outgrown(self) -> None:
        """It serves on until the master has a fresh fork ready, then is asked to leave."""
        self.board.mark_outgrown(self.number)


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
              last_look: float, now: float, leaving: int = 0) -> Step:
    """What the master does on one look. `workers`: the ones staying, with their seat's state (None: no seat,
    never counted idle); `started`: when each was forked; `leaving`: workers asked to leave or stopped that are
    still finishing what they hold (they count toward the most)."""
    if len(workers) + leaving < limits.most and any(state is not None and state.crowded_at > last_look
                                                    for state in workers.values()):
        return Step(add=True)
    if len(workers) <= limits.fewest:
        return Step()
    if any(state is not None and (state.in_flight >= 2 or state.crowded_at > now - limits.idle_seconds)
           for state in workers.values()):
        return Step()  # requests overlap, or did lately: the worker they crowded keeps its kept-alive clients
    idle = [pid for pid, state in workers.items()
            if state is not None and state.pid == pid and state.in_flight == 0
            and now - max(state.active_at, started.get(pid, now)) >= limits.idle_seconds]
    if not idle:
        return Step()
    return Step(retire=max(idle, key=lambda pid: started.get(pid, 0.0)))  # the youngest goes
