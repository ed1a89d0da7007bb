"""When a worker retires for a fresh fork (control.worker_memory, control.gunicorn_worker): only after a large
transfer left it holding more than its limit, and only with nothing in hand."""
from __future__ import annotations

import threading
import time

from control.gunicorn_worker import DeadlineWorker
from control.worker_memory import WATCH_SECONDS, MemoryWatch, private_bytes
from server import heap
from storage.jobs import InProcessQueue, JobRequest, work_in_hand

MiB = 1024 * 1024


class Reading:
    def __init__(self, *sizes: int):
        self.sizes, self.reads = list(sizes), 0

    def __call__(self) -> int:
        self.reads += 1
        return self.sizes.pop(0)


def test_this_process_private_memory_is_read():
    assert private_bytes() > 1 * MiB


def test_memory_is_read_only_after_a_large_transfer_and_then_judged_against_the_limit():
    reading = Reading(15 * MiB, 20 * MiB)
    watch = MemoryWatch(16 * MiB, read=reading)
    assert not watch.outgrown(0.0, large_transfers=0) and reading.reads == 0  # small requests: never read
    assert not watch.outgrown(10.0, large_transfers=1) and reading.reads == 1  # under the limit after it
    assert not watch.outgrown(20.0, large_transfers=1) and reading.reads == 1  # the same transfer: not again
    assert watch.outgrown(30.0, large_transfers=2) and watch.last == 20 * MiB


def test_reads_are_spaced_while_a_large_transfer_leaves_it_over_the_limit():
    reading = Reading(*[30 * MiB] * 3)
    watch = MemoryWatch(16 * MiB, read=reading)
    assert watch.outgrown(100.0, large_transfers=1)
    assert not watch.outgrown(100.0 + WATCH_SECONDS / 2, large_transfers=1) and reading.reads == 1
    assert watch.outgrown(100.0 + WATCH_SECONDS, large_transfers=1) and reading.reads == 2


def test_large_transfers_are_counted():
    before = heap.large_transfers()
    heap.after_transfer(heap.LARGE_TRANSFER - 1)
    assert heap.large_transfers() == before
    heap.after_transfer(heap.LARGE_TRANSFER)
    assert heap.large_transfers() == before + 1


def _waiting_job(jobs: InProcessQueue, name: str) -> threading.Event:
    """A job that runs until the returned event is set."""
    release = threading.Event()
    _EVENTS[name] = release
    jobs.enqueue(JobRequest("tests.unit.test_worker_memory._wait_for", (name,), name, retry_delays=()))
    return release


def test_a_queued_running_or_waiting_job_is_work_in_hand():
    jobs = InProcessQueue()
    assert not work_in_hand([jobs])
    release = _waiting_job(jobs, "wait-1")
    assert work_in_hand([jobs])  # queued or running
    release.set()
    jobs.join()
    assert not work_in_hand([jobs])
    jobs.enqueue(JobRequest("tests.unit.test_worker_memory._fail", (), "fail-1", retry_delays=(3600,)))
    _wait_until(lambda: jobs._retries is not None and jobs._retries.waiting())
    assert work_in_hand([jobs])  # its retry waits an hour: the process must not end before it
    jobs._retries._waiting.clear()
    assert not work_in_hand([jobs])


_EVENTS: dict[str, threading.Event] = {}


def _wait_for(name: str) -> None:
    assert _EVENTS.pop(name).wait(30)


def _fail() -> None:
    raise RuntimeError("refused")


def _wait_until(condition) -> None:
    deadline = time.monotonic() + 3
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.01)


class _Log:
    def __init__(self):
        self.lines = []

    def info(self, message, *args):
        self.lines.append(message % args)


def _worker(limit: int, reading: Reading) -> DeadlineWorker:
    """The worker's decision alone: a DeadlineWorker not started by gunicorn, with a memory reader of the test's."""
    worker = DeadlineWorker.__new__(DeadlineWorker)
    worker.alive, worker.nr_conns, worker.log = True, 0, _Log()
    worker.memory_watch = MemoryWatch(limit, read=reading)
    return worker


def test_a_worker_over_its_limit_after_a_large_transfer_retires_only_with_no_connection_open(monkeypatch):
    monkeypatch.setattr("control.gunicorn_worker.work_in_hand", lambda: False)
    worker = _worker(16 * MiB, Reading(*[40 * MiB] * 3))
    heap.after_transfer(heap.LARGE_TRANSFER)
    worker.nr_conns = 1  # a request in flight, or a connection kept alive for the next
    worker._leave_if_idle(1000.0)
    assert worker.alive
    worker.nr_conns = 0
    worker._leave_if_idle(1000.0)
    assert not worker.alive
    assert worker.log.lines == ["worker holds 40 MiB of its own (more than 16 MiB): replaced by a fresh fork"]


def test_a_worker_with_a_job_in_hand_does_not_retire(monkeypatch):
    worker = _worker(16 * MiB, Reading(*[40 * MiB] * 3))
    heap.after_transfer(heap.LARGE_TRANSFER)
    jobs = InProcessQueue()
    monkeypatch.setattr("control.gunicorn_worker.work_in_hand", lambda: work_in_hand([jobs]))
    release = _waiting_job(jobs, "wait-2")
    worker._leave_if_idle(1000.0)
    assert worker.alive
    release.set()
    jobs.join()
    worker._leave_if_idle(1000.0)
    assert not worker.alive


def test_no_watch_no_retirement(monkeypatch):
    monkeypatch.setattr("control.gunicorn_worker.work_in_hand", lambda: False)
    worker = _worker(16 * MiB, Reading())
    worker.memory_watch = None
    heap.after_transfer(heap.LARGE_TRANSFER)
    worker._leave_if_idle(1000.0)
    assert worker.alive

