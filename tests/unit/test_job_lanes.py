"""The in-process queue's lanes (storage/jobs.py): a lane's jobs never wait on the main lane's, and a lane of
several threads runs a job while another of its jobs is held (a webhook receiver that never answers)."""
from __future__ import annotations

import threading

from storage.jobs import InProcessQueue, JobRequest

SIGNALS: dict[str, threading.Event] = {}


def signal(name: str) -> threading.Event:
    return SIGNALS.setdefault(name, threading.Event())


def hold(started: str, release: str) -> None:
    signal(started).set()
    signal(release).wait(30)


def mark(done: str) -> None:
    signal(done).set()


def job(func: str, *args, **lane) -> JobRequest:
    return JobRequest(f"tests.unit.test_job_lanes.{func}", args, f"{func}-{'-'.join(args)}", (), **lane)


def test_a_lane_of_several_threads_runs_a_job_while_another_is_held():
    queue = InProcessQueue()
    queue.enqueue(job("hold", "a-started", "a-release", lane="hooks", lane_threads=2))
    assert signal("a-started").wait(30)
    queue.enqueue(job("mark", "a-done", lane="hooks", lane_threads=2))
    assert signal("a-done").wait(30)  # while the first still holds its thread
    signal("a-release").set()
    queue.join()


def test_the_main_lane_does_not_wait_for_a_held_lane():
    queue = InProcessQueue()
    queue.enqueue(job("hold", "b-started", "b-release", lane="agents"))
    assert signal("b-started").wait(30)
    queue.enqueue(job("mark", "b-done"))
    assert signal("b-done").wait(30)
    signal("b-release").set()
    queue.join()
