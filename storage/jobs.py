"""Background jobs: rq on Redis when configured, else the same functions on an in-process worker thread.

Jobs are named by dotted path ("control.jobs.purge_repository") and take ids only. Services defer them on
the session; the Database enqueues them only after that session's transaction has committed.
"""
from __future__ import annotations

import ctypes
import hashlib
import heapq
import importlib
import itertools
import logging
import os
import queue
import re
import signal
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

log = logging.getLogger(__name__)
RETRY_DELAYS = (1, 5, 15)


@dataclass(frozen=True)
class JobRequest:
    func: str
    args: tuple
    job_id: str
    retry_delays: tuple[float, ...] = RETRY_DELAYS  # between tries, on rq and in this process alike
    # in this process, jobs of a lane other than the main one ("") run on their lane's threads: an agent's run
    # (many minutes) or a webhook delivery (a receiver's seconds) holds up no purge, nor one lane another
    lane: str = ""
    lane_threads: int = 1  # how many of its lane's jobs run at once in this process (set by the lane's first job)


class JobQueue(Protocol):
    def enqueue(self, job: JobRequest) -> None: ...

    def join(self) -> None:
        """Wait for the jobs this process runs itself (a command that exits would drop them)."""


def resolve(func_path: str):
    module, _, name = func_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def defer(session, func: str, *args, job_id: str | None = None) -> None:
    """Ask for `func(*args)` to run once this session's transaction commits."""
    if job_id is None:
        digest = hashlib.sha256(repr(args).encode()).hexdigest()[:20]
        job_id = f"{func.rpartition('.')[2]}-{digest}"
    defer_job(session, JobRequest(func, tuple(args), job_id))


def defer_job(session, job: JobRequest) -> None:
    session.info.setdefault("deferred_jobs", []).append(job)


@dataclass(eq=False)
class InProcessQueue:
    """Daemon threads (one, unless a lane asks for more) running jobs in order. A job that fails runs again after
    each of its retry delays; another thread holds the waiting ones, so a retry due in half an hour holds up no
    other job."""

    threads: int = 1
    _queue: "queue.Queue[tuple[JobRequest, int]]" = field(default_factory=queue.Queue)
    _running: "list[threading.Thread]" = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _retries: "RetryTimer | None" = None
    _lanes: "dict[str, InProcessQueue]" = field(default_factory=dict)

    def __post_init__(self) -> None:
        _QUEUES.add(self)

    def enqueue(self, job: JobRequest) -> None:
        if job.lane:
            with self._lock:
                lane = self._lanes.get(job.lane) or self._lanes.setdefault(job.lane, InProcessQueue(job.lane_threads))
            lane._put(job, 0)
            return
        self._put(job, 0)

    def forget_threads(self) -> None:
        """In a forked child: the parent's threads are not there, and its queue and locks may be mid-use."""
        self._queue = queue.Queue()
        self._lock = threading.Lock()
        self._running = []
        self._retries = None
        self._lanes = {}

    def join(self) -> None:
        """Wait for the queued jobs and the retries they asked for."""
        while True:
            self._queue.join()
            for lane in list(self._lanes.values()):
                lane.join()
            if self._retries is None or not self._retries.wait_until_none_waits():
                return

    def holds_work(self) -> bool:
        """A job queued, running or waiting to be retried on this queue (its lanes are queues of their own)."""
        retries = self._retries
        # retries first: one leaving them is on the queue by the time it is gone from them (RetryTimer._run)
        return (retries is not None and retries.waiting()) or bool(self._queue.unfinished_tasks)

    def _put(self, job: JobRequest, attempt: int) -> None:
        with self._lock:
            self._running = [thread for thread in self._running if thread.is_alive()]
            while len(self._running) < self.threads:
                thread = threading.Thread(target=self._work, name="driftstone-jobs", daemon=True)
                thread.start()
                self._running.append(thread)
        self._queue.put((job, attempt))

    def _work(self) -> None:
        while True:
            job, attempt = self._queue.get()
            try:
                if not run_once(job, attempt) and attempt < len(job.retry_delays):
                    with self._lock:
                        if self._retries is None:
                            self._retries = RetryTimer(self._put)
                    self._retries.schedule(job, attempt + 1, job.retry_delays[attempt])
            finally:
                self._queue.task_done()


_QUEUES: "weakref.WeakSet[InProcessQueue]" = weakref.WeakSet()
os.register_at_fork(after_in_child=lambda: [q.forget_threads() for q in list(_QUEUES)])


def work_in_hand(queues: "Iterable[InProcessQueue] | None" = None) -> bool:
    """Whether an in-process queue of this process (or of `queues`) holds a job queued, running, or waiting to be
    retried (the process must not end now)."""
    return any(jobs.holds_work() for jobs in list(_QUEUES if queues is None else queues))


class TryAgain(Exception):
    """Raised by a job that did what it could and asks to run again after its next retry delay (a webhook whose
    receiver did not answer 2xx): not a failure of the server's, so no traceback is logged."""


def run_once(job: JobRequest, attempt: int = 0) -> bool:
    """Run `job`; whether it succeeded (a failure is logged)."""
    try:
        resolve(job.func)(*job.args)
        return True
    except TryAgain as again:
        log.info("job %s: %s (try %d of %d)", job.job_id, again, attempt + 1, len(job.retry_delays) + 1)
        return False
    except Exception:
        tries = len(job.retry_delays) + 1
        log.exception("job %s failed (try %d of %d%s)", job.job_id, attempt + 1, tries,
                      ", given up" if attempt + 1 >= tries else "")
        return False


class RetryTimer:
    """Puts failed jobs back on their queue once their delay is over: one thread for all of them, and one
    waiting retry per job id (a job asked for again while its retry waits is the same job)."""

    def __init__(self, put: Callable[[JobRequest, int], None]):
        self._put = put
        self._waiting: list[tuple[float, int, JobRequest, int]] = []
        self._waiting_ids: set[str] = set()
        self._changed = threading.Condition()
        self._order = itertools.count()
        threading.Thread(target=self._run, name="driftstone-job-retries", daemon=True).start()

    def schedule(self, job: JobRequest, attempt: int, delay: float) -> None:
        with self._changed:
            if job.job_id in self._waiting_ids:
                return
            self._waiting_ids.add(job.job_id)
            heapq.heappush(self._waiting, (time.monotonic() + delay, next(self._order), job, attempt))
            self._changed.notify_all()

    def waiting(self) -> bool:
        with self._changed:
            return bool(self._waiting)

    def wait_until_none_waits(self) -> bool:
        """Block until no retry waits; whether one did."""
        with self._changed:
            if not self._waiting:
                return False
            self._changed.wait_for(lambda: not self._waiting)
            return True

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._waiting or self._waiting[0][0] > time.monotonic():
                    self._changed.wait(self._waiting[0][0] - time.monotonic() if self._waiting else None)
                _, _, job, attempt = heapq.heappop(self._waiting)
                self._waiting_ids.discard(job.job_id)
                try:
                    self._put(job, attempt)  # queued before anyone sees it gone from here (join)
                except Exception:  # the job thread could not be started: this one goes, the others still wait
                    log.exception("job %s could not be queued again; it is given up", job.job_id)
                self._changed.notify_all()


JOB_TIMEOUT = 7 * 3600  # rq's default (180 s) killed every repack of a large repository; git's own limit is 6 h
FAILED_JOB_KEPT = 3600  # a failed job's id is taken until then: the same job asked again after that runs again


REDIS_TIMEOUT = 2  # seconds: past it, a job is run in this process instead of queued


class RedisQueue:
    def __init__(self, url: str, name: str):
        from redis import Redis
        from rq import Queue

        # a Redis that takes connections and never answers held every request that queues a job for redis-py's
        # default 5 s; rq raises the timeout of a worker's connection above its blocking dequeue
        self.connection = Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
        self.queue = Queue(name, connection=self.connection)
        self.fallback = InProcessQueue()
        self._id_prefix = re.sub(r"[^A-Za-z0-9_-]", "_", name) + "-"

    def rq_job_id(self, job_id: str) -> str:
        """The job's id in Redis, where rq keeps every job under rq:job:<id> whatever its queue: without the
        namespace, one queued by a server on another namespace (a test run that ended, another deployment on the
        same Redis) took the id, and this server's copy was dropped as a duplicate, never to run."""
        return self._id_prefix + job_id

    def join(self) -> None:
        self.fallback.join()

    def _drop_if_orphaned(self, job_id: str) -> bool:
        """Delete the job if it is marked started by a worker that is gone (killed: its key expires 90 s after its
        last heartbeat, see run_worker); such a job held its id, and kept the work it stands for from being asked
        again, for the whole JOB_TIMEOUT (7 h)."""
        from rq.exceptions import NoSuchJobError
        from rq.job import Job, JobStatus
        from rq.worker import Worker

        try:
            existing = Job.fetch(job_id, connection=self.connection)
        except NoSuchJobError:
            return True  # it ended meanwhile
        if existing.get_status(refresh=False) != JobStatus.STARTED:
            return False
        worker_key = Worker.redis_worker_namespace_prefix + (existing.worker_name or "")
        if existing.worker_name and Worker.find_by_key(worker_key, connection=self.connection) is not None:
            return False
        log.warning("job %s was left started by worker %s, which is gone: queued again", job_id,
                    existing.worker_name)
        existing.delete()
        return True

    def enqueue(self, job: JobRequest) -> None:
        """A job whose id is already waiting or running is not queued again (rq queues every copy otherwise:
        30 pushes with no worker running left 27 copies of one repository's housekeeping).

        With Redis unreachable the job runs here, in this process: the change that asked for it is committed,
        and nothing would ask again (a deleted repository's files stayed on disk for good)."""
        from redis.exceptions import ConnectionError as RedisDown
        from redis.exceptions import TimeoutError as RedisTimeout
        from rq import Retry
        from rq.exceptions import DuplicateJobError

        def enqueue_once() -> None:
            self.queue.enqueue(job.func, *job.args, job_id=self.rq_job_id(job.job_id), unique=True,
                               job_timeout=JOB_TIMEOUT,
                               result_ttl=0, failure_ttl=FAILED_JOB_KEPT,
                               retry=Retry(max=len(job.retry_delays), interval=list(job.retry_delays)))

        try:
            try:
                enqueue_once()
            except DuplicateJobError:
                if not self._drop_if_orphaned(self.rq_job_id(job.job_id)):
                    log.debug("job %s is already queued", job.job_id)
                    return
                enqueue_once()
        except DuplicateJobError:
            log.debug("job %s is already queued", job.job_id)
        except (RedisDown, RedisTimeout):
            log.warning("Redis is unreachable: job %s runs in this process", job.job_id)
            self.fallback.enqueue(job)


HEARTBEAT_SECONDS = 30  # rq's job_monitoring_interval: how often a worker running a job says it is alive
# rq's scheduler process (it moves retries that are due back to the queue) dies when Redis goes away, and rq
# starts it again only in its maintenance pass, every 10 minutes: every retry waited that long after Redis came
# back (a failure-injection sweep). The worker looks for a dead scheduler between two waits for a job (each
# worker_ttl - 15 s); the registries are cleaned at rq's interval still (sooner, a job whose heartbeat Redis's
# absence let expire is taken for abandoned and queued again while it runs)
WORKER_TTL_SECONDS = 60
PERIODIC_SECONDS = 600
_PR_SET_PDEATHSIG = 1


def _end_with_the_worker(worker_pid: int) -> None:
    """In a process forked from the worker (rq's scheduler): be sent SIGTERM when the worker dies, even by kill -9,
    which leaves the scheduler no other way to learn of it (it kept running, orphaned, for good). On SIGTERM the
    scheduler releases its lock and exits."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() != worker_pid:  # the worker died before the call
        os.kill(os.getpid(), signal.SIGTERM)


def run_worker(queue, connection, burst: bool = False, periodic: Callable[[], None] | None = None) -> None:
    """rq's work loop ends on any error it does not expect, Redis going away outside its wait for a job included
    (recording a job's end, the worker's state, its start-up): `driftstone worker` exited and no job ran after Redis
    came back (seen in CI). Until it is asked to stop, a new worker starts here once Redis answers again; one that
    fails again within a minute waits twice as long before the next (up to 30 s: Redis may answer a ping and refuse
    writes, read-only after a failover).

    `periodic` is called as each worker starts and every PERIODIC_SECONDS after (between two waits for a job)."""
    from redis.exceptions import RedisError

    worker_class = heartbeat_worker_class(periodic)
    worker_pid = os.getpid()
    os.register_at_fork(after_in_child=lambda: _end_with_the_worker(worker_pid))
    wait = 1.0
    while True:
        worker, started = None, time.monotonic()
        try:
            worker = worker_class([queue], connection=connection, job_monitoring_interval=HEARTBEAT_SECONDS,
                                  worker_ttl=WORKER_TTL_SECONDS)
            worker.work(burst=burst, with_scheduler=True)
        except RedisError as error:  # rq's start-up (before its loop and its teardown) has no handler of its own
            if burst:
                raise
            log.warning("Redis refused the worker's start-up: %s", error)
            if worker is not None:
                worker.teardown()  # what it started (its pubsub thread, a scheduler) ends with it
        if burst or (worker is not None and worker.stop_asked):
            return
        wait = 1.0 if time.monotonic() - started > 60 else min(wait * 2, _LONGEST_WAIT)
        log.warning("rq's worker loop ended on an error: a new worker starts once Redis answers")
        if not _wait_for_redis(connection, wait):
            return


_LONGEST_WAIT = 30.0


def _wait_for_redis(connection, wait: float) -> bool:
    """True once Redis answers a ping, tried after `wait` seconds and then less and less often; False when SIGTERM
    or SIGINT comes first. The default handlers are back when it returns: a signal before rq installs its own ends
    the process (no job runs yet), where one only noted here was lost, and a scheduler forked meanwhile kept it."""
    from redis.exceptions import ConnectionError as RedisDown
    from redis.exceptions import TimeoutError as RedisTimeout

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        while not stopping.wait(wait):
            try:
                connection.ping()
                return True
            except (RedisDown, RedisTimeout):
                wait = min(wait * 2, _LONGEST_WAIT)
        return False
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def heartbeat_worker_class(periodic: Callable[[], None] | None = None):
    """rq's SimpleWorker (jobs in this process, no fork per job) with a heartbeat while a job runs, and a stop
    that does not wait on its pubsub thread.

    SimpleWorker sends no heartbeat, so it keeps its key alive for the job's whole timeout (7 h): a worker killed
    with kill -9 mid-job looked alive that long, and its job held the id, so the repository's housekeeping was not
    asked for again for 7 h. Here the key lives 90 s past each heartbeat."""
    from rq import SimpleWorker
    from rq.worker import WorkerStatus

    class HeartbeatWorker(SimpleWorker):
        stop_asked = False
        periodic_due = 0.0

        def request_stop(self, signum, frame):
            self.stop_asked = True
            super().request_stop(signum, frame)

        def teardown(self) -> None:
            """rq's teardown records the worker's death in Redis, and with Redis away that error left work() and
            ended the process: each step is tried on its own here."""
            from redis.exceptions import RedisError

            if self.scheduler:
                self.stop_scheduler()
            for step in (self.register_death, self.unsubscribe):
                try:
                    step()
                except RedisError as error:
                    log.warning("worker %s could not %s: %s", self.name, step.__name__, error)

        def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
            return HEARTBEAT_SECONDS + 60

        def heartbeat(self, *args, **kwargs):
            """Between two waits for a job (and Redis's reconnects): a scheduler that died is started again, unless
            the worker is stopping (a SIGTERM during a job stops the scheduler at once: started again after the
            job, the new one was still starting when the stop came to it, and the worker waited on it for good)."""
            super().heartbeat(*args, **kwargs)
            scheduler = self.scheduler
            if (scheduler is not None and self.last_cleaned_at is not None and not self.stop_asked
                    and threading.current_thread() is threading.main_thread()
                    and not (scheduler._process and scheduler._process.is_alive())):
                try:
                    scheduler.acquire_locks(auto_start=True)
                except Exception:  # the next heartbeat tries again: the worker must not quit over its scheduler
                    log.warning("could not start rq's scheduler again", exc_info=True)
            if (periodic is not None and threading.current_thread() is threading.main_thread()
                    and time.monotonic() >= self.periodic_due):
                self.periodic_due = time.monotonic() + PERIODIC_SECONDS
                try:
                    periodic()
                except Exception:  # asked again next time: the worker must not quit over it
                    log.warning("the worker's periodic ask failed", exc_info=True)

        def execute_job(self, job, queue):
            execution = self.prepare_execution(job)
            done = threading.Event()

            def beat() -> None:
                while not done.wait(HEARTBEAT_SECONDS):
                    try:
                        self.maintain_heartbeats(job, execution)
                    except Exception:
                        log.warning("heartbeat for job %s failed", job.id, exc_info=True)

            beating = threading.Thread(target=beat, name="rq-heartbeat", daemon=True)
            beating.start()
            try:
                self.perform_job(job, queue, execution)
            finally:
                done.set()
                beating.join()
            self.set_state(WorkerStatus.IDLE)

        def unsubscribe(self) -> None:
            """rq's waits for its pubsub thread without a limit (redis-py 8's stop() joins it), and a thread that
            has read the unsubscribe reply waits up to 60 s to be subscribed again: a worker sent SIGTERM took that
            long to end. The thread is told to stop before the unsubscribe, and is given a second."""
            thread = self.pubsub_thread
            if not thread:
                return
            try:
                thread.stop(timeout=0)
            except TypeError:  # redis-py before 8: stop() only lowers the flag
                thread.stop()
            self.pubsub.unsubscribe()
            thread.join(timeout=1)
            if not thread.is_alive():  # one still waiting closes the connection itself as it ends, or dies with us
                self.pubsub.close()

    return HeartbeatWorker
