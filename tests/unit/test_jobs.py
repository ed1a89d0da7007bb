"""Deferred jobs run only after the transaction commits, and in-process jobs are retried."""
from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import text

from storage import jobs
from storage.db import Database

CALLS: list = []
FAILURES = {"left": 0}


def record(*args):
    CALLS.append(args)


def flaky(value):
    if FAILURES["left"] > 0:
        FAILURES["left"] -= 1
        raise RuntimeError("transient")
    CALLS.append(("flaky", value))


@pytest.fixture
def db(tmp_path):
    CALLS.clear()
    queue = jobs.InProcessQueue()
    database = Database(f"sqlite:///{tmp_path / 'j.db'}", jobs=queue)
    yield database, queue
    database.dispose()


def test_job_runs_after_commit(db):
    database, queue = db
    with database.session() as session:
        session.execute(text("SELECT 1"))
        jobs.defer(session, "tests.unit.test_jobs.record", "repo_1", "main")
        assert CALLS == []
    queue.join()
    assert CALLS == [("repo_1", "main")]


def test_rolled_back_transaction_enqueues_nothing(db):
    database, queue = db
    with pytest.raises(RuntimeError):
        with database.session() as session:
            jobs.defer(session, "tests.unit.test_jobs.record", "nope")
            raise RuntimeError("boom")
    queue.join()
    assert CALLS == []


def always_fails(*args):
    CALLS.append(("failed", *args))
    raise RuntimeError("still away")


def test_a_failed_in_process_job_runs_again_after_its_delays_and_holds_up_no_other(db):
    """The one job thread slept through each retry delay, so every job queued behind a failing one waited."""
    _, queue = db
    FAILURES["left"] = 2
    queue.enqueue(jobs.JobRequest("tests.unit.test_jobs.flaky", (7,), "flaky-7", retry_delays=(0.5, 0.5)))
    queue.enqueue(jobs.JobRequest("tests.unit.test_jobs.record", ("after",), "record-after"))
    deadline = time.monotonic() + 5
    while ("after",) not in CALLS and time.monotonic() < deadline:
        time.sleep(0.01)
    assert CALLS == [("after",)]  # ran while the failed job waited for its retry
    queue.join()  # waits for the retries too
    assert CALLS == [("after",), ("flaky", 7)]
    assert FAILURES["left"] == 0


def test_an_in_process_job_is_given_up_after_its_last_delay(db, caplog):
    _, queue = db
    queue.enqueue(jobs.JobRequest("tests.unit.test_jobs.always_fails", ("x",), "fails-x", retry_delays=(0.01,) * 3))
    queue.join()
    assert CALLS == [("failed", "x")] * 4
    assert "given up" in caplog.text


def test_a_job_asked_for_again_while_its_retry_waits_waits_once(db):
    _, queue = db
    request = jobs.JobRequest("tests.unit.test_jobs.always_fails", ("y",), "fails-y", retry_delays=(0.3,))
    queue.enqueue(request)
    queue.enqueue(request)
    queue.join()
    assert CALLS == [("failed", "y")] * 3  # two tries, one retry


def test_a_reconcile_asked_for_in_process_is_tried_again_for_most_of_an_hour(db, monkeypatch, tmp_path):
    """Without Redis, the reconcile after lost effects was given up after ~21 s (the in-process runner kept its
    own short delays): rows stayed behind their refs once the database had been away longer."""
    from types import SimpleNamespace

    from hooks import pipeline

    database, queue = db
    waited: list[float] = []
    real_schedule = jobs.RetryTimer.schedule

    def schedule(self, job, attempt, delay):
        waited.append(delay)
        real_schedule(self, job, attempt, 0.01)

    monkeypatch.setattr(jobs.RetryTimer, "schedule", schedule)
    monkeypatch.setattr(pipeline, "RECONCILE_JOB", "tests.unit.test_jobs.always_fails")
    pipeline._ask_for_reconcile(SimpleNamespace(db=database, repo=SimpleNamespace(id="repo_" + "d" * 24),
                                                repo_path=tmp_path))
    queue.join()
    assert len(CALLS) == len(pipeline.RECONCILE_RETRY_DELAYS) + 1
    assert waited == list(pipeline.RECONCILE_RETRY_DELAYS) and sum(waited) >= 45 * 60


def test_job_ids_are_valid_for_rq():
    import re

    class FakeSession:
        info: dict = {}

    session = FakeSession()
    jobs.defer(session, "control.jobs.purge_repository", "repo_1", "feature/x y")
    job_id = session.info["deferred_jobs"][0].job_id
    assert re.match(r"^[A-Za-z0-9_-]+$", job_id)


@pytest.fixture
def redis_queue():
    """A real Redis (the machine's, or the one the PostgreSQL + Redis run names) under a queue name of its own."""
    import uuid

    queue = jobs.RedisQueue(os.environ.get("DRIFTSTONE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
                            f"dstest-jobs-{uuid.uuid4().hex[:10]}")
    yield queue
    for job_id in queue.queue.job_ids:
        queue.queue.remove(job_id)
        queue.connection.delete(f"rq:job:{job_id}")
    queue.queue.delete(delete_jobs=True)


def test_a_job_already_waiting_is_not_queued_again_and_may_run_for_hours(redis_queue):
    """rq queued every copy of one job id (27 of one repository's housekeeping with no worker running), and
    killed each after its default 180 s, so a large repository was never repacked."""
    request = jobs.JobRequest("control.jobs.housekeep_repository", ("repo_1",), "housekeep-repo_1")
    for _ in range(3):
        redis_queue.enqueue(request)
    assert redis_queue.queue.job_ids == [redis_queue.rq_job_id("housekeep-repo_1")]
    job = redis_queue.queue.fetch_job(redis_queue.rq_job_id("housekeep-repo_1"))
    assert job.timeout == jobs.JOB_TIMEOUT >= 6 * 3600


def test_a_job_queued_on_another_namespace_does_not_take_the_id(redis_queue):
    """rq keeps every job under rq:job:<id>, whatever its queue: a job left queued by a server on another
    namespace (a test run that ended; another deployment sharing the Redis) took the id for good, and this
    namespace's copy was dropped as a duplicate and never ran (each worker's finish-interrupted-work)."""
    import uuid

    other = jobs.RedisQueue(os.environ.get("DRIFTSTONE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
                            f"dstest-{uuid.uuid4().hex[:10]}")
    request = jobs.JobRequest("control.jobs.finish_interrupted_work", (), "finish-interrupted-work")
    try:
        other.enqueue(request)  # and no worker ever serves that namespace
        redis_queue.enqueue(request)
        assert redis_queue.queue.job_ids == [redis_queue.rq_job_id("finish-interrupted-work")]
    finally:
        other.queue.delete(delete_jobs=True)


def test_a_job_runs_in_process_when_redis_is_unreachable():
    """A repository deleted while Redis was down kept its files for good: its purge was logged and dropped."""
    from tests.support import free_port

    CALLS.clear()
    queue = jobs.RedisQueue(f"redis://127.0.0.1:{free_port()}/0", "dstest-unreachable")  # nothing listens there
    queue.enqueue(jobs.JobRequest("tests.unit.test_jobs.record", ("purge", "repo_1"), "purge-repo_1"))
    queue.fallback.join()
    assert CALLS == [("purge", "repo_1")]


def test_a_redis_that_never_answers_holds_a_request_for_its_short_timeout_only():
    """A Redis that accepts connections and never answers (a hung server, a half-open network) held every request
    that queues a job for redis-py 8's default 5 s socket timeout (failure-injection sweep F5)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # the kernel accepts connections into the backlog; nothing ever answers
    try:
        CALLS.clear()
        queue = jobs.RedisQueue(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", "dstest-hung")
        started = time.monotonic()
        queue.enqueue(jobs.JobRequest("tests.unit.test_jobs.record", ("purge", "repo_2"), "purge-repo_2"))
        waited = time.monotonic() - started
        queue.fallback.join()
    finally:
        listener.close()
    assert CALLS == [("purge", "repo_2")]
    assert waited < jobs.REDIS_TIMEOUT + 1.5  # redis-py's default: 5 s


@pytest.mark.parametrize("worker_alive", [False, True])
def test_a_job_left_started_by_a_killed_worker_is_queued_again(redis_queue, worker_alive):
    """A worker killed mid-job (kill -9, an OOM kill) left its job marked started, and the job's id stayed
    taken for the whole job timeout (7 h): housekeeping that was due again did not run. A job still running
    on a live worker is left alone."""
    import uuid

    from rq.job import JobStatus
    from rq.worker import Worker

    request = jobs.JobRequest("control.jobs.housekeep_repository", ("repo_1",), f"housekeep-{uuid.uuid4().hex[:12]}")
    job_id = redis_queue.rq_job_id(request.job_id)
    redis_queue.enqueue(request)
    started = redis_queue.queue.fetch_job(job_id)
    redis_queue.queue.remove(job_id)  # a worker took it off the queue ...
    worker = Worker([redis_queue.queue], connection=redis_queue.connection, name=f"w-{uuid.uuid4().hex[:8]}")
    started.worker_name = worker.name
    started.set_status(JobStatus.STARTED)
    started.save()
    if worker_alive:
        worker.register_birth()
    try:
        redis_queue.enqueue(request)
    finally:
        if worker_alive:
            worker.register_death()
    assert redis_queue.queue.job_ids == ([] if worker_alive else [job_id])
    status = redis_queue.queue.fetch_job(job_id).get_status()
    assert status == (JobStatus.STARTED if worker_alive else JobStatus.QUEUED)
    redis_queue.connection.delete(f"rq:job:{job_id}")


def test_a_stopping_worker_does_not_wait_for_its_pubsub_thread_to_give_up(redis_queue):
    """A worker sent SIGTERM sometimes took a minute to end: rq's unsubscribe waited for its pubsub thread, which,
    having read the unsubscribe reply first, sat out its 60 s wait to be subscribed again. The race is set up
    here: the thread has read an unsubscribe when the worker stops."""
    worker = jobs.heartbeat_worker_class()([redis_queue.queue], connection=redis_queue.connection)
    worker.subscribe()
    deadline = time.monotonic() + 30
    while not worker.pubsub.subscribed and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.pubsub.unsubscribe()
    while worker.pubsub.subscribed and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the thread is back in get_message, waiting to be subscribed
    started = time.monotonic()
    worker.unsubscribe()
    assert time.monotonic() - started < 30  # rq's own waited out the thread's 60 s


def sleep_for(seconds: float) -> None:
    time.sleep(seconds)


def _driftstone_worker(tmp_path, redis_url: str, namespace: str, log=None):
    """`driftstone worker` in a process of its own, on the given Redis and queue namespace (its output to `log`)."""
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTSTONE_")}
    root = Path(__file__).resolve().parents[2]
    env.update({"DRIFTSTONE_DATA_DIR": str(tmp_path / "data"), "DRIFTSTONE_REDIS_URL": redis_url,
                "DRIFTSTONE_REDIS_NAMESPACE": namespace, "PYTHONPATH": str(root)})
    if log is None:
        return subprocess.Popen([str(Path(sys.executable).parent / "driftstone"), "worker"], env=env, cwd=root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(log, "w") as output:  # the worker keeps its own copy
        return subprocess.Popen([str(Path(sys.executable).parent / "driftstone"), "worker"], env=env, cwd=root,
                                stdout=output, stderr=output)


def test_a_worker_running_a_job_is_alive_for_minutes_past_its_last_heartbeat_not_the_jobs_timeout(tmp_path):
    """rq's SimpleWorker kept its key alive for the job's whole timeout (7 h) and sent no heartbeat: killed
    with kill -9 mid-job, it looked alive that long, and the job it held kept the repository's housekeeping
    from being asked for again for 7 h."""
    import uuid

    url = os.environ.get("DRIFTSTONE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    namespace = f"dstest-beat-{uuid.uuid4().hex[:10]}"
    queue = jobs.RedisQueue(url, namespace)
    request = jobs.JobRequest("tests.unit.test_jobs.sleep_for", (6,), f"sleep-{uuid.uuid4().hex[:12]}")
    job_id = queue.rq_job_id(request.job_id)
    queue.enqueue(request)
    worker = _driftstone_worker(tmp_path, url, namespace)
    try:
        deadline = time.monotonic() + 30
        job = queue.queue.fetch_job(job_id)
        while (job is None or not job.worker_name) and time.monotonic() < deadline:
            time.sleep(0.1)
            job = queue.queue.fetch_job(job_id)
        assert job is not None and job.worker_name, "the worker never started the job"
        ttl = queue.connection.ttl(f"rq:worker:{job.worker_name}")
        assert 0 < ttl <= jobs.HEARTBEAT_SECONDS + 60
        while queue.queue.fetch_job(job_id) is not None and time.monotonic() < deadline + 60:
            time.sleep(0.2)
        assert queue.queue.fetch_job(job_id) is None  # it ran to its end (a finished job is not kept)
        assert job_id not in queue.queue.failed_job_registry.get_job_ids()
    finally:
        _stop(worker)
        queue.queue.delete(delete_jobs=True)


def _stop(worker) -> None:
    """SIGTERM: rq stops its scheduler process too (a kill would leave it running). One that does not end in 30 s
    fails the test, and is killed with its scheduler so that it does not outlive the run (it listens on Redis)."""
    import signal
    import subprocess

    worker.terminate()
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        for child in _children(worker.pid):
            os.kill(child, signal.SIGKILL)
        worker.kill()
        worker.wait(timeout=10)
        raise


def _children(pid: int) -> list[int]:
    from pathlib import Path

    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    from pathlib import Path

    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except (OSError, IndexError):
        return False


def _scheduler_of(worker) -> list[int]:
    """The scheduler process(es) the worker runs, once started (30 s at most)."""
    deadline = time.monotonic() + 30
    while not (found := [pid for pid in _children(worker.pid) if _running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert found, "the worker started no scheduler process"
    return found


def _gone(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(_running(pid) for pid in pids)


def test_the_scheduler_process_ends_with_a_worker_killed_by_kill_9(tmp_path):
    """rq runs its scheduler in a process forked from the worker; a `driftstone worker` killed with kill -9 left it
    running, orphaned, for good (holding the queue's scheduler lock and a Redis connection)."""
    import signal
    import uuid

    url = os.environ.get("DRIFTSTONE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    namespace = f"dstest-orphan-{uuid.uuid4().hex[:10]}"
    worker = _driftstone_worker(tmp_path, url, namespace)
    scheduler = []
    try:
        scheduler = _scheduler_of(worker)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        assert _gone(scheduler, 20)
    finally:
        for pid in scheduler:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
        jobs.RedisQueue(url, namespace).queue.delete(delete_jobs=True)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _redis_server(port: int):
    """A Redis of this test's own (the machine's redis-server binary): it is killed and started again here, which
    the shared one must never be."""
    import shutil
    import subprocess

    process = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
                                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            redis.Redis(port=port, socket_timeout=1).ping()
            return process
        except redis.exceptions.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("redis-server did not start")


def test_the_scheduler_is_running_again_soon_after_redis_comes_back(tmp_path):
    """rq's scheduler process (it moves retries that are due back to the queue) died with Redis, and the worker
    started it again only in its maintenance pass: with rq's defaults up to ten minutes after Redis came back, and
    every retry waited that long (a failure-injection sweep)."""
    import signal

    port = _free_port()
    server = _redis_server(port)
    log = tmp_path / "worker.log"
    worker = _driftstone_worker(tmp_path, f"redis://127.0.0.1:{port}/0", "dstest-restart", log)
    try:
        first = _scheduler_of(worker)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        _gone(first, 30)
        time.sleep(2)
        server = _redis_server(port)
        deadline = time.monotonic() + 3 * jobs.WORKER_TTL_SECONDS
        again: list[int] = []
        while not again and time.monotonic() < deadline:
            time.sleep(0.5)
            again = [pid for pid in _children(worker.pid) if _running(pid) and pid not in first]
        assert worker.poll() is None and again, f"no scheduler process runs again; worker log:\n{log.read_text()[-3000:]}"
    finally:
        _stop(worker)
        server.kill()
        server.wait(timeout=10)


def kill_then_return(pid: int, marker: str) -> None:
    """A job that takes Redis away under the worker running it (its own test Redis)."""
    import signal
    from pathlib import Path

    os.kill(pid, signal.SIGKILL)
    Path(marker).write_text("ran")


def _worker_whose_job_killed_redis(tmp_path, namespace: str):
    """A Redis of the test's own, and a `driftstone worker` on it whose first job has just killed that Redis."""
    port = _free_port()
    server = _redis_server(port)
    url = f"redis://127.0.0.1:{port}/0"
    log = tmp_path / "worker.log"
    marker = tmp_path / "first"
    jobs.RedisQueue(url, namespace).enqueue(
        jobs.JobRequest("tests.unit.test_jobs.kill_then_return", (server.pid, str(marker)), "first"))
    worker = _driftstone_worker(tmp_path, url, namespace, log)
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), f"the first job never ran; worker log:\n{log.read_text()[-3000:]}"
    server.wait(timeout=10)
    return port, url, worker, log


def _a_job_runs(url: str, namespace: str, marker) -> bool:
    """Whether a job queued now (one that writes `marker`) has run within a minute."""
    jobs.RedisQueue(url, namespace).enqueue(jobs.JobRequest("tests.unit.test_jobs.touch", (str(marker),),
                                                            marker.name))
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return marker.exists()


def test_a_worker_that_finds_redis_gone_after_a_job_works_again_once_redis_is_back(tmp_path):
    """rq's worker loop quits on any Redis error outside its wait for a job (recording a job's end, its state,
    its start-up), and its teardown then failed on Redis too: `driftstone worker` exited, and no job ran again
    after Redis came back until someone restarted it (seen in CI: Redis killed while the worker was starting)."""
    port, url, worker, log = _worker_whose_job_killed_redis(tmp_path, "dstest-outage")
    server = None
    try:
        time.sleep(3)
        server = _redis_server(port)
        ran = _a_job_runs(url, "dstest-outage", tmp_path / "after")
        assert worker.poll() is None and ran, \
            f"no job ran after Redis came back; worker log:\n{log.read_text()[-3000:]}"
    finally:
        _stop(worker)
        if server is not None:
            server.kill()
            server.wait(timeout=10)


def test_a_worker_started_while_redis_is_away_works_once_it_comes(tmp_path):
    """`driftstone worker` started before Redis (a machine booting, Redis restarting) ended at once on rq's
    start-up error; it waits for Redis instead."""
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    log = tmp_path / "worker.log"
    worker = _driftstone_worker(tmp_path, url, "dstest-late", log)
    server = None
    try:
        time.sleep(3)
        assert worker.poll() is None, f"the worker ended; log:\n{log.read_text()[-3000:]}"
        server = _redis_server(port)
        ran = _a_job_runs(url, "dstest-late", tmp_path / "ran")
        assert ran, f"the job never ran; worker log:\n{log.read_text()[-3000:]}"
    finally:
        _stop(worker)
        if server is not None:
            server.kill()
            server.wait(timeout=10)


def test_a_worker_waiting_for_redis_to_come_back_stops_on_sigterm(tmp_path):
    """While it waits for Redis to answer again, `driftstone worker` still ends on SIGTERM, and at once."""
    _, _, worker, log = _worker_whose_job_killed_redis(tmp_path, "dstest-outage-stop")
    try:
        deadline = time.monotonic() + 30
        while "starts once Redis answers" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert worker.poll() is None, f"the worker ended; log:\n{log.read_text()[-3000:]}"
        worker.terminate()
        assert worker.wait(timeout=10) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)


def test_a_purge_whose_job_redis_lost_runs_once_a_worker_starts(tmp_path):
    """Redis restarted without its data loses the queued jobs, and only a server worker's start asked for a lost
    purge again: a deleted repository stayed on disk while the server ran (a failure-injection sweep). The
    repository here is marked deleted with no job queued, which is what that loss leaves."""
    from sqlalchemy import update

    from control.bootstrap import bootstrap
    from control.services.accounts import create_org
    from control.services.repos import create_repo
    from storage.models import Repository, utcnow
    from storage.settings import Settings

    context = bootstrap(Settings(data_dir=tmp_path / "data"))
    with context.db.session() as session:
        repo_id = create_repo(session, context.store, create_org(session, "lost").id, "gone").id
    with context.db.session() as session:
        session.execute(update(Repository).where(Repository.id == repo_id).values(deleted_at=utcnow()))
    context.db.dispose()
    assert context.store.has_files(repo_id)

    port = _free_port()
    server = _redis_server(port)
    log = tmp_path / "worker.log"
    worker = _driftstone_worker(tmp_path, f"redis://127.0.0.1:{port}/0", "dstest-lost", log)
    try:
        deadline = time.monotonic() + 60
        while context.store.has_files(repo_id) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not context.store.has_files(repo_id), f"not purged; worker log:\n{log.read_text()[-3000:]}"
    finally:
        _stop(worker)
        server.kill()
        server.wait(timeout=10)


def test_a_workers_teardown_with_redis_away_does_not_raise():
    """rq's teardown records the worker's death in Redis; with Redis away its error left work() and ended
    `driftstone worker` (the restart loop then took it for a start-up error, leaving the pubsub thread running)."""
    import redis

    from rq import Queue

    port = _free_port()
    server = _redis_server(port)
    connection = redis.Redis(port=port, socket_connect_timeout=1)
    worker = jobs.heartbeat_worker_class()([Queue("dstest-teardown", connection=connection)], connection=connection)
    server.kill()
    server.wait(timeout=10)
    worker.teardown()


def test_the_workers_periodic_ask_comes_at_its_start_and_again_once_due(tmp_path):
    """`driftstone worker` asks for interrupted work as it starts and every ten minutes (a queue that lost its
    jobs leaves work only that ask finds); a Redis of the test's own."""
    import redis

    from rq import Queue

    port = _free_port()
    server = _redis_server(port)
    try:
        connection = redis.Redis(port=port)
        asked: list[float] = []
        worker = jobs.heartbeat_worker_class(lambda: asked.append(time.monotonic()))(
            [Queue("dstest-periodic", connection=connection)], connection=connection)
        worker.heartbeat()
        worker.heartbeat()
        assert len(asked) == 1 and worker.periodic_due - asked[0] >= jobs.PERIODIC_SECONDS - 1
        worker.periodic_due = time.monotonic()  # ten minutes on
        worker.heartbeat()
        assert len(asked) == 2
    finally:
        server.kill()
        server.wait(timeout=10)


def test_a_worker_sent_sigterm_during_a_job_does_not_start_its_scheduler_again(tmp_path):
    """SIGTERM during a job stops rq's scheduler at once; the heartbeat after the job took it for dead and started a
    new one, which the stop then met while it was starting: the worker waited on it past the test's 30 s."""
    port = _free_port()
    server = _redis_server(port)
    url = f"redis://127.0.0.1:{port}/0"
    marker = tmp_path / "started"
    log = tmp_path / "worker.log"
    jobs.RedisQueue(url, "dstest-warm").enqueue(
        jobs.JobRequest("tests.unit.test_jobs.mark_then_sleep", (str(marker), 2), "warm"))
    worker = _driftstone_worker(tmp_path, url, "dstest-warm", log)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), f"the job never started; worker log:\n{log.read_text()[-3000:]}"
        worker.terminate()
        assert worker.wait(timeout=30) == 0
        after_stop = log.read_text().split("warm shut down requested", 1)[1]
        assert "Scheduler for dstest-warm started" not in after_stop, after_stop
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
        server.kill()
        server.wait(timeout=10)


def mark_then_sleep(path: str, seconds: float) -> None:
    from pathlib import Path

    Path(path).write_text("started")
    time.sleep(seconds)


def test_a_reconcile_asked_for_after_lost_effects_is_tried_again_for_most_of_an_hour(redis_queue, tmp_path):
    """The reconcile that rebuilds branch rows after a change's effects were kept out (the database away) was
    tried for 21 s and then given up: rows stayed behind their refs for good once the database had been away
    longer (a failure-injection sweep)."""
    from types import SimpleNamespace

    from hooks import pipeline

    ctx = SimpleNamespace(db=SimpleNamespace(jobs=redis_queue), repo=SimpleNamespace(id="repo_" + "c" * 24),
                          repo_path=tmp_path)
    pipeline._ask_for_reconcile(ctx)
    [queued] = [redis_queue.queue.fetch_job(job_id) for job_id in redis_queue.queue.job_ids]
    assert queued.func_name == pipeline.RECONCILE_JOB
    assert queued.retries_left == len(pipeline.RECONCILE_RETRY_DELAYS)
    assert sum(queued.retry_intervals) >= 45 * 60


def test_a_retry_that_cannot_be_queued_again_is_given_up_and_the_others_still_run(db, monkeypatch):
    """The retry thread died with the first job it could not put back (no thread left to run it), and join()
    then waited for good on every retry behind it."""
    _, queue = db
    queue.enqueue(jobs.JobRequest("tests.unit.test_jobs.always_fails", ("a",), "fails-a", retry_delays=(0.05,)))
    queue.enqueue(jobs.JobRequest("tests.unit.test_jobs.always_fails", ("b",), "fails-b", retry_delays=(0.2,)))
    real_put = queue._put

    def put(job, attempt):
        if job.job_id == "fails-a" and attempt:
            raise RuntimeError("can't start new thread")
        real_put(job, attempt)

    deadline = time.monotonic() + 5
    while queue._retries is None and time.monotonic() < deadline:
        time.sleep(0.005)
    monkeypatch.setattr(queue._retries, "_put", put)
    queue.join()
    assert sorted(CALLS) == [("failed", "a"), ("failed", "b"), ("failed", "b")]


def test_a_forked_child_runs_its_own_jobs(db, tmp_path):
    """A child forked while the parent's job thread ran had no such thread, yet the queue said it had one, so
    its jobs waited for good (gunicorn forks its workers from a master that may have built the application)."""
    _, queue = db
    queue.enqueue(jobs.JobRequest("tests.unit.test_jobs.record", ("parent",), "record-parent"))
    queue.join()
    marker = tmp_path / "child-ran"
    pid = os.fork()
    if pid == 0:  # the child: run one job, then leave without pytest's teardown
        try:
            queue.enqueue(jobs.JobRequest("tests.unit.test_jobs.touch", (str(marker),), "touch-child"))
            queue.join()
        finally:
            os._exit(0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the child's job never ran")
    assert status == 0 and marker.exists()


def touch(path):
    open(path, "w").close()
