"""/v1/repos/{repo}/commits: history of a branch and one commit, with how it was made and its intent."""
from __future__ import annotations

from flask import Blueprint
from pydantic import Field

from control.services import commits as commit_service
from control.services import repos as repo_service
from storage.intent import intent_text

from ..endpoint import Call, endpoint
from .common import PageQuery, WireModel, pagination

bp = Blueprint("commits", __name__)


class CommitQuery(PageQuery):
    branch: str | None = Field(default=None, min_length=1, max_length=255)


class Person(WireModel):
    name: str
    email: str
    date: str


class CommitOut(WireModel):
    sha: str
    parents: list[str]
    author: Person
    committer: Person
    message: str
    time: str
    source: str
    upload_identifier: str | None
    intent: dict[str, str | bool | int | float] | None


def commit_out(view) -> CommitOut:
    info = view.info
    return CommitOut(sha=info.sha, parents=list(info.parents),
                     author=Person(name=info.author_name, email=info.author_email, date=info.authored_at),
                     committer=Person(name=info.committer_name, email=info.committer_email, date=info.committed_at),
                     message=info.message, time=info.committed_at, source=view.source,
                     upload_identifier=view.upload_identifier,
                     intent=_as_sent(view.intent) if view.intent else None)


def _as_sent(intent: dict) -> dict:
    """An API commit's intent as its request gave it (0.9 stays a number, as in the commit's own answer); a value
    of another kind, which no request can send now, as its trailer spells it."""
    return {key: value if isinstance(value, (str, bool, int, float)) else intent_text(value)
            for key, value in intent.items()}


@endpoint(bp, "GET", "/v1/repos/<repo>/commits", summary="List commits of a branch (newest first)",
          query=CommitQuery, response=list[CommitOut], paginated=True)
def list_commits(call: Call, repo: str, query: CommitQuery):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    views, has_more = commit_service.list_commits(call.session, call.context, row, query.branch, query.page,
                                                  query.per_page)
    return [commit_out(v) for v in views], pagination(query, has_more)


@endpoint(bp, "GET", "/v1/repos/<repo>/commits/<sha>", summary="Get one commit", response=CommitOut,
          params={"sha": {"pattern": "^[0-9a-f]{7,64}$", "description": "a full or abbreviated commit id"}})
def get_commit(call: Call, repo: str, sha: str):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    return commit_out(commit_service.get_commit(call.session, call.context, row, sha))
