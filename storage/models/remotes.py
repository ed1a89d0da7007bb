from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class Remote(Base):
    """A named remote of a repository beside `origin` (its upstream_url): `upstream`, say. Its token is kept sealed
    with the repository it was given for (control/services/remote_credentials.py)."""

    __tablename__ = "remotes"
    __table_args__ = (UniqueConstraint("repo_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    repo_id: Mapped[str] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(Text)
    credentials: Mapped[str | None] = mapped_column(Text, default=None)
    credentials_refused: Mapped[str | None] = mapped_column(String(64), default=None)  # as Repository's
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
