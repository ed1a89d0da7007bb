"""Checks every ref change passes before it is applied. Each returns the rejections it finds."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from storage import git_fsck, git_read, git_refs, object_headers
from storage.keys import key_in_force
from storage.models import Branch, BranchProtection
from storage.push_scans import PushScans

from .branch_patterns import branch_matches
from .changed_paths import new_paths
from .context import ChangeContext, Rejection
from .locks import check_path_locks
from .paths import path_problem
from .refs import RefUpdate, hidden_ref_reasons, new_branch_problem, ref_name_problem

Check = Callable[[ChangeContext, Sequence[RefUpdate], Session], list[Rejection]]


def check_key_in_force(ctx: ChangeContext, updates: Sequence[RefUpdate], session: Session) -> list[Rejection]:
    """A push authenticates when its request begins; a key revoked (or expired) while its body was on the way
    moves nothing."""
    if ctx.actor is None or key_in_force(session, ctx.actor.key_id):
        return []
    return [Rejection(u.ref, "the key was revoked or has expired", "forbidden") for u in updates]


def check_ref_names(ctx: ChangeContext, updates: Sequence[RefUpdate], session: Session) -> list[Rejection]:
    """Pushes may write heads, tags and notes (receive-pack refuses the other namespaces itself, ref by ref:
    RECEIVE_HIDE_REFS); the server's own changes may also use refs/driftstone/."""
    return [Rejection(u.ref, problem, "invalid") for u in updates
            if (problem := ref_name_problem(u.ref) or (new_branch_problem(u.ref) if u.is_create else None))]


def check_branches_awaiting_an_upload_kept(ctx: ChangeContext, updates: Sequence[RefUpdate],
                                           session: Session) -> list[Rejection]:
    """A branch made record-only (awaiting its first upload) has no ref yet, so git lets a push make `a/b` beside
    it (or `a` beside a record-only `a/b`); its upload could then never become a ref. The API's own creates keep
    to this rule already (control/services/branches.py)."""
    created = [u for u in updates if u.is_create and u.branch is not None]
    if not created:
        return []
    awaiting = sorted(session.scalars(select(Branch.name).where(Branch.repo_id == ctx.repo.id,
                                                                Branch.head_sha.is_(None))))
    rejections = []
    for update in created if awaiting else ():
        clash = next((name for name in awaiting
                      if update.branch.startswith(name + "/") or name.startswith(update.branch + "/")), None)
        if clash is not None:
            rejections.append(Rejection(update.ref, f"branch '{update.branch}' cannot exist beside branch "
                                        f"'{clash}', which awaits its first upload", "invalid",
                                        {"clashesWith": clash}))
    return rejections


def check_atomic_push_has_no_hidden_ref(ctx: ChangeContext, updates: Sequence[RefUpdate],
                                        session: Session) -> list[Rejection]:
    """git refuses a ref under RECEIVE_HIDE_REFS by itself, before any hook, and then applies an --atomic push's
    other refs all the same: such a push is refused whole here, as a push with any refused ref is."""
    if not ctx.atomic:
        return []
    return [Rejection(ref, reason, "invalid") for ref, reason in hidden_ref_reasons(updates).items()]


def check_deletes_name_the_current_value(ctx: ChangeContext, updates: Sequence[RefUpdate],
                                         session: Session) -> list[Rejection]:
    """git (2.39) deletes a ref whatever it holds when the old value the pusher names is no object it has: zeros,
    or a value from before a force push whose objects are gone. A delete must name the value the ref has now (git
    compares it again under its lock)."""
    if ctx.source != "push":
        return []
    rejections = []
    deletes = [u for u in updates if u.is_delete]
    values = git_refs.read_refs(ctx.repo_path, [u.ref for u in deletes])
    for update in deletes:
        current = values[update.ref]
        if current is None:
            rejections.append(Rejection(update.ref, f"{update.ref} does not exist: nothing to delete", "invalid"))
        elif current != update.old:
            rejections.append(Rejection(update.ref, f"{update.ref} is at {current}, not {update.old}: fetch first",
                                        "invalid"))
    return rejections


def check_default_branch_kept(ctx: ChangeContext, updates: Sequence[RefUpdate], session: Session) -> list[Rejection]:
    """The default branch is what clones check out: as in the API, it may move but not be deleted."""
    return [Rejection(u.ref, "the default branch cannot be deleted") for u in updates
            if u.is_delete and u.branch == ctx.repo.default_branch]


_PROTECTION_RULES = (  # built once: checks run on every push
    select(BranchProtection.pattern, BranchProtection.allow_deletion, BranchProtection.allow_force_push,
           BranchProtection.require_pull_request, BranchProtection.required_approvals)
    .where(BranchProtection.repo_id == bindparam("repo_id"))
)
THROUGH_A_STACK = "protected branch: changes come through a pull request (a stack's merge)"


def protected_from_deletion(session: Session, repo_id: str, branch: str) -> bool:
    """For a branch with no ref to pass the checks with (a record-only branch): whether a rule forbids deleting it."""
    return _forbids_deletion(session.execute(_PROTECTION_RULES, {"repo_id": repo_id}).all(), branch)


def takes_changes_only_through_stacks(session: Session, repo_id: str, branch: str) -> bool:
    """Whether a rule lets `branch` move only by a stack's merge: for a dry run or a pull to say so before any work
    (the check itself refuses the move)."""
    rules = session.execute(_PROTECTION_RULES, {"repo_id": repo_id}).all()
    return any(r.require_pull_request for r in rules if branch_matches(r.pattern, branch))


def required_approvals(session: Session, repo_id: str, branch: str) -> int:
    """The most approving reviews a rule matching `branch` asks of a stack merging into it."""
    rules = session.execute(_PROTECTION_RULES, {"repo_id": repo_id}).all()
    return max((r.required_approvals for r in rules if branch_matches(r.pattern, branch)), default=0)


def _forbids_deletion(rules, branch: str) -> bool:
    return any(not r.allow_deletion for r in rules if branch_matches(r.pattern, branch))


def check_protected_branches(ctx: ChangeContext, updates: Sequence[RefUpdate], session: Session) -> list[Rejection]:
    branch_updates = [u for u in updates if u.branch is not None and not u.is_create]
    if not branch_updates:
        return []
    rules = session.execute(_PROTECTION_RULES, {"repo_id": ctx.repo.id}).all()
    rejections = []
    for update in branch_updates:
        matching = [r for r in rules if branch_matches(r.pattern, update.branch)]  # the strictest of them holds
        if update.is_delete:
            if _forbids_deletion(rules, update.branch):
                rejections.append(Rejection(update.ref, "protected branch: deletion is not allowed"))
        elif ctx.stack_id is None and any(r.require_pull_request for r in matching):
            rejections.append(Rejection(update.ref, THROUGH_A_STACK))
        elif any(not r.allow_force_push for r in matching) and not git_read.is_ancestor(
            ctx.repo_path, update.old, update.new, env=ctx.git_env
        ):
            rejections.append(Rejection(update.ref, "protected branch: force push is not allowed"))
    return rejections


def check_object_sizes(ctx: ChangeContext, updates: Sequence[RefUpdate], session: Session) -> list[Rejection]:
    """A push's new objects are exactly those in its quarantine: their headers are read in-process, each one's
    inflated size and their sum are bounded (a small pack of deltas can rebuild gigabytes). Other changes
    (objects the server wrote itself) ask git for the blobs no existing ref reaches."""
    limit = ctx.settings.max_object_size
    quarantine = ctx.git_env.get("GIT_QUARANTINE_PATH")
    if quarantine:
        try:
            scanned = (ctx.push_scans or PushScans()).objects(Path(quarantine), limit)
        except object_headers.CorruptObject as error:
            return [Rejection(u.ref, f"unreadable object in the push: {error}", "invalid") for u in updates]
        oversized = _not_stored(ctx, scanned.oversized)
        sent = ctx.push_scans.sent_objects if ctx.push_scans else None
        if (scanned.oversized and not oversized) or (sent is not None and scanned.count < sent):
            # objects the push sent were stored already (git's unpack-objects skips those): by a change accepted
            # once, or by one the API refused after writing them? What no ref reaches yet counts too.
            tips = sorted({u.new for u in updates if not u.is_delete})
            oversized = sorted({*oversized, *git_read.oversized_blobs(ctx.repo_path, tips, limit, env=ctx.git_env)})
        total = scanned.total
        if not oversized and total > ctx.settings.max_push_inflated_size:
            sizes = dict(object_headers.all_sizes(Path(quarantine)))
            total = sum(sizes[object_id] for object_id in _not_stored(ctx, list(sizes)))
        if not oversized and total > ctx.settings.max_push_inflated_size:
            reason = (f"the push's objects inflate to {total} bytes, more than the "
                      f"{ctx.settings.max_push_inflated_size} byte limit")
            return [Rejection(u.ref, reason, "too_large") for u in updates if not u.is_delete]
    else:
        tips = sorted({u.new for u in updates if not u.is_delete})
        oversized = git_read.oversized_blobs(ctx.repo_path, tips, limit, env=ctx.git_env)
    if not oversized:
        return []
    reason = f"object {oversized[0]} is larger than the {limit} byte limit"
    return [Rejection(u.ref, reason, "too_large") for u in updates if not u.is_delete]


def _not_stored(ctx: ChangeContext, object_ids: list[str]) -> list[str]:
    """The quarantine's objects that the repository did not have: git completes a thin pack with the bases it
    was sent against, objects already stored, which count neither for the object nor for the push limit. Where
    the push sent stored objects, what no ref reaches is looked at again (check_object_sizes): a refused API
    merge leaves its objects stored, and a push of the same content then passed the object limit."""
    stored = git_read.object_sizes(ctx.repo_path, object_ids)  # no quarantine env: the repository's own
    return [object_id for object_id in object_ids if object_id not in stored]


def check_pushed_paths(ctx: ChangeContext, updates: Sequence[RefUpdate], session: Session) -> list[Rejection]:
    """The paths a push adds follow the rule every path given to the API follows (hooks/paths.py), so that
    nothing pushed is a file the API cannot name, and no checkout anywhere resolves one to `.git` or `..`.
    git's fsck refuses only some spellings; it passes `GIT~2`, a fullwidth `.git`, a backslash, a control
    character, bytes that are not UTF-8, a 300-byte name or a path 100 levels deep. What each ref's new value
    changes is looked at (hooks/changed_paths.py: one `git diff-tree` per ref, ~4 ms), not every tree of its
    history: a name a later commit removed again is left to git's fsck, until an API call names that commit.

    The server's own commits are built from paths the API has checked, onto a tip that passed this check; but
    a new ref it makes may point at any stored commit (a branch from a sha), so those are checked too."""
    checked = updates if ctx.source == "push" else [u for u in updates if u.is_create]
    problems: dict[str, str | None] = {}
    refused = _refs_with_refused_paths(new_paths(ctx, checked), problems)
    if refused and sum(u.is_create for u in checked) > 1:
        # new refs were diffed one against the other: a path refused in one may be in the ones after it, or
        # only in it; each is judged on its own paths, so that a ref is refused for a path it holds, and one
        # holding none is told it was not applied for another's (the verdict of pre-receive is the push's)
        refused = _refs_with_refused_paths(new_paths(ctx, checked, chained=False), problems)
    return [Rejection(update.ref, reason, "invalid") for update, reason in refused]


def _refs_with_refused_paths(diffs, problems: dict[str, str | None]) -> list[tuple[RefUpdate, str]]:
    """Each ref with the first refused path among its paths, and why. `problems`: each path's verdict, kept."""
    refused = []
    for update, paths in diffs:
        for path in paths:
            if path not in problems:
                problems[path] = path_problem(path)
            if problems[path]:
                shown = path[:200].encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                refused.append((update, f"path '{shown.encode('unicode_escape').decode('ascii')}' is refused: "
                                        f"{problems[path]}"))
                break
    return refused


def check_objects_written_here(ctx: ChangeContext, updates: Sequence[RefUpdate], session: Session) -> list[Rejection]:
    """A push's objects pass git's fsck in receive-pack; the server's own (API commits, merges, uploads) pass the
    same checks here, `.gitmodules` contents included, before a ref points at them."""
    if ctx.source == "push":
        return []
    problem = git_fsck.fsck_problem(ctx.repo_path, sorted({u.new for u in updates if not u.is_delete}),
                                    env=ctx.git_env)
    return [Rejection(u.ref, problem, "invalid") for u in updates if not u.is_delete] if problem else []


PUSH_CHECKS: tuple[Check, ...] = (check_key_in_force, check_ref_names, check_branches_awaiting_an_upload_kept,
                                  check_atomic_push_has_no_hidden_ref,
                                  check_protected_branches, check_default_branch_kept,
                                  check_deletes_name_the_current_value, check_path_locks, check_object_sizes,
                                  check_pushed_paths, check_objects_written_here)
