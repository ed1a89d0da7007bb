"""Merging a branch (or any commit) into a branch: merge commit, squash or rebase, computed in-process on the
object store (storage.merge_strategies / storage.git_merge) and applied by moving the target ref through the
hook pipeline (checks, compare-and-swap, effects).

Conflicts are an outcome, not an error: the caller gets `success: false` and every conflicting path, and nothing
changes (no objects written, no ref moved). A dry run computes the same outcome and writes nothing either.

Concurrency: no lock is held. The plan is computed against the target head read at the start and the ref moves
only by compare-and-swap from that head. If another writer moved the target meanwhile, the merge is recomputed
against the new head (whose commits the new result then contains, so nothing is lost) -- unless the caller gave
`expected_target_head`, in which case a moved target is a StaleRef (409) and nothing happens.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import select, update

from hooks.checks import THROUGH_A_STACK, takes_changes_only_through_stacks
from hooks.locks import refuse_locked_paths
from hooks.pipeline import apply_ref_change
from hooks.refs import ZERO_SHA, RefUpdate
from storage import git_objects, git_read, git_refs
from storage.errors import (Conflict, DomainError, Forbidden, Invalid, NotFound, StaleRef, StorageFailure,
                            TooLarge)
from storage.keys import Principal
from storage.merge_strategies import STRATEGIES, MergePlan, UnrelatedHistories, plan_merge
from storage.models import Branch, Repository
from storage.repo_writes import serialize_repository_writes

from .changes import awaits_first_commit, change_context, checked_branch_name, first_parent, resolve_revision
from .commits import record_commit
from .writer_race import WriterRace

log = logging.getLogger(__name__)
MERGER = git_objects.Identity("Driftstone", "merge@driftstone.local")
_LOCK_RETRIES = 20  # compare-and-swaps that met git's ref lock held by another writer (the head did not move)


@dataclass
class MergeOutcome:
    success: bool
    sha: str | None  # the commit the target now points at because of this merge (None: dry run or conflicts)
    head_commit: str | None  # the target's head after the call (unchanged for dry runs and conflicts)
    already_merged: bool
    target: str
    conflicts: list[str]
    message: str
    strategy: str
    dry_run: bool = False
    fast_forward: bool = False
    previous_head: str | None = None
    new_commits: list[str] = field(default_factory=list)
    stopped_at: str | None = None  # rebase: the source commit that did not apply
    source_deleted: bool = False


def merge_refs(app, session, repo: Repository, actor: Principal, source_sha: str, target_branch: str,
               strategy: str = "merge", message: str | None = None, dry_run: bool = False,
               expected_target_head: str | None = None, *, source_label: str | None = None,
               fast_forward: bool = False, workspace_id: str | None = None,
               since: str | None = None, stack_id: str | None = None, title: str | None = None) -> MergeOutcome:
    """Merge commit `source_sha` into `target_branch` (no HTTP involved; stacks call this too). `title`: a pull
    request's, the first line of the message made when none is given.

    `expected_target_head`: when given, the target must still point there (else StaleRef) and no retry happens.
    `source_label`: how messages name the source (a branch name; defaults to the sha).
    `workspace_id`: the workspace whose work this is: its own path locks do not hold it back.
    `since`: where the source's own commits start (a stack's base; see plan_merge).
    `stack_id`: the stack this merges (a branch that takes changes only through stacks takes it)."""
    checked_branch_name(target_branch)
    if stack_id is None and takes_changes_only_through_stacks(session, repo.id, target_branch):
        raise Forbidden(THROUGH_A_STACK, {"ref": f"refs/heads/{target_branch}"})  # dry runs and pulls: before any work
    if strategy not in STRATEGIES:
        raise Invalid(f"unknown merge strategy {strategy!r}", {"fields": [{"loc": "strategy", "msg": "unknown"}]})
    source_sha = resolve_revision(app, repo, source_sha)
    label = source_label or source_sha
    ref = f"refs/heads/{target_branch}"
    path = app.store.path_for(repo.id)
    race = WriterRace(session)
    first_head = None
    with race.turn(path, ref, racing=expected_target_head is None and not dry_run):
        while True:
            head = git_refs.read_ref(path, ref)
            if expected_target_head is not None and head != expected_target_head:
                raise _stale(target_branch, ref, expected_target_head, head)
            if race.tries == 1:
                first_head = head
                if head is None:
                    if not dry_run:  # a branch without commits is deleted without a ref change: it waits, or is seen
                        serialize_repository_writes(session, repo.id)
                    _check_target_exists(session, repo, target_branch)
            elif head is None and first_head is not None:  # deleted by the writer that beat this one
                raise NotFound(f"branch {target_branch!r} was deleted meanwhile")
            start = (head if head is not None or strategy != "squash"
                     else _squash_start(session, repo, path, target_branch))
            with git_objects.open_repo(path) as git_repo:
                try:
                    plan = plan_merge(git_repo.object_store, start, source_sha, strategy, target_name=target_branch,
                                      source_name=label, committer=MERGER, message=message, fast_forward=fast_forward,
                                      since=since, title=title)
                except UnrelatedHistories as error:
                    raise Conflict(f"cannot merge: {error}", {"source": label, "target": target_branch}) from None
                if plan.clean and plan.moves_target:  # as the checks would answer, before anything is written
                    target = plan.target_head.encode() if plan.target_head else None
                    refuse_locked_paths(session, repo.id, workspace_id,
                                        lambda: plan.store.changed_paths(target, plan.new_head.encode()), ref)
                    refuse_oversized(plan, ref, app.settings.max_object_size)
                starts_branch = head is None and start is not None  # a record-only branch's first commit is its base's
                if dry_run or not plan.clean or not (plan.moves_target or starts_branch):
                    return _outcome(plan, target_branch, label, dry_run)
                plan.persist()
            ctx = change_context(app, repo, actor, "merge")
            ctx.workspace_id, ctx.stack_id = workspace_id, stack_id
            actual = _swap(ctx, session, path, ref, head, plan.new_head)
            if actual is not _SWAPPED:
                if expected_target_head is not None:
                    raise _stale(target_branch, ref, expected_target_head, actual)
                if race.again():
                    continue  # another writer moved the target: merge again on top of its commits
                raise StaleRef(f"branch {target_branch!r} kept moving under other writers ({race.tries} tries); "
                               "retry the merge", {"branch": target_branch, "ref": ref, "actualTargetHead": actual})
            for sha in plan.new_commits:
                record_commit(session, repo.id, sha, "merge", actor.key_id if actor else None)
            return _outcome(plan, target_branch, label, dry_run)


def refuse_oversized(plan: MergePlan, ref: str, limit: int) -> None:
    """The size check refuses a merge whose content merge makes a file over the limit; asked before the merge's
    objects are stored, so a refused merge leaves none behind (and a dry run answers as the merge would)."""
    oversized = plan.store.oversized_blobs(plan.new_head.encode(), limit)
    if oversized:
        raise TooLarge(f"object {oversized[0]} is larger than the {limit} byte limit", {"ref": ref})


_SWAPPED = object()


def _swap(ctx, session, path, ref: str, head: str | None, new: str):
    """Move `ref` from `head` to `new` through the pipeline: _SWAPPED, or the head another writer moved it to.
    A compare-and-swap that failed only because git's lock file was busy (the head did not move) is retried."""
    for lock_try in range(_LOCK_RETRIES):
        try:
            apply_ref_change(ctx, RefUpdate(old=head or ZERO_SHA, new=new, ref=ref), session=session)
            return _SWAPPED
        except StaleRef:
            actual = git_refs.read_ref(path, ref)
            if actual != head:
                return actual
            time.sleep(0.01 * (lock_try + 1))
    return head


def _squash_start(session, repo: Repository, path, target_branch: str) -> str | None:
    """A squash into a record-only branch without commits goes onto its base branch's head, as a first API commit
    does: as a root commit it shared no history with anything."""
    row = session.scalar(select(Branch).where(Branch.repo_id == repo.id, Branch.name == target_branch))
    return first_parent(path, row)


def _check_target_exists(session, repo: Repository, target: str) -> None:
    """A target without commits is fine if it is the default branch or a branch record awaiting its first commit."""
    if target == repo.default_branch:
        return
    row = session.execute(select(Branch.id, Branch.head_sha).where(Branch.repo_id == repo.id,
                                                                   Branch.name == target)).first()
    if row is None or row.head_sha is not None:  # a row with a head but no ref: deleted, its row not yet gone
        raise NotFound(f"branch {target!r} not found")


def merge_branch(session, app, repo: Repository, actor: Principal, source: str, target: str | None = None,
                 strategy: str = "merge", message: str | None = None, dry_run: bool = False,
                 delete_branch: bool = False, expected_target_head: str | None = None,
                 fast_forward: bool = False, stack_id: str | None = None,
                 on_merged: Callable[[MergeOutcome], None] | None = None,
                 expected_source: str | None = None, title: str | None = None) -> MergeOutcome:
    """Merge branch `source` into branch `target` (default: the repository's default branch); optionally delete
    the source afterwards (only if it still points at the commit that was merged). `on_merged`: called once the
    merge stands, before that delete. `stack_id`: the stack (pull request) whose merge this is.
    `expected_source`: the head the caller checked (a pull request's approved head): a source moved since is a
    StaleRef, and what merges is the head read once here."""
    checked_branch_name(source)
    target = target or repo.default_branch
    checked_branch_name(target)
    path = app.store.path_for(repo.id)
    source_sha = git_refs.read_ref(path, f"refs/heads/{source}")
    if source_sha is None and awaits_first_commit(session, repo, source):
        raise Conflict(f"branch {source!r} has no commits yet: nothing to merge", {"branch": source})
    if source_sha is None:
        raise NotFound(f"branch {source!r} not found")
    if expected_source is not None and source_sha != expected_source:
        raise StaleRef(f"branch {source!r} moved since it was checked; retry the merge",
                       {"ref": f"refs/heads/{source}", "expected": expected_source, "actual": source_sha})
    if source == target:  # like `git merge main` on main: already up to date; nothing to delete either
        return MergeOutcome(success=True, sha=source_sha, head_commit=source_sha, already_merged=True, target=target,
                            conflicts=[], message=f"Already up to date: {target} is the branch being merged.",
                            strategy=strategy, dry_run=dry_run, previous_head=source_sha)
    outcome = merge_refs(app, session, repo, actor, source_sha, target, strategy, message, dry_run,
                         expected_target_head, source_label=source, fast_forward=fast_forward, stack_id=stack_id,
                         title=title)
    if on_merged is not None and outcome.success and not dry_run:
        on_merged(outcome)
    if delete_branch and outcome.success and not dry_run:
        delete_merged_branch(session, app, repo, actor, source, source_sha, outcome)
    return outcome


def delete_merged_branch(session, app, repo: Repository, actor: Principal, source: str, source_sha: str,
                         outcome: MergeOutcome) -> None:
    """Delete the merged branch if it still points at what was merged; the merge stands either way."""
    if source == repo.default_branch:
        outcome.message += f" Branch {source!r} is the default branch and was not deleted."
        return
    ctx = change_context(app, repo, actor, "merge")
    try:
        apply_ref_change(ctx, RefUpdate(old=source_sha, new=ZERO_SHA, ref=f"refs/heads/{source}"), session=session)
    except StaleRef as error:
        moved = error.details.get("actual") is not None
        outcome.message += (f" Branch {source!r} received new commits meanwhile and was not deleted." if moved
                            else f" Branch {source!r} no longer exists.")
        return
    except DomainError as error:  # e.g. a protected branch: the merge itself stands
        outcome.message += f" Branch {source!r} was not deleted: {error.message}."
        return
    except StorageFailure:
        log.exception("merged branch %s of repo %s could not be deleted", source, repo.id)
        outcome.message += f" Branch {source!r} was not deleted: the server could not write to its storage."
        return
    outcome.source_deleted = True
    outcome.message += f" Branch {source!r} deleted."
    # as GitHub retargets the pull requests onto a merged branch it deletes: the branches made from it go onto
    # where it was merged, from the commit it was merged by (a squash holds none of its commits)
    session.execute(update(Branch).where(Branch.repo_id == repo.id, Branch.base_branch == source,
                                         Branch.name != outcome.target)  # merged into its own child: no base of itself
                    .values(base_branch=outcome.target, base_commit=outcome.head_commit))


def changes_already_in(path, commit: str, head: str) -> bool:
    """Whether merging `commit` into `head` would change nothing: it is in it, or its changes are (squashed or
    rebased there)."""
    if commit == head or git_read.is_ancestor(path, commit, head):
        return True
    with git_objects.open_repo(path) as git_repo:
        try:
            plan = plan_merge(git_repo.object_store, head, commit, "squash", target_name="target",
                              source_name="source", committer=MERGER)
        except UnrelatedHistories:
            return False
    return plan.clean and plan.already_merged


def _outcome(plan: MergePlan, target: str, label: str, dry_run: bool) -> MergeOutcome:
    outcome = MergeOutcome(success=plan.clean, sha=None, head_commit=plan.target_head,
                           already_merged=plan.already_merged, target=target, conflicts=list(plan.conflicts),
                           message="", strategy=plan.strategy, dry_run=dry_run, fast_forward=plan.fast_forward,
                           previous_head=plan.target_head, stopped_at=plan.stopped_at)
    if not plan.clean:
        where = f" while replaying {plan.stopped_at[:12]}" if plan.stopped_at else ""
        outcome.message = (f"Merge conflict{where}: {len(plan.conflicts)} conflicting path(s); "
                           f"{target} was not changed.")
        return outcome
    if plan.already_merged:
        outcome.sha = plan.target_head
        outcome.message = f"Already up to date: {target} already contains {label}."
        return outcome
    if dry_run:
        kind = "fast-forward" if plan.fast_forward else plan.strategy
        outcome.message = f"Dry run: {label} can be merged into {target} cleanly ({kind}); nothing was changed."
        return outcome
    outcome.sha = outcome.head_commit = plan.new_head
    outcome.new_commits = list(plan.new_commits)
    if plan.fast_forward:
        outcome.message = f"Merge successful: {target} fast-forwarded to {plan.new_head[:12]}."
    elif plan.strategy == "rebase":
        dropped = f" ({len(plan.dropped)} already present, skipped)" if plan.dropped else ""
        outcome.message = f"Merge successful: {len(plan.new_commits)} commit(s) rebased onto {target}{dropped}."
    elif plan.strategy == "squash":
        outcome.message = f"Merge successful: {label} squashed into one commit on {target}."
    else:
        outcome.message = "Merge successful."
    return outcome


def _stale(branch: str, ref: str, expected: str | None, actual: str | None) -> StaleRef:
    return StaleRef(f"branch {branch!r} is at {actual or 'no commit'}, not {expected or 'no commit'}",
                    {"branch": branch, "ref": ref, "expectedTargetHead": expected, "actualTargetHead": actual})
