"""Artifacts: the files an agent run leaves as evidence (in its DRIFTSTONE_ARTIFACTS_DIR), kept in the blob store
with the run that made them, and agirunner's explorer over a project's artifacts (seed 002)."""
from __future__ import annotations

import hashlib
import mimetypes
import os
import stat
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from storage.blobs import BlobStore
from storage.errors import BadRequest, NotFound
from storage.ids import new_id
from storage.keys import Principal
from storage.models import Artifact, Extension, ExtensionRun, Repository
from storage.times import as_utc

from .project_timeline import WORKFLOW_STATES
from .projects import project_prefix

MAX_ARTIFACTS = 100  # per run
MAX_TOTAL_BYTES = 64 * 1024 * 1024  # per run
PREVIEW_MAX_BYTES = 1024 * 1024
TEXT_TYPES = ("text/plain", "text/markdown", "text/csv", "application/json", "application/ld+json",
              "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
EXTRA_TYPES = {".md": "text/markdown", ".markdown": "text/markdown", ".yaml": "application/yaml",
               ".yml": "application/yaml", ".csv": "text/csv", ".json": "application/json", ".log": "text/plain"}


def content_type_of(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    return EXTRA_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def preview_mode(content_type: str, size: int) -> str:
    if size > PREVIEW_MAX_BYTES:
        return "unsupported"
    if content_type in TEXT_TYPES:
        return "text"
    if content_type.startswith("image/"):
        return "image"
    return "pdf" if content_type == "application/pdf" else "unsupported"


@dataclass
class Collected:
    rows: list[Artifact] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)


def collect(blobs: BlobStore, org_id: str, repo_id: str, run_id: str, directory: Path, max_file: int) -> Collected:
    """Store the regular files under `directory` (symlinks and the like are reported, never followed); the rows
    are returned for the caller's transaction, the bytes are written first."""
    found = Collected()
    if not directory.is_dir():
        return found
    total = 0
    for top, dirs, files, top_fd in os.fwalk(directory, follow_symlinks=False):
        relative = os.path.relpath(top, directory)
        prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
        dirs.sort()
        for name in sorted(files):
            path = prefix + name
            try:
                path.encode("utf-8")
            except UnicodeEncodeError:
                found.skipped.append({"path": path.encode("utf-8", "replace").decode(), "reason": "a name that is not UTF-8"})
                continue
            info = os.lstat(name, dir_fd=top_fd)
            reason = None
            if not stat.S_ISREG(info.st_mode):
                reason = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a regular file"
            elif len(found.rows) >= MAX_ARTIFACTS:
                reason = f"past the {MAX_ARTIFACTS} artifacts a run keeps"
            elif info.st_size > max_file or total + info.st_size > MAX_TOTAL_BYTES:
                reason = f"past the size limit ({max_file} bytes a file, {MAX_TOTAL_BYTES} for a run)"
            if reason:
                found.skipped.append({"path": path, "reason": reason})
                continue
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=top_fd)
            with os.fdopen(fd, "rb") as handle:
                content = handle.read(max_file + 1)[:max_file]
            total += len(content)
            row = Artifact(id=new_id("art"), repo_id=repo_id, run_id=run_id, logical_path=path,
                           content_type=content_type_of(path), size_bytes=len(content),
                           sha256=hashlib.sha256(content).hexdigest(), storage_path="", details={})
            row.storage_path = f"{project_prefix(org_id, repo_id)}artifacts/{row.id}"
            with blobs.open_write(row.storage_path) as out:
                out.write(content)
            found.rows.append(row)
    return found


def forget_run_artifacts(session: Session, blobs: BlobStore, run_id: str) -> None:
    """An earlier try's artifacts, before a run's next try leaves its own."""
    for row in session.scalars(select(Artifact).where(Artifact.run_id == run_id)).all():
        blobs.delete(row.storage_path)
        session.delete(row)
    session.flush()


@dataclass(frozen=True)
class ExplorerQuery:
    q: str | None = None
    workflow_id: str | None = None
    task_id: str | None = None
    role: str | None = None
    content_type: str | None = None
    preview_mode: str | None = None
    created_from: date | None = None
    created_to: date | None = None
    sort: str = "newest"
    page: int = 1
    per_page: int = 20
    no_matches: bool = False  # a filter on what Driftstone has none of (work items, stages): nothing matches


def explore(session: Session, repo: Repository, query: ExplorerQuery) -> tuple[list[dict], dict]:
    """One page of a project's artifacts and agirunner's `meta` for it (totals, summary, filter choices)."""
    if query.created_from and query.created_to and query.created_from > query.created_to:
        raise BadRequest("created_from must be on or before created_to")
    joined = (select(Artifact, ExtensionRun, Extension.name)
              .join(ExtensionRun, ExtensionRun.id == Artifact.run_id, isouter=True)
              .join(Extension, Extension.id == ExtensionRun.extension_id, isouter=True)
              .where(Artifact.repo_id == repo.id))
    where = _filters(query)
    rows = session.execute(joined.where(*where)).all()
    rows = [row for row in rows if query.preview_mode is None
            or (preview_mode(row[0].content_type, row[0].size_bytes) != "unsupported") == (query.preview_mode == "inline")]
    rows.sort(key=_sort_key(query.sort))
    total = len(rows)
    total_pages = max(1, -(-total // query.per_page))
    page = rows[(query.page - 1) * query.per_page: query.page * query.per_page]
    items = [_item(artifact, run, name) for artifact, run, name in page]
    all_rows = session.execute(joined).all()
    meta = {"page": query.page, "per_page": query.per_page, "total": total, "total_pages": total_pages,
            "has_more": query.page < total_pages, "summary": _summary(rows), "filters": _choices(all_rows)}
    return items, meta


def _filters(query: ExplorerQuery) -> list:
    where = []
    if query.no_matches:
        where.append(Artifact.id.is_(None))
    if query.workflow_id:
        where.append(Artifact.run_id == query.workflow_id)
    if query.task_id:
        where.append(Artifact.run_id == query.task_id)
    if query.role:
        where.append(Extension.name == query.role)
    if query.content_type:
        where.append(Artifact.content_type == query.content_type)
    if query.created_from:
        where.append(Artifact.created_at >= _midnight(query.created_from))
    if query.created_to:
        where.append(Artifact.created_at < _midnight(query.created_to + timedelta(days=1)))
    if query.q:
        needle = query.q.lower()
        where.append(or_(func.lower(Artifact.logical_path).contains(needle, autoescape=True),
                         func.lower(Artifact.content_type).contains(needle, autoescape=True),
                         func.lower(func.coalesce(Extension.name, "")).contains(needle, autoescape=True)))
    return where


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def _sort_key(sort: str):
    if sort == "name":
        return lambda row: (row[0].logical_path.rsplit("/", 1)[-1], row[0].id)
    if sort in ("largest", "smallest"):
        sign = -1 if sort == "largest" else 1
        return lambda row: (sign * row[0].size_bytes, -_stamp(row[0].created_at))
    sign = -1 if sort == "newest" else 1
    return lambda row: (sign * _stamp(row[0].created_at), row[0].id)


def _stamp(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


def _item(artifact: Artifact, run: ExtensionRun | None, extension_name: str | None) -> dict:
    mode = preview_mode(artifact.content_type, artifact.size_bytes)
    run_id = artifact.run_id or ""
    title = (run.name if run else None) or extension_name or run_id
    return {"id": artifact.id, "workflow_id": artifact.run_id, "task_id": run_id, "logical_path": artifact.logical_path,
            "content_type": artifact.content_type, "size_bytes": artifact.size_bytes,
            "created_at": as_utc(artifact.created_at),
            "download_url": f"/api/v1/tasks/{run_id}/artifacts/{artifact.id}", "metadata": artifact.details or {},
            "workflow_name": title or "Unscoped workflow",
            "workflow_state": WORKFLOW_STATES.get(run.status) if run else None,
            "work_item_id": None, "work_item_title": None, "stage_name": None, "role": extension_name,
            "task_title": title or run_id, "task_state": WORKFLOW_STATES.get(run.status, "unknown") if run else "unknown",
            "preview_eligible": mode != "unsupported", "preview_mode": mode}


def _summary(rows) -> dict:
    artifacts = [row[0] for row in rows]
    runs = {artifact.run_id for artifact in artifacts if artifact.run_id}
    return {"total_artifacts": len(artifacts),
            "previewable_artifacts": sum(preview_mode(a.content_type, a.size_bytes) != "unsupported" for a in artifacts),
            "total_bytes": sum(a.size_bytes for a in artifacts), "workflow_count": len(runs), "work_item_count": 0,
            "task_count": len(runs), "role_count": len({row[2] for row in rows if row[2]})}


def _choices(rows) -> dict:
    runs = {}
    for artifact, run, name in rows:
        if artifact.run_id:
            runs[artifact.run_id] = name or artifact.run_id
    workflows = [{"id": run_id, "name": name} for run_id, name in sorted(runs.items())][:100]
    return {"workflows": workflows, "work_items": [],
            "tasks": [{"id": w["id"], "title": w["name"], "workflow_id": w["id"], "work_item_id": None,
                       "stage_name": None} for w in workflows],
            "stages": [], "roles": sorted({row[2] for row in rows if row[2]})[:100],
            "content_types": sorted({row[0].content_type for row in rows})[:100]}


def artifact_of_run(session: Session, principal: Principal, run_id: str, artifact_id: str) -> Artifact:
    row = session.get(Artifact, artifact_id)
    repo = session.get(Repository, row.repo_id) if row is not None else None
    if (row is None or row.run_id != run_id or repo is None or repo.org_id != principal.org_id
            or repo.deleted_at is not None or not principal.can_see_repo(repo.id)):
        raise NotFound("Artifact not found")
    return row
