"""/v1/extensions (seed 001): create, update, delete, run, poll; plus the list, which the document leaves out (one
extension is not a GET of its own: `/v1/extensions/{id}` would take the document's verbs, `create` and the rest)."""
from __future__ import annotations

from typing import Literal

from flask import Blueprint
from pydantic import ConfigDict, Field

from control.services import extensions as extension_service

from ..endpoint import Call, endpoint
from .common import Timestamp, WholeListQuery, WireModel, whole_or_page

bp = Blueprint("extensions", __name__)

Preset = Literal[extension_service.PRESETS]  # type: ignore[valid-type]
PROMPT_CHARS = 100_000


NOT_BLANK = r"[^ \t\n\r\f\v]"  # somewhere in it: a name or prompt of spaces alone says nothing


class CreateExtension(WireModel):
    type: Literal["agent"]
    name: str = Field(min_length=1, max_length=200, pattern=NOT_BLANK)
    description: str | None = Field(default=None, max_length=10_000)
    prompt: str = Field(min_length=1, max_length=PROMPT_CHARS, pattern=NOT_BLANK)
    presets: list[Preset] = Field(default_factory=list, max_length=len(extension_service.PRESETS))


class UpdateExtension(WireModel):
    model_config = ConfigDict(**WireModel.model_config, json_schema_extra={"minProperties": 2})  # and one field to change

    extension_id: str = Field(min_length=1, max_length=100)
    name: str = Field(default=None, min_length=1, max_length=200, pattern=NOT_BLANK)
    description: str | None = Field(default=None, max_length=10_000)
    status: Literal[extension_service.STATUSES] = None  # type: ignore[valid-type]
    prompt: str = Field(default=None, min_length=1, max_length=PROMPT_CHARS, pattern=NOT_BLANK)
    presets: list[Preset] = Field(default=None, max_length=len(extension_service.PRESETS))


class ExtensionRef(WireModel):
    extension_id: str = Field(min_length=1, max_length=100)


class RunExtension(WireModel):
    extension_id: str = Field(min_length=1, max_length=100)
    path: str = Field(min_length=1, max_length=4096)
    prompt: str | None = Field(default=None, max_length=PROMPT_CHARS)


class ExtensionOut(WireModel):
    id: str
    extension_id: str
    type: str
    name: str
    description: str | None
    prompt: str
    presets: list[str]
    status: str
    created_at: Timestamp
    updated_at: Timestamp


class DeletedExtension(WireModel):
    id: str
    extension_id: str
    deleted: bool = True


class RunOut(WireModel):
    run_id: str
    extension_id: str
    status: str = Field(description="running (queued or started), completed or failed")
    path: str
    branch: str
    base_commit: str | None
    result: dict | None = Field(description="output, exitCode, and the branch and commit holding the agent's changes")
    error: str | None
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None


def extension_out(row) -> ExtensionOut:
    return ExtensionOut(id=row.id, extension_id=row.id, type=row.type, name=row.name, description=row.description,
                        prompt=row.prompt, presets=list(row.presets or []), status=row.status,
                        created_at=row.created_at, updated_at=row.updated_at)


def run_out(row) -> RunOut:
    status = "running" if row.status == "queued" else row.status
    return RunOut(run_id=row.id, extension_id=row.extension_id, status=status, path=row.path, branch=row.branch,
                  base_commit=row.base_commit, result=row.result, error=row.error, created_at=row.created_at,
                  started_at=row.started_at, finished_at=row.finished_at)


@endpoint(bp, "POST", "/v1/extensions/create", summary="Create an extension", scope="agent", body=CreateExtension,
          response=ExtensionOut, status=201)
def create_extension(call: Call, body: CreateExtension):
    row = extension_service.create_extension(call.session, call.principal, body.type, body.name, body.prompt,
                                             body.description, body.presets)
    return extension_out(row)


@endpoint(bp, "POST", "/v1/extensions/update", summary="Update an extension", scope="agent", body=UpdateExtension,
          response=ExtensionOut)
def update_extension(call: Call, body: UpdateExtension):
    changes = body.model_dump(exclude={"extension_id"}, exclude_unset=True)
    row = extension_service.update_extension(call.session, call.principal, body.extension_id, changes)
    return extension_out(row)


@endpoint(bp, "POST", "/v1/extensions/delete", summary="Delete an extension", scope="agent", body=ExtensionRef,
          response=DeletedExtension)
def delete_extension(call: Call, body: ExtensionRef):
    deleted = extension_service.delete_extension(call.session, call.principal, body.extension_id)
    return DeletedExtension(id=deleted, extension_id=deleted)


@endpoint(bp, "POST", "/v1/extensions/run", summary="Run an extension on a storage path", scope="agent",
          body=RunExtension, response=RunOut, status=202, errors={503: "the server runs no agents"})
def run_extension(call: Call, body: RunExtension):
    row = extension_service.start_run(call.session, call.context, call.principal, body.extension_id, body.path,
                                      body.prompt)
    return run_out(row)


@endpoint(bp, "GET", "/v1/extensions/poll/<run_id>", summary="Poll an extension run", response=RunOut)
def poll_run(call: Call, run_id: str):
    return run_out(extension_service.get_run(call.session, call.principal, run_id))


@endpoint(bp, "GET", "/v1/extensions", summary="List the organization's extensions (oldest first)",
          query=WholeListQuery, response=list[ExtensionOut], paginated=True)
def list_extensions(call: Call, query: WholeListQuery):
    return whole_or_page(extension_service.list_extensions(call.session, call.org_id), query, extension_out)
