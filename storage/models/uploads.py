from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


LIVE = "retired_at IS NULL"  # an upload whose branch was not deleted since it was asked for
RETIRED = "retired_at IS NOT NULL"  # what a purge has still to remove


class Upload(Base):
    """A signed-URL upload of one version (identifier) of a branch; completing it writes one commit.

    Retired when its branch is deleted: it is gone for every request from then on, its identifier free for the
    branch made again under that name, and a job removes its stored files, then its rows."""

    __tablename__ = "uploads"
    __table_args__ = (Index("uq_uploads_live_identifier", "repo_id", "branch", "identifier", unique=True,
                            sqlite_where=text(LIVE), postgresql_where=text(LIVE)),
                      Index("ix_uploads_retired", "repo_id", sqlite_where=text(RETIRED), postgresql_where=text(RETIRED)))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    repo_id: Mapped[str] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), index=True)
    branch: Mapped[str] = mapped_column(String(255))
    identifier: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | completed
    commit_sha: Mapped[str | None] = mapped_column(String(64), default=None)
    # the branch head when the URLs were (last) issued, zeros for none; completion refuses a branch moved since
    base_commit: Mapped[str | None] = mapped_column(String(64), default=None)
    created_by_key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    expires_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    retired_at: Mapped[datetime | None] = mapped_column(default=None)


class UploadFile(Base):
    __tablename__ = "upload_files"
    __table_args__ = (UniqueConstraint("upload_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(Text)
    expected_sha256: Mapped[str] = mapped_column(String(64))
    storage_path: Mapped[str] = mapped_column(Text)
    received_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    received_at: Mapped[datetime | None] = mapped_column(default=None)


class CommitMeta(Base):
    """What git does not know about a commit: how it was made, by which key, from which upload, its intent."""

    __tablename__ = "commit_meta"
    __table_args__ = (UniqueConstraint("repo_id", "sha"), Index("ix_commit_meta_repo_created", "repo_id", "created_at"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    repo_id: Mapped[str] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    sha: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # push | upload | api | merge | workspace
    upload_identifier: Mapped[str | None] = mapped_column(String(200), default=None)
    intent: Mapped[dict | None] = mapped_column(default=None)
    actor_key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
