"""A stack's life as events (DESIGN.md: Event -> timeline, webhooks), in GitHub's words for a pull request:
`opened`, `synchronize` (a new head), `edited` (title or base), `closed` (merged or not), `reopened`, and a
review's `submitted`. Each is an Event row (`stack.<action>`, `stack.merged` for a merge; the project timeline
shows them) and a `pull_request` / `pull_request_review` event for the repository's webhooks, queued in the
transaction that made the change: a change that is rolled back tells no one."""
from __future__ import annotations

from typing import Protocol

from sqlalchemy import and_, func, insert, or_, select

from storage.ids import new_id
from storage.models import Event, Stack, StackReview

from .webhooks import queue_event

PULL_REQUEST = "pull_request"
PULL_REQUEST_REVIEW = "pull_request_review"


class RepoLike(Protocol):
    id: str
    org_id: str
    slug: str


def stack_number(session, stack: Stack) -> int:
    """Its place among its repository's stacks, oldest first (stacks are never deleted but with the repository)."""
    earlier = select(func.count()).select_from(Stack).where(
        Stack.repo_id == stack.repo_id,
        or_(Stack.created_at < stack.created_at, and_(Stack.created_at == stack.created_at, Stack.id <= stack.id)))
    return session.scalar(earlier)


def stack_changed(session, repo: RepoLike, stack: Stack, action: str, actor_key_id: str | None,
                  changes: dict | None = None) -> None:
    """`action` happened to `stack` (already changed, in `session`); `changes`: what an `edited` changed, as
    {field: {"from": old value}}."""
    session.flush()  # a new stack's created_at, which its number counts by
    described = _described(session, stack)
    kind = "stack.merged" if action == "closed" and stack.status == "merged" else f"stack.{action}"
    extra = {"changes": changes} if changes else {}
    _record(session, repo, actor_key_id, kind, {"stack": described, **extra})
    queue_event(session, repo.id, PULL_REQUEST, {
        "event": PULL_REQUEST, "action": action, "number": described["number"], "pullRequest": described,
        **_where(repo), "actorKeyId": actor_key_id, **extra})


def review_submitted(session, repo: RepoLike, stack: Stack, review: StackReview) -> None:
    described = _described(session, stack)
    given = {"id": review.id, "state": review.state, "body": review.body, "reviewerName": review.reviewer_name,
             "headCommit": review.head_commit}
    _record(session, repo, review.reviewer_key_id, "stack.review", {"stack": described, "review": given})
    queue_event(session, repo.id, PULL_REQUEST_REVIEW, {
        "event": PULL_REQUEST_REVIEW, "action": "submitted", "review": given, "pullRequest": described,
        **_where(repo), "actorKeyId": review.reviewer_key_id})


def review_dismissed(session, repo: RepoLike, stack: Stack, review: StackReview, actor_key_id: str | None) -> None:
    described = _described(session, stack)
    given = {"id": review.id, "state": "dismissed", "body": review.body, "reviewerName": review.reviewer_name,
             "headCommit": review.head_commit, "dismissalMessage": review.dismissal_message}  # GitHub's state
    _record(session, repo, actor_key_id, "stack.review_dismissed", {"stack": described, "review": given})
    queue_event(session, repo.id, PULL_REQUEST_REVIEW, {
        "event": PULL_REQUEST_REVIEW, "action": "dismissed", "review": given, "pullRequest": described,
        **_where(repo), "actorKeyId": actor_key_id})


def _described(session, stack: Stack) -> dict:
    return {"id": stack.id, "number": stack_number(session, stack), "title": stack.title,
            "state": "open" if stack.status == "open" else "closed", "merged": stack.status == "merged",
            "mergedSha": stack.merged_sha, "head": {"ref": stack.bookmark, "sha": stack.head_commit},
            "base": {"ref": stack.base_branch, "sha": stack.base_commit}, "commits": len(stack.commits or []),
            "parentStackId": stack.parent_stack_id, "workspaceId": stack.workspace_id}


def _where(repo: RepoLike) -> dict:
    return {"repository": {"id": repo.id, "slug": repo.slug}, "organization": {"id": repo.org_id}}


def _record(session, repo: RepoLike, actor_key_id: str | None, kind: str, payload: dict) -> None:
    session.execute(insert(Event).values(id=new_id("ev"), org_id=repo.org_id, repo_id=repo.id,
                                         actor_key_id=actor_key_id, kind=kind, payload=payload))
