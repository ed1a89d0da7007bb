"""Background job functions (rq or in-process). They take ids, are idempotent, and find the app context here."""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from sqlalchemy import delete, select

from control.services import webhooks
from control.services.projects import project_prefix
from control.services.uploads import TEMPORARY_UPLOADS
from hooks.webhooks import delivery_job
from storage import reconcile_marks
from storage.db import in_chunks
from storage.housekeeping import housekeep
from storage.jobs import JobRequest
from storage.models import Repository, Upload, UploadFile, utcnow
from storage.object_pins import pinned_objects

log = logging.getLogger(__name__)
_context = None


def configure(context) -> None:
    global _context
    _context = context


def _ctx():
    if _context is None:
        raise RuntimeError("control.jobs used before configure()")
    return _context


def purge_repository(repo_id: str) -> None:
    """Remove a deleted repository's git directory, its stored upload files and its project's files and artifacts."""
    ctx = _ctx()
    with ctx.db.session() as session:
        repo = session.get(Repository, repo_id)
        if repo is not None and repo.deleted_at is None:
            return  # not deleted (or restored): nothing to purge
        uploads = _uploads_with_paths(session, Upload.repo_id == repo_id)
        project = project_prefix(repo.org_id, repo.id) if repo is not None else None
    _remove_uploads(ctx, uploads)
    if project:
        ctx.blobs.delete_prefix(project)
    ctx.store.delete(repo_id)


def run_extension(run_id: str) -> None:
    """Run an extension's agent program for one run and record what it did (control.services.extension_runs)."""
    from control.services.extension_runs import run_extension as run

    run(_ctx(), run_id)


def remove_unnamed_project_file(storage_path: str) -> None:
    """A deleted project file's bytes (kept while a row names them)."""
    from control.services.project_files import remove_unnamed_project_file as remove

    ctx = _ctx()
    with ctx.db.session() as session:
        remove(session, ctx.blobs, storage_path)


def reconcile_repository(repo_id: str) -> None:
    """Branch rows rebuilt from the repository's refs, and workspace rows brought to commits their killed requests
    made: asked for when a ref change's effects could not be recorded (the database was unavailable for their
    retries, or the process making it died)."""
    from control.services.repos import reconcile_branches
    from control.services.workspaces import take_up_lost_commit, workspaces_behind_their_refs

    ctx = _ctx()
    path = ctx.store.path_for(repo_id)
    seen = reconcile_marks.mark_time(path)
    with ctx.db.session() as session:
        repo = session.get(Repository, repo_id)
        if repo is None or repo.deleted_at is not None:
            return
        lagging = workspaces_behind_their_refs(session, ctx.store, repo_id)
    for workspace_id in lagging:  # each in a transaction of its own: a workspace's turn comes before its repository's
        with ctx.db.session() as session:
            take_up_lost_commit(session, ctx.store, workspace_id)
    with ctx.db.session() as session:
        repo = session.get(Repository, repo_id)
        if repo is not None and repo.deleted_at is None:
            reconcile_branches(session, ctx.store, repo)
    reconcile_marks.unmark_if_unchanged(path, seen)


STALE_UPLOAD_SECONDS = 24 * 3600  # a PUT's temporary file: it is written while the body arrives


FINISH_INTERRUPTED_WORK = JobRequest("control.jobs.finish_interrupted_work", (), "finish-interrupted-work")


def finish_interrupted_work() -> None:
    """What killed workers or a queue that lost its jobs left undone, asked for at each server worker's start and
    by `driftstone worker` as it starts and every ten minutes: the purge of a repository deleted, or of uploads
    retired (the job is queued once the deleting transaction commits: a kill in between lost it, or killed it
    midway; Redis restarted without its data lost it), the reconcile of repositories marked for one or holding a
    ref change whose processes died before its rows were written, the temporary files of signed-URL PUTs cut
    off by a kill (their removal is a `finally`), the directories of repository creates killed before their
    rows were committed, extension runs whose job died, and webhook deliveries whose job was lost."""
    ctx = _ctx()
    with ctx.db.session() as session:
        deleted = list(session.scalars(select(Repository.id).where(Repository.deleted_at.is_not(None))))
        retired = list(session.scalars(select(Upload.repo_id).distinct().where(Upload.retired_at.is_not(None))))
    for repo_id in deleted:
        if ctx.store.has_files(repo_id):
            purge_repository(repo_id)
    for repo_id in set(retired) - set(deleted):
        purge_retired_uploads(repo_id)
    ctx.blobs.delete_older_than(TEMPORARY_UPLOADS, STALE_UPLOAD_SECONDS)
    reconcile_marks.ask_for_abandoned_changes(ctx.store.root)  # ref changes whose processes died before their rows
    for repo_id in sorted(set(reconcile_marks.marked_repositories(ctx.store.root)) - set(deleted)):
        try:
            reconcile_repository(repo_id)
        except Exception:  # its mark stays for the next ask; the others still run
            log.exception("reconcile of repo %s failed", repo_id)
    remove_unrecorded_repositories()
    take_up_stale_extension_runs()
    take_up_late_deliveries()


def take_up_stale_extension_runs() -> None:
    """Extension runs whose job died (its worker killed, the in-process queue gone with its server) or was lost."""
    from control.services.extension_runs import run_job, stale_runs

    ctx = _ctx()
    with ctx.db.session() as session:
        stale = stale_runs(session)
    for run_id, attempts in stale:
        ctx.jobs.enqueue(run_job(run_id, attempts))


def take_up_late_deliveries() -> None:
    """Webhook deliveries whose job was lost (a restart, a killed worker, Redis without its data) or whose try
    died midway: due a while ago and still pending."""
    ctx = _ctx()
    with ctx.db.session() as session:
        late = webhooks.late_deliveries(session, utcnow())
    for delivery_id in late:
        ctx.jobs.enqueue(delivery_job(delivery_id))


WATCH_SECONDS = 30  # how often each server worker and job worker looks for runs and deliveries whose job died


def watch_abandoned_jobs(stop: threading.Event | None = None) -> threading.Thread:
    """A thread that takes up, from then on, extension runs and webhook deliveries whose job died: a worker killed
    while its agent ran is replaced at once, before the run's lease (90 s) is over, so the look its start-up asks
    for cannot see that run."""
    stop = stop or threading.Event()

    def watch() -> None:
        while not stop.wait(WATCH_SECONDS):
            try:
                take_up_stale_extension_runs()
                take_up_late_deliveries()
            except Exception:  # the database away for a moment: the next look
                log.warning("could not look for runs or deliveries whose job died", exc_info=True)

    thread = threading.Thread(target=watch, name="driftstone-extension-runs", daemon=True)
    thread.start()
    return thread


UNRECORDED_REPOSITORY_SECONDS = 3600  # a create makes the directory a moment before its row's transaction commits


def remove_unrecorded_repositories() -> None:
    """A repository create killed between `git init` and its transaction's commit leaves a directory no row names
    (a kill sweep found one, never removed). One that holds nothing but what `git init` made goes an hour after;
    one holding refs or objects stays and is reported: a database restored from an older backup would not name
    repositories made since, and their data is not this job's to remove."""
    ctx = _ctx()
    with ctx.db.session() as session:
        recorded = set(session.scalars(select(Repository.id)))  # read before the disk: a create meanwhile is new
    for repo_id in sorted(set(ctx.store.ids_on_disk()) - recorded):
        try:
            age = time.time() - ctx.store.path_for(repo_id).stat().st_mtime
        except FileNotFoundError:
            continue
        if age < UNRECORDED_REPOSITORY_SECONDS:
            continue
        if ctx.store.holds_nothing(repo_id):
            ctx.store.delete(repo_id)
        else:
            log.warning("repository directory %s holds refs or objects but no repository names it: left in place",
                        ctx.store.path_for(repo_id))


def housekeep_repository(repo_id: str) -> None:
    """Repack a repository that pushes have left with too many packs or loose objects (a no-op otherwise),
    keeping the objects its rows name."""
    ctx = _ctx()
    limits = ctx.settings.housekeeping_limits

    def pinned() -> set[str]:
        recent_since = utcnow() - timedelta(seconds=limits.prune_after_seconds)
        with ctx.db.session() as session:
            return pinned_objects(session, repo_id, recent_since)

    if ctx.store.exists(repo_id):
        housekeep(ctx.store.path_for(repo_id), limits, pinned)


def deliver_webhook(delivery_id: str) -> None:
    """One try of a webhook delivery; raising asks for the next (hooks.webhooks.RETRY_DELAYS)."""
    ctx = _ctx()
    webhooks.deliver(ctx.db, ctx.settings, delivery_id)


def purge_retired_uploads(repo_id: str) -> None:
    """Remove the stored files, then the rows, of a repository's retired uploads (their branch was deleted)."""
    ctx = _ctx()
    with ctx.db.session() as session:
        uploads = _uploads_with_paths(session, Upload.repo_id == repo_id, Upload.retired_at.is_not(None))
    _remove_uploads(ctx, uploads)


def _uploads_with_paths(session, *where) -> dict[str, list[str]]:
    rows = session.execute(select(Upload.id, UploadFile.storage_path)
                           .join(UploadFile, UploadFile.upload_id == Upload.id, isouter=True).where(*where)).all()
    uploads: dict[str, list[str]] = {}
    for upload_id, path in rows:
        uploads.setdefault(upload_id, []).extend([path] if path else [])
    return uploads


def _remove_uploads(ctx, uploads: dict[str, list[str]]) -> None:
    """Their stored files, then their rows."""
    for paths in uploads.values():
        for path in paths:
            ctx.blobs.delete(path)
    if not uploads:
        return
    with ctx.db.session() as session:
        for chunk in in_chunks(list(uploads)):
            session.execute(delete(UploadFile).where(UploadFile.upload_id.in_(chunk)))
            session.execute(delete(Upload).where(Upload.id.in_(chunk)))
