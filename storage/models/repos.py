from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class Repository(Base):
    __tablename__ = "repositories"
    __table_args__ = (
        Index(
            "uq_repositories_live_slug",
            "org_id",
            "slug",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        # GET /v1/repos pages an organization's live repositories in creation order: no sort per call.
        Index(
            "ix_repositories_live_listing",
            "org_id",
            "created_at",
            "id",
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    default_branch: Mapped[str] = mapped_column(String(255), default="main")
    main_head_identifier: Mapped[str | None] = mapped_column(String(200), default=None)
    upstream_url: Mapped[str | None] = mapped_column(Text, default=None)
    # the token for upstream_url's server, sealed (storage/secret_box.py) with the origin it may be sent to
    upstream_credentials: Mapped[str | None] = mapped_column(Text, default=None)
    # the fingerprint of the sealed token upstream_url's server last refused (a token given since has another)
    upstream_credentials_refused: Mapped[str | None] = mapped_column(String(64), default=None)
    settings: Mapped[dict] = mapped_column(default=dict)
    # the Project view (agirunner's "workspace", seed 002): sticky memory, active flag, the spec's current version
    memory: Mapped[dict] = mapped_column(default=dict, server_default=text("'{}'"))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    current_spec_version: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class Branch(Base):
    """What the database knows of a branch. The git ref is the truth; head_sha is derived from it."""

    __tablename__ = "branches"
    __table_args__ = (UniqueConstraint("repo_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    repo_id: Mapped[str] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    head_sha: Mapped[str | None] = mapped_column(String(64), default=None)
    head_identifier: Mapped[str | None] = mapped_column(String(200), default=None)
    status: Mapped[str] = mapped_column(String(16), default="ready")
    base_branch: Mapped[str | None] = mapped_column(String(255), default=None)
    base_commit: Mapped[str | None] = mapped_column(String(64), default=None)
    display_name: Mapped[str | None] = mapped_column(String(200), default=None)  # hoody's "name" (seed 003)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BranchProtection(Base):
    """A protected branch pattern (hooks/branch_patterns, on the short branch name): no force push, no deletion;
    optionally, changes only through a stack's merge, and approving reviews before a stack merges into it."""

    __tablename__ = "branch_protections"
    __table_args__ = (UniqueConstraint("repo_id", "pattern"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    repo_id: Mapped[str] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), index=True)
    pattern: Mapped[str] = mapped_column(String(255))
    allow_force_push: Mapped[bool] = mapped_column(Boolean, default=False)
    allow_deletion: Mapped[bool] = mapped_column(Boolean, default=False)
    require_pull_request: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    required_approvals: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
