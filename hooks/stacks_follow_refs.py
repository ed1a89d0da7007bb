"""What ref changes do to stacks (pull requests), as GitHub's do to pull requests.

Stacks whose submitted head reached their base branch by any way but their own merge are merged.

GitHub and Gitea close a pull request as merged when its head commit is pushed to its base branch (a merge
made on a clone and pushed, a fast-forward of the base to the head, an API merge of the branch itself): a stack
left `open` there read as work still waiting, and its own merge would merge it a second time. The same question
closes a stack whose merge moved the base branch and was killed before its row was written (the reconcile asks
it of every open stack). The stacks based on one that landed wait on its base branch from then on, as GitHub
retargets the pull requests based on a merged one. A stack whose branch is deleted is closed, as GitHub closes a
pull request whose head branch is deleted. A branch's own stack (hoody's pull request of a branch, which has no
workspace) follows its branch: new commits are the stack's, and a branch moved back to what its base already has
(a reset) closes it, as GitHub's pull request follows its head branch. A workspace's stack keeps what was
submitted (its merge refuses a branch moved since). Each change is told (hooks/stack_events.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from sqlalchemy import or_, select

from storage import git_read, git_refs
from storage.db import in_chunks
from storage.models import Stack

from .context import ChangeContext
from .refs import RefUpdate
from .stack_events import RepoLike, stack_changed

# commits looked at per branch, newest first: a push that rewrites a branch onto a long unrelated history lists
# no more than these (500,000 of them took 4.7 s and 96 MB)
LOOK_BACK = 10_000


def mark_landed_stacks(ctx: ChangeContext, applied: Sequence[RefUpdate], session) -> None:
    """Effect: open stacks onto a branch this change moved (or made: a stack submitted before its repository
    had commits waits on a default branch yet to be) whose head is among the commits it brought (one
    `git rev-list`, and only when stacks wait on the branch)."""
    moved = {update.branch: update for update in applied if update.branch is not None and not update.is_delete}
    if not moved:
        return
    actor = ctx.actor.key_id if ctx.actor else None
    for branch, stacks in _open_stacks_onto(session, ctx.repo.id, list(moved)).items():
        change = moved[branch]
        brought = set(git_read.newest_commits(ctx.repo_path, change.new,
                                              exclude=None if change.is_create else change.old, limit=LOOK_BACK))
        _mark_merged(session, ctx.repo, branch, [stack_id for stack_id, head in stacks if head in brought],
                     change.new, actor)


def close_stacks_of_deleted_branches(ctx: ChangeContext, applied: Sequence[RefUpdate], session) -> None:
    """Effect: open stacks whose own branch this change deleted are closed; those based on it wait on the branch
    it was merged into when its latest stack merged (a merge with its branch's deletion), as GitHub retargets
    them; the others are closed, as GitHub closes a pull request whose base branch is deleted (waiting on another
    branch, it would bring the deleted one's commits, which no one reviewed). (Queries only for deletes.)"""
    deleted = [update.branch for update in applied if update.branch is not None and update.is_delete]
    if not deleted:
        return
    actor = ctx.actor.key_id if ctx.actor else None
    for chunk in in_chunks(deleted):
        for stack in _current(session, select(Stack).where(Stack.repo_id == ctx.repo.id, Stack.status == "open",
                                                            Stack.bookmark.in_(chunk))):
            stack.status = "closed"
            stack_changed(session, ctx.repo, stack, "closed", actor)
        for stack in _current(session, select(Stack).where(Stack.repo_id == ctx.repo.id, Stack.status == "open",
                                                            Stack.base_branch.in_(chunk))):
            target = _merged_into(session, ctx.repo.id, stack.base_branch)
            if target is None or target == stack.bookmark:
                stack.status = "closed"
                stack_changed(session, ctx.repo, stack, "closed", actor)
                continue
            changes = {"base": {"from": {"ref": stack.base_branch}}}
            stack.parent_stack_id, stack.base_branch = None, target
            if stack.workspace_id is None:  # a workspace's is replayed onto its new base by its parent's merge
                take_head(ctx.repo_path, stack, stack.head_commit)
            stack_changed(session, ctx.repo, stack, "edited", actor, changes)


def _merged_into(session, repo_id: str, branch: str) -> str | None:
    """The branch that `branch`'s latest stack was merged into, if its latest stack merged."""
    latest = session.execute(select(Stack.status, Stack.base_branch).where(Stack.repo_id == repo_id,
                                                                           Stack.bookmark == branch)
                             .order_by(Stack.created_at.desc(), Stack.id.desc()).limit(1)).first()
    return latest.base_branch if latest is not None and latest.status == "merged" else None


def follow_branches_of_their_own_stacks(ctx: ChangeContext, applied: Sequence[RefUpdate], session) -> None:
    """Effect: open stacks of no workspace whose branch this change moved take its new head (`synchronize`), or
    are closed when it holds nothing its base branch lacks (one query; git only for such stacks)."""
    moved = {update.branch: update for update in applied
             if update.branch is not None and not update.is_delete and not update.is_create}
    if not moved:
        return
    actor = ctx.actor.key_id if ctx.actor else None
    for chunk in in_chunks(list(moved)):
        for stack in _current(session, select(Stack).where(
                Stack.repo_id == ctx.repo.id, Stack.status == "open", Stack.workspace_id.is_(None),
                Stack.bookmark.in_(chunk))):
            head = moved[stack.bookmark].new
            base = git_refs.read_ref(ctx.repo_path, f"refs/heads/{stack.base_branch}")
            if head == stack.head_commit or base is None:
                continue
            if git_read.is_ancestor(ctx.repo_path, head, base):
                stack.status = "closed"
                stack_changed(session, ctx.repo, stack, "closed", actor)
            elif take_head(ctx.repo_path, stack, head):  # else rewritten onto another history: its merge says so
                stack_changed(session, ctx.repo, stack, "synchronize", actor)


def take_head(repo_path: Path, stack: Stack, head: str) -> bool:
    """The stack's head becomes `head`, its commits those since it left its base branch (at most LOOK_BACK);
    False, unchanged, when `head` shares no history with the base branch (or that is gone)."""
    base = git_refs.read_ref(repo_path, f"refs/heads/{stack.base_branch}")
    fork = git_read.merge_base(repo_path, base, head) if base else None
    if fork is None:
        return False
    own = git_read.newest_commits(repo_path, head, exclude=fork, limit=LOOK_BACK)
    stack.head_commit, stack.base_commit, stack.commits = head, fork, own[::-1]
    return True


def mark_stacks_already_landed(session, repo_path: Path, repo: RepoLike, heads: dict[str, str]) -> None:
    """For the reconcile: every open stack whose head is among its base branch's newest commits (`heads`:
    branch -> sha)."""
    for branch, stacks in _open_stacks_onto(session, repo.id, list(heads)).items():
        recent = set(git_read.newest_commits(repo_path, heads[branch], limit=LOOK_BACK))
        _mark_merged(session, repo, branch, [stack_id for stack_id, head in stacks if head in recent],
                     heads[branch], None)


def _open_stacks_onto(session, repo_id: str, branches: list[str]) -> dict[str, list[tuple[str, str]]]:
    """branch -> [(stack id, head commit)] of the open stacks onto it that hold commits of their own."""
    found: dict[str, list[tuple[str, str]]] = {}
    for chunk in in_chunks(branches):
        rows = session.execute(select(Stack.id, Stack.base_branch, Stack.head_commit).where(
            Stack.repo_id == repo_id, Stack.status == "open", Stack.base_branch.in_(chunk),
            or_(Stack.base_commit.is_(None), Stack.head_commit != Stack.base_commit)))
        for stack_id, branch, head in rows:
            found.setdefault(branch, []).append((stack_id, head))
    return found


def _mark_merged(session, repo: RepoLike, branch: str, stack_ids: list[str], merged_sha: str,
                 actor: str | None) -> None:
    if not stack_ids:
        return
    for stack in _current(session, select(Stack).where(Stack.id.in_(stack_ids), Stack.status == "open")):
        stack.status, stack.merged_sha = "merged", merged_sha
        stack_changed(session, repo, stack, "closed", actor)
    for child in _current(session, select(Stack).where(Stack.parent_stack_id.in_(stack_ids),
                                                       Stack.status == "open")):
        changes = {"base": {"from": {"ref": child.base_branch}}} if child.base_branch != branch else None
        child.parent_stack_id, child.base_branch = None, branch
        if changes:
            stack_changed(session, repo, child, "edited", actor, changes)


def _current(session, query) -> list[Stack]:
    """The rows as the database has them now, also where the session holds older copies (a merge that read its
    stack before the merge's own ref change landed it)."""
    return list(session.scalars(query.execution_options(populate_existing=True)))
