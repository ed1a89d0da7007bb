"""Stacks whose submitted head reached their base branch by any way but their own merge are merged.

GitHub and Gitea close a pull request as merged when its head commit is pushed to its base branch (a merge
made on a clone and pushed, a fast-forward of the base to the head, an API merge of the branch itself): a stack
left `open` there read as work still waiting, and its own merge would merge it a second time. The same question
closes a stack whose merge moved the base branch and was killed before its row was written (the reconcile asks
it of every open stack).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from sqlalchemy import select, update

from storage import git_read
from storage.models import Stack, utcnow

from .context import ChangeContext
from .refs import RefUpdate


def mark_landed_stacks(ctx: ChangeContext, applied: Sequence[RefUpdate], session) -> None:
    """Effect: open stacks onto a branch this change moved forward whose head is among the commits it brought.
    Only the commits new to the branch are listed (one `git rev-list`, and only when stacks wait on it)."""
    moved = {update.branch: update for update in applied
             if update.branch is not None and not update.is_delete and not update.is_create}
    if not moved:
        return
    waiting = _open_stacks_onto(session, ctx.repo.id, list(moved))
    for branch, stacks in waiting.items():
        update_ = moved[branch]
        brought = set(git_read.commits_between(ctx.repo_path, update_.old, update_.new))
        _mark_merged(session, [stack_id for stack_id, head in stacks if head in brought], update_.new)


def mark_stacks_already_landed(session, repo_path: Path, repo_id: str, heads: dict[str, str]) -> None:
    """For the reconcile: every open stack whose head its base branch (at `heads`, branch -> sha) contains."""
    for branch, stacks in _open_stacks_onto(session, repo_id, list(heads)).items():
        head = heads[branch]
        _mark_merged(session, [stack_id for stack_id, stack_head in stacks
                               if git_read.is_ancestor(repo_path, stack_head, head)], head)


def _open_stacks_onto(session, repo_id: str, branches: list[str]) -> dict[str, list[tuple[str, str]]]:
    """branch -> [(stack id, head commit)] of the open stacks onto it that hold commits of their own."""
    found: dict[str, list[tuple[str, str]]] = {}
    for start in range(0, len(branches), 500):
        rows = session.execute(select(Stack.id, Stack.base_branch, Stack.head_commit).where(
            Stack.repo_id == repo_id, Stack.status == "open", Stack.base_branch.in_(branches[start:start + 500]),
            Stack.head_commit != Stack.base_commit))
        for stack_id, branch, head in rows:
            found.setdefault(branch, []).append((stack_id, head))
    return found


def _mark_merged(session, stack_ids: list[str], merged_sha: str) -> None:
    if stack_ids:
        session.execute(update(Stack).where(Stack.id.in_(stack_ids), Stack.status == "open")
                        .values(status="merged", merged_sha=merged_sha, updated_at=utcnow())
                        .execution_options(synchronize_session=False))
