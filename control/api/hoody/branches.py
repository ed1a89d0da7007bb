"""/api/v1/workspaces/{workspaceID}/branches (seed 003, hoody's Branches API): a workspace's (a repository's)
branches by id. Answers are the documented objects themselves; errors are hoody's: 404 {"name": "NotFoundError",
"data": {"message"}}, 429 {"error", "retryAfterMs"}, any other {"success": false, "errors": [{"message"}],
"data": null}.

hoody keeps a worktree per branch; Driftstone keeps none (every change to a branch is a commit), so a branch's
`path` is where it lives on this server, `/{organization}/{repository}/branches/{id}`, its disk usage is what its
files take written out, and its status never counts staged or untracked files."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field

from control.services import branch_remotes, projects
from control.services import workspace_branches as service
from storage.errors import BadRequest, NotFound
from storage.times import as_utc

from ..driftstone.merges import MergeOut, merge_out
from ..driftstone.repos import org_slug
from ..endpoint import Call, endpoint

bp = Blueprint("hoody_branches", __name__)

TAG = "hoody"
BRANCHES = "/api/v1/workspaces/<workspace_id>/branches"
ONE = BRANCHES + "/<ident:branch_id>"
NAME = Field(min_length=1, max_length=200, pattern=r"\S")  # not only spaces


def route(method: str, path: str, **kwargs):
    return endpoint(bp, method, path, tag=TAG, envelope="hoody", **kwargs)


class HoodyModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class HoodyBranch(HoodyModel):
    id: str
    path: str
    branch: str
    name: str
    status: Literal["creating", "ready", "resetting", "failed"]
    base_branch: str | None
    base_commit: str | None
    created_at: int = Field(description="milliseconds since the epoch")
    updated_at: int = Field(description="milliseconds since the epoch")


class CreateHoodyBranch(HoodyModel):
    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"\S")
    startCommand: str | None = Field(default=None, max_length=10_000, description=(
        "refused unless empty: a branch here has no worktree to run a command in"))
    baseBranch: str | None = Field(default=None, min_length=1, max_length=255)
    branch: str | None = Field(default=None, min_length=1, max_length=255, description=(
        "the git branch to make (not in hoody's document); default: one made from `name`"))


class RenameHoodyBranch(HoodyModel):
    name: str = NAME


class HoodyStatus(HoodyModel):
    branch: str
    ahead: int
    behind: int
    staged: int
    unstaged: int
    untracked: int
    clean: bool


class HoodyDiskUsage(HoodyModel):
    id: str
    directory: str
    bytes: int


class DiskUsageQuery(HoodyModel):
    id: str | None = Field(default=None, min_length=1, max_length=100)


class HoodyDiffQuery(HoodyModel):
    base: str | None = Field(default=None, min_length=1, max_length=255)
    file: str | None = Field(default=None, min_length=1, max_length=4096)
    format: Literal["summary", "full"] = "summary"


class HoodyDiffLine(HoodyModel):
    type: Literal["context", "add", "remove"]
    content: str
    no_newline: bool | None = None


class HoodyDiffHunk(HoodyModel):
    old_start: int
    old_lines: int
    new_start: int
    new_lines: int
    lines: list[HoodyDiffLine]


class HoodyDiffFile(HoodyModel):
    path: str
    old_path: str | None
    status: Literal["added", "modified", "deleted", "renamed", "copied"]
    insertions: int
    deletions: int
    binary: bool
    truncated: bool
    hunks: list[HoodyDiffHunk] | None = None


class HoodyDiff(HoodyModel):
    base_commit: str | None
    head_commit: str | None
    files: list[HoodyDiffFile]
    truncated: bool


class HoodyRemote(HoodyModel):
    name: str
    url: str
    provider: str
    owner: str | None
    repo: str | None
    authenticated: bool


class HoodyRemotes(HoodyModel):
    remotes: list[HoodyRemote]
    defaultRemote: str | None


class RemoteRefsQuery(HoodyModel):
    remote: str | None = Field(default=None, max_length=300)


class HoodyRemoteRefs(HoodyModel):
    branches: list[str]
    tags: list[str]


class MergeHoodyBranch(HoodyModel):
    strategy: Literal["squash", "rebase", "merge"] = "merge"
    message: str | None = Field(default=None, min_length=1, max_length=65_536)
    dry_run: bool = False
    deleteBranch: bool = False


class HoodyDeleted(HoodyModel):
    success: bool


def _workspace(call: Call, workspace_id: str):
    """hoody's workspace is its project: one it cannot find is "Project not found", as the document writes it."""
    try:
        return projects.visible_project(call.session, call.principal, workspace_id)
    except NotFound:
        raise NotFound("Project not found", {"workspace": workspace_id}) from None


def _branch(call: Call, workspace_id: str, branch_id: str) -> tuple:
    """The workspace (repository) and its branch of that id."""
    repo = _workspace(call, workspace_id)
    return repo, service.branch_by_id(call.session, call.context, repo, branch_id)


def _millis(moment: datetime | None) -> int:
    return int(as_utc(moment).timestamp() * 1000) if moment else 0


def _branch_out(call: Call, repo, listed: service.Listed, org: str | None = None) -> HoodyBranch:
    """`org`: the organization's slug, looked up once for a list."""
    row = listed.row
    return HoodyBranch(id=row.id, path=f"/{org or org_slug(call)}/{repo.slug}/branches/{row.id}", branch=row.name,
                       name=row.display_name or row.name, status=row.status,
                       base_branch=row.base_branch, base_commit=row.base_commit,
                       created_at=_millis(row.created_at), updated_at=_millis(row.updated_at or row.created_at))


@route("GET", BRANCHES, summary="List the workspace's branches", response=list[HoodyBranch])
def list_branches(call: Call, workspace_id: str):
    repo = _workspace(call, workspace_id)
    org = org_slug(call)
    return [_branch_out(call, repo, listed, org) for listed in service.list_branches(call.session, call.context, repo)]


@route("POST", BRANCHES, summary="Create a branch from a base branch's head", scope="agent",
       body=CreateHoodyBranch, response=HoodyBranch, status=201)
def create_branch(call: Call, workspace_id: str, body: CreateHoodyBranch):
    repo = _workspace(call, workspace_id)
    if body.startCommand and body.startCommand.strip():
        raise BadRequest("start commands are not run here: a branch has no worktree on this server",
                         {"field": "startCommand"})
    listed = service.create(call.session, call.context, repo, call.principal, body.name, body.baseBranch,
                            body.branch)
    return _branch_out(call, repo, listed)


@route("PATCH", ONE, summary="Rename a branch's display name (its git name stays)", scope="agent",
       body=RenameHoodyBranch, response=HoodyBranch)
def rename_branch(call: Call, workspace_id: str, branch_id: str, body: RenameHoodyBranch):
    repo, listed = _branch(call, workspace_id, branch_id)
    return _branch_out(call, repo, service.rename(call.session, listed, body.name))


@route("DELETE", ONE, summary="Delete a branch", scope="agent", response=HoodyDeleted)
def delete_branch(call: Call, workspace_id: str, branch_id: str):
    repo, listed = _branch(call, workspace_id, branch_id)
    service.delete(call.session, call.context, repo, call.principal, listed)
    return HoodyDeleted(success=True)


@route("POST", ONE + "/reset", summary="Reset a branch to the commit it was made from", scope="agent",
       response=HoodyBranch)
def reset_branch(call: Call, workspace_id: str, branch_id: str):
    repo, listed = _branch(call, workspace_id, branch_id)
    return _branch_out(call, repo, service.reset(call.session, call.context, repo, call.principal, listed))


@route("POST", ONE + "/retry", summary="Retry a failed branch", scope="agent", response=HoodyBranch)
def retry_branch(call: Call, workspace_id: str, branch_id: str):
    repo, listed = _branch(call, workspace_id, branch_id)
    return _branch_out(call, repo, service.retry(call.session, call.context, repo, call.principal, listed))


@route("GET", ONE + "/status", summary="A branch's commits ahead of and behind its base branch",
       response=HoodyStatus)
def branch_status(call: Call, workspace_id: str, branch_id: str):
    repo, listed = _branch(call, workspace_id, branch_id)
    counts = service.status(call.session, call.context, repo, listed)
    return HoodyStatus(branch=listed.row.name, ahead=counts.ahead, behind=counts.behind, staged=0, unstaged=0,
                       untracked=0, clean=True)


@route("GET", ONE + "/diff", summary="A branch's changes since it left its base (or `base`)", query=HoodyDiffQuery,
       response=HoodyDiff)
def branch_diff(call: Call, workspace_id: str, branch_id: str, query: HoodyDiffQuery):
    repo, listed = _branch(call, workspace_id, branch_id)
    full = query.format == "full"
    result = service.diff(call.session, call.context, repo, listed, query.base, query.file, full)
    for entry in result["files"]:
        if not full:
            entry.pop("hunks", None)
    return result


@route("GET", BRANCHES + "/disk-usage", summary="What each branch's files take written out (or one branch's)",
       query=DiskUsageQuery, response=list[HoodyDiskUsage])
def disk_usage(call: Call, workspace_id: str, query: DiskUsageQuery):
    repo = _workspace(call, workspace_id)
    measured = service.disk_usage(call.session, call.context, repo, query.id)
    org = org_slug(call)
    return [HoodyDiskUsage(id=listed.row.id, directory=_branch_out(call, repo, listed, org).path, bytes=size)
            for listed, size in measured]


@route("POST", ONE + "/merge", summary="Merge a branch into its base branch", scope="agent",
       body=MergeHoodyBranch, response=MergeOut)
def merge_branch(call: Call, workspace_id: str, branch_id: str, body: MergeHoodyBranch):
    repo, listed = _branch(call, workspace_id, branch_id)
    outcome = service.merge(call.session, call.context, repo, call.principal, listed, body.strategy, body.message,
                            body.dry_run, body.deleteBranch)
    return merge_out(outcome)


@route("GET", BRANCHES + "/remote", summary="The workspace's remote (its repository_url, as origin)",
       response=HoodyRemotes)
def remote_info(call: Call, workspace_id: str):
    repo = _workspace(call, workspace_id)
    found = branch_remotes.remotes(call.session, call.context, repo)
    return HoodyRemotes(remotes=[HoodyRemote(**vars(remote)) for remote in found],
                        defaultRemote=found[0].name if found else None)


@route("GET", BRANCHES + "/remote-refs", summary="The branches and tags the remote has now (git ls-remote)",
       query=RemoteRefsQuery, response=HoodyRemoteRefs, errors={429: "Too many listings of this remote"})
def remote_refs(call: Call, workspace_id: str, query: RemoteRefsQuery):
    repo = _workspace(call, workspace_id)
    heads, tags = branch_remotes.remote_refs(call.session, call.context, repo, query.remote)
    return HoodyRemoteRefs(branches=heads, tags=tags)


class HoodyRemoteStatus(HoodyModel):
    hasUpstream: bool
    ahead: int
    behind: int
    remoteBranch: str | None


@route("GET", ONE + "/remote-status", summary="Commits ahead of and behind the remote's branch of the same name",
       response=HoodyRemoteStatus, errors={429: "Too many calls to this remote"})
def remote_status(call: Call, workspace_id: str, branch_id: str):
    repo, listed = _branch(call, workspace_id, branch_id)
    found = branch_remotes.remote_status(call.session, call.context, repo, listed)
    return HoodyRemoteStatus(hasUpstream=found.remote_branch is not None, ahead=found.ahead, behind=found.behind,
                             remoteBranch=found.remote_branch)


class HoodyPull(HoodyModel):
    success: bool
    conflicts: list[str]
    message: str


@route("POST", ONE + "/pull", summary="Merge the remote's branch of the same name in (fast-forward when it can)",
       scope="agent", response=HoodyPull, errors={429: "Too many calls to this remote"})
def pull_branch(call: Call, workspace_id: str, branch_id: str):
    repo, listed = _branch(call, workspace_id, branch_id)
    pulled = branch_remotes.pull(call.session, call.context, repo, call.principal, listed)
    return HoodyPull(success=pulled.success, conflicts=pulled.conflicts, message=pulled.message)


class HoodyCI(HoodyModel):
    status: str = Field(description="none: this server runs no CI")
    url: str | None


class HoodyPRStatus(HoodyModel):
    exists: bool
    url: str | None
    number: int | None
    state: Literal["open", "merged", "closed"] | None
    ci: HoodyCI | None
    reviewStatus: Literal["approved", "changes_requested", "pending"] | None


class HoodyPROpened(HoodyModel):
    success: bool
    url: str
    number: int
    provider: str
    message: str


def _stack_url(call: Call, repo, stack) -> str:
    return f"{call.base_url()}/v1/repos/{repo.slug}/stacks/{stack.id}"


@route("GET", ONE + "/pr", summary="The branch's pull request (a stack of its commits onto its base branch)",
       response=HoodyPRStatus)
def pr_status(call: Call, workspace_id: str, branch_id: str):
    repo, listed = _branch(call, workspace_id, branch_id)
    found = service.pull_request(call.session, repo, listed)
    if found is None:
        return HoodyPRStatus(exists=False, url=None, number=None, state=None, ci=None, reviewStatus=None)
    return HoodyPRStatus(exists=True, url=_stack_url(call, repo, found.stack), number=found.number,
                         state=found.stack.status, ci=HoodyCI(status="none", url=None),
                         reviewStatus=found.review_status)


@route("POST", ONE + "/pr", summary="Open the branch's pull request onto its base branch (or bring it up to date)",
       scope="agent", response=HoodyPROpened)
def open_pr(call: Call, workspace_id: str, branch_id: str):
    repo, listed = _branch(call, workspace_id, branch_id)
    found, created = service.open_pull_request(call.session, call.context, repo, call.principal, listed)
    return HoodyPROpened(success=True, url=_stack_url(call, repo, found.stack), number=found.number,
                         provider="driftstone",
                         message="Pull request opened." if created else "Pull request updated to the branch's head.")


class HoodyPushed(HoodyModel):
    success: bool
    ref: str
    remote: str
    url: str
    message: str


@route("POST", ONE + "/push", summary="Push the branch to the remote's branch of the same name (no force), with the "
       "token the workspace keeps for it", scope="agent", response=HoodyPushed,
       errors={409: "The remote branch has commits this branch does not", 429: "Too many calls to this remote"})
def push_branch(call: Call, workspace_id: str, branch_id: str):
    repo, listed = _branch(call, workspace_id, branch_id)
    pushed = branch_remotes.push(call.session, call.context, repo, call.principal, listed)
    return HoodyPushed(success=True, ref=pushed.ref, remote=pushed.remote, url=pushed.url, message=pushed.message)
