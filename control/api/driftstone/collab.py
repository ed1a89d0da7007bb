"""/v1 homes of what no seed routes for collaboration: path locks (list, release) and stacks (list, get, edit,
close, reopen, review, merge)."""
from __future__ import annotations

from typing import Literal

from flask import Blueprint
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from control.services import locks as lock_service
from control.services import repos as repo_service
from control.services import stacks as stack_service
from storage.times import as_utc

from ..endpoint import Call, endpoint
from .common import Timestamp, WholeListQuery, WireModel, whole_or_page
from .merges import SHA_PATTERN, MergeOut

bp = Blueprint("collab", __name__)


class LockOut(WireModel):
    id: str
    workspace_id: str
    workspace_name: str
    agent_name: str | None
    patterns: list[str]
    expires_at: Timestamp
    created_at: Timestamp


class ReleaseQuery(WireModel):
    workspace_id: str | None = Field(default=None, max_length=40)
    force: bool = False


class Released(WireModel):
    id: str
    released: bool = True


class ReviewOut(WireModel):
    id: str
    state: str
    body: str | None
    reviewer_name: str | None
    head_commit: str
    created_at: Timestamp
    dismissed_at: Timestamp | None = None
    dismissal_message: str | None = None


def review_out(review) -> ReviewOut:
    return ReviewOut(id=review.id, state=review.state, body=review.body, reviewer_name=review.reviewer_name,
                     head_commit=review.head_commit, created_at=review.created_at, dismissed_at=review.dismissed_at,
                     dismissal_message=review.dismissal_message)


class StackOut(WireModel):
    id: str
    title: str
    bookmark: str
    base_branch: str
    base_commit: str | None
    head_commit: str
    commits: list[str]
    status: str
    parent_stack_id: str | None
    workspace_id: str | None
    merged_sha: str | None
    review_decision: str
    mergeable: bool | None
    conflicts: list[str]
    reviews: list[ReviewOut]
    created_at: Timestamp
    updated_at: Timestamp


class StackQuery(WholeListQuery):
    status: Literal["open", "merged", "closed"] | None = None


class UpdateStack(WireModel):
    """GitHub's PATCH of a pull request: a new title, `status` closed or open (reopen)."""

    title: str | None = Field(default=None, min_length=1, max_length=500)
    status: Literal["open", "closed"] | None = None


class CreateReview(WireModel):
    state: Literal["approve", "request_changes", "comment"]
    body: str | None = Field(default=None, max_length=100000)
    reviewer_name: str | None = Field(default=None, max_length=200)
    head_commit: str | None = Field(default=None, pattern=SHA_PATTERN,
                                    description="the head the review is of (GitHub's commit_id): a stack moved since "
                                                "is a 409 stale_ref, the review not taken")


class DismissReview(WireModel):
    """GitHub's dismissal of a review: why, for the reviewer and the timeline."""

    message: str = Field(min_length=1, max_length=65536)


class MergeStackRequest(BaseModel):
    """Seed 003's merge names (`dry_run`, `deleteBranch`), as on POST /v1/repos/{repo}/merges."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    strategy: Literal["merge", "squash", "rebase"] = "merge"
    dry_run: bool = Field(default=False, validation_alias=AliasChoices("dry_run", "dryRun"))
    message: str | None = Field(default=None, min_length=1, max_length=65536)
    delete_branch: bool = Field(default=False, validation_alias=AliasChoices("deleteBranch", "delete_branch"))


def stack_out(call: Call, stack, mergeable_by: str | None = None) -> StackOut:
    """`mergeable_by`: the strategy whose dry run tells `mergeable` (None: not asked)."""
    reviews = stack_service.reviews_of(call.session, stack)
    mergeable, conflicts = None, []
    if mergeable_by is not None and stack.status == "open":
        mergeable, conflicts = stack_service.mergeability(call.session, call.context, stack, call.principal,
                                                          mergeable_by)
    return StackOut(id=stack.id, title=stack.title, bookmark=stack.bookmark, base_branch=stack.base_branch,
                    base_commit=stack.base_commit, head_commit=stack.head_commit, commits=list(stack.commits or []),
                    status=stack.status, parent_stack_id=stack.parent_stack_id, workspace_id=stack.workspace_id,
                    merged_sha=stack.merged_sha,
                    review_decision=stack_service.review_decision(call.session, stack, reviews),
                    mergeable=mergeable, conflicts=conflicts, reviews=[review_out(r) for r in reviews],
                    created_at=stack.created_at, updated_at=stack.updated_at)


@endpoint(bp, "GET", "/v1/repos/<repo>/locks", summary="List active path locks (oldest first)", query=WholeListQuery,
          response=list[LockOut], paginated=True)
def list_locks(call: Call, repo: str, query: WholeListQuery):
    row = repo_service.visible_repo(call.session, call.principal, repo)

    def lock_out(held) -> LockOut:
        lock, name, agent = held
        return LockOut(id=lock.id, workspace_id=lock.workspace_id, workspace_name=name, agent_name=agent,
                       patterns=lock.patterns, expires_at=as_utc(lock.expires_at), created_at=lock.created_at)

    return whole_or_page(lock_service.list_locks(call.session, row, call.context.clock()), query, lock_out)


@endpoint(bp, "DELETE", "/v1/repos/<repo>/locks/<lock_id>", summary="Release a lock (holder, or admin with force)",
          scope="agent", query=ReleaseQuery, response=Released)
def release_lock(call: Call, repo: str, lock_id: str, query: ReleaseQuery):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    lock = lock_service.release_lock(call.session, row, lock_id, call.principal, query.workspace_id, query.force,
                                     call.context.clock())
    return Released(id=lock.id)


@endpoint(bp, "GET", "/v1/repos/<repo>/stacks", summary="List stacks (oldest first)", query=StackQuery,
          response=list[StackOut], paginated=True)
def list_stacks(call: Call, repo: str, query: StackQuery):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    return whole_or_page(stack_service.list_stacks(call.session, row, query.status), query,
                         lambda stack: stack_out(call, stack))


class MergeableQuery(WireModel):
    strategy: Literal["merge", "squash", "rebase"] = Field(
        default="merge", description="the merge strategy `mergeable` is told for (a squash of a stack submitted "
                                     "after an earlier squash may land where a merge commit conflicts)")


@endpoint(bp, "GET", "/v1/repos/<repo>/stacks/<stack_id>", summary="Get a stack with its commits and reviews",
          query=MergeableQuery, response=StackOut)
def get_stack(call: Call, repo: str, stack_id: str, query: MergeableQuery):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    return stack_out(call, stack_service.get_stack(call.session, row, stack_id), mergeable_by=query.strategy)


@endpoint(bp, "PATCH", "/v1/repos/<repo>/stacks/<stack_id>", summary="Retitle, close or reopen a stack",
          scope="agent", body=UpdateStack, response=StackOut,
          errors={409: "A merged stack; a reopen whose branch was deleted, rewritten or is another open stack's"})
def update_stack(call: Call, repo: str, stack_id: str, body: UpdateStack):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    stack = stack_service.get_stack(call.session, row, stack_id)
    stack = stack_service.update_stack(call.session, call.context, row, stack, call.principal, body.title,
                                       body.status)
    return stack_out(call, stack)


@endpoint(bp, "POST", "/v1/repos/<repo>/stacks/<stack_id>/reviews", summary="Approve, request changes or comment",
          scope="agent", body=CreateReview, response=ReviewOut, status=201)
def review_stack(call: Call, repo: str, stack_id: str, body: CreateReview):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    stack = stack_service.get_stack(call.session, row, stack_id)
    review = stack_service.review_stack(call.session, row, stack, call.principal, body.state, body.body,
                                        body.reviewer_name, body.head_commit)
    return review_out(review)


@endpoint(bp, "PUT", "/v1/repos/<repo>/stacks/<stack_id>/reviews/<review_id>/dismissals",
          summary="Dismiss a review (GitHub's dismissal): it no longer counts for or against the merge",
          scope="admin", body=DismissReview, response=ReviewOut,
          errors={409: "The stack is not open, or the review is dismissed already"})
def dismiss_review(call: Call, repo: str, stack_id: str, review_id: str, body: DismissReview):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    stack = stack_service.get_stack(call.session, row, stack_id)
    return review_out(stack_service.dismiss_review(call.session, row, stack, review_id, call.principal,
                                                   body.message))


@endpoint(bp, "POST", "/v1/repos/<repo>/stacks/<stack_id>/merge", summary="Merge a stack into its base",
          scope="agent", body=MergeStackRequest, response=MergeOut)
def merge_stack(call: Call, repo: str, stack_id: str, body: MergeStackRequest):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    stack = stack_service.get_stack(call.session, row, stack_id)  # merge_stack waits for its turn, then reads it again
    outcome = stack_service.merge_stack(call.session, call.context, row, stack, call.principal, body.strategy,
                                        body.message, body.delete_branch, body.dry_run)
    return MergeOut(success=outcome.success, sha=outcome.sha, head_commit=outcome.head_commit,
                    already_merged=outcome.already_merged, target=outcome.target, conflicts=outcome.conflicts,
                    message=outcome.message)
