"""/v1/repos/{repo}/branches: list, get, create (from the main head, or record-only), delete."""
from __future__ import annotations

from flask import Blueprint
from pydantic import Field

from control.services import branches as branch_service
from control.services import repos as repo_service

from ..endpoint import Call, endpoint
from .common import BRANCH_NAME_PATTERN, Timestamp, WholeListQuery, WireModel, whole_or_page

bp = Blueprint("branches", __name__)


class CreateBranch(WireModel):
    name: str = Field(min_length=1, max_length=255, json_schema_extra={"pattern": BRANCH_NAME_PATTERN})
    from_: str | None = Field(default=None, alias="from", min_length=1, max_length=255)
    record_only: bool = False


class BranchOut(WireModel):
    name: str
    head_commit: str | None
    head_identifier: str | None
    status: str
    base_branch: str | None
    base_commit: str | None
    created_at: Timestamp | None
    updated_at: Timestamp | None


class DeletedBranch(WireModel):
    name: str
    deleted: bool = True


def branch_out(view) -> BranchOut:
    return BranchOut(name=view.name, head_commit=view.head_sha, head_identifier=view.head_identifier,
                     status=view.status, base_branch=view.base_branch, base_commit=view.base_commit,
                     created_at=view.created_at, updated_at=view.updated_at)


@endpoint(bp, "GET", "/v1/repos/<repo>/branches", summary="List branches for a repository (by name)",
          query=WholeListQuery, response=list[BranchOut], paginated=True)
def list_branches(call: Call, repo: str, query: WholeListQuery):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    return whole_or_page(branch_service.list_branches(call.session, call.context, row), query, branch_out)


@endpoint(bp, "GET", "/v1/repos/<repo>/branches/<path:branch>", summary="Get a branch", response=BranchOut)
def get_branch(call: Call, repo: str, branch: str):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    return branch_out(branch_service.get_branch(call.session, call.context, row, branch))


@endpoint(bp, "POST", "/v1/repos/<repo>/branches", summary="Create a branch", scope="agent", body=CreateBranch,
          response=BranchOut, status=201)
def create_branch(call: Call, repo: str, body: CreateBranch):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    view = branch_service.create_branch(call.session, call.context, row, call.principal, body.name, body.from_,
                                        body.record_only)
    return branch_out(view)


@endpoint(bp, "DELETE", "/v1/repos/<repo>/branches/<path:branch>", summary="Delete a branch", scope="agent",
          response=DeletedBranch)
def delete_branch(call: Call, repo: str, branch: str):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    branch_service.delete_branch(call.session, call.context, row, call.principal, branch)
    return DeletedBranch(name=branch)
