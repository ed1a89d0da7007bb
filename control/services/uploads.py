"""Signed-URL uploads: request URLs for a directory version, receive each file's bytes, complete into one commit."""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hooks.checks import THROUGH_A_STACK, takes_changes_only_through_stacks
from hooks.paths import MAX_PATH_BYTES, path_problem
from hooks.pipeline import apply_ref_change, run_effects
from hooks.refs import ZERO_SHA, RefUpdate, branch_name_problem
from storage import git_objects, git_refs
from storage.blobs import BlobStore
from storage.db import insert_unless_present
from storage.errors import Conflict, Forbidden, Invalid, NotFound, StaleRef, TooLarge
from storage.ids import new_id
from storage.keys import Principal
from storage.models import Branch, Repository, Upload, UploadFile
from storage.repo_writes import serialize_repository_writes

from . import signing
from .changes import change_context, first_parent
from .commits import record_commit

IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_FILES = 10_000
MAX_NAME_BYTES = MAX_PATH_BYTES
UPLOADER = git_objects.Identity("Driftstone", "uploads@driftstone.local")
_TRAILER = "Upload-Id: "
_IN_MEMORY_BLOB = 8 * 1024 * 1024


@dataclass(frozen=True)
class FileSpec:
    name: str
    sha256: str


@dataclass
class IssuedUpload:
    upload: Upload
    files: list[tuple[UploadFile, signing.Signature]]


def storage_path(repo: Repository, upload_id: str, name: str) -> str:
    """Under the upload's id: no other upload (of a deleted branch or repository of the same name) shares it."""
    return f"organizations/{repo.org_id}/uploads/{repo.id}/{upload_id}/{name}"


def request_upload(session: Session, app, repo: Repository, actor: Principal, identifier: str,
                   files: Sequence[FileSpec], branch: str | None = None) -> IssuedUpload:
    """Signed PUT URLs for every file; asking again for a pending upload re-signs it (and bases it on the branch's
    head of now), a completed one is 409."""
    branch = branch or repo.default_branch
    _check_identifier(identifier)
    if branch != repo.default_branch:  # the branch's deletion, which retires its uploads, waits for this one
        serialize_repository_writes(session, repo.id)
    _check_branch(session, app, repo, branch)
    if (takes_changes_only_through_stacks(session, repo.id, branch)
            and git_refs.read_ref(app.store.path_for(repo.id), f"refs/heads/{branch}") is not None):
        raise Forbidden(THROUGH_A_STACK, {"ref": f"refs/heads/{branch}"})  # its completion would be refused
    specs = _checked_files(files)
    upload = _live_upload(session, repo, branch, identifier)
    now = app.clock()
    if upload is None:
        upload = _create_upload(session, repo, actor, branch, identifier, specs, now)
    elif upload.status == "completed":
        raise Conflict(f"upload {identifier!r} on {branch!r} is already completed",
                       {"uploadId": upload.id, "commit": upload.commit_sha})
    rows = {row.name: row for row in _files_of(session, upload)}
    if {name: row.expected_sha256 for name, row in rows.items()} != {s.name: s.sha256 for s in specs}:
        raise Conflict(f"upload {identifier!r} is pending with a different file list; use a new identifier",
                       {"uploadId": upload.id})
    upload.expires_at = datetime.fromtimestamp(signing.expiry_for(now), tz=timezone.utc)
    upload.base_commit = git_refs.read_ref(app.store.path_for(repo.id), f"refs/heads/{branch}") or ZERO_SHA
    session.flush()
    secret = app.settings.secret_key
    return IssuedUpload(upload, [(rows[s.name], signing.sign(secret, "PUT", rows[s.name].storage_path,
                                                             rows[s.name].id, now)) for s in specs])


def check_upload_url(app, method: str, path: str, file_id: str | None, expires: str | None,
                     signature: str | None) -> None:
    signing.verify(app.settings.secret_key, method, path, file_id, expires, signature, app.clock())


def refuse_upload_url(app, method: str, path: str, file_id: str | None, expires: str | None,
                      signature: str | None) -> None:
    check_upload_url(app, method, path, file_id, expires, signature)
    raise Forbidden("upload URLs accept PUT only")


def receive_file(session: Session, app, path: str, file_id: str | None, expires: str | None,
                 signature: str | None, chunks: Iterable[bytes], declared_size: int | None) -> UploadFile:
    """Store one signed PUT's bytes if they hash to what was announced; nothing is stored otherwise."""
    check_upload_url(app, "PUT", path, file_id, expires, signature)
    limit = app.settings.max_object_size
    if declared_size is not None and declared_size > limit:
        raise TooLarge(f"file is larger than the {limit} byte limit", {"limit": limit})
    row = session.get(UploadFile, file_id)
    upload = session.get(Upload, row.upload_id) if row is not None else None
    repo = session.get(Repository, upload.repo_id) if upload is not None else None
    if (row is None or row.storage_path != path or repo is None or repo.deleted_at is not None
            or upload.retired_at is not None):
        raise NotFound("upload file not found")
    if upload.status != "pending":
        raise Conflict(f"upload {upload.identifier!r} is already completed", {"uploadId": upload.id})
    received = _store_verified(app.blobs, row, chunks, limit)
    if not _still_awaited(session, upload):  # retired or deleted (and maybe purged) while the bytes arrived
        app.blobs.delete(row.storage_path)
        raise NotFound("upload file not found")
    recorded = session.execute(update(UploadFile).where(UploadFile.id == row.id)
                               .values(received_sha256=received[0], size=received[1], received_at=app.clock())
                               .execution_options(synchronize_session=False))
    if recorded.rowcount == 0:  # its branch's deletion purged the upload after the look above
        app.blobs.delete(row.storage_path)
        raise NotFound("upload file not found")
    session.refresh(row)
    return row


def _still_awaited(session: Session, upload: Upload) -> bool:
    """Read afresh (columns, not the session's copies): the upload pending and not retired (its branch's deletion
    retires it), its repository not deleted."""
    now = session.execute(select(Upload.status, Upload.retired_at, Repository.deleted_at)
                          .join(Repository, Repository.id == Upload.repo_id).where(Upload.id == upload.id)).first()
    return now is not None and now.status == "pending" and now.retired_at is None and now.deleted_at is None


def complete_upload(session: Session, app, repo: Repository, actor: Principal, key: str) -> Upload:
    """Write the uploaded directory as ONE commit on the upload's branch (idempotent once completed).

    The files go into git before any turn is taken (a large upload's take seconds); then the repository's turn
    and the upload's, in the order a branch's deletion takes them: the other order, with the deletion retiring
    the branch's uploads, deadlocked on PostgreSQL."""
    upload = _find_upload(session, repo, key)
    if upload.status == "completed":
        return upload
    files = _files_of(session, upload)
    if not files:  # never so for an upload asked for with its files: committed, it would empty the branch
        raise Conflict(f"upload {upload.identifier!r} has no files; request it again")
    missing = [f.name for f in files if not _arrived(app.blobs, f)]
    if missing:
        raise Conflict(f"{len(missing)} file(s) have not been uploaded", {"missing": missing})
    repo_path = app.store.path_for(repo.id)
    ref = f"refs/heads/{upload.branch}"
    with git_objects.open_repo(repo_path) as git_repo:
        _based_as_requested(git_repo, git_refs.read_ref(repo_path, ref), upload)  # or nothing to write
        tree = _write_tree(git_repo, repo_path, app.blobs, files)
    serialize_repository_writes(session, repo.id)
    upload = _held(session, upload)
    if upload.status == "completed":  # by a request that had its turn first
        return upload
    head = git_refs.read_ref(repo_path, ref)
    row = session.scalar(select(Branch).where(Branch.repo_id == repo.id, Branch.name == upload.branch))
    if head is None and upload.branch != repo.default_branch and row is None:
        raise NotFound(f"branch {upload.branch!r} not found")
    ctx = change_context(app, repo, actor, "upload")
    parent = None
    with git_objects.open_repo(repo_path) as git_repo:
        claimed = _based_as_requested(git_repo, head, upload)
        made_earlier = claimed if claimed is not None and git_repo[head.encode()].tree == tree else None
        if made_earlier is None:
            if claimed is not None:  # a look-alike of the upload's commit: the branch moved all the same
                _refuse_moved_since_requested(upload, head)
            parent = head or first_parent(repo_path, row)
            sha = _write_commit(git_repo, tree, parent, upload, app.clock())
    if made_earlier is not None:  # the ref moved but the database did not record it: record it now
        sha = head
        run_effects(ctx, [RefUpdate(old=made_earlier or ZERO_SHA, new=head, ref=ref)], session=session)
    else:
        apply_ref_change(ctx, RefUpdate(old=head or ZERO_SHA, new=sha, ref=ref), session=session)
        if head is None and row is not None:
            row.base_commit = parent
    _record_completion(session, app, repo, actor, upload, sha)
    return upload


def _based_as_requested(git_repo, head: str | None, upload: Upload) -> str | None:
    """Refuse a branch moved since the upload was requested, unless `head` is the upload's own commit: then its
    parent ("" for a root commit)."""
    claimed = _claimed_parent(git_repo, head, upload) if head is not None else None
    if claimed is None:
        _refuse_moved_since_requested(upload, head)
    return claimed


def _refuse_moved_since_requested(upload: Upload, head: str | None) -> None:
    """An upload is a whole directory: written over commits it never saw, it would silently drop them."""
    if upload.base_commit is None or upload.base_commit == (head or ZERO_SHA):
        return
    raise StaleRef(f"branch {upload.branch!r} moved since this upload was requested; request the upload again "
                   "(same identifier and files: the files already received are kept) to base it on the new head",
                   {"ref": f"refs/heads/{upload.branch}", "expected": upload.base_commit, "actual": head})


def _held(session: Session, upload: Upload) -> Upload:
    """Hold the upload until this transaction ends (a row lock; SQLite's write lock), then read its latest state."""
    held = session.execute(update(Upload).where(Upload.id == upload.id, Upload.retired_at.is_(None))
                           .values(status=Upload.status).execution_options(synchronize_session=False))
    if held.rowcount == 0:  # retired since it was found: its branch was deleted
        raise NotFound(f"upload {upload.id!r} not found")
    session.refresh(upload)
    return upload



def _record_completion(session: Session, app, repo: Repository, actor: Principal, upload: Upload, sha: str) -> None:
    record_commit(session, repo.id, sha, "upload", actor.key_id, upload_identifier=upload.identifier)
    row = session.scalar(select(Branch).where(Branch.repo_id == repo.id, Branch.name == upload.branch))
    if row is None:  # deleted, with the commit just made, while this one waited to record it
        raise NotFound(f"branch {upload.branch!r} not found")
    row.head_identifier = upload.identifier
    if upload.branch == repo.default_branch:
        repo.main_head_identifier = upload.identifier
    upload.status, upload.commit_sha, upload.completed_at = "completed", sha, app.clock()
    session.flush()


def _write_tree(git_repo, repo_path, blobs: BlobStore, files: list[UploadFile]) -> bytes:
    changes = {row.name: (git_objects.FILE_MODE, _write_blob(git_repo, repo_path, blobs, row)) for row in files}
    return git_objects.edit_tree(git_repo, None, changes)


def _write_commit(git_repo, tree: bytes, parent: str | None, upload: Upload, now: datetime) -> str:
    message = f"Upload {upload.identifier}\n\n{_TRAILER}{upload.id}\n"
    return git_objects.write_commit(git_repo, tree, [parent] if parent else [], UPLOADER, message,
                                    when=int(now.timestamp()))


def _write_blob(git_repo, repo_path, blobs: BlobStore, row: UploadFile) -> str:
    """Small files through dulwich, large ones streamed through git; either way checked against their hash."""
    try:
        source = blobs.open_read(row.storage_path)
    except FileNotFoundError:  # purged since it was seen: its branch was deleted
        raise Conflict(f"file {row.name!r} has not been uploaded", {"missing": [row.name]}) from None
    with source:
        reader = _HashingReader(source)
        if row.size <= _IN_MEMORY_BLOB:
            sha = git_objects.write_blob(git_repo, reader.read())
        else:
            sha = git_objects.write_blob_stream(repo_path, reader)
    if reader.digest.hexdigest() != row.expected_sha256:
        raise Conflict(f"stored file {row.name!r} no longer matches its hash; upload it again",
                       {"missing": [row.name]})
    return sha


class _HashingReader:
    def __init__(self, source):
        self.source, self.digest = source, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.digest.update(data)
        return data


def _claimed_parent(git_repo, sha: str, upload: Upload) -> str | None:
    """If `sha` says it is this upload's commit (author, trailer, one parent: the head it was requested against),
    its parent ("" for a root commit); None otherwise. Anyone who can push can say so: the caller compares the
    tree with the upload's files too."""
    commit = git_repo[sha.encode()]
    trailers = commit.message.decode("utf-8", "replace").splitlines()
    if commit.author != UPLOADER.encoded() or f"{_TRAILER}{upload.id}" not in trailers or len(commit.parents) > 1:
        return None
    parent = commit.parents[0].decode() if commit.parents else ""
    if upload.base_commit not in (None, ZERO_SHA) and parent != upload.base_commit:
        return None
    return parent


def _check_identifier(identifier: str) -> None:
    if not IDENTIFIER.fullmatch(identifier or ""):
        raise Invalid("identifier must be 1-200 characters of letters, digits, '.', '_' or '-', starting with a "
                      "letter or digit", {"fields": [{"loc": "identifier", "msg": "invalid identifier"}]})


def _check_branch(session: Session, app, repo: Repository, branch: str) -> None:
    problem = branch_name_problem(branch)
    if problem:
        raise Invalid(f"invalid branch name {branch!r}: {problem}", {"fields": [{"loc": "branch", "msg": problem}]})
    if branch == repo.default_branch:
        return
    if git_refs.read_ref(app.store.path_for(repo.id), f"refs/heads/{branch}") is not None:
        return
    if session.scalar(select(Branch.id).where(Branch.repo_id == repo.id, Branch.name == branch)) is None:
        raise NotFound(f"branch {branch!r} not found")


def _checked_files(files: Sequence[FileSpec]) -> list[FileSpec]:
    if not files or len(files) > MAX_FILES:
        raise Invalid(f"between 1 and {MAX_FILES} files are needed", {"fields": [{"loc": "files", "msg": "count"}]})
    problems, seen = [], set()
    for index, spec in enumerate(files):
        problem = path_problem(spec.name)
        if problem is None and spec.name in seen:
            problem = "duplicate name"
        seen.add(spec.name)
        if problem:
            problems.append({"loc": f"files.{index}.name", "msg": problem})
        if not SHA256.fullmatch(spec.sha256 or ""):
            problems.append({"loc": f"files.{index}.hash", "msg": "must be a 64-character hex sha256"})
    directories = {name[:i] for name in seen for i, char in enumerate(name) if char == "/"}
    problems += [{"loc": f"files.{i}.name", "msg": "also used as a directory"}
                 for i, spec in enumerate(files) if spec.name in directories]
    if problems:
        raise Invalid("invalid upload files", {"fields": problems})
    return list(files)


def _create_upload(session: Session, repo: Repository, actor: Principal, branch: str, identifier: str,
                   specs: list[FileSpec], now: datetime) -> Upload:
    """The new upload, or the one a request for the same branch and identifier made meanwhile (its insert is
    waited for and taken, as a request coming after it would take it)."""
    upload_id = new_id("upl")
    insert_unless_present(session, Upload, ("repo_id", "branch", "identifier"), where=Upload.retired_at.is_(None),
                          id=upload_id, repo_id=repo.id, branch=branch, identifier=identifier, status="pending",
                          created_by_key_id=actor.key_id, expires_at=now)
    upload = _live_upload(session, repo, branch, identifier)
    if upload.id == upload_id:
        session.add_all([UploadFile(id=new_id("uf"), upload_id=upload_id, name=spec.name, expected_sha256=spec.sha256,
                                    storage_path=storage_path(repo, upload_id, spec.name)) for spec in specs])
        session.flush()
    return upload


def _live_upload(session: Session, repo: Repository, branch: str, identifier: str) -> Upload | None:
    return session.scalar(select(Upload).where(Upload.repo_id == repo.id, Upload.branch == branch,
                                               Upload.identifier == identifier, Upload.retired_at.is_(None)))


def _files_of(session: Session, upload: Upload) -> list[UploadFile]:
    return list(session.scalars(select(UploadFile).where(UploadFile.upload_id == upload.id)
                                .order_by(UploadFile.name)))


def _find_upload(session: Session, repo: Repository, key: str) -> Upload:
    """By upload id, or by identifier when that names exactly one upload of the repository."""
    if not IDENTIFIER.fullmatch(key):
        raise NotFound(f"upload {key!r} not found")
    live = (Upload.repo_id == repo.id, Upload.retired_at.is_(None))
    by_id = session.scalar(select(Upload).where(*live, Upload.id == key))
    if by_id is not None:
        return by_id
    matches = session.scalars(select(Upload).where(*live, Upload.identifier == key)).all()
    if not matches:
        raise NotFound(f"upload {key!r} not found")
    if len(matches) > 1:
        raise Conflict(f"identifier {key!r} names uploads on several branches; use the uploadId",
                       {"uploadIds": sorted(u.id for u in matches)})
    return matches[0]


def _arrived(blobs: BlobStore, row: UploadFile) -> bool:
    if row.received_sha256 != row.expected_sha256:
        return False
    try:
        return blobs.size(row.storage_path) == row.size
    except FileNotFoundError:  # never stored, or purged (its branch was deleted): not by looking first, which a purge
        return False           # could slip in after



TEMPORARY_UPLOADS = "tmp/uploads"  # a PUT's bytes until their hash is checked


def _store_verified(blobs: BlobStore, row: UploadFile, chunks: Iterable[bytes], limit: int) -> tuple[str, int]:
    temp = f"{TEMPORARY_UPLOADS}/{row.id}.{secrets.token_hex(8)}"
    digest, size = hashlib.sha256(), 0
    try:
        with blobs.open_write(temp) as target:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"file is larger than the {limit} byte limit", {"limit": limit})
                digest.update(chunk)
                target.write(chunk)
        received = digest.hexdigest()
        if received != row.expected_sha256:
            raise Invalid(f"{row.name}: content does not match its hash",
                          {"name": row.name, "expected": row.expected_sha256, "received": received})
        blobs.move(temp, row.storage_path)
    finally:
        blobs.delete(temp)
    return received, size
