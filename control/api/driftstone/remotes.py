"""/v1/repos/{repo}/remotes: a repository's remotes, `origin` (its repository_url, set through the workspace) and
named ones added here (admin), each with a token kept sealed for its repository and never answered."""
from __future__ import annotations

from flask import Blueprint
from pydantic import Field

from control.services import remotes as service
from control.services import repos as repo_service
from storage.git_remote import shown

from ..endpoint import Call, endpoint
from .common import WholeListQuery, WireModel, whole_or_page

bp = Blueprint("remotes", __name__)
REMOTES = "/v1/repos/<repo>/remotes"
ONE = REMOTES + "/<name>"
NAME = {"name": {"pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", "description": "a plain remote name: upstream"}}


class PutRemote(WireModel):
    url: str = Field(min_length=1, max_length=2048, pattern=r"^(?:https?|ssh|git)://[\x21-\x7e]+$")
    token: str | None = Field(default=None, max_length=20_000, pattern=r"^[\x21-\x7e]*$", description=(
        "a token for the remote's repository; \"\" forgets it, left out keeps it (for the same repository only)"))


class RemoteOut(WireModel):
    name: str
    url: str
    has_token: bool


class RemoteDeleted(WireModel):
    name: str
    deleted: bool = True


def _repo(call: Call, repo: str):
    return repo_service.visible_repo(call.session, call.principal, repo)


@endpoint(bp, "GET", REMOTES, summary="List a repository's remotes (origin first, then by name)",
          query=WholeListQuery, response=list[RemoteOut], paginated=True)
def list_remotes(call: Call, repo: str, query: WholeListQuery):
    found = service.configured(call.session, call.context.settings.secret_key, _repo(call, repo))
    return whole_or_page(found, query, lambda remote: RemoteOut(name=remote.name, url=shown(remote.url),
                                                                has_token=remote.token is not None))


@endpoint(bp, "PUT", ONE, summary="Add or change a named remote (origin is the workspace's repository_url)",
          scope="admin", body=PutRemote, response=RemoteOut, params=NAME,
          errors={400: "An unsafe name, `origin`, a URL git cannot use or with credentials in it, a token for a "
                       "URL that is not http(s)", 409: "The repository has its most named remotes"})
def put_remote(call: Call, repo: str, name: str, body: PutRemote):
    settings = call.context.settings
    remote = service.put(call.session, settings.secret_key, _repo(call, repo), name, body.url, body.token)
    return RemoteOut(name=remote.name, url=shown(remote.url), has_token=remote.credentials is not None)


@endpoint(bp, "DELETE", ONE, summary="Remove a named remote and the token kept for it", scope="admin",
          response=RemoteDeleted, params=NAME)
def delete_remote(call: Call, repo: str, name: str):
    service.delete(call.session, _repo(call, repo), name)
    return RemoteDeleted(name=name)
