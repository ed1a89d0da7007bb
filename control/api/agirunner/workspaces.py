"""/api/v1/workspaces (seed 002): a repository's Project view: create, list, get, patch, delete, its memory, its
versioned spec and its timeline."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import Blueprint
from pydantic import ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from control.services import (extensions, git_access, project_specs, project_timeline, projects,
                              remote_credentials)
from storage.errors import BadRequest
from storage.times import as_utc

from ..endpoint import Call
from ..url_patterns import REPOSITORY_URL_PATTERN
from .common import WS, AgirunnerModel, ProjectOut, list_meta, page_numbers, project_out, route

bp = Blueprint("agirunner_workspaces", __name__)

# a repository slug (control.services.naming.checked_slug); agirunner's own slugs are any text
SLUG_PATTERN = r"^(?!.*\.\.)(?!.*\.git$)(?!.*\.lock$)(?!.*\.$)[a-z0-9][a-z0-9._-]{0,99}$"
NUMBER = {"pattern": r"^([1-9][0-9]{0,5})?$"}  # documented; anything else is agirunner's 400 "Invalid pagination values"



class CreateProject(AgirunnerModel):
    name: str = Field(min_length=1, max_length=200)
    slug: str = Field(min_length=1, max_length=100, pattern=SLUG_PATTERN)
    description: str | None = Field(default=None, max_length=2000)
    repository_url: str | None = Field(default=None, max_length=2048, pattern=REPOSITORY_URL_PATTERN)
    settings: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None


class PatchProject(AgirunnerModel):
    model_config = ConfigDict(**AgirunnerModel.model_config, json_schema_extra={"anyOf": [
        {"required": [name]} for name in ("name", "slug", "description", "repository_url", "settings", "is_active")]})

    name: str = Field(default=None, min_length=1, max_length=200)
    slug: str = Field(default=None, min_length=1, max_length=100, pattern=SLUG_PATTERN)
    description: str = Field(default=None, max_length=2000)
    repository_url: str = Field(default=None, max_length=2048, pattern=REPOSITORY_URL_PATTERN)
    settings: dict[str, Any] = None
    is_active: bool = None

    @model_validator(mode="after")
    def _one_field(self):
        if not self.model_fields_set:
            raise PydanticCustomError("at_least_one_field", "At least one field is required")
        return self


class ListQuery(AgirunnerModel):
    q: str | None = Field(default=None, max_length=200)
    is_active: Literal["true", "false", "1", "0", ""] | None = None
    page: str | None = Field(default=None, json_schema_extra=NUMBER)
    per_page: str | None = Field(default=None, json_schema_extra={"pattern": r"^(100|[1-9][0-9]?)?$"})


class DeleteQuery(AgirunnerModel):
    cascade: str | None = None


class Summary(AgirunnerModel):
    workflow_count: int  # seed 002's two; the rest are agirunner's own
    open_workflow_count: int
    active_workflow_count: int
    completed_workflow_count: int
    attention_workflow_count: int
    total_workflow_count: int
    last_workflow_activity_at: datetime | None


class ListedProject(ProjectOut):
    summary: Summary


class DeletedProject(AgirunnerModel):
    id: str
    deleted: bool = True


class MemoryPatch(AgirunnerModel):
    key: str = Field(min_length=1, max_length=256)
    value: Any = None


class SpecBody(AgirunnerModel):
    resources: dict[str, Any] | None = None
    documents: dict[str, Any] | None = None
    tools: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    instructions: dict[str, Any] | None = None


class SpecQuery(AgirunnerModel):
    version: str | None = Field(default=None, json_schema_extra={"pattern": r"^([0-9]{1,9})?$"})


class SpecOut(AgirunnerModel):
    workspace_id: str
    version: int
    spec: dict[str, Any]
    created_at: datetime | None
    created_by_type: str | None
    created_by_id: str | None


class VerifyGitAccess(AgirunnerModel):
    model_config = ConfigDict(**AgirunnerModel.model_config, json_schema_extra={"allOf": [{
        "if": {"properties": {"git_token_mode": {"const": "replace"}}, "required": ["git_token_mode"]},
        "then": {"required": ["git_token"], "properties": {"git_token": {"type": "string", "pattern": "[^\\x00-\\x20]"}}},
    }]})

    repository_url: str = Field(min_length=1, max_length=2048, pattern=REPOSITORY_URL_PATTERN)
    default_branch: str | None = Field(default=None, min_length=1, max_length=255)
    git_token_mode: Literal["preserve", "replace", "clear"]
    git_token: str | None = Field(default=None, max_length=20_000)

    @model_validator(mode="after")
    def _token_to_replace_with(self):
        if self.git_token_mode == "replace" and not (self.git_token or "").strip(" \t\n\r\f\v"):
            raise PydanticCustomError("git_token_required", "git_token is required when git_token_mode is replace")
        return self


class VerifiedOut(AgirunnerModel):
    ok: bool
    repository_url: str
    default_branch: str | None
    branch_verified: bool


class PlanningWorkflow(AgirunnerModel):
    brief: str = Field(min_length=1, max_length=100_000)
    name: str | None = Field(default=None, min_length=1, max_length=200)


class WorkflowOut(AgirunnerModel):
    id: str
    workspace_id: str
    name: str
    state: str
    lifecycle: str
    brief: str
    created_at: datetime
    link: str


def _project(call: Call, workspace_id: str):
    return projects.visible_project(call.session, call.principal, workspace_id)


@route(bp, "POST", "/api/v1/workspaces", summary="Create a workspace (a repository's Project view)", scope="admin",
       body=CreateProject, response=ProjectOut, status=201)
def create_workspace(call: Call, body: CreateProject):
    repo = projects.create_project(call.session, call.context.store, call.principal, body.name, body.slug,
                                   body.description, body.repository_url, body.settings, body.memory,
                                   secret_key=call.context.settings.secret_key)
    return project_out(call, repo)


@route(bp, "GET", "/api/v1/workspaces", summary="List workspaces (newest first)", scope="agent", query=ListQuery,
       response=list[ListedProject], paginated=True)
def list_workspaces(call: Call, query: ListQuery):
    page, per_page = page_numbers(query.page, query.per_page)
    is_active = None if not query.is_active else query.is_active in ("true", "1")
    rows, total = projects.list_projects(call.session, call.principal, query.q, is_active, page, per_page)
    counts = projects.run_counts(call.session, [row.id for row in rows])
    listed = []
    for row in rows:
        run = counts.get(row.id, projects.RunCounts())
        summary = Summary(workflow_count=run.total, open_workflow_count=run.active,
                          active_workflow_count=run.active, completed_workflow_count=run.completed,
                          attention_workflow_count=run.attention, total_workflow_count=run.total,
                          last_workflow_activity_at=run.last_activity_at and as_utc(run.last_activity_at))
        listed.append(ListedProject(**project_out(call, row).model_dump(), summary=summary))
    return listed, {"meta": list_meta(total, page, per_page)}


@route(bp, "GET", WS, summary="Get a workspace", scope="agent", response=ProjectOut)
def get_workspace(call: Call, workspace_id: str):
    return project_out(call, _project(call, workspace_id))


@route(bp, "PATCH", WS, summary="Change a workspace (at least one field)", scope="admin", body=PatchProject,
       response=ProjectOut)
def patch_workspace(call: Call, workspace_id: str, body: PatchProject):
    repo = projects.patch_project(call.session, _project(call, workspace_id), body.model_dump(exclude_unset=True),
                                  secret_key=call.context.settings.secret_key)
    return project_out(call, repo)


@route(bp, "DELETE", WS, summary="Delete a workspace and its repository (cascade=true: with its running agent runs)",
       scope="admin", query=DeleteQuery, response=DeletedProject)
def delete_workspace(call: Call, workspace_id: str, query: DeleteQuery):
    repo = _project(call, workspace_id)
    projects.delete_project(call.session, repo, call.context.clock(), cascade=query.cascade == "true")
    return DeletedProject(id=repo.id)


@route(bp, "PATCH", WS + "/memory", summary="Write one key of the workspace's memory", scope="agent",
       body=MemoryPatch, response=ProjectOut)
def patch_memory(call: Call, workspace_id: str, body: MemoryPatch):
    return project_out(call, projects.set_memory(call.session, _project(call, workspace_id), body.key, body.value))


@route(bp, "DELETE", WS + "/memory/<path:key>", summary="Remove one key of the workspace's memory", scope="agent",
       response=ProjectOut)
def delete_memory(call: Call, workspace_id: str, key: str):
    return project_out(call, projects.delete_memory(call.session, _project(call, workspace_id), key))


@route(bp, "GET", WS + "/spec", summary="Read the workspace's spec (the current version, or ?version=)", scope="agent",
       query=SpecQuery, response=SpecOut)
def get_spec(call: Call, workspace_id: str, query: SpecQuery):
    version = None
    if query.version is not None:  # as agirunner's Number(): an empty version is 0, the empty spec
        if query.version and not (query.version.isascii() and query.version.isdigit()):
            raise BadRequest("version must be a valid integer", {"version": query.version})
        version = int(query.version or "0") if len(query.version) <= 9 else -1  # past any version: not found
    return SpecOut(**vars(project_specs.get_spec(call.session, _project(call, workspace_id), version)))


@route(bp, "PUT", WS + "/spec", summary="Store a new version of the workspace's spec", scope="admin", body=SpecBody,
       response=SpecOut)
def put_spec(call: Call, workspace_id: str, body: SpecBody):
    spec = body.model_dump(exclude_none=True)
    return SpecOut(**vars(project_specs.put_spec(call.session, _project(call, workspace_id), call.principal, spec)))


@route(bp, "POST", WS + "/verify-git-access", summary="Check that the server can read a repository with the given access",
       scope="admin", body=VerifyGitAccess, response=VerifiedOut)
def verify_git_access(call: Call, workspace_id: str, body: VerifyGitAccess):
    repo = _project(call, workspace_id)
    if body.git_token_mode == "replace":
        token = remote_credentials.checked_token(body.git_token, "git_token")
    elif body.git_token_mode == "preserve":  # the kept one, if it was kept for that repository
        token = remote_credentials.token_for(call.context.settings.secret_key, repo, body.repository_url.strip())
    else:
        token = None
    return VerifiedOut(**vars(git_access.verify_git_access(call.context.settings, body.repository_url,
                                                           body.default_branch, token)))


@route(bp, "POST", WS + "/planning-workflow", summary="Start an agent run that plans from a brief", scope="admin",
       body=PlanningWorkflow, response=WorkflowOut, status=201, errors={503: "the server runs no agents"})
def planning_workflow(call: Call, workspace_id: str, body: PlanningWorkflow):
    repo = _project(call, workspace_id)
    run = extensions.start_planning_run(call.session, call.context, call.principal, repo, body.brief,
                                        body.name or "Workspace planning run")
    return WorkflowOut(id=run.id, workspace_id=repo.id, name=run.name, state="pending",
                       lifecycle="planned", brief=body.brief, created_at=as_utc(run.created_at),
                       link=f"/v1/extensions/poll/{run.id}")


@route(bp, "GET", WS + "/timeline", summary="The workspace's agent runs and repository events, newest first",
       scope="agent", response=list[dict[str, Any]])
def get_timeline(call: Call, workspace_id: str):
    return project_timeline.timeline(call.session, _project(call, workspace_id))
