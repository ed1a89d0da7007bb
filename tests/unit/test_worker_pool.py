"""The elastic worker pool's decisions (control/worker_pool.py) and its shared board across a real fork."""
from __future__ import annotations

import itertools
import os
import time

import pytest
from gunicorn.config import Config

from control.gunicorn_worker import DeadlineWorker
from control.worker_pool import Board, PoolLimits, Seat, SeatState, Step, next_step

LIMITS = PoolLimits(fewest=1, most=2, idle_seconds=30)


def _state(pid: int, in_flight: int = 0, crowded_at: float = 0.0, active_at: float = 0.0) -> SeatState:
    return SeatState(pid, in_flight, crowded_at, active_at)


def test_a_worker_is_added_when_one_had_two_requests_in_flight_since_the_last_look():
    workers = {10: _state(10, in_flight=1, crowded_at=100.5, active_at=100.5)}
    assert next_step(LIMITS, workers, {10: 0.0}, last_look=100.0, now=101.0) == Step(add=True)
    # crowded before the last look: that look saw it already
    assert next_step(LIMITS, workers, {10: 0.0}, last_look=100.6, now=101.0) == Step()


def test_never_more_than_the_most():
    crowded = {pid: _state(pid, in_flight=5, crowded_at=100.5, active_at=100.5) for pid in (10, 11)}
    assert next_step(LIMITS, crowded, {10: 0.0, 11: 0.0}, last_look=100.0, now=101.0) == Step()


def test_the_youngest_worker_idle_long_enough_is_let_go():
    workers = {10: _state(10, active_at=50.0), 11: _state(11, active_at=60.0), 12: _state(12, active_at=60.0)}
    started = {10: 0.0, 11: 5.0, 12: 6.0}
    limits = PoolLimits(fewest=1, most=3, idle_seconds=30)
    assert next_step(limits, workers, started, last_look=99.0, now=100.0) == Step(retire=12)


def test_no_worker_leaves_while_requests_overlap_or_did_lately():
    """Clients kept alive on the crowded worker stay there: the one added serves new connections, and letting it
    go would only fork it again at the next overlap (long clones side by side forked and retired one every idle
    period, each single request meanwhile)."""
    started = {10: 0.0, 11: 0.0}
    lately = {10: _state(10, in_flight=1, crowded_at=80.0, active_at=99.0), 11: _state(11, active_at=0.0)}
    assert next_step(LIMITS, lately, started, last_look=99.0, now=100.0) == Step()
    assert next_step(LIMITS, lately, started, last_look=110.0, now=111.0) == Step(retire=11)
    long_overlap = {10: _state(10, in_flight=2, crowded_at=0.0, active_at=0.0), 11: _state(11, active_at=0.0)}
    assert next_step(LIMITS, long_overlap, started, last_look=99.0, now=100.0) == Step()


def test_workers_still_leaving_count_toward_the_most():
    crowded = {10: _state(10, in_flight=2, crowded_at=100.5, active_at=100.5)}
    assert next_step(LIMITS, crowded, {10: 0.0}, last_look=100.0, now=101.0, leaving=1) == Step()
    assert next_step(LIMITS, crowded, {10: 0.0}, last_look=100.0, now=101.0, leaving=0) == Step(add=True)


def test_the_master_and_the_worker_never_undo_each_others_words():
    """The master's ask to leave and the worker's counts are separate words: a request starting as the master
    asks cannot write the ask away (it did, in 201 of 300 tries, when each wrote the whole seat)."""
    board = Board(1)
    seat = Seat(board, board.free_seat(set()), added=True)
    seat.taken(7)
    board.ask_to_leave(seat.number)
    seat.request_started()
    seat.request_finished()
    seat.busy()
    assert board.read(seat.number).leave and board.read(seat.number).pid == 7


@pytest.mark.parametrize("state, started", [
    (_state(11, in_flight=1, active_at=0.0), 0.0),  # a request in flight, however long
    (_state(11, active_at=80.0), 0.0),  # active 20 s ago
    (_state(11, active_at=0.0), 90.0),  # forked 10 s ago
    (_state(99, active_at=0.0), 0.0),  # the seat names another process: not what this worker wrote
    (None, 0.0),  # no seat: never known to be idle
])
def test_a_worker_not_known_idle_for_long_enough_stays(state, started):
    """The other, idle since long before, goes in its place."""
    workers = {10: _state(10, active_at=0.0), 11: state}
    assert next_step(LIMITS, workers, {10: 0.0, 11: started}, last_look=99.0, now=100.0) == Step(retire=10)


def test_never_fewer_than_the_fewest():
    workers = {10: _state(10, active_at=0.0)}
    assert next_step(LIMITS, workers, {10: 0.0}, last_look=99.0, now=100.0) == Step()
    both = {10: _state(10, active_at=0.0), 11: _state(11, active_at=0.0)}
    assert next_step(PoolLimits(2, 2, 30), both, {10: 0.0, 11: 0.0}, last_look=99.0, now=100.0) == Step()


def test_the_board_is_shared_with_a_forked_worker():
    """The seat a worker writes after the fork is what the master reads; a seat whose worker is gone is free."""
    board = Board(3)
    number = board.free_seat(set())
    seat = Seat(board, number, added=True)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            seat.taken(os.getpid())
            seat.request_started()
            seat.request_started()
            seat.request_finished()
        finally:
            os.write(write, b"x")
            os._exit(0)
    os.read(read, 1)
    os.waitpid(pid, 0)
    state = board.read(number)
    assert (state.pid, state.in_flight) == (pid, 1)
    assert state.crowded_at > 0 and not state.leave
    assert board.free_seat({pid}) != number
    board.ask_to_leave(number)
    assert seat.asked_to_leave() and board.read(number).pid == pid
    assert board.free_seat(set()) == number  # its worker is gone: free again, and cleared
    assert board.read(number).pid == 0 and not board.read(number).leave


def test_no_seat_free_is_none():
    board = Board(1)
    Seat(board, board.free_seat(set()), added=False).taken(7)
    assert board.free_seat({7}) is None


class _Log:
    def __init__(self):
        self.lines = []

    def info(self, message, *args):
        self.lines.append(message % args)


def test_a_worker_asked_to_leave_goes_only_with_no_connection_and_nothing_in_hand(monkeypatch):
    """It decides on the thread that accepts connections, so a request it took after the master's look is served,
    and so is a job of the in-process queue it holds (which keeps it marked busy meanwhile)."""
    in_hand = [True]
    monkeypatch.setattr("control.gunicorn_worker.work_in_hand", lambda: in_hand[0])
    board = Board(2)
    seat = Seat(board, board.free_seat(set()), added=True)
    seat.taken(os.getpid())
    worker = DeadlineWorker.__new__(DeadlineWorker)
    worker.alive, worker.nr_conns, worker.log, worker.memory_watch, worker.seat = True, 1, _Log(), None, seat
    kept = [type("Conn", (), {"timeout": time.monotonic() + 5})()]
    worker.keepalived_conns, worker.cfg = kept, Config()
    accepting = []
    monkeypatch.setattr("gunicorn.workers.gthread.ThreadWorker.set_accept_enabled",
                        lambda self, enabled: accepting.append(enabled))
    worker._leave_if_idle(100.0)
    assert worker.alive and accepting == []  # not asked
    board.ask_to_leave(seat.number)
    worker._leave_if_idle(100.0)
    assert worker.alive  # a connection open
    assert accepting == [False]  # but no new one taken from then on, though gthread's loop asks again
    assert worker.cfg.keepalive == 0  # the next answer on a kept-alive connection closes it
    assert kept[0].timeout <= time.monotonic() + 2  # and one kept alive is closed within 2 s, as when stopping
    worker.set_accept_enabled(True)
    assert accepting == [False, False]
    worker.nr_conns = 0
    before = board.read(seat.number).active_at
    worker._leave_if_idle(100.0)
    assert worker.alive and board.read(seat.number).active_at > before  # a job in hand: busy, not idle
    in_hand[0] = False
    worker._leave_if_idle(100.0)
    assert not worker.alive
    assert worker.log.lines == ["worker idle, as the master asked: leaving"]


class _Config:
    @staticmethod
    def nworkers_changed(arbiter, new, old):
        pass


class _MasterLog(_Log):
    def warning(self, message, *args):
        self.lines.append(message % args)


def test_a_worker_that_died_while_asked_to_leave_before_it_decided_to_is_replaced():
    """One that decided to leave had nothing in hand; one killed before (kill -9, the OOM killer) may have left a
    change half recorded, and nothing else would replace it: a worker is forked that asks for that work."""
    from control.gunicorn_arbiter import ElasticArbiter

    master = ElasticArbiter.__new__(ElasticArbiter)
    master.cfg, master.log, master.board = _Config(), _MasterLog(), Board(4)
    master.WORKERS = {}  # both gone
    master._num_workers = 1
    master.started, master.seats = {5: 0.0, 6: 0.0}, {5: 0, 6: 1}
    master.asked, master.leaving, master.replacing, master.replaced = {5, 6}, {5, 6}, {}, set()
    master.outgrown_since = {}
    master.board.mark_left(1)  # 6 decided to leave; 5 did not
    master._forget_gone()
    assert master.num_workers == 2
    assert master.log.lines == ["worker 5 died while leaving: a worker takes up what it left"]
    assert master.asked == master.leaving == set() and master.started == master.seats == {}


def test_a_worker_that_outgrew_its_memory_serves_on_until_asked_to_leave(monkeypatch):
    """Under the elastic pool it does not leave by itself (a lone worker leaving left none to accept while its
    replacement started): it asks for a fresh fork, once, and goes when the master asks, like any worker."""
    from control.worker_memory import MemoryWatch
    from server import heap

    monkeypatch.setattr("control.gunicorn_worker.work_in_hand", lambda: False)
    board = Board(2)
    seat = Seat(board, board.free_seat(set()), added=False)
    seat.taken(os.getpid())
    worker = DeadlineWorker.__new__(DeadlineWorker)
    worker.alive, worker.nr_conns, worker.log, worker.seat = True, 0, _Log(), seat
    worker.keepalived_conns, worker.cfg = [], Config()
    readings = iter([40 << 20] * 4)
    worker.memory_watch = MemoryWatch(16 << 20, read=lambda: next(readings))
    monkeypatch.setattr("gunicorn.workers.gthread.ThreadWorker.set_accept_enabled", lambda self, enabled: None)
    heap.after_transfer(heap.LARGE_TRANSFER)
    worker._leave_if_idle(1000.0)
    assert worker.alive and board.read(seat.number).outgrown
    heap.after_transfer(heap.LARGE_TRANSFER)
    worker._leave_if_idle(2000.0)
    assert worker.alive and len(worker.log.lines) == 1  # asked once
    board.ask_to_leave(seat.number)
    worker._leave_if_idle(3000.0)
    assert not worker.alive
    assert worker.log.lines[-1] == "worker idle, as the master asked: leaving"


def _master(workers: dict[int, int], most: int = 2):
    """An ElasticArbiter not started by gunicorn: `workers` pid -> seat, each seat taken by its pid."""
    from control.gunicorn_arbiter import ElasticArbiter
    from control.worker_pool import PoolLimits

    master = ElasticArbiter.__new__(ElasticArbiter)
    master.cfg, master.log, master.board = _Config(), _MasterLog(), Board(8)
    master.limits = PoolLimits(1, most, 30.0)
    master.WORKERS = {pid: object() for pid in workers}
    master._num_workers = len(workers)
    master.started, master.seats = {pid: 0.0 for pid in workers}, dict(workers)
    master.asked, master.leaving, master.replacing, master.replaced = set(), set(), {}, set()
    master.outgrown_since = {}
    master.last_look = 0.0
    master._reload_spawns = None
    for pid, number in workers.items():
        master.board.claim(number, pid)
    forked = []

    def spawn_worker(added=False, replacing=False):
        pid = 100 + len(forked)
        number = master.board.free_seat(set(master.WORKERS))
        master.board.claim(number, pid)
        master.WORKERS[pid], master.seats[pid], master.started[pid] = object(), number, 1.0
        forked.append((pid, added, replacing))
        return pid

    master.spawn_worker = spawn_worker
    return master, forked


def test_a_fresh_fork_replaces_an_outgrown_worker_once_quiet_and_before_it_is_asked_to_leave():
    master, forked = _master({5: 0})
    master.board.mark_outgrown(0)
    active = master.board.read(0).active_at
    master._replace_outgrown(active + 0.5)
    assert forked == []  # a client's next command may follow the transfer: not while requests keep coming
    master.board.write_activity(0, 1, 0.0, active)
    master._replace_outgrown(active + 5)
    assert forked == []  # nor with one in flight
    master.board.write_activity(0, 0, 0.0, active)
    master._replace_outgrown(active + 1)
    assert forked == [(100, False, True)] and master.replacing == {100: 5}
    assert master.leaving == {5} and not master.board.read(0).leave  # serving on: counted as leaving
    master._replace_outgrown(active + 2)
    assert len(forked) == 1 and not master.board.read(0).leave  # the fork is not ready yet
    master.board.mark_ready(master.seats[100])
    master._replace_outgrown(active + 3)
    assert master.board.read(0).leave and master.asked == {5} and master.replacing == {}
    master._replace_outgrown(active + 4)
    assert len(forked) == 1  # once


def test_an_outgrown_worker_killed_while_being_replaced_has_a_worker_staying_look_for_what_it_left():
    """The fork replacing an outgrown worker asks for nothing undone (that one leaves with nothing in hand); killed
    before it decided to leave (the OOM killer picks the largest), it may have left a change half recorded. Another
    fork would take the pool past its most: a worker staying is asked to look, before or after the fork is ready."""
    for ready_first in (False, True):
        master, forked = _master({5: 0, 6: 1})
        master.board.mark_outgrown(0)
        master._replace_outgrown(master.board.read(0).active_at + 10)
        assert master.replacing == {100: 5} and master.num_workers == 2
        if ready_first:
            master.board.mark_ready(master.seats[100])
            master._replace_outgrown(master.board.read(0).active_at + 11)
            assert master.asked == {5}
        del master.WORKERS[5]
        master._forget_gone()
        assert master.num_workers == 2 and len(forked) == 1  # no fork past the most
        assert sum(master.board.read(number).looks for number in (1, master.seats[100])) == 1
        assert master.log.lines[-1] == "worker 5 died while leaving: a worker takes up what it left"
        assert master.replaced == set() and master.leaving == set()


def test_a_worker_looks_for_undone_work_once_each_time_the_master_asks(monkeypatch):
    board = Board(1)
    seat = Seat(board, board.free_seat(set()), added=False)
    worker = DeadlineWorker.__new__(DeadlineWorker)
    looks = []
    worker.seat, worker.wsgi = seat, type("App", (), {"look_for_undone_work": lambda self: looks.append(1)})()
    worker._look_if_asked()
    assert looks == []
    board.ask_to_look(seat.number)
    worker._look_if_asked()
    worker._look_if_asked()
    assert looks == [1]
    board.ask_to_look(seat.number)
    worker._look_if_asked()
    assert looks == [1, 1]


def test_no_replacement_is_forked_during_a_reload_nor_a_worker_lost_when_none_is():
    """gunicorn's reload calls manage_workers while it forks the new generation, and spawn_worker then forks no
    more than the count (None): an outgrown worker must neither be put aside for a fork that never came, nor
    replaced beside the reload's own workers (which stops all those of before, outgrown or not)."""
    master, forked = _master({5: 0})
    master.board.mark_outgrown(0)
    later = master.board.read(0).active_at + 10
    master._reload_spawns = 1
    master._replace_outgrown(later)
    assert forked == [] and master.leaving == set() and master.replacing == {}
    master._reload_spawns = None
    master.spawn_worker = lambda added=False, replacing=False: None
    master._replace_outgrown(later)
    assert master.leaving == set() and master.replacing == {} and master.replaced == set()


def test_an_outgrown_worker_whose_requests_never_pause_is_replaced_all_the_same():
    """A health check every half second leaves no quiet second: after 30 s the fork starts beside the requests."""
    from control.gunicorn_arbiter import REPLACED_ANYWAY_AFTER

    master, forked = _master({5: 0})
    master.board.mark_outgrown(0)
    start = master.board.read(0).active_at
    for tick in range(int(REPLACED_ANYWAY_AFTER)):
        master.board.write_activity(0, 0, 0.0, start + tick)  # a request finished just now, each second
        master._replace_outgrown(start + tick + 0.5)
    assert forked == []
    master.board.write_activity(0, 1, 0.0, start + REPLACED_ANYWAY_AFTER)
    master._replace_outgrown(start + REPLACED_ANYWAY_AFTER + 0.5)
    assert [pid for pid, _, _ in forked] == [100] and master.replacing == {100: 5}


def test_an_outgrown_worker_replaced_by_a_fork_without_a_seat_is_not_kept_forever():
    """No seat was free for the fork (the board is sized well past the most): it cannot say it is ready, and the
    outgrown worker is asked to leave at once rather than serve on uncounted."""
    master, forked = _master({5: 0})

    def seatless(added=False, replacing=False):
        master.WORKERS[100], master.started[100] = object(), 1.0
        return 100

    master.spawn_worker = seatless
    master.board.mark_outgrown(0)
    later = master.board.read(0).active_at + 10
    master._replace_outgrown(later)
    master._replace_outgrown(later + 1)
    assert master.board.read(0).leave and master.replacing == {}


def test_an_outgrown_worker_whose_replacement_died_before_it_was_ready_asks_again():
    master, forked = _master({5: 0})
    master.board.mark_outgrown(0)
    later = master.board.read(0).active_at + 10
    master._replace_outgrown(later)
    del master.WORKERS[100]
    master._replace_outgrown(later)
    assert not master.board.read(0).leave and master.asked == set()
    assert [pid for pid, _, _ in forked] == [100, 101] and master.replacing == {101: 5} and master.leaving == {5}


def test_a_worker_that_exits_with_nothing_in_hand_says_so(monkeypatch):
    """However it leaves (asked, outgrown, max_requests, a reload's stop), the master then knows it lost nothing;
    one exiting with a job in hand, or killed, does not say so (and a replacement asks for what it left)."""
    from control import gunicorn_conf

    board = Board(2)
    for in_hand in (True, False):
        seat = Seat(board, board.free_seat(set()), added=True)
        worker = type("Worker", (), {"seat": seat, "pid": os.getpid()})()
        monkeypatch.setattr("storage.jobs.work_in_hand", lambda: in_hand)
        gunicorn_conf.worker_exit(None, worker)
        assert board.read(seat.number).left is not in_hand


def _request(connection, path="/v1/repos/r1", closing=False):
    return type("Request", (), {"unreader": connection, "must_close": False, "path": path,
                                "should_close": lambda self: closing})()


def test_after_an_add_every_other_connection_is_closed_once(monkeypatch):
    """Kept-alive clients stay on the worker they reached: after an add, the others close every other connection
    after its next request (once each an add), so that half of their clients connect again, to either worker.
    Closing all of them moved them all to the new worker, which then served alone."""
    monkeypatch.setattr(DeadlineWorker, "spread_turns", itertools.count())
    board = Board(2)
    seat = Seat(board, board.free_seat(set()), added=False)
    worker = DeadlineWorker.__new__(DeadlineWorker)
    worker.seat, worker.added_seen = seat, board.added_at()
    now = time.monotonic()
    worker._spread_after_an_add(now)
    assert worker.spread_until == 0.0  # nothing added
    board.note_added(now)
    worker._spread_after_an_add(now)
    assert worker.spread_until > now

    def closed_by_spread(requests):
        for request in requests:
            worker._spread(request)
        return [request.must_close for request in requests]

    connections = [type("Unreader", (), {})() for _ in range(6)]
    assert closed_by_spread([_request(c) for c in connections]) == [True, False, True, False, True, False]
    assert closed_by_spread([_request(connections[1])]) == [False]  # decided once an add
    # a git transfer is left alone (a pack read slowly held the worker's other connections for 2 s), and a request
    # closing its connection anyway takes no turn
    assert closed_by_spread([_request(type("Unreader", (), {})(), "/acme/r1.git/git-upload-pack"),
                             _request(type("Unreader", (), {})(), closing=True)]) == [False, False]
    board.note_added(now + 60)  # the added worker left, and another is added: the kept ones are decided again
    worker._spread_after_an_add(now + 60)
    assert closed_by_spread([_request(connections[i]) for i in (1, 3, 5)]) == [True, False, True]
