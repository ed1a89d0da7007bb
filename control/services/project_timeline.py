"""A project's timeline (seed 002): its agent runs as agirunner's run summaries (`kind: run_summary`, the
extension runs being the view's workflows) and what happened to its repository (`kind: event`: pushes, API ref
changes), newest first, at most TIMELINE_LIMIT of each."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Event, Extension, ExtensionRun, Repository
from storage.times import as_utc, iso_z

from .agent_process import prompt_title

TIMELINE_LIMIT = 200
WORKFLOW_STATES = {"queued": "pending", "running": "active", "completed": "completed", "failed": "failed"}


def timeline(session: Session, repo: Repository) -> list[dict]:
    runs = session.scalars(select(ExtensionRun).where(ExtensionRun.repo_id == repo.id)
                           .order_by(ExtensionRun.created_at.desc()).limit(TIMELINE_LIMIT)).all()
    names = dict(session.execute(select(Extension.id, Extension.name).where(
        Extension.id.in_({run.extension_id for run in runs}))).all()) if runs else {}
    events = session.scalars(select(Event).where(Event.repo_id == repo.id)
                             .order_by(Event.created_at.desc()).limit(TIMELINE_LIMIT)).all()
    items = [(as_utc(run.finished_at or run.created_at), _run_summary(run, names.get(run.extension_id)))
             for run in runs]
    items += [(as_utc(event.created_at), _event(event)) for event in events]
    items.sort(key=lambda item: item[0], reverse=True)
    return [item for _, item in items]


def _moment(value) -> str | None:
    return iso_z(value) if value is not None else None


def _run_summary(run: ExtensionRun, extension_name: str | None) -> dict:
    started, finished = run.started_at and as_utc(run.started_at), run.finished_at and as_utc(run.finished_at)
    title = prompt_title(run.prompt, run.id)[:200]
    return {"kind": "run_summary", "workflow_id": run.id, "name": run.name or extension_name or title,
            "state": WORKFLOW_STATES[run.status], "created_at": iso_z(run.created_at), "started_at": _moment(started),
            "completed_at": _moment(finished),
            "duration_seconds": (finished - started).total_seconds() if started and finished else None,
            "extension_id": run.extension_id, "branch": (run.result or {}).get("branch"),
            "commit": (run.result or {}).get("commit"), "link": f"/v1/extensions/poll/{run.id}"}


def _event(event: Event) -> dict:
    return {"kind": "event", "event_id": event.id, "type": event.kind, "actor_key_id": event.actor_key_id,
            "payload": event.payload, "created_at": iso_z(event.created_at)}
