"""The Project view of a repository (agirunner's "workspaces", seed 002): a repository created, listed, read,
changed and deleted under its project names, its sticky memory, and what its agent runs (extension runs, the
view's "workflows") amount to. One entity: a project is a repository and keeps its git URL by its slug."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.errors import BadRequest, Conflict, NotFound
from storage.git_remote import shown
from storage.keys import Principal
from storage.models import ExtensionRun, Repository
from storage.repo_store import RepoStore
from storage.repo_writes import serialize_repository_writes

from . import remote_credentials
from .naming import checked_slug, folded_slug
from .repos import create_repo, delete_repo

MEMORY_MAX_BYTES = 1024 * 1024
STORAGE_TYPES = ("git_remote", "host_directory", "workspace_artifacts")
RETIRED_SETTINGS = ("model_override", "model_overrides")


@dataclass(frozen=True)
class RunCounts:
    active: int = 0
    completed: int = 0
    attention: int = 0
    total: int = 0
    last_activity_at: datetime | None = None


def project_prefix(org_id: str, repo_id: str) -> str:
    """Where a project's reference files and artifacts are kept in the blob store (purged with its repository)."""
    return f"organizations/{org_id}/projects/{repo_id}/"


def memory_size(memory: dict) -> int:
    return len(json.dumps(memory, separators=(",", ":"), ensure_ascii=False).encode())


def checked_repository_url(url: str | None, field: str = "repository_url") -> str | None:
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # a port out of range raises only when read
    except ValueError:  # "http://[" : a bracket that opens no IPv6 address
        parts = urlsplit("")
    # urlsplit drops tabs and newlines that git refuses: the URL kept would not be the one its token is bound to
    if parts.scheme not in ("http", "https", "ssh", "git") or not parts.netloc or _SPACE_OR_CONTROL.search(url):
        raise BadRequest(f"{field} must be an http(s), ssh or git URL", {field: shown(url)})
    if parts.password is not None or (parts.username is not None and parts.scheme in ("http", "https")):
        raise BadRequest(f"credentials do not belong in {field} (every key that reads the workspace sees it)",
                         {field: shown(url)})
    return url


_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def checked_settings(settings: dict) -> dict:
    for name in RETIRED_SETTINGS:
        if name in settings:
            raise BadRequest(f"settings.{name} is no longer supported", {"field": f"settings.{name}"})
    storage_type = settings.get("workspace_storage_type")
    if storage_type is not None and storage_type not in STORAGE_TYPES:
        raise BadRequest(f"settings.workspace_storage_type must be one of {', '.join(STORAGE_TYPES)}",
                         {"field": "settings.workspace_storage_type"})
    return {name: value for name, value in settings.items() if name != "credentials"}  # kept sealed, apart


def _checked_memory(memory: dict, key: str | None = None) -> dict:
    size = memory_size(memory)
    if size > MEMORY_MAX_BYTES:
        details = {"memory_size_bytes": size, "memory_max_bytes": MEMORY_MAX_BYTES}
        raise BadRequest("Workspace memory patch exceeds memory_max_bytes", {**details, **({"key": key} if key else {})})
    return memory


def create_project(session: Session, store: RepoStore, actor: Principal, name: str, slug: str,
                   description: str | None = None, repository_url: str | None = None, settings: dict | None = None,
                   memory: dict | None = None, secret_key: str = "") -> Repository:
    token = remote_credentials.token_change(settings)
    settings = checked_settings(settings or {})
    repository_url = checked_repository_url(repository_url)
    if token:
        remote_credentials.require_remote(repository_url)
    memory = _checked_memory(memory or {})
    repo = create_repo(session, store, actor.org_id, name, description, creator=actor, slug=slug)
    repo.upstream_url, repo.settings, repo.memory = repository_url, settings, memory
    if token:
        remote_credentials.keep(secret_key, repo, token)
    session.flush()
    return repo


def visible_project(session: Session, principal: Principal, project_id: str) -> Repository:
    """By id (or slug); another organization's, a deleted one, or one the key may not see is not found."""
    repo = session.get(Repository, project_id)
    if repo is None or repo.org_id != principal.org_id or repo.deleted_at is not None:
        repo = session.scalar(select(Repository).where(
            Repository.org_id == principal.org_id, Repository.slug == folded_slug(project_id),
            Repository.deleted_at.is_(None)))
    if repo is None or not principal.can_see_repo(repo.id):
        raise NotFound("Workspace not found")
    return repo


def list_projects(session: Session, principal: Principal, q: str | None, is_active: bool | None, page: int,
                  per_page: int) -> tuple[list[Repository], int]:
    """Newest first."""
    where = [Repository.org_id == principal.org_id, Repository.deleted_at.is_(None)]
    if principal.repo_ids is not None:
        where.append(Repository.id.in_(principal.repo_ids))
    if q:
        needle = q.lower()
        where.append(or_(func.lower(Repository.name).contains(needle, autoescape=True),
                         Repository.slug.contains(needle, autoescape=True)))
    if is_active is not None:
        where.append(Repository.is_active.is_(is_active))
    total = session.scalar(select(func.count()).select_from(Repository).where(*where))
    rows = list(session.scalars(select(Repository).where(*where)
                                .order_by(Repository.created_at.desc(), Repository.id.desc())
                                .offset((page - 1) * per_page).limit(per_page)))
    return rows, total


def run_counts(session: Session, repo_ids: list[str]) -> dict[str, RunCounts]:
    rows = session.execute(
        select(ExtensionRun.repo_id, ExtensionRun.status, func.count(),
               func.max(func.coalesce(ExtensionRun.finished_at, ExtensionRun.started_at, ExtensionRun.created_at)))
        .where(ExtensionRun.repo_id.in_(repo_ids)).group_by(ExtensionRun.repo_id, ExtensionRun.status)).all()
    found: dict[str, dict] = {}
    for repo_id, status, count, last in rows:
        counts = found.setdefault(repo_id, {"active": 0, "completed": 0, "attention": 0, "total": 0, "last": None})
        key = {"queued": "active", "running": "active", "completed": "completed", "failed": "attention"}[status]
        counts[key] += count
        counts["total"] += count
        counts["last"] = last if counts["last"] is None or (last and last > counts["last"]) else counts["last"]
    return {repo_id: RunCounts(c["active"], c["completed"], c["attention"], c["total"], c["last"])
            for repo_id, c in found.items()}


def _fresh(session: Session, repo: Repository) -> Repository:
    """The row as the last committed writer left it, this transaction its only writer until it ends: a read,
    change and write of its JSON (memory, settings) by two requests at once lost one of them."""
    serialize_repository_writes(session, repo.id)
    session.refresh(repo)
    return repo


def patch_project(session: Session, repo: Repository, changes: dict, secret_key: str = "") -> Repository:
    """`changes`: any of name, slug, description, repository_url, settings (merged into the stored ones; their
    credentials kept sealed), is_active."""
    repo = _fresh(session, repo)
    token = remote_credentials.token_change(changes.get("settings"))
    if "slug" in changes and changes["slug"] != repo.slug:
        slug = checked_slug(changes["slug"], "repository")
        clash = session.scalar(select(Repository.id).where(Repository.org_id == repo.org_id, Repository.slug == slug,
                                                           Repository.deleted_at.is_(None)))
        if clash is not None:
            raise Conflict("Workspace slug already exists", {"slug": slug})
        repo.slug = slug
    if "repository_url" in changes:
        previous, repo.upstream_url = repo.upstream_url, checked_repository_url(changes["repository_url"])
        remote_credentials.follow_url(repo, previous)
    if token is not None:
        remote_credentials.keep(secret_key, repo, token or None)
    if "settings" in changes:
        repo.settings = {**(repo.settings or {}), **checked_settings(changes["settings"])}
    for name in ("name", "description", "is_active"):
        if name in changes:
            setattr(repo, name, changes[name])
    try:
        session.flush()
    except IntegrityError:  # the same slug taken by another rename at the same moment
        raise Conflict("Workspace slug already exists", {"slug": changes.get("slug")}) from None
    return repo


def set_memory(session: Session, repo: Repository, key: str, value) -> Repository:
    repo = _fresh(session, repo)
    repo.memory = _checked_memory({**(repo.memory or {}), key: value}, key)
    session.flush()
    return repo


def delete_memory(session: Session, repo: Repository, key: str) -> Repository:
    repo = _fresh(session, repo)
    if key in (repo.memory or {}):
        repo.memory = {name: value for name, value in repo.memory.items() if name != key}
        session.flush()
    return repo


def delete_project(session: Session, repo: Repository, now: datetime, cascade: bool = False) -> None:
    """Refused while agent runs of it are queued or running, unless `cascade`: they then fail at once (their
    jobs stop the agents), and the repository goes."""
    active = session.scalar(select(func.count()).select_from(ExtensionRun).where(
        ExtensionRun.repo_id == repo.id, ExtensionRun.status.in_(("queued", "running"))))
    if active and not cascade:
        raise Conflict("Workspace cannot be deleted while workflows or tasks reference it",
                       {"active_workflow_count": active})
    session.execute(update(ExtensionRun).where(  # their jobs see the claim gone, stop their agents, store nothing
        ExtensionRun.repo_id == repo.id, ExtensionRun.status.in_(("queued", "running")))
        .values(status="failed", error="the workspace was deleted", claimed_by=None, finished_at=now)
        .execution_options(synchronize_session=False))
    delete_repo(session, repo, now)
