"""Repositories: create, look up, protect branches, and rebuild derived branch rows from git."""
from __future__ import annotations

import logging
import re

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hooks.effects import retire_branch_uploads
from hooks.stacks_follow_refs import mark_stacks_already_landed
from hooks.refs import branch_name_problem
from storage import git_read, git_refs, jobs
from storage.db import on_rollback
from storage.errors import Conflict, Forbidden, NotFound
from storage.ids import new_id
from storage.keys import Principal
from storage.models import Branch, BranchProtection, Repository
from storage.repo_store import RepoStore
from storage.repo_writes import serialize_repository_writes

from .naming import checked_slug, folded_slug, slugify

log = logging.getLogger(__name__)


def repo_slug(name: str) -> str:
    """The URL slug of a repository name, GitHub-style: ASCII letters, digits, '.', '_' and '-' kept (lowercased),
    every other run of characters one '-' (with any '.' or '_' next to it), no '..', no leading or trailing '.',
    '_' or '-', and no '.git' or '.lock' suffix ("My Repo.git" -> "my-repo", "x/../y" -> "x-y").
    Empty only when the name has no ASCII letter or digit."""
    slug = slugify(name.encode("ascii", "replace").decode("ascii"))  # non-ASCII -> '-', never a lookalike letter
    previous = None
    while slug != previous:
        previous = slug
        slug = re.sub(r"[-._]*-[-._]*", "-", re.sub(r"\.{2,}", ".", slug)).strip("-._")
        for suffix in (".git", ".lock"):
            if slug.endswith(suffix):
                slug = slug[: -len(suffix)]
    return slug


def create_repo(session: Session, store: RepoStore, org_id: str, name: str, description: str | None = None,
                default_branch: str = "main", creator: Principal | None = None, slug: str | None = None) -> Repository:
    """`creator`: the key asking (None: the CLI). A key limited to some repositories could not see the new one,
    so only a key that reaches every repository of the organization may create one. `slug`: chosen by the caller
    (the Project view's), else derived from the name."""
    if creator is not None and creator.repo_ids is not None:
        raise Forbidden("a key limited to some repositories cannot create repositories")
    slug = (checked_slug(repo_slug(name), "repository", "name") if slug is None
            else checked_slug(slug, "repository"))
    exists = session.scalar(select(Repository.id).where(
        Repository.org_id == org_id, Repository.slug == slug, Repository.deleted_at.is_(None)))
    if exists:
        raise Conflict(f"repository {slug!r} already exists", {"repo": slug})
    repo = Repository(id=new_id("repo"), org_id=org_id, slug=slug, name=name, description=description,
                      default_branch=default_branch, settings={})
    session.add(repo)
    try:
        session.flush()
    except IntegrityError:  # the same slug created at the same moment: the check above raced the other insert
        raise Conflict(f"repository {slug!r} already exists", {"repo": slug}) from None
    store.create(repo.id, default_branch=default_branch)
    engine = session.get_bind()
    on_rollback(session, lambda: _remove_unrecorded(engine, store, repo.id))
    return repo


def _remove_unrecorded(engine, store: RepoStore, repo_id: str) -> None:
    """The transaction that created the repository failed (its database full): the directory goes, unless the
    row is there after all (a connection lost during COMMIT) or cannot be looked for, then a directory too many
    beats a repository without its files."""
    try:
        with Session(engine) as session:
            if session.get(Repository, repo_id) is None:
                store.delete(repo_id)
    except Exception:
        log.warning("could not tell whether repository %s was recorded: its directory stays", repo_id, exc_info=True)


def get_repo(session: Session, org_id: str, slug: str) -> Repository:
    repo = session.scalar(select(Repository).where(
        Repository.org_id == org_id, Repository.slug == slug, Repository.deleted_at.is_(None)))
    if repo is None:
        raise NotFound(f"repository {slug!r} not found")
    return repo


MAX_PROTECTION_RULES = 100  # per repository


def protect_branch(session: Session, repo: Repository, pattern: str, allow_force_push: bool = False,
                   allow_deletion: bool = False, require_pull_request: bool = False,
                   required_approvals: int = 0) -> BranchProtection:
    """The rule for `pattern`, made or replaced (GitHub's PUT of a branch's protection)."""
    serialize_repository_writes(session, repo.id)  # two puts of one pattern: the second replaces the first
    rule = session.scalar(select(BranchProtection).where(
        BranchProtection.repo_id == repo.id, BranchProtection.pattern == pattern))
    if rule is None:
        count = session.scalar(select(func.count()).select_from(BranchProtection)
                               .where(BranchProtection.repo_id == repo.id))
        if count >= MAX_PROTECTION_RULES:
            raise Conflict(f"a repository has at most {MAX_PROTECTION_RULES} protection rules",
                           {"limit": MAX_PROTECTION_RULES})
        rule = BranchProtection(id=new_id("bp"), repo_id=repo.id, pattern=pattern)
        session.add(rule)
    rule.allow_force_push, rule.allow_deletion = allow_force_push, allow_deletion
    rule.require_pull_request, rule.required_approvals = require_pull_request, required_approvals
    session.flush()
    return rule


def protection_rules(session: Session, repo: Repository) -> list[BranchProtection]:
    return list(session.scalars(select(BranchProtection).where(BranchProtection.repo_id == repo.id)
                                .order_by(BranchProtection.pattern)))


def unprotect_branch(session: Session, repo: Repository, rule_id: str) -> None:
    rule = session.scalar(select(BranchProtection).where(BranchProtection.repo_id == repo.id,
                                                         BranchProtection.id == rule_id))
    if rule is None:
        raise NotFound("protection rule not found", {"id": rule_id[:100]})
    session.delete(rule)
    session.flush()


def reconcile_branches(session: Session, store: RepoStore, repo: Repository) -> dict[str, str]:
    """Make the branch rows match the repository's refs (git is the source of truth).

    Branches whose names the server would refuse (not UTF-8, too long: made outside Driftstone) get no row.
    Refs and rows are read in the repository's write turn: a branch being created or deleted meanwhile is
    either wholly before or wholly after, never a ref without its row (which reconcile would strip of its
    metadata) or a row without its ref (which it would delete).
    """
    serialize_repository_writes(session, repo.id)
    heads = {name: sha for name, sha in git_read.branch_heads(store.path_for(repo.id)).items()
             if branch_name_problem(name) is None}
    rows = {b.name: b for b in session.scalars(select(Branch).where(Branch.repo_id == repo.id))}
    gone = [name for name, row in rows.items() if name not in heads and row.head_sha is not None]
    for name in gone:
        session.delete(rows[name])
    retire_branch_uploads(session, repo.id, gone)  # their refs' effects did not run (a killed worker)
    for name, sha in heads.items():
        row = rows.get(name)
        moved = row is None or row.head_sha != sha  # by a change whose effects were lost: no upload is known to
        if moved and name == repo.default_branch:   # have made this head
            repo.main_head_identifier = None
        if row is None:
            session.add(Branch(id=new_id("br"), repo_id=repo.id, name=name, head_sha=sha, status="ready"))
            continue
        if moved:
            row.head_identifier = None
        row.head_sha = sha
        row.status = "ready"
    session.flush()
    mark_stacks_already_landed(session, store.path_for(repo.id), repo, heads)  # a merge killed before its row
    return heads


def listing_query(principal: Principal, page: int, per_page: int):
    """One page of the repositories the key may see (its organization's live ones, or those it is limited to),
    oldest first, plus one row to tell if more follow. Filtered before paging: filtered after, a limited key's
    pages came back empty with `hasMore`, and their count told how many repositories it may not see."""
    query = select(Repository).where(Repository.org_id == principal.org_id, Repository.deleted_at.is_(None))
    if principal.repo_ids is not None:
        query = query.where(Repository.id.in_(list(principal.repo_ids)))
    return query.order_by(Repository.created_at, Repository.id).offset((page - 1) * per_page).limit(per_page + 1)


def list_repos(session: Session, principal: Principal, page: int, per_page: int) -> tuple[list[Repository], bool]:
    rows = session.scalars(listing_query(principal, page, per_page)).all()
    return list(rows[:per_page]), len(rows) > per_page


def delete_repo(session: Session, repo: Repository, now) -> None:
    """Gone at once from the API and git; a background job removes the repository and its stored files.
    Of concurrent deletes exactly one succeeds: the others find it already gone."""
    deleted = session.execute(update(Repository).where(Repository.id == repo.id, Repository.deleted_at.is_(None))
                              .values(deleted_at=now).execution_options(synchronize_session=False))
    if deleted.rowcount != 1:
        raise NotFound(f"repository {repo.slug!r} not found")
    session.refresh(repo)
    jobs.defer(session, "control.jobs.purge_repository", repo.id)


def head_of(store: RepoStore, repo: Repository, branch: str | None = None) -> str | None:
    return git_refs.read_ref(store.path_for(repo.id), f"refs/heads/{branch or repo.default_branch}")


def visible_repo(session: Session, principal: Principal, slug: str) -> Repository:
    """The caller's repository by the id its creation answered, or by slug (an id first: a slug of an id's shape,
    made before such slugs were refused, names no other repository); another org's (or a key's excluded)
    repository is simply not found."""
    named = folded_slug(slug)  # the same message whether the repository exists or not
    live = (Repository.org_id == principal.org_id, Repository.deleted_at.is_(None))
    repo = session.scalar(select(Repository).where(*live, Repository.id == slug)) if slug.startswith("repo_") else None
    if repo is None:
        repo = session.scalar(select(Repository).where(*live, Repository.slug == named))
    if repo is None or not principal.can_see_repo(repo.id):
        raise NotFound(f"repository {named!r} not found")
    return repo
