from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class Event(Base):
    """Append-only record of who did what to which entity (pushes, API ref changes, ...)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_repo_created", "repo_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    repo_id: Mapped[str | None] = mapped_column(String(40), default=None)
    actor_key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
