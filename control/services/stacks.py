"""Stacks: a workspace's commit chain on a bookmark branch, reviewed and merged into its base.

A stack whose workspace started from another open stack's head sits on top of it (parent_stack_id); when
the parent merges, the child is rebased onto the target so it stays mergeable.
"""
from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from hooks.pipeline import apply_ref_change
from hooks.refs import ZERO_SHA, RefUpdate
from storage import git_read, git_refs
from storage.errors import Conflict, Invalid, NotFound
from storage.ids import new_id
from storage.keys import Principal
from storage.models import Repository, Stack, StackReview, Workspace

from .changes import change_context, checked_branch_name

REVIEW_STATES = ("approve", "request_changes", "comment")


def bookmark_name(workspace: Workspace) -> str:
    slug = re.sub(r"[^A-Za-z0-9._/-]+", "-", workspace.name).strip("-./") or workspace.id
    return checked_branch_name(f"stacks/{slug}")


def _open_stack_for(session: Session, workspace: Workspace) -> Stack | None:
    return session.scalar(select(Stack).where(Stack.workspace_id == workspace.id, Stack.status == "open"))


def _parent_stack(session: Session, repo: Repository, base_commit: str | None) -> Stack | None:
    if not base_commit:
        return None
    for stack in session.scalars(select(Stack).where(Stack.repo_id == repo.id, Stack.status == "open")):
        if base_commit in (stack.commits or []):
            return stack
    return None


def submit(session: Session, app, repo: Repository, workspace: Workspace, actor: Principal, title: str) -> Stack:
    if not workspace.current_commit or workspace.current_commit == workspace.base_commit:
        raise Invalid("nothing to submit: commit the workspace first")
    path = app.store.path_for(repo.id)
    stack = _open_stack_for(session, workspace)
    parent = stack and stack.parent_stack_id and session.get(Stack, stack.parent_stack_id)
    if stack is None:
        parent = _parent_stack(session, repo, workspace.base_commit)
    base_branch = parent.bookmark if parent else repo.default_branch
    base_commit = parent.head_commit if parent else workspace.base_commit
    bookmark = stack.bookmark if stack else bookmark_name(workspace)
    ref = f"refs/heads/{bookmark}"
    current = git_refs.read_ref(path, ref)
    if stack is None and current is not None:
        raise Conflict(f"branch {bookmark!r} already exists", {"branch": bookmark})
    ctx = change_context(app, repo, actor, "workspace")
    ctx.workspace_id = workspace.id
    if current != workspace.current_commit:
        apply_ref_change(ctx, RefUpdate(old=current or ZERO_SHA, new=workspace.current_commit, ref=ref),
                         session=session)
    commits = git_read.commits_between(path, base_commit, workspace.current_commit)
    if stack is None:
        stack = Stack(id=new_id("stk"), repo_id=repo.id, workspace_id=workspace.id, title=title, bookmark=bookmark,
                      created_by_key_id=actor.key_id)
        session.add(stack)
    stack.title = title
    stack.parent_stack_id = parent.id if parent else None
    stack.base_branch, stack.base_commit = base_branch, base_commit or workspace.current_commit
    stack.head_commit, stack.commits = workspace.current_commit, commits
    session.flush()
    return stack


def list_stacks(session: Session, repo: Repository, status: str | None = None) -> list[Stack]:
    query = select(Stack).where(Stack.repo_id == repo.id)
    if status:
        query = query.where(Stack.status == status)
    return list(session.scalars(query.order_by(Stack.created_at, Stack.id)))


def get_stack(session: Session, repo: Repository, stack_id: str, for_update: bool = False) -> Stack:
    query = select(Stack).where(Stack.id == stack_id, Stack.repo_id == repo.id)
    if for_update:
        query = query.with_for_update()
    stack = session.scalar(query)
    if stack is None:
        raise NotFound(f"stack {stack_id!r} not found")
    return stack


def reviews_of(session: Session, stack: Stack) -> list[StackReview]:
    return list(session.scalars(select(StackReview).where(StackReview.stack_id == stack.id)
                                .order_by(StackReview.created_at, StackReview.id)))


def review_stack(session: Session, stack: Stack, actor: Principal, state: str, body: str | None,
                 reviewer_name: str | None) -> StackReview:
    if state not in REVIEW_STATES:
        raise Invalid(f"state must be one of {', '.join(REVIEW_STATES)}", {"fields": [{"loc": "state", "msg": "enum"}]})
    if stack.status != "open":
        raise Conflict(f"stack is {stack.status}")
    review = StackReview(id=new_id("rev"), stack_id=stack.id, state=state, body=body, reviewer_key_id=actor.key_id,
                         reviewer_name=reviewer_name, head_commit=stack.head_commit)
    session.add(review)
    session.flush()
    return review


def review_decision(reviews: list[StackReview], head_commit: str) -> str:
    """approved | changes_requested | pending: the latest approve/request_changes on the current head wins."""
    verdicts = [r.state for r in reviews if r.head_commit == head_commit and r.state != "comment"]
    if not verdicts:
        return "pending"
    return "approved" if verdicts[-1] == "approve" else "changes_requested"
