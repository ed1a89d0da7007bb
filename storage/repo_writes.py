"""One writer at a time for a repository's rows, across processes and on both databases."""
from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from .models import Repository


def serialize_repository_writes(session: Session, repo_id: str) -> None:
    """Make this transaction the repository's only writer of its rows until it commits: a check followed by an
    insert (one lock per path, one active workspace per name), or a branch row set from the ref's value read
    now, then sees everything a concurrent request wrote before it. A no-op UPDATE of the repository's row: a
    row lock on PostgreSQL, the write lock on SQLite (pysqlite begins the transaction at the first write, so
    what follows reads the latest data). Call it before the check or the read."""
    session.execute(update(Repository).where(Repository.id == repo_id)
                    .values(default_branch=Repository.default_branch)
                    .execution_options(synchronize_session=False))
