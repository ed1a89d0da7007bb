"""Commit metadata: git's own fields, plus how each commit was made (push, upload, api, ...) and its intent."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import git_read
from storage.db import insert_unless_present
from storage.errors import Invalid, NotFound
from storage.intent import intent_from_message
from storage.models import CommitMeta, Repository

from .changes import awaits_first_commit, find_commit, resolve_revision


@dataclass
class CommitView:
    info: git_read.CommitInfo
    source: str
    upload_identifier: str | None
    intent: dict | None


def _views(session: Session, repo: Repository, infos: list[git_read.CommitInfo]) -> list[CommitView]:
    shas = [info.sha for info in infos]
    metas = {m.sha: m for m in session.scalars(select(CommitMeta).where(CommitMeta.repo_id == repo.id,
                                                                         CommitMeta.sha.in_(shas)))} if shas else {}
    views = []
    for info in infos:
        meta = metas.get(info.sha)
        intent = (meta.intent if meta and meta.intent else None) or intent_from_message(info.message)
        views.append(CommitView(info=info, source=meta.source if meta else "push",
                                upload_identifier=meta.upload_identifier if meta else None, intent=intent))
    return views


def list_commits(session: Session, app, repo: Repository, branch: str | None, page: int,
                 per_page: int) -> tuple[list[CommitView], bool]:
    try:
        tip = resolve_revision(app, repo, branch or repo.default_branch) if branch or _has_default(app, repo) else None
    except NotFound:
        if branch and awaits_first_commit(session, repo, branch):
            return [], False
        raise
    if tip is None:
        return [], False
    infos = git_read.log(app.store.path_for(repo.id), tip, (page - 1) * per_page, per_page + 1)
    return _views(session, repo, infos[:per_page]), len(infos) > per_page


def get_commit(session: Session, app, repo: Repository, sha: str) -> CommitView:
    if not (7 <= len(sha) <= 64) or any(c not in "0123456789abcdef" for c in sha):
        raise Invalid("a commit sha is 7 to 64 lowercase hex digits", {"fields": [{"loc": "sha", "msg": "not hex"}]})
    info = find_commit(app.store.path_for(repo.id), sha)
    if info is None:
        raise NotFound(f"commit {sha} not found")
    return _views(session, repo, [info])[0]


def record_commit(session: Session, repo_id: str, sha: str, source: str, actor_key_id: str | None,
                  upload_identifier: str | None = None, intent: dict | None = None) -> CommitMeta:
    from storage.ids import new_id

    mine = select(CommitMeta).where(CommitMeta.repo_id == repo_id, CommitMeta.sha == sha)
    meta = session.scalar(mine)
    if meta is None:
        # two writers may make the same commit at once (the same change in the same second, in two workspaces):
        # the first row stays, and the other's insert must not fail its request after its ref has moved
        insert_unless_present(session, CommitMeta, ("repo_id", "sha"), id=new_id("cm"), repo_id=repo_id, sha=sha,
                              source=source, actor_key_id=actor_key_id, upload_identifier=upload_identifier,
                              intent=intent)
        meta = session.scalar(mine)
    return meta


def _has_default(app, repo: Repository) -> bool:
    from storage import git_refs

    return git_refs.read_ref(app.store.path_for(repo.id), f"refs/heads/{repo.default_branch}") is not None
