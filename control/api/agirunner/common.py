"""Shared pieces of the agirunner routes: the route helper, the project object, pagination as agirunner reads it."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from control.services import projects, remote_credentials
from storage.errors import BadRequest
from storage.times import as_utc

from ..endpoint import endpoint

TAG = "agirunner"
WS = "/api/v1/workspaces/<workspace_id>"
DEFAULT_PER_PAGE, MAX_PER_PAGE = 20, 100


class AgirunnerModel(BaseModel):
    # agirunner's schemas strip keys they do not name; slugs' rules need look-aheads (Python's re has them)
    model_config = ConfigDict(extra="ignore", regex_engine="python-re")


def route(bp, method: str, path: str, **kwargs):
    return endpoint(bp, method, path, tag=TAG, envelope="data", **kwargs)


class Credentials(AgirunnerModel):
    git_token: str | None
    git_token_configured: bool


class ProjectOut(AgirunnerModel):
    id: str
    tenant_id: str
    name: str
    slug: str
    description: str | None
    repository_url: str | None
    memory: dict[str, Any]
    memory_size_bytes: int
    memory_max_bytes: int
    settings: dict[str, Any]
    is_active: bool
    current_spec_version: int
    git_webhook_provider: str | None
    git_webhook_secret_configured: bool
    clone_url: str
    default_branch: str
    created_at: datetime
    updated_at: datetime


def project_out(call, repo) -> ProjectOut:
    from ..driftstone.repos import org_slug

    kept = remote_credentials.configured(repo)
    settings = {**(repo.settings or {}), "credentials": Credentials(
        git_token=remote_credentials.REDACTED if kept else None, git_token_configured=kept)}
    memory = repo.memory or {}
    return ProjectOut(id=repo.id, tenant_id=repo.org_id, name=repo.name, slug=repo.slug, description=repo.description,
                      repository_url=repo.upstream_url, memory=memory, memory_size_bytes=projects.memory_size(memory),
                      memory_max_bytes=projects.MEMORY_MAX_BYTES, settings=settings, is_active=repo.is_active,
                      current_spec_version=repo.current_spec_version, git_webhook_provider=None,
                      git_webhook_secret_configured=False,
                      clone_url=f"{call.base_url()}/{org_slug(call)}/{repo.slug}.git",
                      default_branch=repo.default_branch, created_at=as_utc(repo.created_at),
                      updated_at=as_utc(repo.updated_at or repo.created_at))


def page_numbers(page: str | None, per_page: str | None) -> tuple[int, int]:
    """As agirunner reads them: whole numbers (default 1 and 20), at least 1, per_page at most 100; else a 400.
    ASCII digits only ("1_0", a full-width "１", "inf" are not numbers here)."""
    numbers = []
    for value, default in ((page, 1), (per_page, DEFAULT_PER_PAGE)):
        if value in (None, ""):
            numbers.append(default)
        elif value.isascii() and value.isdigit() and len(value) <= 7:
            numbers.append(int(value))
        else:
            numbers.append(0)
    if numbers[0] < 1 or not 1 <= numbers[1] <= MAX_PER_PAGE:
        raise BadRequest("Invalid pagination values", {"page": page, "per_page": per_page})
    return numbers[0], numbers[1]


def list_meta(total: int, page: int, per_page: int) -> dict:
    return {"total": total, "page": page, "per_page": per_page, "pages": max(1, -(-total // per_page))}
