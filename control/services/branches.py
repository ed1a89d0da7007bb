"""Branches: the git ref is the truth for heads; rows add status, base and record-only branches."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hooks.checks import protected_from_deletion
from hooks.effects import retire_branch_uploads
from hooks.pipeline import apply_ref_change
from hooks.refs import ZERO_SHA, RefUpdate
from storage import git_read, git_refs
from storage.errors import Conflict, Forbidden, NotFound
from storage.ids import new_id
from storage.keys import Principal
from storage.models import Branch, Repository
from storage.repo_writes import serialize_repository_writes

from .changes import change_context, checked_branch_name, resolve_revision


@dataclass
class BranchView:
    name: str
    head_sha: str | None
    head_identifier: str | None
    status: str
    base_branch: str | None
    base_commit: str | None
    created_at: datetime | None
    updated_at: datetime | None


def _view(name: str, sha: str | None, row: Branch | None) -> BranchView:
    return BranchView(name=name, head_sha=sha, head_identifier=row.head_identifier if row else None,
                      status=(row.status if row else "ready") if sha or row else "ready",
                      base_branch=row.base_branch if row else None, base_commit=row.base_commit if row else None,
                      created_at=row.created_at if row else None, updated_at=row.updated_at if row else None)


def list_branches(session: Session, app, repo: Repository) -> list[BranchView]:
    heads = git_read.branch_heads(app.store.path_for(repo.id))
    # plain rows, not ORM entities: with 1,000 branches building entities was a quarter of the request (py-spy)
    columns = (Branch.name, Branch.head_sha, Branch.head_identifier, Branch.status, Branch.base_branch,
               Branch.base_commit, Branch.created_at, Branch.updated_at)
    rows = {row.name: row for row in session.execute(select(*columns).where(Branch.repo_id == repo.id))}
    names = sorted(set(heads) | {name for name, row in rows.items() if row.head_sha is None})
    return [_view(name, heads.get(name), rows.get(name)) for name in names]


def get_branch(session: Session, app, repo: Repository, name: str) -> BranchView:
    sha = git_refs.read_ref(app.store.path_for(repo.id), f"refs/heads/{name}")
    row = session.scalar(select(Branch).where(Branch.repo_id == repo.id, Branch.name == name))
    if sha is None and (row is None or row.head_sha is not None):
        raise NotFound(f"branch {name!r} not found")
    return _view(name, sha, row)


def create_branch(session: Session, app, repo: Repository, actor: Principal, name: str,
                  source: str | None = None, record_only: bool = False) -> BranchView:
    """From `source` (a branch or commit; default: the main head), or as a record awaiting its first upload."""
    checked_branch_name(name, new=True)
    path = app.store.path_for(repo.id)
    serialize_repository_writes(session, repo.id)  # a record-only create and a create from a commit take turns
    existing = session.scalar(select(Branch).where(Branch.repo_id == repo.id, Branch.name == name))
    current = git_refs.read_ref(path, f"refs/heads/{name}")
    if existing is not None and existing.head_sha is not None and current is None:
        # its ref was deleted by a request killed before its transaction ended: the ref is the truth (get and list
        # already say there is no such branch), so the row goes, as its deletion's effects would have removed it
        session.delete(existing)
        retire_branch_uploads(session, repo.id, [name])
        session.flush()
        existing = None
    if current is not None or existing is not None:
        raise Conflict(f"branch {name!r} already exists", {"branch": name})
    _refuse_name_clash(session, path, repo, name)
    from_branch = bool(source) and not _looks_like_sha(source) and git_refs.read_ref(path, f"refs/heads/{source}")
    base_branch = source if from_branch else repo.default_branch  # a commit, full or short: the default branch
    start = (resolve_revision(app, repo, source, session) if source
             else git_refs.read_ref(path, f"refs/heads/{repo.default_branch}"))
    if record_only or start is None:
        row = Branch(id=new_id("br"), repo_id=repo.id, name=name, head_sha=None, status="creating",
                     base_branch=base_branch, head_identifier=None)
        session.add(row)
        try:
            session.flush()
        except IntegrityError:  # the same record created at the same moment: the check above raced that insert
            raise Conflict(f"branch {name!r} already exists", {"branch": name}) from None
        return _view(name, None, row)
    ctx = change_context(app, repo, actor, "api")
    apply_ref_change(ctx, RefUpdate(old=ZERO_SHA, new=start, ref=f"refs/heads/{name}"), session=session)
    row = session.scalar(select(Branch).where(Branch.repo_id == repo.id, Branch.name == name))
    row.base_branch, row.base_commit = base_branch, start
    if start == git_refs.read_ref(path, f"refs/heads/{base_branch}"):  # its head's upload identifier comes along
        row.head_identifier = (repo.main_head_identifier if base_branch == repo.default_branch else
                               session.scalar(select(Branch.head_identifier).where(Branch.repo_id == repo.id,
                                                                                   Branch.name == base_branch)))
    session.flush()
    return _view(name, start, row)


def delete_branch(session: Session, app, repo: Repository, actor: Principal, name: str) -> None:
    if name == repo.default_branch:
        raise Conflict(f"{name!r} is the default branch and cannot be deleted")
    path = app.store.path_for(repo.id)
    serialize_repository_writes(session, repo.id)  # of simultaneous deletes one succeeds, the others find nothing
    sha = git_refs.read_ref(path, f"refs/heads/{name}")
    row = session.scalar(select(Branch).where(Branch.repo_id == repo.id, Branch.name == name))
    if sha is None and row is None:
        raise NotFound(f"branch {name!r} not found")
    if sha is not None:
        ctx = change_context(app, repo, actor, "api")
        apply_ref_change(ctx, RefUpdate(old=sha, new=ZERO_SHA, ref=f"refs/heads/{name}"), session=session)
    elif row is not None:  # a branch recorded without a ref: no ref change, so no checks, no effects
        if protected_from_deletion(session, repo.id, name):
            raise Forbidden("protected branch: deletion is not allowed", {"ref": f"refs/heads/{name}"})
        session.delete(row)
        retire_branch_uploads(session, repo.id, [name])
    session.flush()


def _refuse_name_clash(session: Session, path, repo: Repository, name: str) -> None:
    """`a` and `a/b` cannot both be branches (git keeps refs as files); a record-only branch is held to the same
    rule, or its first upload could never become a ref."""
    names = set(git_read.branch_heads(path))  # and record-only rows: a row with a head but no ref is a deleted branch
    names |= set(session.scalars(select(Branch.name).where(Branch.repo_id == repo.id, Branch.head_sha.is_(None))))
    clash = next((other for other in sorted(names) if name.startswith(other + "/") or other.startswith(name + "/")),
                 None)
    if clash is not None:
        raise Conflict(f"branch {name!r} cannot exist beside branch {clash!r}", {"branch": name, "clashesWith": clash})


def _looks_like_sha(value: str) -> bool:
    return len(value) == 40 and all(c in "0123456789abcdef" for c in value)
