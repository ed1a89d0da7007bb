"""Shared pieces of the dojo routes: owner/name resolution and the workspace object."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from control.services import repos as repo_service
from control.services.naming import folded_slug
from storage.errors import NotFound
from storage.models import Organization
from storage.times import as_utc

PREFIX = "/api/repos/<owner>/<name>"


class DojoModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkspaceOut(DojoModel):
    id: str
    name: str
    base_commit: str | None
    current_commit: str | None
    agent_name: str | None
    status: str
    created_at: datetime
    updated_at: datetime


def workspace_out(row) -> WorkspaceOut:
    return WorkspaceOut(id=row.id, name=row.name, base_commit=row.base_commit, current_commit=row.current_commit,
                        agent_name=row.agent_name, status=row.status, created_at=as_utc(row.created_at),
                        updated_at=as_utc(row.updated_at))


def owned_repo(call, owner: str, name: str):
    """owner is the organization slug; another organization's repository is simply not found."""
    org_slug = call.session.scalar(select(Organization.slug).where(Organization.id == call.org_id))
    if folded_slug(owner) != org_slug:
        raise NotFound(f"repository {owner}/{name} not found")
    return repo_service.visible_repo(call.session, call.principal, name)
