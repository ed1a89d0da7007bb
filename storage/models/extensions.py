"""Extensions (seed 001): an organization's stored agent prompts, and their runs as background jobs."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class Extension(Base):
    __tablename__ = "extensions"
    # "Driftstone rejects duplicate prompts within the same organization": prompts compared by their SHA-256
    __table_args__ = (UniqueConstraint("org_id", "prompt_digest"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(16))  # agent
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    prompt: Mapped[str] = mapped_column(Text)
    prompt_digest: Mapped[str] = mapped_column(String(64))
    presets: Mapped[list] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | disabled
    created_by_key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ExtensionRun(Base):
    """One run of an extension on a repository's branch. It outlives its extension (its result stays pollable);
    `claimed_by` and `heartbeat_at` let one job at a time run it, and another take it up when that one died."""

    __tablename__ = "extension_runs"
    __table_args__ = (Index("ix_extension_runs_status", "status", "heartbeat_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    extension_id: Mapped[str] = mapped_column(String(40), index=True)
    name: Mapped[str | None] = mapped_column(String(200), default=None)  # a planning workflow's
    repo_id: Mapped[str] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text)  # as the caller gave it
    branch: Mapped[str] = mapped_column(Text)
    base_commit: Mapped[str | None] = mapped_column(String(64), default=None)  # None: the branch had no commit
    prompt: Mapped[str] = mapped_column(Text)  # the extension's prompt with the run's own instructions appended
    presets: Mapped[list] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | running | completed | failed
    result: Mapped[dict | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by_key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
