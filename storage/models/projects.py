"""The Project view of a repository (agirunner's "workspace", seed 002): its versioned spec and reference files."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class ProjectSpec(Base):
    """One version of a repository's spec; the repository's `current_spec_version` names the newest."""

    __tablename__ = "project_specs"
    __table_args__ = (UniqueConstraint("repo_id", "version"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    repo_id: Mapped[str] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column()
    spec: Mapped[dict] = mapped_column(default=dict)
    created_by_type: Mapped[str | None] = mapped_column(String(16), default=None)  # the key's scope
    created_by_id: Mapped[str | None] = mapped_column(String(40), default=None)  # the key's prefix
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProjectFile(Base):
    """A reference file an operator gave the project; its bytes are in the blob store at `storage_path`."""

    __tablename__ = "project_files"
    __table_args__ = (Index("ix_project_files_repo_created", "repo_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    repo_id: Mapped[str] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(120))
    file_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    content_type: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_path: Mapped[str] = mapped_column(Text)
    created_by_key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Artifact(Base):
    """A file an agent run left as evidence (in its DRIFTSTONE_ARTIFACTS_DIR); its bytes are in the blob store."""

    __tablename__ = "artifacts"
    __table_args__ = (Index("ix_artifacts_repo_created", "repo_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    repo_id: Mapped[str] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    run_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    logical_path: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_path: Mapped[str] = mapped_column(Text)
    details: Mapped[dict] = mapped_column(default=dict)  # agirunner's `metadata`
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
