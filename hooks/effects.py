"""Effects that follow a ref change once the ref has moved: branch rows, the event log, housekeeping."""
from __future__ import annotations

import logging
from typing import Sequence

from sqlalchemy import delete, insert, update

from storage.housekeeping import needs_housekeeping, note_ref_updates
from storage.ids import new_id
from storage.jobs import defer
from storage.models import Branch, Event

from .context import ChangeContext
from .refs import RefUpdate

log = logging.getLogger(__name__)


def record_branch_heads(ctx: ChangeContext, applied: Sequence[RefUpdate], session) -> None:
    for change in applied:
        name = change.branch
        if name is None:
            continue
        if change.is_delete:
            session.execute(delete(Branch).where(Branch.repo_id == ctx.repo.id, Branch.name == name))
            continue
        moved = session.execute(  # statements, not loaded rows: this runs on every push
            update(Branch).where(Branch.repo_id == ctx.repo.id, Branch.name == name)
            .values(head_sha=change.new, status="ready")
        )
        if moved.rowcount == 0:
            session.execute(insert(Branch).values(
                id=new_id("br"), repo_id=ctx.repo.id, name=name, head_sha=change.new, status="ready",
                base_commit=change.new if change.is_create else None))


def record_event(ctx: ChangeContext, applied: Sequence[RefUpdate], session) -> None:
    payload = {
        "source": ctx.source,
        "refs": [{"ref": u.ref, "old": u.old, "new": u.new} for u in applied],
    }
    if ctx.push_options:
        payload["pushOptions"] = list(ctx.push_options)
    session.execute(insert(Event).values(
        id=new_id("ev"), org_id=ctx.repo.org_id, repo_id=ctx.repo.id,
        actor_key_id=ctx.actor.key_id if ctx.actor else None, kind=f"refs.{ctx.source}", payload=payload))


def request_housekeeping(ctx: ChangeContext, applied: Sequence[RefUpdate], session) -> None:
    """Queue a repack / pack-refs once changes have left too many packs, loose objects or loose refs.

    Best effort: a full disk or a missing directory here must not fail a change whose ref already moved.
    """
    try:
        note_ref_updates(ctx.repo_path, len(applied))
        needed = needs_housekeeping(ctx.repo_path, ctx.settings.housekeeping_limits)
    except OSError:
        log.warning("housekeeping check failed for repo %s", ctx.repo.id, exc_info=True)
        return
    if needed:
        defer(session, "control.jobs.housekeep_repository", ctx.repo.id, job_id=f"housekeep-{ctx.repo.id}")


EFFECTS = (record_branch_heads, record_event, request_housekeeping)
