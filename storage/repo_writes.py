"""One writer at a time for a repository's rows (or a workspace's), across processes and on both databases."""
from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from .models import Repository, Workspace


def serialize_repository_writes(session: Session, repo_id: str) -> None:
    """Make this transaction the repository's only writer of its rows until it commits: a check followed by an
    insert (one lock per path, one active workspace per name), or a branch row set from the ref's value read
    now, then sees everything a concurrent request wrote before it. A no-op UPDATE of the repository's row: a
    row lock on PostgreSQL, the write lock on SQLite (pysqlite begins the transaction at the first write, so
    what follows reads the latest data). Call it before the check or the read."""
    session.execute(update(Repository).where(Repository.id == repo_id)  # updated_at named: its onupdate would fire
                    .values(default_branch=Repository.default_branch, updated_at=Repository.updated_at)
                    .execution_options(synchronize_session=False))
    session.info[HOLDS_A_REPOSITORY_TURN] = True


HOLDS_A_REPOSITORY_TURN = "holds_a_repository_turn"  # in session.info: other writers wait on this transaction


def serialize_workspace_writes(session: Session, workspace_id: str) -> None:
    """The same for one workspace: its writers (commits, deletes, locks) take turns from here until they commit.
    `SELECT ... FOR UPDATE` would lock the row on PostgreSQL only; SQLite ignores it, and two commits of one
    workspace then moved its ref in one order and wrote its row in the other. Lock the workspace before its
    repository (`serialize_repository_writes`): every writer takes them in that order."""
    session.execute(update(Workspace).where(Workspace.id == workspace_id)
                    .values(status=Workspace.status, updated_at=Workspace.updated_at)
                    .execution_options(synchronize_session=False))
