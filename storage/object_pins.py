"""The git objects a repository's database rows name, which housekeeping must keep although no ref may reach them:
an overlay file is a blob no commit holds yet, and a closed pull request, an API commit's intent or a recent push
event names commits a force-push or a branch deletion left behind.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Iterable

from sqlalchemy import or_, select

from .models import Branch, CommitMeta, Event, Stack, StackReview, Upload, Workspace, WorkspaceFile

_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_NO_OBJECT = frozenset({"0" * 40, "0" * 64})


def pinned_objects(session, repo_id: str, recent_since: datetime) -> set[str]:
    """Every object id the rows of `repo_id` name; deleted workspaces and ref-change events count only if
    changed since `recent_since` (the prune grace: what a user could still want back)."""
    live_workspace = or_(Workspace.status != "deleted", Workspace.updated_at >= recent_since)
    columns = [
        select(Workspace.base_commit, Workspace.current_commit).where(Workspace.repo_id == repo_id, live_workspace),
        select(WorkspaceFile.blob_sha).join(Workspace, Workspace.id == WorkspaceFile.workspace_id)
        .where(Workspace.repo_id == repo_id, live_workspace),
        select(Stack.base_commit, Stack.head_commit, Stack.merged_sha).where(Stack.repo_id == repo_id),
        select(StackReview.head_commit).join(Stack, Stack.id == StackReview.stack_id).where(Stack.repo_id == repo_id),
        select(Branch.head_sha, Branch.base_commit).where(Branch.repo_id == repo_id),
        select(Upload.commit_sha, Upload.base_commit).where(Upload.repo_id == repo_id, Upload.retired_at.is_(None)),
        select(CommitMeta.sha).where(CommitMeta.repo_id == repo_id),
    ]
    found: set[str] = set()
    for query in columns:
        for row in session.execute(query):
            found.update(_object_ids(row))
    for (commits,) in session.execute(select(Stack.commits).where(Stack.repo_id == repo_id)):
        found.update(_object_ids(commits if isinstance(commits, list) else ()))
    events = select(Event.payload).where(Event.repo_id == repo_id, Event.kind.like("refs.%"),
                                         Event.created_at >= recent_since)
    for (payload,) in session.execute(events):
        refs = payload.get("refs") if isinstance(payload, dict) else None
        for entry in refs if isinstance(refs, list) else ():
            if isinstance(entry, dict):
                found.update(_object_ids((entry.get("old"), entry.get("new"))))
    return found


def _object_ids(values: Iterable) -> Iterable[str]:
    """The values that are object ids: a column may be empty, and JSON holds whatever was written to it."""
    for value in values:
        if isinstance(value, str) and _OBJECT_ID.fullmatch(value) and value not in _NO_OBJECT:
            yield value
