"""Effects that follow a ref change once the ref has moved: branch rows (and a deleted branch's upload files),
the event log, stacks that landed or lost their branch, webhooks, housekeeping."""
from __future__ import annotations

import logging
from typing import Sequence

from sqlalchemy import bindparam, delete, insert, select, update

from storage import git_refs
from storage.db import in_chunks
from storage.housekeeping import needs_housekeeping, note_ref_updates
from storage.ids import new_id
from storage.jobs import defer
from storage.models import Branch, Event, Repository, Upload, utcnow
from storage.repo_writes import serialize_repository_writes

from .context import ChangeContext
from .stacks_follow_refs import (close_stacks_of_deleted_branches, follow_branches_of_their_own_stacks,
                                 mark_landed_stacks)
from .refs import RefUpdate
from .webhooks import active_webhooks, queue_event, subscribed

log = logging.getLogger(__name__)
PURGE_RETIRED_UPLOADS = "control.jobs.purge_retired_uploads"  # deleted branches' upload files and rows


def record_branch_heads(ctx: ChangeContext, applied: Sequence[RefUpdate], session) -> None:
    """Each branch row takes the value its ref has now, read under the repository's write lock: when two changes
    to one branch race (a push and an API commit), whichever effects run last read the last value, so the row
    ends where the ref is whatever order the effects ran in (writing each change's own new value could leave
    the row at the older one). Statements, not loaded rows, a few per push however many branches it names (one
    per branch took a push of 15,000 new branches 5 s)."""
    changes = [change for change in applied if change.branch is not None]
    if not changes:
        return
    serialize_repository_writes(session, ctx.repo.id)
    heads = git_refs.read_refs(ctx.repo_path, [change.ref for change in changes])
    _remove_branch_rows(ctx, session, [c.branch for c in changes if heads[c.ref] is None])
    present = {c.branch: (heads[c.ref], c.is_create) for c in changes if heads[c.ref] is not None}
    if not present:
        return
    values = {"head_sha": bindparam("b_head"), "status": "ready"}
    if ctx.source != "upload":  # an upload names the head it made (uploads.py): any other change, a new one
        values["head_identifier"] = None
    table = Branch.__table__
    for chunk in in_chunks(list(present)):
        moved = session.execute(
            update(table).where(table.c.repo_id == ctx.repo.id, table.c.name == bindparam("b_name")).values(**values),
            [{"b_name": name, "b_head": present[name][0]} for name in chunk])
        if moved.rowcount == len(chunk):  # every row was there (a push to existing branches: one statement)
            continue
        existing = set() if moved.rowcount == 0 else set(session.scalars(
            select(Branch.name).where(Branch.repo_id == ctx.repo.id, Branch.name.in_(chunk))))
        session.execute(insert(table), [
            {"id": new_id("br"), "repo_id": ctx.repo.id, "name": name, "head_sha": head, "status": "ready",
             "base_commit": head if is_create else None}
            for name, (head, is_create) in ((name, present[name]) for name in chunk) if name not in existing])
    if ctx.source != "upload" and ctx.repo.default_branch in present:
        session.execute(update(Repository).where(Repository.id == ctx.repo.id).values(main_head_identifier=None))


def _remove_branch_rows(ctx: ChangeContext, session, names: list[str]) -> None:
    """The rows of deleted branches; their uploads retire with them."""
    for chunk in in_chunks(names):
        session.execute(delete(Branch).where(Branch.repo_id == ctx.repo.id, Branch.name.in_(chunk)))
    retire_branch_uploads(session, ctx.repo.id, names)


def retire_branch_uploads(session, repo_id: str, names: list[str]) -> None:
    """In the transaction that deletes the branches: from its commit their uploads are gone for every request,
    and the branch made again under a name starts with none of them (a purge keyed on the name, run later,
    found it there again and left the old uploads, "already completed", to the new branch). A job removes their
    stored files, then their rows."""
    retired = 0
    for chunk in in_chunks(names):
        retired += session.execute(
            update(Upload).where(Upload.repo_id == repo_id, Upload.branch.in_(chunk), Upload.retired_at.is_(None))
            .values(retired_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    if retired:  # a job id of its own: one for the repository might be running, past its look at the rows
        defer(session, PURGE_RETIRED_UPLOADS, repo_id, job_id=new_id("purge"))


def _ref_entry(ctx: ChangeContext, update: RefUpdate) -> dict:
    entry = {"ref": update.ref, "old": update.old, "new": update.new}
    if update.ref in ctx.found_in_place:  # a push sent again: its earlier request (or a twin push) made the change
        entry["foundInPlace"] = True
    return entry


def record_event(ctx: ChangeContext, applied: Sequence[RefUpdate], session) -> None:
    payload = {
        "source": ctx.source,
        "refs": [_ref_entry(ctx, update) for update in applied],
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
        if not ctx.repo_path.exists():  # deleted and purged while the change ran (a push racing the delete)
            log.info("housekeeping check: repo %s is gone", ctx.repo.id)
            return
        log.warning("housekeeping check failed for repo %s", ctx.repo.id, exc_info=True)
        return
    if needed:
        defer(session, "control.jobs.housekeep_repository", ctx.repo.id, job_id=f"housekeep-{ctx.repo.id}")


def notify_webhooks(ctx: ChangeContext, applied: Sequence[RefUpdate], session) -> None:
    """A `push` event for the repository's webhooks: every ref change, a git push's or the API's; and, as GitHub
    sends them beside it, a `create` or `delete` event for each branch or tag made or deleted. A push sent again
    after it landed (a client's retry, a twin push) repeats no `create` or `delete`; its refs read `foundInPlace`."""
    where = {"repository": {"id": ctx.repo.id, "slug": ctx.repo.slug}, "organization": {"id": ctx.repo.org_id},
             "source": ctx.source, "actorKeyId": ctx.actor.key_id if ctx.actor else None}
    payload = {"event": "push", **where,
               "refs": [{"ref": update.ref, "before": update.old, "after": update.new,
                         **({"foundInPlace": True} if update.ref in ctx.found_in_place else {})}
                        for update in applied]}
    if ctx.push_options:
        payload["pushOptions"] = list(ctx.push_options)
    webhooks = active_webhooks(session, ctx.repo.id)
    if not webhooks:
        return
    queue_event(session, ctx.repo.id, "push", payload, subscribed(webhooks, "push"))
    for change in applied:
        kind = "branch" if change.branch is not None else "tag" if change.ref.startswith("refs/tags/") else None
        if kind is not None and (change.is_create or change.is_delete) and change.ref not in ctx.found_in_place:
            event = "create" if change.is_create else "delete"
            queue_event(session, ctx.repo.id, event, {
                "event": event, **where, "ref": change.ref, "refType": kind,
                "sha": change.new if change.is_create else change.old}, subscribed(webhooks, event))


EFFECTS = (record_branch_heads, mark_landed_stacks, record_event, close_stacks_of_deleted_branches,
           follow_branches_of_their_own_stacks, notify_webhooks, request_housekeeping)  # the first takes the lock
