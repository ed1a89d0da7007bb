"""Stacks whose submitted head reached their base branch by any way but their own merge are merged.

GitHub and Gitea close a pull request as merged when its head commit is pushed to its base branch (a merge
made on a clone and pushed, a fast-forward of the base to the head, an API merge of the branch itself): a stack
left `open` there read as work still waiting, and its own merge would merge it a second time. The same question
closes a stack whose merge moved the base branch and was killed before its row was written (the reconcile asks
it of every open stack). The stacks based on one that landed wait on its base branch from then on, as GitHub
retargets the pull requests based on a merged one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from sqlalchemy import select, update

from storage import git_read
from storage.db import in_chunks
from storage.models import Stack, utcnow

from .context import ChangeContext
from .refs import RefUpdate

# commits looked at per branch, newest first: a push that rewrites a branch onto a long unrelated history lists
# no more than these (500,000 of them took 4.7 s and 96 MB)
LOOK_BACK = 10_000


def mark_landed_stacks(ctx: ChangeContext, applied: Sequence[RefUpdate], session) -> None:
    """Effect: open stacks onto a branch this change moved whose head is among the commits it brought (one
    `git rev-list`, and only when stacks wait on the branch)."""
    moved = {update.branch: update for update in applied
             if update.branch is not None and not update.is_delete and not update.is_create}
    if not moved:
        return
    for branch, stacks in _open_stacks_onto(session, ctx.repo.id, list(moved)).items():
        change = moved[branch]
        brought = set(git_read.newest_commits(ctx.repo_path, change.new, exclude=change.old, limit=LOOK_BACK))
        _mark_merged(session, branch, [stack_id for stack_id, head in stacks if head in brought], change.new)


def mark_stacks_already_landed(session, repo_path: Path, repo_id: str, heads: dict[str, str]) -> None:
    """For the reconcile: every open stack whose head is among its base branch's newest commits (`heads`:
    branch -> sha)."""
    for branch, stacks in _open_stacks_onto(session, repo_id, list(heads)).items():
        recent = set(git_read.newest_commits(repo_path, heads[branch], limit=LOOK_BACK))
        _mark_merged(session, branch, [stack_id for stack_id, head in stacks if head in recent], heads[branch])


def _open_stacks_onto(session, repo_id: str, branches: list[str]) -> dict[str, list[tuple[str, str]]]:
    """branch -> [(stack id, head commit)] of the open stacks onto it that hold commits of their own."""
    found: dict[str, list[tuple[str, str]]] = {}
    for chunk in in_chunks(branches):
        rows = session.execute(select(Stack.id, Stack.base_branch, Stack.head_commit).where(
            Stack.repo_id == repo_id, Stack.status == "open", Stack.base_branch.in_(chunk),
            Stack.head_commit != Stack.base_commit))
        for stack_id, branch, head in rows:
            found.setdefault(branch, []).append((stack_id, head))
    return found


def _mark_merged(session, branch: str, stack_ids: list[str], merged_sha: str) -> None:
    if not stack_ids:
        return
    now = utcnow()
    session.execute(update(Stack).where(Stack.id.in_(stack_ids), Stack.status == "open")
                    .values(status="merged", merged_sha=merged_sha, updated_at=now)
                    .execution_options(synchronize_session=False))
    session.execute(update(Stack).where(Stack.parent_stack_id.in_(stack_ids), Stack.status == "open")
                    .values(parent_stack_id=None, base_branch=branch, updated_at=now)
                    .execution_options(synchronize_session=False))
