"""/api/v1/workspaces/{id}/artifacts (seed 002): the explorer over what a workspace's agent runs left as evidence,
and /api/v1/tasks/{taskId}/artifacts/{id}, an artifact's bytes (a task is an extension run here)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from flask import Blueprint
from pydantic import Field

from control.services import artifacts, projects
from storage.errors import BadRequest

from ..endpoint import Call
from .common import WS, AgirunnerModel, route
from .files import blob_response

bp = Blueprint("agirunner_artifacts", __name__)

DAY = r"^\d{4}-\d{2}-\d{2}$"
FILTER = Field(default=None, min_length=1, max_length=255)


class ExplorerQuery(AgirunnerModel):
    q: str | None = Field(default=None, max_length=200)
    workflow_id: str | None = FILTER
    work_item_id: str | None = FILTER
    task_id: str | None = FILTER
    stage_name: str | None = FILTER
    role: str | None = FILTER
    content_type: str | None = FILTER
    preview_mode: Literal["inline", "download"] | None = None
    created_from: str | None = Field(default=None, pattern=DAY)
    created_to: str | None = Field(default=None, pattern=DAY)
    sort: Literal["newest", "oldest", "largest", "smallest", "name"] = "newest"
    page: int = Field(default=1, ge=1, le=10_000)
    per_page: int = Field(default=20, ge=1, le=100)


class ArtifactOut(AgirunnerModel):
    id: str
    workflow_id: str | None
    task_id: str
    logical_path: str
    content_type: str
    size_bytes: int
    created_at: datetime
    download_url: str
    metadata: dict[str, Any]
    workflow_name: str
    workflow_state: str | None
    work_item_id: str | None
    work_item_title: str | None
    stage_name: str | None
    role: str | None
    task_title: str
    task_state: str
    preview_eligible: bool
    preview_mode: str


def _day(value: str | None, name: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise BadRequest(f"{name} is not a date", {"field": name}) from None


@route(bp, "GET", WS + "/artifacts", summary="Explore the artifacts the workspace's agent runs left", scope="agent",
       query=ExplorerQuery, response=list[ArtifactOut], paginated=True)
def explore(call: Call, workspace_id: str, query: ExplorerQuery):
    repo = projects.visible_project(call.session, call.principal, workspace_id)
    found = artifacts.ExplorerQuery(
        q=query.q, workflow_id=query.workflow_id, task_id=query.task_id, role=query.role,
        content_type=query.content_type, preview_mode=query.preview_mode,
        created_from=_day(query.created_from, "created_from"), created_to=_day(query.created_to, "created_to"),
        sort=query.sort, page=query.page, per_page=query.per_page,
        no_matches=bool(query.work_item_id or query.stage_name))
    items, meta = artifacts.explore(call.session, repo, found)
    return [ArtifactOut(**item) for item in items], {"meta": meta}


@route(bp, "GET", "/api/v1/tasks/<task_id>/artifacts/<ident:artifact_id>", summary="An artifact's bytes (not JSON)",
       scope="agent", produces="*/*")
def artifact_content(call: Call, task_id: str, artifact_id: str):
    row = artifacts.artifact_of_run(call.session, call.principal, task_id, artifact_id)
    return blob_response(call.context.blobs, row.storage_path, row.content_type, row.size_bytes,
                         row.logical_path.rsplit("/", 1)[-1])
