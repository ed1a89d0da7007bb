"""Background job functions (rq or in-process). They take ids, are idempotent, and find the app context here."""
from __future__ import annotations

from sqlalchemy import select

from storage.housekeeping import housekeep
from storage.models import Repository, Upload, UploadFile

_context = None


def configure(context) -> None:
    global _context
    _context = context


def _ctx():
    if _context is None:
        raise RuntimeError("control.jobs used before configure()")
    return _context


def purge_repository(repo_id: str) -> None:
    """Remove a deleted repository's git directory and its stored upload files."""
    ctx = _ctx()
    with ctx.db.session() as session:
        repo = session.get(Repository, repo_id)
        if repo is not None and repo.deleted_at is None:
            return  # not deleted (or restored): nothing to purge
        paths = session.scalars(select(UploadFile.storage_path).join(Upload, Upload.id == UploadFile.upload_id)
                                .where(Upload.repo_id == repo_id)).all()
    for path in paths:
        ctx.blobs.delete(path)
    ctx.store.delete(repo_id)


def housekeep_repository(repo_id: str) -> None:
    """Repack a repository that pushes have left with too many packs or loose objects (a no-op otherwise)."""
    ctx = _ctx()
    if ctx.store.exists(repo_id):
        housekeep(ctx.store.path_for(repo_id), ctx.settings.housekeeping_limits)


def purge_branch_files(repo_id: str, branch: str) -> None:
    """Remove the stored upload files of a deleted branch (unless the branch exists again)."""
    from storage.models import Branch

    ctx = _ctx()
    with ctx.db.session() as session:
        if session.scalar(select(Branch.id).where(Branch.repo_id == repo_id, Branch.name == branch)):
            return
        paths = session.scalars(select(UploadFile.storage_path).join(Upload, Upload.id == UploadFile.upload_id)
                                .where(Upload.repo_id == repo_id, Upload.branch == branch)).all()
    for path in paths:
        ctx.blobs.delete(path)
