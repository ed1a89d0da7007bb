"""/v1/repos: create, list, get, delete."""
from __future__ import annotations

from flask import Blueprint
from pydantic import Field

from control.services import repos as repo_service

from ..endpoint import Call, endpoint
from .common import REPO_NAME_PATTERN, PageQuery, Timestamp, WireModel, pagination

bp = Blueprint("repos", __name__)


class CreateRepo(WireModel):
    name: str = Field(min_length=1, max_length=100, pattern=REPO_NAME_PATTERN,
                      description="any text with an ASCII letter or digit; the slug is derived from it")
    description: str | None = Field(default=None, max_length=10000)


class RepoOut(WireModel):
    id: str
    name: str
    slug: str
    description: str | None
    default_branch: str
    main_head_commit: str | None
    main_head_identifier: str | None
    clone_url: str
    created_at: Timestamp


class Deleted(WireModel):
    id: str
    deleted: bool = True


def org_slug(call: Call) -> str:
    """Looked up once per request: the session's identity map holds rows weakly, so a per-repo get re-queries."""
    from storage.models import Organization

    return call.session.get(Organization, call.org_id).slug


def repo_out(call: Call, repo, org: str | None = None) -> RepoOut:
    org = org or org_slug(call)
    return RepoOut(id=repo.id, name=repo.name, slug=repo.slug, description=repo.description,
                   default_branch=repo.default_branch,
                   main_head_commit=repo_service.head_of(call.context.store, repo),
                   main_head_identifier=repo.main_head_identifier,
                   clone_url=f"{call.base_url()}/{org}/{repo.slug}.git", created_at=repo.created_at)


@endpoint(bp, "POST", "/v1/repos", summary="Create a repository", scope="admin", body=CreateRepo,
          response=RepoOut, status=201)
def create_repo(call: Call, body: CreateRepo):
    repo = repo_service.create_repo(call.session, call.context.store, call.org_id, body.name, body.description,
                                    creator=call.principal)
    return repo_out(call, repo)


@endpoint(bp, "GET", "/v1/repos", summary="List repositories for an organization", query=PageQuery,
          response=list[RepoOut], paginated=True)
def list_repos(call: Call, query: PageQuery):
    rows, has_more = repo_service.list_repos(call.session, call.principal, query.page, query.per_page)
    org = org_slug(call)
    return [repo_out(call, r, org) for r in rows], pagination(query, has_more)


@endpoint(bp, "GET", "/v1/repos/<repo>", summary="Get repository metadata", response=RepoOut)
def get_repo(call: Call, repo: str):
    return repo_out(call, repo_service.visible_repo(call.session, call.principal, repo))


@endpoint(bp, "DELETE", "/v1/repos/<repo>", summary="Delete a repository", scope="admin", response=Deleted)
def delete_repo(call: Call, repo: str):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    repo_service.delete_repo(call.session, row, call.context.clock())
    return Deleted(id=row.id)
