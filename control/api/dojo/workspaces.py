"""Workspaces API (seed 004): create, list, files, status, commit, submit, conflicts, tree, search, lock, delete."""
from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from flask import Blueprint, request
from pydantic import Field

from control.services import locks as lock_service
from control.services import stacks as stack_service
from control.services import workspaces as workspace_service
from storage.key_format import redact_keys
from storage.times import as_utc

from ..driftstone.contents import (PATH_PATTERN, PATH_RULES, AuthorEmail, AuthorName, Intent, OneLine,
                                   intent_field)
from ..endpoint import Call, endpoint
from .common import PREFIX, DojoModel, WorkspaceOut, owned_repo, workspace_out

bp = Blueprint("dojo_workspaces", __name__)
WS = PREFIX + "/workspaces/<ws_id>"
TAG = "dojo"


def route(method: str, path: str, **kwargs):
    return endpoint(bp, method, path, tag=TAG, envelope="bare", **kwargs)


class CreateWorkspace(DojoModel):
    name: str = Field(min_length=1, max_length=200)
    agent_name: OneLine | None = Field(default=None, max_length=200)
    base_commit: str | None = Field(default=None, min_length=1, max_length=64)


class WorkspaceEnvelope(DojoModel):
    workspace: WorkspaceOut


class WorkspaceList(DojoModel):
    workspaces: list[WorkspaceOut]


class Written(DojoModel):
    path: str
    size: int
    blob_sha: str
    source: str = "overlay"


class FileOut(DojoModel):
    path: str
    content: str
    encoding: str = "base64"
    source: str


class DeletedFile(DojoModel):
    path: str
    deleted: bool = True


class StatusOut(DojoModel):
    added: list[str]
    modified: list[str]
    deleted: list[str]


class CommitRequest(DojoModel):
    message: str = Field(min_length=1, max_length=100000)
    author_name: AuthorName = "agent"
    author_email: AuthorEmail = "agent@driftstone.local"
    intent: Intent | None = intent_field()


class DojoCommitOut(DojoModel):
    sha: str
    message: str
    parents: list[str]
    intent: dict[str, Any] | None


class CommitResponse(DojoModel):
    commit: DojoCommitOut
    workspace: WorkspaceOut


class SubmitRequest(DojoModel):
    title: str = Field(min_length=1, max_length=500)


class DojoStackOut(DojoModel):
    id: str
    title: str
    bookmark: str
    base_branch: str
    base_commit: str | None
    head_commit: str
    commits: list[str]
    status: str
    parent_stack_id: str | None


class SubmitResult(DojoModel):
    stack: DojoStackOut
    bookmark: str


class LockRequest(DojoModel):
    patterns: list[str] = Field(min_length=1, max_length=100)
    ttl_seconds: int | None = Field(default=None, ge=1, le=lock_service.MAX_TTL)


class DojoLockOut(DojoModel):
    id: str
    workspace_id: str
    patterns: list[str]
    expires_at: datetime  # ends in Z like the workspace's own timestamps


class LockResponse(DojoModel):
    lock: DojoLockOut


class DojoTreeEntryOut(DojoModel):
    name: str
    kind: str = Field(description="file | dir")
    path: str
    blob_id: str | None = Field(description="files only")
    size: int | None = Field(description="files only")
    type: str = Field(description="git's object type: blob, tree, symlink, commit (a submodule)")
    mode: str
    sha: str | None
    source: str = Field(description="overlay: an uncommitted workspace file (or a directory holding one); base")


class TreeQuery(DojoModel):
    path: str = Field(default="", max_length=1024, json_schema_extra={"pattern": f"^$|(?:{PATH_PATTERN})"},
                      description=f"a directory; default: the root. {PATH_RULES}")
    recursive: bool = Field(default=False, description="every file under `path` as a flat list")
    ref: str | None = Field(default=None, max_length=1024,
                            description="accepted as on the repository tree; a workspace's tree is always its own")


class DojoTreeOut(DojoModel):
    path: str
    entries: list[DojoTreeEntryOut]


class SearchQuery(DojoModel):
    q: str = Field(min_length=1, max_length=1000, description='words (all must appear), "a phrase", a OR b, '
                   "a NOT b, prefix*; case-insensitive")
    limit: int = Field(default=50, ge=1, le=1000)
    path: str | None = Field(default=None, max_length=1024, description="only paths containing this string")


class SearchHitOut(DojoModel):
    path: str
    snippet: str = Field(description="the first match between >>>> and <<<<, with some text around it")
    rank: float = Field(description="relevance: lower is better")
    source: str = Field(description="overlay: an uncommitted workspace file; base: the committed files")
    line: int = Field(description="the first match's line number")
    content: str = Field(description="that line (up to 500 characters)")


class SearchOut(DojoModel):
    query: str
    results: list[SearchHitOut]
    truncated: bool


class DeletedWorkspace(DojoModel):
    id: str
    deleted: bool = True


class ConflictsOut(DojoModel):
    has_conflicts: bool
    conflicts: list[dict[str, Any]]
    warnings: list[dict[str, Any]]


def _workspace(call: Call, owner: str, name: str, ws_id: str):
    repo = owned_repo(call, owner, name)
    return repo, workspace_service.get_workspace(call.session, repo, ws_id)


@route("POST", PREFIX + "/workspaces", summary="Create a workspace", scope="agent", body=CreateWorkspace,
       response=WorkspaceEnvelope, status=201)
def create_workspace(call: Call, owner: str, name: str, body: CreateWorkspace):
    repo = owned_repo(call, owner, name)
    row = workspace_service.create_workspace(call.session, call.context, repo, call.principal, body.name,
                                             body.agent_name, body.base_commit)
    return WorkspaceEnvelope(workspace=workspace_out(row))


@route("GET", PREFIX + "/workspaces", summary="List workspaces", response=WorkspaceList)
def list_workspaces(call: Call, owner: str, name: str):
    repo = owned_repo(call, owner, name)
    return WorkspaceList(workspaces=[workspace_out(w) for w in workspace_service.list_workspaces(call.session, repo)])


@route("PUT", WS + "/files/<path:path>", summary="Write a file into the overlay (raw body)", scope="agent",
       response=Written, raw_body=True)
def write_file(call: Call, owner: str, name: str, ws_id: str, path: str):
    repo, workspace = _workspace(call, owner, name, ws_id)
    entry = workspace_service.write_file(call.session, call.context, repo, workspace, path, request.stream,
                                         call.context.clock(), call.principal)
    return Written(path=entry.path, size=entry.size, blob_sha=entry.blob_sha)


@route("GET", WS + "/files/<path:path>", summary="Read a file (overlay first, then the base)", response=FileOut)
def read_file(call: Call, owner: str, name: str, ws_id: str, path: str):
    repo, workspace = _workspace(call, owner, name, ws_id)
    found = workspace_service.read_file(call.session, call.context, repo, workspace, path)
    return FileOut(path=found.path, content=base64.b64encode(found.content).decode(), source=found.source)


@route("DELETE", WS + "/files/<path:path>", summary="Mark a file deleted in the overlay", scope="agent",
       response=DeletedFile)
def delete_file(call: Call, owner: str, name: str, ws_id: str, path: str):
    repo, workspace = _workspace(call, owner, name, ws_id)
    workspace_service.delete_file(call.session, call.context, repo, workspace, path, call.context.clock())
    return DeletedFile(path=path)


@route("GET", WS + "/status", summary="Added, modified and deleted paths against the workspace head",
       response=StatusOut)
def workspace_status(call: Call, owner: str, name: str, ws_id: str):
    repo, workspace = _workspace(call, owner, name, ws_id)
    return StatusOut(**workspace_service.status(call.session, call.context, repo, workspace))


@route("POST", WS + "/commit", summary="Commit the overlay (intent stored as trailers)", scope="agent",
       body=CommitRequest, response=CommitResponse, status=201)
def commit_workspace(call: Call, owner: str, name: str, ws_id: str, body: CommitRequest):
    repo, workspace = _workspace(call, owner, name, ws_id)
    made = workspace_service.commit(call.session, call.context, repo, workspace, call.principal,
                                    body.message, body.author_name, body.author_email, body.intent)
    return CommitResponse(commit=DojoCommitOut(sha=made.sha, message=made.message, parents=made.parents,
                                               intent=made.intent), workspace=workspace_out(workspace))


@route("POST", WS + "/submit", summary="Submit the workspace's commit chain as a stack", scope="agent",
       body=SubmitRequest, response=SubmitResult, status=201)
def submit_workspace(call: Call, owner: str, name: str, ws_id: str, body: SubmitRequest):
    repo, workspace = _workspace(call, owner, name, ws_id)
    stack = stack_service.submit(call.session, call.context, repo, workspace, call.principal, body.title)
    out = DojoStackOut(id=stack.id, title=stack.title, bookmark=stack.bookmark, base_branch=stack.base_branch,
                       base_commit=stack.base_commit, head_commit=stack.head_commit, commits=list(stack.commits),
                       status=stack.status, parent_stack_id=stack.parent_stack_id)
    return SubmitResult(stack=out, bookmark=stack.bookmark)


@route("GET", WS + "/check-conflicts", summary="Other workspaces' locks (and edits) overlapping this one's changes",
       response=ConflictsOut)
def check_conflicts(call: Call, owner: str, name: str, ws_id: str):
    repo, workspace = _workspace(call, owner, name, ws_id)
    return ConflictsOut(**lock_service.check_conflicts(call.session, call.context, repo, workspace,
                                                       call.context.clock()))


@route("GET", WS + "/tree", summary="Base commit files merged with the overlay", query=TreeQuery, response=DojoTreeOut)
def workspace_tree(call: Call, owner: str, name: str, ws_id: str, query: TreeQuery):
    repo, workspace = _workspace(call, owner, name, ws_id)
    items = workspace_service.tree(call.session, call.context, repo, workspace, query.path, query.recursive)
    entries = [DojoTreeEntryOut(name=i.path.rpartition("/")[2], kind="dir" if i.is_dir else "file", path=i.path,
                                blob_id=None if i.is_dir else i.sha, size=i.size, type=i.type,
                                mode=f"{i.mode:06o}", sha=i.sha, source=i.source) for i in items]
    return DojoTreeOut(path=query.path, entries=entries)


@route("GET", WS + "/search", summary="Search lines in base and overlay files", query=SearchQuery,
       response=SearchOut)
def workspace_search(call: Call, owner: str, name: str, ws_id: str, query: SearchQuery):
    repo, workspace = _workspace(call, owner, name, ws_id)
    hits, more = workspace_service.search(call.session, call.context, repo, workspace, query.q, query.limit,
                                          query.path)
    # the query is searched as sent; its echo blanks a key, as every other echo of what a client sent does
    return SearchOut(query=redact_keys(query.q), results=[SearchHitOut(path=h.path, snippet=h.snippet, rank=h.rank,
                                                          source=h.source, line=h.line, content=h.content)
                                             for h in hits], truncated=more)


@route("POST", WS + "/lock", summary="Lock paths (glob patterns) for this workspace", scope="agent",
       body=LockRequest, response=LockResponse, status=201)
def lock_paths(call: Call, owner: str, name: str, ws_id: str, body: LockRequest):
    repo, workspace = _workspace(call, owner, name, ws_id)
    lock = lock_service.acquire_locks(call.session, repo, workspace, body.patterns, body.ttl_seconds,
                                      call.principal, call.context.clock())
    return LockResponse(lock=DojoLockOut(id=lock.id, workspace_id=lock.workspace_id, patterns=lock.patterns,
                                         expires_at=as_utc(lock.expires_at)))


@route("DELETE", WS, summary="Delete a workspace (commits stay in the graph)", scope="agent",
       response=DeletedWorkspace)
def delete_workspace(call: Call, owner: str, name: str, ws_id: str):
    _repo, workspace = _workspace(call, owner, name, ws_id)
    workspace_service.delete_workspace(call.session, workspace, call.principal, call.context.clock())
    return DeletedWorkspace(id=workspace.id)
