"""Agent collaboration: overlay workspaces, path locks, stacks and their reviews."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class Workspace(Base):
    """A per-agent overlay on a base commit; commits advance `current_commit` (kept reachable by a hidden ref)."""

    __tablename__ = "workspaces"
    __table_args__ = (Index("ix_workspaces_repo_status", "repo_id", "status"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    repo_id: Mapped[str] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    agent_name: Mapped[str | None] = mapped_column(String(200), default=None)
    base_commit: Mapped[str | None] = mapped_column(String(64), default=None)
    current_commit: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | deleted
    created_by_key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WorkspaceFile(Base):
    """One overlay entry: a blob in the repository's object store, or a delete marker (blob_sha None)."""

    __tablename__ = "workspace_files"
    __table_args__ = (UniqueConstraint("workspace_id", "path"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text)
    blob_sha: Mapped[str | None] = mapped_column(String(64), default=None)
    mode: Mapped[int] = mapped_column(default=0o100644)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PathLock(Base):
    __tablename__ = "path_locks"
    __table_args__ = (Index("ix_path_locks_repo_active", "repo_id", "released_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    repo_id: Mapped[str] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    patterns: Mapped[list] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(default=None)
    released_by_key_id: Mapped[str | None] = mapped_column(String(40), default=None)


class Stack(Base):
    """A workspace's commit chain submitted for review on a bookmark branch."""

    __tablename__ = "stacks"
    __table_args__ = (Index("ix_stacks_repo_status", "repo_id", "status"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    repo_id: Mapped[str] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    workspace_id: Mapped[str | None] = mapped_column(String(40), default=None)
    parent_stack_id: Mapped[str | None] = mapped_column(String(40), default=None)
    title: Mapped[str] = mapped_column(Text)
    bookmark: Mapped[str] = mapped_column(String(255))
    base_branch: Mapped[str] = mapped_column(String(255))
    base_commit: Mapped[str | None] = mapped_column(String(64), default=None)  # none in a repository without commits
    head_commit: Mapped[str] = mapped_column(String(64))
    commits: Mapped[list] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | merged | closed
    merged_sha: Mapped[str | None] = mapped_column(String(64), default=None)
    created_by_key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StackReview(Base):
    __tablename__ = "stack_reviews"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    stack_id: Mapped[str] = mapped_column(ForeignKey("stacks.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(24))  # approve | request_changes | comment
    body: Mapped[str | None] = mapped_column(Text, default=None)
    reviewer_key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    reviewer_name: Mapped[str | None] = mapped_column(String(200), default=None)
    head_commit: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dismissed_at: Mapped[datetime | None] = mapped_column(default=None)  # GitHub's dismissal: it counts no more
    dismissed_by_key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    dismissal_message: Mapped[str | None] = mapped_column(Text, default=None)
