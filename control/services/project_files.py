"""A project's reference files (seed 002): operator-provided files agents read, kept in the blob store.

The bytes are written before the row: a failed request leaves at most a blob no row names, which the
repository's purge removes with the rest of its project's files; a row never names missing bytes."""
from __future__ import annotations

import hashlib
import logging
import posixpath
import re
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.blobs import BlobStore
from storage.errors import BadRequest, Conflict, NotFound
from storage.ids import new_id
from storage.jobs import defer
from storage.keys import Principal
from storage.models import ProjectFile, Repository
from storage.repo_writes import serialize_repository_writes

from .projects import project_prefix

log = logging.getLogger(__name__)

MAX_FILES_PER_REQUEST = 10
MAX_FILE_BYTES = 10 * 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
ASCII_SPACE = " \t\n\r\f\v"  # what is trimmed from names and keys (as the document's patterns say)


@dataclass(frozen=True)
class NewFile:
    file_name: str
    content: bytes
    key: str | None = None
    description: str | None = None
    content_type: str | None = None


def files_prefix(repo: Repository) -> str:
    return f"{project_prefix(repo.org_id, repo.id)}files/"


def derived_key(file_name: str) -> str:
    key = re.sub(r"[^a-z0-9]+", "-", file_name.lower()).strip("-")
    return key[:120] or f"file-{uuid.uuid4().hex[:8]}"


def add_files(session: Session, blobs: BlobStore, repo: Repository, actor: Principal,
              files: list[NewFile]) -> list[ProjectFile]:
    if len(files) > MAX_FILES_PER_REQUEST:
        raise BadRequest(f"Workspace artifact upload supports at most {MAX_FILES_PER_REQUEST} files per request",
                         {"limit": MAX_FILES_PER_REQUEST})
    checked = [_checked(new) for new in files]
    keys = [key for _, key in checked]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise BadRequest(f"key {repeated[0]!r} is given to more than one file", {"key": repeated[0]})
    _refuse_taken_keys(session, repo, keys)  # before the bytes are written; again once it is this request's turn
    rows = []
    for new, (name, key) in zip(files, checked):
        row = ProjectFile(id=new_id("file"), repo_id=repo.id, key=key, file_name=name,
                          description=(new.description or "").strip() or None,
                          content_type=new.content_type or DEFAULT_CONTENT_TYPE, size_bytes=len(new.content),
                          sha256=hashlib.sha256(new.content).hexdigest(), created_by_key_id=actor.key_id,
                          storage_path="")
        row.storage_path = files_prefix(repo) + row.id
        with blobs.open_write(row.storage_path) as handle:
            handle.write(new.content)
        rows.append(row)
    # the turn is taken after the bytes are written (10 files of 10 MiB to a blob store could hold every writer
    # of the database back on SQLite); two requests with one key: the second sees the first's row
    serialize_repository_writes(session, repo.id)
    try:
        _refuse_taken_keys(session, repo, keys)
    except Conflict:
        for row in rows:
            try:
                blobs.delete(row.storage_path)
            except Exception:  # any store error; no row names it: the repository's purge removes it with the rest
                log.warning("project file %s could not be removed after its key was taken", row.storage_path)
        raise
    session.add_all(rows)
    session.flush()
    return rows


def _refuse_taken_keys(session: Session, repo: Repository, keys: list[str]) -> None:
    taken = session.scalar(select(ProjectFile.key).where(ProjectFile.repo_id == repo.id, ProjectFile.key.in_(keys))
                           .limit(1))
    if taken is not None:
        raise Conflict(f"a file with key {taken!r} exists: delete it first to replace it", {"key": taken})


def _checked(new: NewFile) -> tuple[str, str]:
    name = posixpath.basename(new.file_name.replace("\\", "/")).strip(ASCII_SPACE)
    if not name or name in (".", "..") or len(name) > 255 or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise BadRequest("file_name must name a file (a base name of 1 to 255 printable characters)",
                         {"file_name": new.file_name[:300]})
    key = new.key.strip(ASCII_SPACE) if new.key is not None else derived_key(name)
    if not key or len(key) > 120:
        raise BadRequest("key must be 1 to 120 characters", {"key": key[:300]})
    if not new.content:
        raise BadRequest("Workspace artifact payload cannot be empty", {"file_name": name})
    if len(new.content) > MAX_FILE_BYTES:
        raise BadRequest(f"Workspace artifact file exceeds {MAX_FILE_BYTES} bytes", {"limit": MAX_FILE_BYTES})
    return name, key


def list_files(session: Session, repo: Repository) -> list[ProjectFile]:
    return list(session.scalars(select(ProjectFile).where(ProjectFile.repo_id == repo.id)
                                .order_by(ProjectFile.created_at.desc(), ProjectFile.key, ProjectFile.id)))


def get_file(session: Session, repo: Repository, file_id: str) -> ProjectFile:
    row = session.get(ProjectFile, file_id)
    if row is None or row.repo_id != repo.id:
        raise NotFound("Workspace file not found", {"file_id": file_id})
    return row


def delete_file(session: Session, repo: Repository, file_id: str) -> None:
    """The row now; the bytes by a job once the transaction committed (a failed delete loses nothing)."""
    row = get_file(session, repo, file_id)
    session.delete(row)
    session.flush()
    defer(session, "control.jobs.remove_unnamed_project_file", row.storage_path)


def remove_unnamed_project_file(session: Session, blobs: BlobStore, storage_path: str) -> None:
    if session.scalar(select(ProjectFile.id).where(ProjectFile.storage_path == storage_path)) is None:
        blobs.delete(storage_path)
