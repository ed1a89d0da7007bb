"""The ref-update pipeline: checks, the compare-and-swap, then effects.

Pushes reach it through git's pre-receive hook (`run_checks`, receive-pack does the swap, `run_effects`);
changes made through the API call `apply_ref_change`, which does all three.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Sequence

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from storage import git_read, git_refs, reconcile_marks
from storage.db import after_end, on_rollback
from storage.errors import (Conflict, DomainError, Forbidden, Invalid, Locked, NotFound, StaleRef, StorageFailure,
                            TooLarge)
from storage.git_env import GitFailed
from storage.git_prune import housekeeping_runs, ref_change_window
from storage.jobs import JobRequest
from storage.models import Repository
from storage.repo_writes import serialize_repository_writes

from .changed_paths import start_finding_new_paths
from .checks import PUSH_CHECKS
from .context import ChangeContext, Rejection
from .effects import EFFECTS
from .refs import RefUpdate

log = logging.getLogger(__name__)
# A push's refs have moved when its effects run: they are tried again, over ~5 s, before its rows and event
# are left to reconcile (which can rebuild the rows, not the event)
EFFECT_RETRY_DELAYS = (0.2, 1.0, 4.0)
CHECK_RETRY_DELAYS = (0.2, 1.0)  # a push waits on its checks: a connection the database dropped is tried again
RECONCILE_JOB = "control.jobs.reconcile_repository"
# asked for when the database kept a change's effects out: it may stay away for minutes (a restart, a failover),
# and nothing asks again once these are spent (a failure-injection sweep: 20 s of retries, then rows behind for good)
RECONCILE_RETRY_DELAYS = (1, 5, 15, 60, 300, 900, 1800)
_REJECTION_ERRORS = {"forbidden": Forbidden, "invalid": Invalid, "too_large": TooLarge, "locked": Locked}


def run_checks(ctx: ChangeContext, updates: Sequence[RefUpdate], session=None) -> list[Rejection]:
    """The first check that objects decides; all of them read the database through one session: the caller's
    (an API change: a second connection per request could run the pool dry with every request holding one and
    waiting for another), or their own, tried again if the database dropped the connection (they only read)."""
    if session is not None:
        return _first_rejections(ctx, updates, session)
    if ctx.source == "push":
        start_finding_new_paths(ctx, updates)
    lock_wait = ctx.settings.database_lock_wait
    for delay in CHECK_RETRY_DELAYS:
        try:
            with ctx.db.session(lock_wait) as own_session:
                return _first_rejections_of_present(ctx, updates, own_session)
        except OperationalError:
            time.sleep(delay)
    with ctx.db.session(lock_wait) as own_session:
        return _first_rejections_of_present(ctx, updates, own_session)


def _first_rejections_of_present(ctx: ChangeContext, updates: Sequence[RefUpdate], session) -> list[Rejection]:
    """A pushed command whose objects did not all come (git's "missing necessary objects") made the checks fail,
    and the whole push with "internal error": git refuses that ref itself, and the others are checked."""
    try:
        return _first_rejections(ctx, updates, session)
    except GitFailed:
        present = [u for u in updates
                   if u.is_delete or git_read.peeled_type(ctx.repo_path, u.new, env=ctx.git_env) is not None]
        if len(present) == len(updates):
            raise
        return _first_rejections(ctx, present, session)


def _first_rejections(ctx: ChangeContext, updates: Sequence[RefUpdate], session) -> list[Rejection]:
    for check in PUSH_CHECKS:
        rejections = check(ctx, updates, session)
        if rejections:
            return rejections
    return []


def run_effects(ctx: ChangeContext, applied: Sequence[RefUpdate], session=None) -> None:
    """Derived state only: a failure here is logged and repaired by reconcile, never undoes the ref move. A command
    that sets a ref to the value it holds (isomorphic-git pushes an up-to-date branch so) moved nothing: no event,
    and its branch keeps the identifier of its last upload."""
    applied = [update for update in applied if update.old != update.new]
    if not applied:
        return
    if session is not None:
        for effect in EFFECTS:
            effect(ctx, applied, session)
        return
    for delay in (*EFFECT_RETRY_DELAYS, None):
        try:
            with ctx.db.session(ctx.settings.database_lock_wait) as own_session:
                for effect in EFFECTS:
                    effect(ctx, applied, own_session)
            return
        except Exception as error:
            if isinstance(error, OperationalError) and delay is not None:  # no connection, or a lock given up on
                time.sleep(delay)
                continue
            log.exception("ref-change effects failed for repo %s; a job will reconcile its branch rows (if it fails "
                          "too, run `driftstone admin reconcile`)", ctx.repo.id)
            _ask_for_reconcile(ctx)
            return


def _ask_for_reconcile(ctx: ChangeContext) -> None:
    """The refs moved and their rows were not written: a job rebuilds them from the refs (tried again for ~50
    minutes while the database is away), where they waited for an operator's `driftstone admin reconcile`. The
    repository is marked first: a job the queue loses is asked for again (control.jobs.finish_interrupted_work).
    A repository deleted and purged meanwhile has nothing to rebuild."""
    if not ctx.repo_path.is_dir():
        return
    try:
        reconcile_marks.mark(ctx.repo_path)
    except OSError:
        log.exception("could not mark repo %s for its reconcile", ctx.repo.id)
    if ctx.db.jobs is None:
        return
    try:
        # an id of its own: a failed reconcile keeps its id for an hour, and one already running may have read the
        # refs before this change's
        ctx.db.jobs.enqueue(JobRequest(RECONCILE_JOB, (ctx.repo.id,), f"reconcile-{ctx.repo.id}-{uuid.uuid4().hex}",
                                       RECONCILE_RETRY_DELAYS))
    except Exception:
        log.exception("could not ask for the reconcile of repo %s; run `driftstone admin reconcile`", ctx.repo.id)


def refuse_unless_checks_pass(ctx: ChangeContext, update: RefUpdate, session) -> None:
    """What apply_ref_change's checks would refuse, raised, with nothing moved: for objects still in a
    quarantine (ctx.git_env), to learn before they are taken into the repository."""
    rejections = run_checks(ctx, [update], session=session)
    if rejections:
        raise _refusal(rejections[0])


def _refusal(first: Rejection) -> DomainError:
    error: type[DomainError] = _REJECTION_ERRORS.get(first.code, Forbidden)
    return error(first.reason, {"ref": first.ref, **first.details})


def apply_ref_change(ctx: ChangeContext, update: RefUpdate, session=None) -> None:
    """Check, compare-and-swap and record one API-made ref change; raises a DomainError when refused."""
    with ref_change_window(ctx.repo_path):  # a housekeeping run checks what it dropped before or after, not during
        if (not update.is_delete and housekeeping_runs(ctx.repo_path)
                and git_read.incomplete(ctx.repo_path, update.new)):
            # the change reuses an object the running repack judged unreachable and dropped
            raise Conflict("housekeeping removed an old object this change needs while it was made: retry the "
                           "request (what it writes is stored again; a commit only named by its id may be gone)",
                           {"ref": update.ref})
        try:
            rejections = run_checks(ctx, [update], session=session)
        except Exception:
            _refuse_if_repository_purged(ctx)
            raise
        if rejections:
            _refuse_if_repository_purged(ctx)  # a check that read the repository as it went failed on that
            raise _refusal(rejections[0])
        change = begin_change(ctx)
        try:
            swapped = git_refs.compare_and_swap(ctx.repo_path, update.ref, update.old, update.new)
        except (DomainError, StorageFailure, FileNotFoundError):  # git refused the transaction: nothing moved
            end_change(ctx, change)
            raise
        except BaseException:
            end_change(ctx, change, recorded=False)  # whether the ref moved is not known: a reconcile looks
            raise
        if not swapped:
            end_change(ctx, change)
            actual = git_refs.read_ref(ctx.repo_path, update.ref)
            raise StaleRef(f"{update.ref} moved: expected {update.old}, found {actual or 'nothing'}",
                           {"ref": update.ref, "expected": update.old, "actual": actual})
    if session is None:
        try:
            run_effects(ctx, [update])  # asks for a reconcile itself where the rows could not be written
        except BaseException:
            end_change(ctx, change, recorded=False)
            raise
        end_change(ctx, change)
        return
    # the caller's request may still fail: then the ref goes back, if nobody moved it since; the mark goes once
    # the rows are committed or the ref is back (where it could not be put back, a reconcile was asked for)
    on_rollback(session, lambda: _take_back(ctx, update))
    after_end(session, lambda: end_change(ctx, change))
    _refuse_if_repository_deleted(session, ctx)
    run_effects(ctx, [update], session=session)


def begin_change(ctx: ChangeContext, also: Sequence[int] = ()):
    """Mark a ref change whose rows are not written yet (storage.reconcile_marks); `also`: other processes that
    make it. Where the mark cannot be written the change is refused, as one whose rows could be lost."""
    try:
        return reconcile_marks.begin_change(ctx.repo_path, also)
    except OSError as error:
        _refuse_if_repository_purged(ctx)
        raise StorageFailure(f"cannot mark a ref change in repo {ctx.repo.id}: {error}") from error


def end_change(ctx: ChangeContext, change, recorded: bool = True) -> None:
    """The change's rows are written, or it moved nothing; `recorded=False`: not known, a reconcile is asked for."""
    if not recorded:
        _ask_for_reconcile(ctx)
    reconcile_marks.end_change(change)


def _refuse_if_repository_purged(ctx: ChangeContext) -> None:
    """A repository deleted, and purged, while a change to it was checked: git failed on its missing directory,
    which read as a refusal of the change's content (a 422 where the others got a 404)."""
    if not ctx.repo_path.is_dir():
        raise NotFound(f"repository {ctx.repo.slug!r} not found")


def _refuse_if_repository_deleted(session, ctx: ChangeContext) -> None:
    """A repository deleted after the request found it: its change got 201 after the delete's 200, into a
    repository about to be purged (an API sweep). Asked once the ref moved, with the repository's write lock the
    effects take anyway (taken before the checks, it made concurrent API changes to one repository wait on each
    other's checks): a delete committed before is seen here, and the request's rollback puts the ref back; a
    later one waits for this change to commit."""
    serialize_repository_writes(session, ctx.repo.id)
    deleted_at = session.scalar(select(Repository.deleted_at).where(Repository.id == ctx.repo.id))
    if deleted_at is not None:
        raise NotFound(f"repository {ctx.repo.slug!r} not found")


def _take_back(ctx: ChangeContext, update: RefUpdate) -> None:
    """Put the ref back after its request failed; where git cannot (a full disk refuses the lock file), the ref
    keeps the new value without the rows the failed transaction held, and a job rebuilds them from the refs. A
    repository deleted and purged meanwhile has nothing left to put back."""
    try:
        git_refs.compare_and_swap(ctx.repo_path, update.ref, update.new, update.old)
    except Exception:
        if not ctx.repo_path.exists():
            return
        _ask_for_reconcile(ctx)
        raise
