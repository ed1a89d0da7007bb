"""Compile the git path's SQL statements in gunicorn's master, so that every worker forked from it has them.

SQLAlchemy compiles a statement on its first execution in a process and caches it on the engine. A worker forked
from a master that never ran one compiles each on its own first request: a fresh fork answered its first
info/refs in 12-14 ms instead of 2, 8 of them compiling two SELECTs, and a push runs some twenty statements. The
elastic pool forks workers while clients wait on their answers (an add when requests overlap, the replacement of a
worker that outgrew its memory), so the master runs the statements of a request's authentication and of a push's
checks and effects once, on rows and a scratch repository of its own, in a transaction it rolls back.
"""
from __future__ import annotations

import logging
import tempfile
import uuid
from pathlib import Path

from hooks.context import ChangeContext, RepoRef
from hooks.pipeline import run_checks, run_effects
from hooks.refs import ZERO_SHA, RefUpdate
from storage.git_env import run_git
from storage.db import Database
from storage.keys import Principal, find_principal
from storage.models import ApiKey, Organization, Repository
from storage.push_scans import PushScans
from storage.settings import Settings

from .app import find_repo
from .routing import GitRoute

log = logging.getLogger(__name__)


def warm_statement_cache(db: Database, settings: Settings) -> None:
    """Best effort: a database that cannot be reached, or anything else failing here, leaves each worker to compile
    its statements as before."""
    try:
        with tempfile.TemporaryDirectory(prefix="driftstone-warmup-") as scratch:
            _run_a_push(db, settings, Path(scratch) / "warmup.git")
    except Exception:
        log.info("could not compile the git path's statements before forking the workers", exc_info=True)


def _run_a_push(db: Database, settings: Settings, repo_path: Path) -> None:
    first, second = _scratch_repository(repo_path)
    suffix = uuid.uuid4().hex[:12]
    org = Organization(id=f"org_warmup{suffix}", slug=f"warmup-{suffix}", name="warm-up")
    repo = Repository(id=f"repo_warmup{suffix}", org_id=org.id, slug="warmup", name="warm-up")
    key = ApiKey(id=f"key_warmup{suffix}", org_id=org.id, name="warm-up", prefix="warmup", key_hash=uuid.uuid4().hex,
                 scope="admin")
    principal = Principal(key_id=key.id, org_id=org.id, scope="admin", repo_ids=None, expires_at=None)
    try:
        with db.session() as session:  # rolled back on the way out: nothing is kept, no job is enqueued
            session.add(org)
            session.flush()
            session.add_all([repo, key])
            session.flush()
            connection = session.connection()
            find_principal(connection, "dk-" + "0" * 48)
            find_repo(connection, principal, GitRoute(org=org.slug, repo=repo.slug, endpoint="info/refs"))
            ctx = ChangeContext(db=db, settings=settings, repo=RepoRef(repo.id, org.id, repo.slug, "main"),
                                repo_path=repo_path, actor=principal, push_scans=PushScans())
            updates = [RefUpdate(first, second, "refs/heads/main"), RefUpdate(ZERO_SHA, first, "refs/heads/next")]
            rejections = run_checks(ctx, updates, session=session)
            if rejections:
                log.info("the warm-up push was refused (%s): its effects are compiled by each worker", rejections)
            else:
                run_effects(ctx, updates, session=session)
            raise _RolledBack()
    except _RolledBack:
        pass


class _RolledBack(Exception):
    pass


def _scratch_repository(path: Path) -> tuple[str, str]:
    """A bare repository whose main holds the second of two commits and whose `next` holds the first."""
    def git(*args: str, data: bytes | None = None) -> str:
        return run_git(path, args, env=_AUTHOR, input=data, timeout=30).stdout.decode().strip()

    run_git(path.parent, ["init", "-q", "--bare", path.name], timeout=30)
    blob = git("hash-object", "-w", "--stdin", data=b"warm-up\n")
    tree = git("mktree", data=f"100644 blob {blob}\tREADME.md\n".encode())
    first = git("commit-tree", tree, "-m", "first")
    second = git("commit-tree", tree, "-p", first, "-m", "second")
    git("update-ref", "refs/heads/main", second)
    git("update-ref", "refs/heads/next", first)
    return first, second


_AUTHOR = {f"GIT_{role}_{field}": value for role in ("AUTHOR", "COMMITTER")
           for field, value in (("NAME", "warm-up"), ("EMAIL", "warm-up@localhost"))}
