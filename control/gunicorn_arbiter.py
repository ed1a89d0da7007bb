"""gunicorn's master with the elastic pool of control/worker_pool.py; `driftstone serve` runs it as
`python -m control.gunicorn_arbiter` (the arguments are gunicorn's). Plain `gunicorn wsgi:application` keeps all
its workers all the time."""
from __future__ import annotations

import signal
import sys
import time

from gunicorn.app.wsgiapp import WSGIApplication
from gunicorn.arbiter import Arbiter

from control.worker_pool import Board, PoolLimits, Seat, next_step
from storage.settings import Settings


def pool_limits(most: int) -> PoolLimits:
    settings = Settings.from_env()  # `driftstone serve` validated them before it started gunicorn
    return PoolLimits(fewest=min(settings.gunicorn_min_workers, most), most=most,
                      idle_seconds=settings.gunicorn_idle_worker_seconds)


QUIET_BEFORE_REPLACING = 1.0  # seconds without a request before a worker that outgrew its memory is replaced
REPLACED_ANYWAY_AFTER = 30.0  # seconds: a worker whose requests never pause for one is replaced all the same


class ElasticArbiter(Arbiter):
    board: Board | None = None
    _reload_spawns: int | None = None  # workers forked so far by the reload under way

    def setup(self, app):
        super().setup(app)  # also on a reload (SIGHUP): the configuration's workers are read again
        self.limits = pool_limits(self.cfg.workers)
        if self.board is None:
            self.board = Board(max(64, 4 * self.limits.most + 4))  # made once: the workers hold it
            self.leaving: set[int] = set()  # stopped, or asked to leave: no longer counted
            self.asked: set[int] = set()  # asked to leave
            self.started: dict[int, float] = {}
            self.seats: dict[int, int] = {}
            self.replacing: dict[int, int] = {}  # a fresh fork not yet ready -> the outgrown worker it replaces
            self.replaced: set[int] = set()  # outgrown workers a fresh fork replaces, until they are gone
            self.outgrown_since: dict[int, float] = {}  # when the master first saw each worker's outgrown flag
            self.last_look = time.monotonic()
        self.num_workers = self.limits.fewest

    def reload(self):
        """gunicorn's reload forks all of the configuration's workers and then stops the old ones and those beyond
        the count: a worker stopped before it has its own signal handlers never hears it (its copy of the master's
        handler queues the signal for no one). Only the count is forked."""
        self._reload_spawns = 0
        # those asked to leave or being replaced, finishing what they hold, go now too; the forks replacing them are
        # stopped with the other workers of before the reload
        for pid in self.leaving & set(self.WORKERS):
            self.kill_worker(pid, signal.SIGTERM)
        self.replacing.clear()
        try:
            super().reload()
        finally:
            self._reload_spawns = None

    def spawn_worker(self, added: bool = False, replacing: bool = False):
        if self._reload_spawns is not None:
            if self._reload_spawns >= self.num_workers:
                return None
            self._reload_spawns += 1
        number = self.board.free_seat(set(self.WORKERS) | set(self.started))  # not one the master has yet to read
        seat = None if number is None else Seat(self.board, number, added, replacing)
        make = self.worker_class

        def seated(*args, **kwargs):
            worker = make(*args, **kwargs)
            worker.seat = seat
            return worker

        self.worker_class = seated
        try:
            pid = super().spawn_worker()
        finally:
            self.worker_class = make
        self.started[pid] = time.monotonic()
        if seat is not None:
            self.seats[pid] = number
            seat.taken(pid)
        return pid

    def manage_workers(self):
        """gunicorn's upkeep (fork the missing workers, stop the oldest beyond the count), counting only the
        workers staying, after one look at how busy they are."""
        now = time.monotonic()
        self._forget_gone()
        self._replace_outgrown(now)
        staying = {pid: self._state(pid) for pid in self.WORKERS if pid not in self.leaving}
        step = next_step(self.limits, staying, self.started, self.last_look, now, len(self.leaving)) \
            if len(staying) == self.num_workers else None
        self.last_look = now
        if step is not None and step.add:
            self._add()
            return
        if step is not None and step.retire is not None:
            self.num_workers -= 1
            self.log.info("worker %s idle for %.0f s: asked to leave (%d now)", step.retire,
                          self.limits.idle_seconds, self.num_workers)
            self.leaving.add(step.retire)
            self.asked.add(step.retire)
            self.board.ask_to_leave(self.seats[step.retire])
            return
        for _ in range(self.num_workers - len(staying)):
            self.spawn_worker()
        for pid in sorted(staying, key=lambda pid: self.WORKERS[pid].age)[:max(0, len(staying) - self.num_workers)]:
            self._stop(pid)

    def _forget_gone(self) -> None:
        """A worker asked to leave, or being replaced for its memory, that died before it decided to leave (killed,
        out of memory) may have left work undone. One asked to leave is replaced by a fork that asks for that work
        to be finished; one being replaced already has its fork (which looked for none), so a worker staying is
        asked to look instead: another fork would take the pool past its most."""
        for gone in set(self.started) - set(self.WORKERS):
            number = self.seats.pop(gone, None)
            self.started.pop(gone, None)
            left = number is not None and self.board.read(number).left
            if (gone in self.asked or gone in self.replaced) and not left:
                self.log.warning("worker %s died while leaving: a worker takes up what it left", gone)
                if gone not in self.replaced or not self._ask_to_look():
                    self.num_workers += 1
            self.asked.discard(gone)
            self.replaced.discard(gone)
            self.outgrown_since.pop(gone, None)
        self.leaving &= set(self.WORKERS)

    def _ask_to_look(self) -> bool:
        for pid in self.WORKERS:
            if pid not in self.leaving and pid in self.seats:
                self.board.ask_to_look(self.seats[pid])
                return True
        return False

    def _replace_outgrown(self, now: float) -> None:
        """A worker that outgrew its memory serves on while a fresh fork boots, and is asked to leave once that one
        accepts: a lone worker that left first left none to accept for the fork's start-up (a push right after a
        large push: 190 instead of 115 ms). The fork waits for a quiet second, so that it does not start beside a
        client's next command, sent right after the transfer (that push: 1.22x instead of 1.10x of http-backend).
        The outgrown one counts as leaving from the fork on."""
        if self._reload_spawns is not None:  # the reload forks its own workers and stops all those of before
            return
        for fresh, old in list(self.replacing.items()):
            if fresh not in self.WORKERS:  # killed before it was ready: the old one stays, and asks again
                del self.replacing[fresh]
                self.leaving.discard(old)
                self.replaced.discard(old)
            elif (state := self._state(fresh)) is None or state.ready:  # seatless (none was free): cannot say
                del self.replacing[fresh]
                if old in self.WORKERS and old in self.seats:
                    self.asked.add(old)
                    self.board.ask_to_leave(self.seats[old])
        for pid in [pid for pid in self.WORKERS if pid not in self.leaving]:
            state = self._state(pid)
            if state is None or not state.outgrown or state.pid != pid:
                continue
            since = self.outgrown_since.setdefault(pid, now)
            if (state.in_flight or now - state.active_at < QUIET_BEFORE_REPLACING) \
                    and now - since < REPLACED_ANYWAY_AFTER:
                continue
            self.leaving.add(pid)
            try:
                fresh = self.spawn_worker(replacing=True)
            except OSError as error:  # out of memory or processes for now: it serves on
                fresh = None
                self.log.warning("could not fork a worker to replace %s: %s", pid, error)
            if fresh is None:
                self.leaving.discard(pid)
                continue
            self.replacing[fresh] = pid
            self.replaced.add(pid)
            self.log.info("worker %s outgrew its memory: a fresh fork (%s) takes its place once ready", pid, fresh)

    def _add(self) -> None:
        self.num_workers += 1
        before = self.board.added_at()
        self.board.note_added(time.monotonic())  # before the fork: the new worker has seen it
        try:
            self.spawn_worker(added=True)
        except OSError as error:  # out of memory or processes for now: the workers there are serve on
            self.board.note_added(before)  # none to spread the clients to
            self.num_workers -= 1
            self.log.warning("could not add a worker: %s", error)
            return
        self.log.info("requests overlap: a worker added (%d now)", self.num_workers)

    def _state(self, pid: int):
        number = self.seats.get(pid)
        return None if number is None else self.board.read(number)

    def _stop(self, pid: int) -> None:
        self.leaving.add(pid)
        self.kill_worker(pid, signal.SIGTERM)

    def handle_ttin(self):
        """gunicorn's: one worker more, now; the fewest and the most the pool keeps move up with it."""
        self.limits = PoolLimits(self.limits.fewest + 1, self.limits.most + 1, self.limits.idle_seconds)
        self.num_workers += 1
        self.manage_workers()

    def handle_ttou(self):
        """gunicorn's: one worker fewer, now (the oldest goes), never under one; the fewest and the most move down
        with it."""
        fewest, most = max(1, self.limits.fewest - 1), max(1, self.limits.most - 1)
        self.limits = PoolLimits(fewest, most, self.limits.idle_seconds)
        self.num_workers = max(1, min(self.num_workers - 1, most))
        self.manage_workers()


class ElasticApplication(WSGIApplication):
    def run(self):
        if (self.cfg.print_config or self.cfg.check_config or self.cfg.daemon or self.cfg.workers <= 1
                or not self.cfg.preload_app):  # forking a worker that must import the application is no quick step
            return super().run()
        try:
            ElasticArbiter(self).run()
        except RuntimeError as error:
            print(f"\nError: {error}\n", file=sys.stderr)
            sys.exit(1)


def main() -> None:
    ElasticApplication("%(prog)s [OPTIONS] [APP_MODULE]", prog="driftstone-serve").run()


if __name__ == "__main__":
    main()
