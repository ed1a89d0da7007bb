"""Path locks held by workspaces: acquire, release (holder or admin), list, and conflict checks."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from hooks.locks import active_locks, covers, holder_details, holder_text, overlap
from hooks.paths import path_problem
from storage.errors import Forbidden, Invalid, Locked, NotFound
from storage.ids import new_id
from storage.keys import Principal
from storage.models import PathLock, Repository, Workspace
from storage.repo_writes import serialize_repository_writes
from storage.times import as_utc, iso_z

from . import workspaces as workspace_service
from .lock_events import record_lock_event

DEFAULT_TTL = 3600
MAX_TTL = 7 * 24 * 3600


def _checked_patterns(patterns: list[str]) -> list[str]:
    if not patterns or len(patterns) > 100:
        raise Invalid("patterns must list 1 to 100 globs", {"fields": [{"loc": "patterns", "msg": "1 to 100"}]})
    clean = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip("/ ") or path_problem(pattern.rstrip("/")) is not None:
            # stored paths pass path_problem ('.', '..', empty parts, backslashes, control characters, `::`, ...):
            # a pattern that does not would lock nothing
            raise Invalid(f"invalid lock pattern {pattern!r}", {"fields": [{"loc": "patterns", "msg": "invalid"}]})
        clean.append(pattern.strip("/"))
    return clean


def acquire_locks(session: Session, repo: Repository, workspace: Workspace, patterns: list[str],
                  ttl_seconds: int | None, actor: Principal, now) -> PathLock:
    patterns = _checked_patterns(patterns)
    ttl = ttl_seconds or DEFAULT_TTL
    if not 1 <= ttl <= MAX_TTL:
        raise Invalid(f"ttl must be 1 to {MAX_TTL} seconds", {"fields": [{"loc": "ttl", "msg": "out of range"}]})
    workspace_service.take_workspace_turn(session, workspace)  # deleted meanwhile: its locks went with it
    held = _held_already(session, repo, workspace, patterns, now)
    if held is not None:  # asked again (a retry, a renewal): the same lock, held at least `ttl` from now
        held.expires_at = max(as_utc(held.expires_at), now + timedelta(seconds=ttl))
        session.flush()
        return held
    for lock, name, agent in active_locks(session, repo.id, now, excluding_workspace=workspace.id):
        for mine in patterns:
            theirs = next((p for p in lock.patterns if overlap(mine, p)), None)
            if theirs is not None:
                raise Locked(f"{mine!r} overlaps {theirs!r} {holder_text(lock, name, agent)}",
                             {"pattern": mine, "heldPattern": theirs, **holder_details(lock, name, agent)})
    lock = PathLock(id=new_id("lock"), repo_id=repo.id, workspace_id=workspace.id, patterns=patterns,
                    expires_at=now + timedelta(seconds=ttl))
    session.add(lock)
    session.flush()
    record_lock_event(session, repo.org_id, lock, actor.key_id, "acquired")
    return lock


def _held_already(session: Session, repo: Repository, workspace: Workspace, patterns: list[str],
                  now) -> PathLock | None:
    wanted = set(patterns)
    return next((lock for lock, _name, _agent in active_locks(session, repo.id, now)
                 if lock.workspace_id == workspace.id and set(lock.patterns) == wanted), None)


def list_locks(session: Session, repo: Repository, now) -> list[tuple[PathLock, str, str | None]]:
    return active_locks(session, repo.id, now)


def release_lock(session: Session, repo: Repository, lock_id: str, actor: Principal, workspace_id: str | None,
                 force: bool, now) -> PathLock:
    serialize_repository_writes(session, repo.id)  # of simultaneous releases one succeeds, the others find nothing
    lock = session.scalar(select(PathLock).where(PathLock.id == lock_id, PathLock.repo_id == repo.id,
                                                 PathLock.released_at.is_(None)))
    if lock is None or as_utc(lock.expires_at) <= now:
        raise NotFound(f"lock {lock_id!r} not found")
    if force:
        if not actor.allows("admin"):
            raise Forbidden("force-releasing another workspace's lock needs an admin key")
    elif workspace_id != lock.workspace_id:
        raise Forbidden("only the holding workspace may release this lock (or an admin with force)")
    lock.released_at = now
    lock.released_by_key_id = actor.key_id
    record_lock_event(session, repo.org_id, lock, actor.key_id, "released", force=force)
    session.flush()
    return lock


def check_conflicts(session: Session, app, repo: Repository, workspace: Workspace, now) -> dict:
    """Locks of other workspaces on paths this workspace changes, and other workspaces changing them too."""
    mine = workspace_service.changed_paths(session, app, repo, workspace)
    conflicts = []
    for lock, name, agent in active_locks(session, repo.id, now, excluding_workspace=workspace.id):
        paths = sorted(p for p in mine if any(covers(pattern, p) for pattern in lock.patterns))
        if paths:
            conflicts.append({"lock_id": lock.id, "workspace_id": lock.workspace_id, "workspace_name": name,
                              "agent_name": agent, "patterns": lock.patterns, "paths": paths,
                              "expires_at": iso_z(lock.expires_at)})
    warnings = []
    for other in workspace_service.list_workspaces(session, repo):
        if other.id == workspace.id:
            continue
        shared = sorted(mine & workspace_service.changed_paths(session, app, repo, other))
        if shared:
            warnings.append({"workspace_id": other.id, "workspace_name": other.name, "agent_name": other.agent_name,
                             "paths": shared})
    return {"has_conflicts": bool(conflicts), "conflicts": conflicts, "warnings": warnings}
