"""Path locks: which paths a pattern covers, which patterns overlap, and the check every ref change passes.

A pattern is a glob where `*` and `?` also match across '/', and a pattern naming a directory covers
everything under it ("src/auth" and "src/auth/*" both cover "src/auth/session/token.ts").
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from typing import Callable, Sequence

from sqlalchemy import bindparam, select

from storage.errors import Locked
from storage.models import PathLock, Workspace
from storage.times import as_utc

from .changed_paths import paths_changed_by
from .context import ChangeContext, Rejection
from .refs import RefUpdate

_WILDCARD = re.compile(r"[*?\[]")


def covers(pattern: str, path: str) -> bool:
    """Whether the pattern names the path or one of the directories above it."""
    pattern = pattern.strip("/")
    if fnmatchcase(path, pattern):
        return True
    parts = path.split("/")
    return any(fnmatchcase("/".join(parts[:depth]), pattern) for depth in range(1, len(parts)))


def _fixed_prefix(pattern: str) -> str:
    match = _WILDCARD.search(pattern)
    return pattern[: match.start()] if match else pattern


def overlap(first: str, second: str) -> bool:
    """Whether some path could be covered by both patterns (conservative: may say yes when unsure).

    Every path a pattern covers begins with its text up to the first wildcard, so when one of them has a
    wildcard they can only meet if one of those beginnings extends the other."""
    a, b = first.strip("/"), second.strip("/")
    if covers(a, b) or covers(b, a):
        return True
    fa, fb = _fixed_prefix(a), _fixed_prefix(b)
    if fa != a or fb != b:
        return fa.startswith(fb) or fb.startswith(fa)
    return False


def active_locks(session, repo_id: str, now: datetime, excluding_workspace: str | None = None):
    rows = session.execute(
        select(PathLock, Workspace.name, Workspace.agent_name)
        .join(Workspace, Workspace.id == PathLock.workspace_id)
        .where(PathLock.repo_id == repo_id, PathLock.released_at.is_(None), Workspace.status == "active")
        .order_by(PathLock.created_at, PathLock.id)
    ).all()
    return [(lock, name, agent) for lock, name, agent in rows
            if as_utc(lock.expires_at) > now and lock.workspace_id != excluding_workspace]


def holder_text(lock: PathLock, name: str, agent: str | None) -> str:
    who = f"workspace {name} ({lock.workspace_id}" + (f", agent {agent})" if agent else ")")
    return f"locked by {who} until {as_utc(lock.expires_at).isoformat(timespec='seconds')}"


def holder_details(lock: PathLock, name: str, agent: str | None) -> dict:
    """Who holds a lock, in a refusal's details: the same names wherever a lock refuses something."""
    return {"lockId": lock.id, "workspaceId": lock.workspace_id, "workspaceName": name, "agentName": agent}


def first_lock_covering(locks, paths: Sequence[str]):
    for path in paths:
        for lock, name, agent in locks:
            pattern = next((p for p in lock.patterns if covers(p, path)), None)
            if pattern is not None:
                return path, pattern, lock, name, agent
    return None


def path_lock_refusal(hit) -> tuple[str, dict]:
    """The message and details of a refusal for `first_lock_covering`'s hit."""
    path, pattern, lock, name, agent = hit
    return (f"{path} matches lock {pattern!r} {holder_text(lock, name, agent)}",
            {"path": path, "pattern": pattern, **holder_details(lock, name, agent)})


def refuse_locked_paths(session, repo_id: str, workspace_id: str | None, paths: Callable[[], Sequence[str]],
                        ref: str) -> None:
    """What check_path_locks would refuse, asked before an API change writes anything (so a refused one leaves
    no objects behind); `paths` is called only when another workspace holds a lock."""
    locks = locks_of_others(session, repo_id, workspace_id)
    if locks and (hit := first_lock_covering(locks, paths())):
        message, details = path_lock_refusal(hit)
        raise Locked(message, {"ref": ref, **details})


_ANY_UNRELEASED_LOCK = (
    select(PathLock.id).where(PathLock.repo_id == bindparam("repo_id"), PathLock.released_at.is_(None)).limit(1)
)


def locks_of_others(session, repo_id: str, workspace_id: str | None):
    """The locks in force that a change by `workspace_id` (None: by no workspace) must respect; with no lock at
    all, the common case, answered without loading lock rows."""
    if session.execute(_ANY_UNRELEASED_LOCK, {"repo_id": repo_id}).first() is None:
        return []
    return active_locks(session, repo_id, datetime.now(timezone.utc), excluding_workspace=workspace_id)


def check_path_locks(ctx: ChangeContext, updates: Sequence[RefUpdate], session) -> list[Rejection]:
    branch_updates = [u for u in updates if not u.is_delete and u.ref.startswith("refs/heads/")]
    if not branch_updates:
        return []
    locks = locks_of_others(session, ctx.repo.id, ctx.workspace_id)
    if not locks:
        return []
    for update in branch_updates:
        hit = first_lock_covering(locks, paths_changed_by(ctx, update))
        if hit:
            reason, details = path_lock_refusal(hit)
            return [Rejection(update.ref, reason, "locked", details)]
    return []
