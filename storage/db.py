"""Engine and session handling. The caller owns the transaction: `with db.session() as s: ...` commits on exit."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import create_engine, event, func, inspect, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from .errors import ChangeLeftApplied

log = logging.getLogger(__name__)


POOL_SIZE, MAX_OVERFLOW = 10, 40  # PostgreSQL connections per process: kept open, opened beyond those while busy


def make_engine(url: str, pool_size: int = POOL_SIZE, max_overflow: int = MAX_OVERFLOW) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)


def insert_unless_present(session: Session, model, keys: tuple[str, ...], where=None, **values) -> None:
    """Insert a row unless one with the same `keys` (a unique constraint, or a partial unique index and its
    `where`) exists, also one a concurrent transaction has just inserted: that insert waits for it and then does
    nothing, where a check and an insert would fail the transaction."""
    session.execute(dialect_insert(session)(model).values(**values).on_conflict_do_nothing(index_elements=list(keys),
                                                                         index_where=where))


def dialect_insert(session: Session):
    """The INSERT construct of the session's database, which has ON CONFLICT clauses."""
    return sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert


def in_chunks(values: list, size: int = 500) -> list[list]:
    """`values` cut into lists short enough for one `IN (...)` each (SQLite's bound parameters are limited)."""
    return [values[start:start + size] for start in range(0, len(values), size)]


def on_rollback(session: Session, undo) -> None:
    """Run `undo` if this session's transaction does not commit: a change made outside the database (a ref moved
    by compare-and-swap) is taken back when the request that made it fails."""
    session.info.setdefault("undo_on_rollback", []).append(undo)


def after_end(session: Session, action) -> None:
    """Run `action` once this session's transaction has ended, committed or rolled back (after its undos)."""
    session.info.setdefault("after_end", []).append(action)


def _undo(actions, cause: BaseException) -> None:
    """Run every undo; if one fails, its change stands and the request must not be answered "nothing changed"
    (an interrupt, or gunicorn's exit of a stuck worker, goes on as it was)."""
    failure = None
    for undo in reversed(actions):
        try:
            undo()
        except Exception as error:
            log.error("could not undo a change of a transaction that failed (%r)", cause, exc_info=True)
            failure = failure or error
    if failure is not None and isinstance(cause, Exception):
        raise ChangeLeftApplied("a change of a failed request could not be taken back") from failure


class Database:
    def __init__(self, url: str, jobs=None, pool_size: int = POOL_SIZE, max_overflow: int = MAX_OVERFLOW):
        self.url = url
        self.engine = make_engine(url, pool_size, max_overflow)
        self.jobs = jobs  # a storage.jobs.JobQueue; deferred jobs are enqueued after commit
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self, lock_wait: float | None = None) -> Iterator[Session]:
        """A session committed at the end, rolled back on any error. `lock_wait`: seconds any statement of it may
        wait for a lock on PostgreSQL before it fails with an OperationalError (SQLite has its busy timeout)."""
        session = self._sessions()
        try:
            if lock_wait is not None and self.engine.dialect.name == "postgresql":
                session.execute(select(func.set_config("lock_timeout", f"{max(1, round(lock_wait * 1000))}ms", True)))
            yield session
            session.commit()
        except BaseException as error:
            session.rollback()
            _undo(session.info.pop("undo_on_rollback", []), error)
            raise
        finally:
            deferred = session.info.pop("deferred_jobs", [])
            ended = session.info.pop("after_end", [])
            session.close()
            for action in ended:
                try:
                    action()
                except Exception:
                    log.exception("an action after a transaction's end failed")
        if self.jobs is not None:
            for job in deferred:
                try:
                    self.jobs.enqueue(job)
                except Exception:  # the change is committed; a lost cleanup job must not fail the request
                    log.exception("could not enqueue job %s", job.job_id)

    def connection(self) -> Connection:
        """A plain connection for reads on the hot path (no ORM session, no commit); use it with `with`."""
        return self.engine.connect()

    def has_schema(self) -> bool:
        """Whether the migrations have run on this database (raises when it cannot be reached)."""
        with self.engine.connect() as connection:
            return inspect(connection).has_table("alembic_version")

    def dispose(self) -> None:
        self.engine.dispose()

    def forget_connections(self) -> None:
        """After a fork: a fresh pool for this process, leaving the parent's connections open for the parent."""
        self.engine.dispose(close=False)
