"""Stacks: a workspace's commit chain on a bookmark branch, reviewed and merged into its base.

A stack whose workspace started from another open stack's head sits on top of it (parent_stack_id); when
the parent merges, the child is rebased onto the target so it stays mergeable.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hooks.checks import required_approvals
from hooks.pipeline import apply_ref_change
from hooks.refs import ZERO_SHA, RefUpdate
from hooks.stack_events import review_dismissed, review_submitted, stack_changed
from hooks.stacks_follow_refs import take_head
from storage import git_objects, git_read, git_refs
from storage.errors import Conflict, DomainError, Forbidden, Invalid, Locked, NotFound, StaleRef, TooLarge
from storage.ids import new_id
from storage.keys import Principal, key_in_force
from storage.models import Repository, Stack, StackReview, Workspace, utcnow
from storage.times import as_utc
from storage.repo_writes import serialize_repository_writes

from .changes import change_context, checked_branch_name
from .workspaces import take_workspace_turn

log = logging.getLogger(__name__)

REVIEW_STATES = ("approve", "request_changes", "comment")


def bookmark_name(workspace: Workspace) -> str:
    slug = re.sub(r"[^A-Za-z0-9._/-]+", "-", workspace.name).strip("-./") or workspace.id
    return checked_branch_name(f"stacks/{slug}")


def _parent_stack(session: Session, repo: Repository, base_commit: str | None) -> Stack | None:
    if not base_commit:
        return None
    for stack in session.scalars(select(Stack).where(Stack.repo_id == repo.id, Stack.status == "open")):
        if base_commit in (stack.commits or []):
            return stack
    return None


def submit(session: Session, app, repo: Repository, workspace: Workspace, actor: Principal, title: str) -> Stack:
    take_workspace_turn(session, workspace)  # with its other writers and a merge of its stack; deleted: not found
    session.refresh(workspace)
    if not workspace.current_commit or workspace.current_commit == workspace.base_commit:
        raise Invalid("nothing to submit: commit the workspace first")
    path = app.store.path_for(repo.id)
    stack = _open_stack_of_workspace(session, workspace.id)
    parent = stack and stack.parent_stack_id and session.get(Stack, stack.parent_stack_id)
    merged = _last_merged_stack(session, path, workspace)  # also for a stack submitted again since
    if stack is None:
        parent = _parent_stack(session, repo, workspace.base_commit)
    base_branch = parent.bookmark if parent else repo.default_branch
    # after a merge, a new stack holds the commits made since: those merged are in its base already; else its
    # commits are all those its base branch lacks (a workspace based off the branch brings its base's commits too:
    # counted from the workspace's base, they were merged unreviewed)
    base_commit = (parent.head_commit if parent else merged.head_commit if merged
                   else _fork(path, base_branch, workspace.current_commit) or workspace.base_commit)
    if base_commit == workspace.current_commit:
        raise Invalid("nothing to submit: the workspace's commits are merged; commit something new first")
    if stack is not None:
        bookmark = stack.bookmark
        current = git_refs.read_ref(path, f"refs/heads/{bookmark}")
    else:
        bookmark, current = _free_bookmark(session, repo, path, workspace, merged)
    ref = f"refs/heads/{bookmark}"
    if (stack is not None and current not in (None, stack.head_commit)
            and not git_read.is_ancestor(path, current, workspace.current_commit)):
        raise StaleRef(f"branch {bookmark!r} has commits the workspace does not (pushed to it since the last "
                       "submit); resubmitting would drop them", {"ref": ref, "expected": stack.head_commit,
                                                                 "actual": current})
    ctx = change_context(app, repo, actor, "workspace")
    ctx.workspace_id = workspace.id
    if current != workspace.current_commit:
        apply_ref_change(ctx, RefUpdate(old=current or ZERO_SHA, new=workspace.current_commit, ref=ref),
                         session=session)
    commits = git_read.commits_between(path, base_commit, workspace.current_commit)
    before = _told_fields(stack)
    if stack is None:
        stack = Stack(id=new_id("stk"), repo_id=repo.id, workspace_id=workspace.id, title=title, bookmark=bookmark,
                      created_by_key_id=actor.key_id)
        session.add(stack)
    stack.title = title
    stack.parent_stack_id = parent.id if parent else None
    stack.base_branch, stack.base_commit = base_branch, base_commit
    stack.head_commit, stack.commits = workspace.current_commit, commits
    session.flush()
    _tell_changes(session, repo, stack, before, actor)
    return stack


def _told_fields(stack: Stack | None) -> tuple[str, str, str] | None:
    """What an event tells when it changes: (title, base branch, head), None for a stack not made yet."""
    return None if stack is None else (stack.title, stack.base_branch, stack.head_commit)


def _tell_changes(session: Session, repo: Repository, stack: Stack, before: tuple[str, str, str] | None,
                  actor: Principal) -> None:
    """`opened` for a new stack; else `edited` for a new title or base and `synchronize` for a new head."""
    if before is None:
        stack_changed(session, repo, stack, "opened", actor.key_id)
        return
    title, base, head = before
    changes = {}
    if title != stack.title:
        changes["title"] = {"from": title}
    if base != stack.base_branch:
        changes["base"] = {"from": {"ref": base}}
    if changes:
        stack_changed(session, repo, stack, "edited", actor.key_id, changes)
    if head != stack.head_commit:
        stack_changed(session, repo, stack, "synchronize", actor.key_id)


def _fork(path, branch: str, head: str) -> str | None:
    """Where `head` left `branch` (None: the branch has no commits, or no history in common)."""
    tip = git_refs.read_ref(path, f"refs/heads/{branch}")
    return git_read.merge_base(path, tip, head) if tip else None


BOOKMARK_TRIES = 100


def _free_bookmark(session: Session, repo: Repository, path, workspace: Workspace,
                   merged: Stack | None) -> tuple[str, str | None]:
    """The branch a first submit makes, with where it is now: stacks/<name>, or stacks/<name>-2, -3, ... when
    that is someone else's (a deleted workspace of the same name left its open stack there: every submit of a
    new one was refused for good). The workspace's own last merged bookmark, still where that merge left it, and
    one a lost submit of this workspace made are its own."""
    first = bookmark = bookmark_name(workspace)
    for bookmark in _bookmark_candidates(first):
        current = git_refs.read_ref(path, f"refs/heads/{bookmark}")
        if current is None:
            if git_refs.clashes_with_a_ref(path, f"refs/heads/{bookmark}"):
                continue  # a branch `stacks/a` keeps `stacks/a/b` from being made, and `stacks/a/b` keeps `stacks/a`
            claimed = session.scalar(select(Stack.id).where(Stack.repo_id == repo.id, Stack.bookmark == bookmark,
                                                            Stack.status == "open"))
            if claimed is None:
                return bookmark, None
        elif ((merged and merged.bookmark == bookmark and current == merged.head_commit)
              or _left_by_a_lost_submit(session, repo, path, bookmark, current, workspace)):
            return bookmark, current
    raise Conflict(f"branches {first!r} to {bookmark!r} already exist", {"branch": first})


def _bookmark_candidates(first: str):
    """stacks/<name>, then (a name with '/' flattened, so that another branch cannot be a prefix of it)
    stacks/<a-b>, stacks/<a-b>-2, -3, ..."""
    yield first
    flat = "stacks/" + first.removeprefix("stacks/").replace("/", "-")
    if flat != first:
        yield checked_branch_name(flat)
    for attempt in range(2, BOOKMARK_TRIES + 1):
        yield checked_branch_name(f"{flat}-{attempt}")


def _left_by_a_lost_submit(session: Session, repo: Repository, path, bookmark: str, current: str,
                           workspace: Workspace) -> bool:
    """A submit whose worker died after it made the bookmark and before its stack was stored leaves the branch
    and no stack: the branch is at one of the workspace's own commits (after its base, up to its head), and no
    open stack names it. A branch someone pushed at the base, or anywhere else, stays theirs."""
    claimed = session.scalar(select(Stack.id).where(Stack.repo_id == repo.id, Stack.bookmark == bookmark,
                                                    Stack.status == "open"))
    base = workspace.base_commit
    return (claimed is None and current != base and git_read.is_ancestor(path, current, workspace.current_commit)
            and (base is None or git_read.is_ancestor(path, base, current)))


def _last_merged_stack(session: Session, path, workspace: Workspace) -> Stack | None:
    """This workspace's latest merged stack, if the workspace has built on it since (it was not reset)."""
    merged = session.scalar(select(Stack).where(Stack.workspace_id == workspace.id, Stack.status == "merged")
                            .order_by(Stack.created_at.desc(), Stack.id.desc()).limit(1))
    if merged is None or not git_read.is_ancestor(path, merged.head_commit, workspace.current_commit):
        return None
    return merged


def submit_branch(session: Session, app, repo: Repository, branch: str, base_branch: str, actor: Principal,
                  title: str, since: datetime) -> tuple[Stack, bool]:
    """A stack of a branch's own commits onto `base_branch` (hoody's pull request of a branch): its open stack
    brought up to the branch's head (and onto `base_branch`), or a new one. `since`: when the branch was made; an
    open stack older than that was an earlier branch's of that name, and is closed. (stack, whether it was new)"""
    serialize_repository_writes(session, repo.id)  # two opens of one branch's stack: the second finds the first
    path = app.store.path_for(repo.id)
    head = git_refs.read_ref(path, f"refs/heads/{branch}")
    if head is None:
        raise Invalid(f"branch {branch!r} has no commits to review")
    if branch == base_branch:
        raise Invalid(f"branch {branch!r} is its own base: there is nothing to merge it into")
    target = git_refs.read_ref(path, f"refs/heads/{base_branch}")
    base_commit = git_read.merge_base(path, target, head) if target else None
    if target is not None and base_commit is None:
        raise Invalid(f"branch {branch!r} shares no history with {base_branch!r}")
    commits = git_read.commits_between(path, base_commit, head)
    if not commits or base_commit is None:
        raise Invalid(f"no commits between {base_branch!r} and {branch!r}")
    stack = open_stack_of_branch(session, repo, branch)
    if stack is not None and older_than(stack, since):
        stack.status = "closed"
        stack_changed(session, repo, stack, "closed", actor.key_id)
        stack = None
    before = _told_fields(stack)
    if stack is None:
        stack = Stack(id=new_id("stk"), repo_id=repo.id, workspace_id=None, title=title, bookmark=branch,
                      created_by_key_id=actor.key_id)
        session.add(stack)
    stack.base_branch, stack.base_commit, stack.head_commit, stack.commits = base_branch, base_commit, head, commits
    session.flush()
    _tell_changes(session, repo, stack, before, actor)
    return stack, before is None


def open_stack_of_branch(session: Session, repo: Repository, branch: str) -> Stack | None:
    return session.scalar(select(Stack).where(Stack.repo_id == repo.id, Stack.bookmark == branch,
                                              Stack.status == "open").order_by(Stack.created_at.desc()).limit(1))


def latest_stack_of_branch(session: Session, repo: Repository, branch: str, since: datetime) -> Stack | None:
    """Its open stack, else the newest one it had, made since the branch was (`since`)."""
    stack = open_stack_of_branch(session, repo, branch) or session.scalar(
        select(Stack).where(Stack.repo_id == repo.id, Stack.bookmark == branch)
        .order_by(Stack.created_at.desc(), Stack.id.desc()).limit(1))
    return None if stack is None or older_than(stack, since) else stack


def merged_stack_holding(session: Session, app, repo: Repository, branch: str, commit: str) -> Stack | None:
    """The newest merged stack of `branch` whose head was `commit` or came after it."""
    path = app.store.path_for(repo.id)
    merged = session.scalars(select(Stack).where(Stack.repo_id == repo.id, Stack.bookmark == branch,
                                                 Stack.status == "merged")
                             .order_by(Stack.created_at.desc(), Stack.id.desc()).limit(20))
    for stack in merged:
        if commit == stack.head_commit or git_read.is_ancestor(path, commit, stack.head_commit):
            return stack
    return None


def older_than(stack: Stack, since: datetime) -> bool:
    return as_utc(stack.created_at) < as_utc(since)


def mark_branch_stack_merged(session: Session, repo: Repository, branch: str, target: str, merged_sha: str,
                             since: datetime, actor: Principal) -> None:
    """After the branch itself was merged into its stack's base (a squash brings none of its commits, so the
    stack's head may never land there)."""
    stack = open_stack_of_branch(session, repo, branch)
    if stack is not None and stack.base_branch == target and not older_than(stack, since):
        stack.status, stack.merged_sha = "merged", merged_sha
        stack_changed(session, repo, stack, "closed", actor.key_id)


def list_stacks(session: Session, repo: Repository, status: str | None = None) -> list[Stack]:
    query = select(Stack).where(Stack.repo_id == repo.id)
    if status:
        query = query.where(Stack.status == status)
    return list(session.scalars(query.order_by(Stack.created_at, Stack.id)))


def get_stack(session: Session, repo: Repository, stack_id: str) -> Stack:
    stack = session.scalar(select(Stack).where(Stack.id == stack_id, Stack.repo_id == repo.id))
    if stack is None:
        raise NotFound(f"stack {stack_id!r} not found")
    return stack


def update_stack(session: Session, app, repo: Repository, stack: Stack, actor: Principal, title: str | None,
                 status: str | None) -> Stack:
    """A new title, and closing or reopening (GitHub's PATCH of a pull request's `state`). A merged stack stays
    merged. Reopening needs its branch where the stack left it or ahead of it (then the stack takes the commits
    pushed since, as GitHub's reopen does); a branch deleted, rewritten or taken by another open stack: 409."""
    serialize_repository_writes(session, repo.id)  # a merge or resubmit of it that runs meanwhile comes first
    session.refresh(stack)
    if status is not None and status != stack.status:
        if stack.status == "merged":
            raise Conflict("stack is merged", {"status": stack.status})
        if status == "closed":
            stack.status = "closed"
            stack_changed(session, repo, stack, "closed", actor.key_id)
        else:
            _reopen(session, app, repo, stack, actor)
    if title is not None and title != stack.title:
        changes = {"title": {"from": stack.title}}
        stack.title = title
        stack_changed(session, repo, stack, "edited", actor.key_id, changes)
    session.flush()
    return stack


def _reopen(session: Session, app, repo: Repository, stack: Stack, actor: Principal) -> None:
    path = app.store.path_for(repo.id)
    head = git_refs.read_ref(path, f"refs/heads/{stack.bookmark}")
    if head is None:
        raise Conflict(f"branch {stack.bookmark!r} was deleted: push it again or submit anew",
                       {"branch": stack.bookmark})
    if head != stack.head_commit and not git_read.is_ancestor(path, stack.head_commit, head):
        raise Conflict(f"branch {stack.bookmark!r} was rewritten since the stack was closed: submit it anew",
                       {"branch": stack.bookmark, "expected": stack.head_commit, "actual": head})
    taken = (open_stack_of_branch(session, repo, stack.bookmark)
             or (stack.workspace_id and _open_stack_of_workspace(session, stack.workspace_id)))
    if taken:
        raise Conflict(f"stack {taken.id} is open for {stack.bookmark!r} or its workspace", {"stackId": taken.id})
    parent = stack.parent_stack_id and session.get(Stack, stack.parent_stack_id)
    changes = None
    if parent and parent.status == "merged":  # while it was closed: it waits on where its parent went, as then
        changes = {"base": {"from": {"ref": stack.base_branch}}}
        stack.parent_stack_id, stack.base_branch = None, parent.base_branch
    if git_refs.read_ref(path, f"refs/heads/{stack.base_branch}") is None:
        raise Conflict(f"its base branch {stack.base_branch!r} was deleted: submit it anew",
                       {"branch": stack.base_branch})
    stack.status = "open"
    stack_changed(session, repo, stack, "reopened", actor.key_id)
    if changes:
        stack_changed(session, repo, stack, "edited", actor.key_id, changes)
    if head != stack.head_commit and take_head(path, stack, head):
        stack_changed(session, repo, stack, "synchronize", actor.key_id)


def _open_stack_of_workspace(session: Session, workspace_id: str) -> Stack | None:
    return session.scalar(select(Stack).where(Stack.workspace_id == workspace_id, Stack.status == "open"))


def reviews_of(session: Session, stack: Stack) -> list[StackReview]:
    return list(session.scalars(select(StackReview).where(StackReview.stack_id == stack.id)
                                .order_by(StackReview.created_at, StackReview.id)))


def review_stack(session: Session, repo: Repository, stack: Stack, actor: Principal, state: str, body: str | None,
                 reviewer_name: str | None, seen_head: str | None = None) -> StackReview:
    """`seen_head`: the head the reviewer looked at; a stack moved since (a resubmit, a push) is a StaleRef."""
    if state not in REVIEW_STATES:
        raise Invalid(f"state must be one of {', '.join(REVIEW_STATES)}", {"fields": [{"loc": "state", "msg": "enum"}]})
    serialize_repository_writes(session, repo.id)  # a merge racing it goes first or sees it: never merged unseen
    session.refresh(stack)
    if stack.status != "open":
        raise Conflict(f"stack is {stack.status}")
    if seen_head is not None and seen_head != stack.head_commit:
        raise StaleRef(f"the stack's head is {stack.head_commit[:12]} now, not the {seen_head[:12]} reviewed: "
                       "look at it again", {"expected": seen_head, "actual": stack.head_commit})
    review = StackReview(id=new_id("rev"), stack_id=stack.id, state=state, body=body, reviewer_key_id=actor.key_id,
                         reviewer_name=reviewer_name, head_commit=stack.head_commit)
    session.add(review)
    session.flush()
    review_submitted(session, repo, stack, review)
    return review


def dismiss_review(session: Session, repo: Repository, stack: Stack, review_id: str, actor: Principal,
                   message: str) -> StackReview:
    """GitHub's dismissal: the review counts no more (a change request of a reviewer who is away need not hold the
    stack for ever), nor do that reviewer's earlier ones; their next review counts again."""
    serialize_repository_writes(session, repo.id)  # as a review: a merge racing it goes first or sees it
    session.refresh(stack)
    review = session.scalar(select(StackReview).where(StackReview.id == review_id, StackReview.stack_id == stack.id))
    if review is None:
        raise NotFound(f"review {review_id!r} not found", {"id": review_id})
    if stack.status != "open":
        raise Conflict(f"stack is {stack.status}", {"status": stack.status})
    if review.state == "comment":
        raise Invalid("a comment is no verdict: only an approval or a change request is dismissed", {"id": review_id})
    if review.dismissed_at is not None:
        raise Conflict("the review is dismissed already", {"id": review_id})
    review.dismissed_at, review.dismissed_by_key_id, review.dismissal_message = utcnow(), actor.key_id, message
    session.flush()
    review_dismissed(session, repo, stack, review, actor.key_id)
    return review


def review_decision(session: Session, stack: Stack, reviews: list[StackReview], head: str | None = None) -> str:
    """GitHub's reviewDecision, counted as the merge counts them: changes_requested while a reviewer's latest
    verdict on the head (default: the stack's) asks for changes; approved once as many others than its author
    approved it as its base asks (one at least); else pending."""
    approving, requesting = approvals(_of_keys_in_force(session, reviews), stack, head)
    if requesting:
        return "changes_requested"
    needed = max(1, required_approvals(session, stack.repo_id, stack.base_branch))
    return "approved" if approving >= needed else "pending"


def approvals(reviews: list[StackReview], stack: Stack, head: str | None = None) -> tuple[int, int]:
    """(approving, requesting changes) reviewers, each by their latest verdict (a reviewer: a key, whatever names
    it gives; the stack's own author's key counts for neither), as GitHub counts them: an approval of the head
    (default: the stack's) only, a commit pushed since makes it stale; a change request until its reviewer
    approves, whatever was pushed since. A dismissed review clears its reviewer's verdicts up to it."""
    head = head or stack.head_commit
    latest, on_head = {}, {}
    for review in reviews:
        if review.dismissed_at is not None:
            latest.pop(review.reviewer_key_id, None)
            on_head.pop(review.reviewer_key_id, None)
        elif (review.state != "comment" and review.reviewer_key_id is not None
                and review.reviewer_key_id != stack.created_by_key_id):
            latest[review.reviewer_key_id] = review.state
            if review.head_commit == head:
                on_head[review.reviewer_key_id] = review.state
    approving = sum(1 for key, state in latest.items() if state == "approve" and on_head.get(key) == "approve")
    return approving, list(latest.values()).count("request_changes")


def _of_keys_in_force(session: Session, reviews: list[StackReview]) -> list[StackReview]:
    """The reviews whose keys are neither revoked nor expired: a change request of a key gone would hold for ever
    (only its own approval answers it), and an approval of one counts for no one there still is."""
    in_force = {key: key_in_force(session, key) for key in {r.reviewer_key_id for r in reviews} if key}
    return [review for review in reviews if in_force.get(review.reviewer_key_id, False)]


def _refuse_unapproved(session: Session, stack: Stack) -> None:
    needed = required_approvals(session, stack.repo_id, stack.base_branch)
    if not needed:
        return
    approving, requesting = approvals(_of_keys_in_force(session, reviews_of(session, stack)), stack)
    details = {"requiredApprovals": needed, "approvals": approving, "changesRequested": requesting}
    if requesting:
        raise Conflict(f"changes were requested by {requesting} reviewer(s), who have not approved since", details)
    if approving < needed:
        raise Conflict(f"branch {stack.base_branch!r} needs {needed} approving review(s) of the stack's head by "
                       f"others than its author; it has {approving}", details)


def merge_stack(session: Session, app, repo: Repository, stack: Stack, actor: Principal, strategy: str,
                message: str | None, delete_branch: bool, dry_run: bool):
    """Merge the stack's head into its base; on success its children are rebased onto that base."""
    from . import merges

    if not dry_run:  # a resubmit of its workspace and this merge take turns; the one that comes second sees the first
        serialize_repository_writes(session, repo.id)
        session.refresh(stack)
    if stack.status != "open":
        raise Conflict(f"stack is {stack.status}", {"status": stack.status})
    refuse_unmergeable(session, app, repo, stack)
    # read before the merge: its ref change's effects retarget them when the merge brings the head itself
    # (hooks/stacks_follow_refs.py), and here they are replayed onto the base as well
    children = [] if dry_run else list(session.scalars(
        select(Stack).where(Stack.parent_stack_id == stack.id, Stack.status == "open")))
    outcome = merges.merge_refs(app, session, repo, actor, stack.head_commit, stack.base_branch, strategy,
                                message, dry_run=dry_run, source_label=stack.bookmark,
                                workspace_id=stack.workspace_id, since=stack.base_commit, stack_id=stack.id,
                                title=stack.title)
    if dry_run or not outcome.success:
        return outcome
    if stack.status == "open":  # else the merge's own ref change landed it (hooks/stacks_follow_refs.py) and told so
        stack.status, stack.merged_sha = "merged", outcome.head_commit
        stack_changed(session, repo, stack, "closed", actor.key_id)
    if delete_branch:
        merges.delete_merged_branch(session, app, repo, actor, stack.bookmark, stack.head_commit, outcome)
    session.flush()
    for child in children:
        restack_child(session, app, repo, child, stack, actor)
    return outcome


def refuse_unmergeable(session: Session, app, repo: Repository, stack: Stack) -> None:
    """What a stack's merge must pass before it is tried, whichever way it is asked for (its own merge, its
    branch's, the dry run of its `mergeable`): its parent merged first, the head submitted is the branch's, and
    approved as its base asks."""
    _refuse_open_parent(session, stack)
    _refuse_moved_bookmark(app, repo, stack)
    _refuse_unapproved(session, stack)


def _refuse_open_parent(session: Session, stack: Stack) -> None:
    parent = session.get(Stack, stack.parent_stack_id) if stack.parent_stack_id else None
    if parent is not None and parent.status == "open":
        raise Conflict("merge the parent stack first", {"parentStackId": parent.id})


def _refuse_moved_bookmark(app, repo: Repository, stack: Stack) -> None:
    """Commits pushed to the bookmark after the submit are not the stack's: merging the submitted head and
    deleting the bookmark would leave them on no branch."""
    ref = f"refs/heads/{stack.bookmark}"
    current = git_refs.read_ref(app.store.path_for(repo.id), ref)
    if current is not None and current != stack.head_commit:
        raise StaleRef(f"branch {stack.bookmark!r} moved since the stack was submitted; the stack merges only "
                       "what was submitted: merge the branch itself",
                       {"ref": ref, "expected": stack.head_commit, "actual": current})


def restack_child(session: Session, app, repo: Repository, child: Stack, parent: Stack, actor: Principal) -> None:
    """Replay the child's own commits onto the parent's target, so the child stays mergeable there. Where that
    cannot be done (a conflict, commits pushed to its branch since the submit, a check refusing the branch's move:
    protection, a lock), the child stays as it is, not mergeable until it is resubmitted; the parent's merge
    stands (a refused restack used to undo it)."""
    from storage.merge_strategies import replay_commits

    from .merges import MERGER, refuse_oversized

    path = app.store.path_for(repo.id)
    before = _told_fields(child)
    target_head = git_refs.read_ref(path, f"refs/heads/{parent.base_branch}")
    with git_objects.open_repo(path) as git_repo:
        # the parent's merge moved the target to the child's base (a fast-forward): its commits stand as they are,
        # and with them its head and the reviews given on it (a replay made new commits of the same trees)
        in_place = bool(child.commits) and target_head is not None and child.base_commit == target_head and \
            git_repo[child.commits[0].encode()].parents == [target_head.encode()]
        replayed = None if in_place else replay_commits(git_repo.object_store, target_head, list(child.commits),
                                                         MERGER)
    child.parent_stack_id = None
    # its base commit moves only with its commits: a squash takes what follows the base, and a child left where
    # it was, based on the target's head, had its tree put over the target's (the target's own work lost)
    child.base_branch = parent.base_branch
    ref = f"refs/heads/{child.bookmark}"
    old = git_refs.read_ref(path, ref)
    if in_place:
        child.base_commit = target_head
    elif replayed.clean and old in (None, child.head_commit):
        ctx = change_context(app, repo, actor, "merge")
        ctx.workspace_id = child.workspace_id  # its own workspace's locks do not hold it back
        try:
            refuse_oversized(replayed, ref, app.settings.max_object_size)  # before anything is written
            replayed.persist()
            apply_ref_change(ctx, RefUpdate(old=old or ZERO_SHA, new=replayed.new_head, ref=ref), session=session)
            child.head_commit, child.commits, child.base_commit = replayed.new_head, replayed.new_commits, target_head
        except DomainError as error:
            log.info("stack %s not restacked onto %s: %s", child.id, parent.base_branch, error.message)
    session.flush()
    _tell_changes(session, repo, child, before, actor)


def mergeability(session: Session, app, stack: Stack, actor: Principal, strategy: str = "merge"
                 ) -> tuple[bool, list[str]]:
    """Whether the stack would merge into its base now with `strategy` (a dry run), and why not: the conflicting
    paths, or the refusal the merge would answer."""
    from . import merges

    repo = session.get(Repository, stack.repo_id)
    try:
        refuse_unmergeable(session, app, repo, stack)
        outcome = merges.merge_refs(app, session, repo, actor, stack.head_commit, stack.base_branch, strategy,
                                    dry_run=True, source_label=stack.bookmark, workspace_id=stack.workspace_id,
                                    since=stack.base_commit, stack_id=stack.id)
    except (Conflict, Forbidden, Locked, NotFound, StaleRef, TooLarge) as error:  # what the merge would answer
        return False, [error.message]
    return outcome.success, outcome.conflicts
