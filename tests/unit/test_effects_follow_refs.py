"""Branch rows take the value their ref has when the effects run, not the value of the change that triggered
them: effects of racing changes run in any order (a push's after git exits, an API commit's in its request),
and the row must end where the ref is. A real bare repository and the real SQLite database; the race itself is
set up by moving the ref before the older change's effects run."""
from __future__ import annotations

import contextlib
import subprocess

import pytest
from sqlalchemy import select

from hooks.context import ChangeContext, RepoRef
from hooks.pipeline import run_effects
from hooks.refs import ZERO_SHA, RefUpdate
from storage.models import Branch
from storage.settings import Settings


@pytest.fixture
def repo(tmp_path):
    with change_context(tmp_path) as (ctx, path):
        yield ctx, path


@contextlib.contextmanager
def change_context(tmp_path):
    """A real SQLite database with one repository, and the context its ref changes run in."""
    from control.bootstrap import bootstrap
    from control.services.accounts import create_org
    from control.services.repos import create_repo

    context = bootstrap(Settings(data_dir=tmp_path))
    with context.db.session() as session:
        org = create_org(session, "effects")
        row = create_repo(session, context.store, org.id, "r")
        ref = RepoRef(id=row.id, org_id=org.id, slug=row.slug, default_branch="main")
    path = context.store.path_for(ref.id)
    try:
        yield ChangeContext(db=context.db, settings=context.settings, repo=ref, repo_path=path, actor=None), path
    finally:
        context.db.dispose()


def git(path, *args: str, input: str | None = None) -> str:
    return subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True, text=True,
                          input=input).stdout.strip()


def commits(path, count: int) -> list[str]:
    tree = git(path, "hash-object", "-t", "tree", "-w", "/dev/null")
    return [git(path, "commit-tree", tree, "-m", f"c{i}") for i in range(count)]


def branch_rows(ctx) -> dict[str, str | None]:
    with ctx.db.session() as session:
        return dict(session.execute(select(Branch.name, Branch.head_sha).where(Branch.repo_id == ctx.repo.id)).all())


def test_the_older_change_s_effects_running_last_leave_the_row_at_the_ref(repo):
    ctx, path = repo
    pushed, committed = commits(path, 2)
    git(path, "update-ref", "refs/heads/main", pushed)
    git(path, "update-ref", "refs/heads/main", committed, pushed)  # an API commit moved it on meanwhile
    run_effects(ctx, [RefUpdate(old=pushed, new=committed, ref="refs/heads/main")])
    run_effects(ctx, [RefUpdate(old=ZERO_SHA, new=pushed, ref="refs/heads/main")])  # the push's, late
    assert branch_rows(ctx) == {"main": committed}


def test_a_deletion_whose_branch_was_made_again_keeps_its_row(repo):
    ctx, path = repo
    first, second = commits(path, 2)
    git(path, "update-ref", "refs/heads/topic", second)  # deleted (first) and created again (second) meanwhile
    run_effects(ctx, [RefUpdate(old=first, new=ZERO_SHA, ref="refs/heads/topic")])
    assert branch_rows(ctx) == {"topic": second}
    git(path, "update-ref", "-d", "refs/heads/topic")
    run_effects(ctx, [RefUpdate(old=ZERO_SHA, new=second, ref="refs/heads/topic")])  # its creation, late
    assert branch_rows(ctx) == {}


def test_a_ref_moved_by_a_request_that_then_fails_goes_back(repo):
    """The compare-and-swap happens before the request's transaction commits; when the request fails after it
    (a database timeout, a later check), the ref is put back, unless someone moved it since."""
    from hooks.pipeline import apply_ref_change
    ctx, path = repo
    before, after, other = commits(path, 3)
    git(path, "update-ref", "refs/heads/main", before)
    with pytest.raises(RuntimeError):
        with ctx.db.session() as session:
            apply_ref_change(ctx, RefUpdate(old=before, new=after, ref="refs/heads/main"), session=session)
            assert git(path, "rev-parse", "refs/heads/main") == after
            raise RuntimeError("the request fails after the swap")
    assert git(path, "rev-parse", "refs/heads/main") == before
    with pytest.raises(RuntimeError):
        with ctx.db.session() as session:
            apply_ref_change(ctx, RefUpdate(old=before, new=after, ref="refs/heads/main"), session=session)
            git(path, "update-ref", "refs/heads/main", other, after)  # someone else moves it on meanwhile
            raise RuntimeError("the request fails after the swap")
    assert git(path, "rev-parse", "refs/heads/main") == other


def test_effects_are_tried_again_when_the_database_turns_a_connection_down(repo, monkeypatch):
    """PostgreSQL out of connections made pushes git had reported "ok" lose their rows and events for good
    (13-20 of ~50, PG sweep). Here the first two sessions fail as such a server fails them (a spy raising
    OperationalError: exhausting a real server's connections would starve the rest of the suite)."""
    from contextlib import contextmanager

    from sqlalchemy.exc import OperationalError

    from hooks import pipeline
    from storage.models import Event

    ctx, path = repo
    (head,) = commits(path, 1)
    git(path, "update-ref", "refs/heads/main", head)
    real_session, refusals = ctx.db.session, [1, 1]

    @contextmanager
    def refusing_session(*args, **kwargs):
        if refusals:
            refusals.pop()
            raise OperationalError("connect", {}, Exception("FATAL: sorry, too many clients already"))
        with real_session(*args, **kwargs) as session:
            yield session

    monkeypatch.setattr(ctx.db, "session", refusing_session)
    monkeypatch.setattr(pipeline, "EFFECT_RETRY_DELAYS", (0, 0, 0))
    run_effects(ctx, [RefUpdate(old=ZERO_SHA, new=head, ref="refs/heads/main")])
    assert refusals == []
    assert branch_rows(ctx) == {"main": head}
    with real_session() as session:
        assert session.scalar(select(Event.kind).where(Event.repo_id == ctx.repo.id)) == "refs.push"


def test_a_pushs_checks_are_tried_again_when_the_database_drops_the_connection(repo, monkeypatch):
    """A sweep terminating PostgreSQL backends under pushes saw them refused with 'internal error while checking
    the push' though the checks only read: they now take a new connection twice before giving up. A spy raises
    what SQLAlchemy raises for a connection the server closed."""
    from contextlib import contextmanager

    from sqlalchemy.exc import OperationalError

    from hooks import pipeline

    ctx, path = repo
    (head,) = commits(path, 1)
    real_session, refusals = ctx.db.session, [1, 1]

    @contextmanager
    def dropping_session(*args, **kwargs):
        with real_session(*args, **kwargs) as session:
            if refusals:
                refusals.pop()
                raise OperationalError("select", {}, Exception("server closed the connection unexpectedly"))
            yield session

    monkeypatch.setattr(ctx.db, "session", dropping_session)
    monkeypatch.setattr(pipeline, "CHECK_RETRY_DELAYS", (0, 0))
    assert pipeline.run_checks(ctx, [RefUpdate(old=ZERO_SHA, new=head, ref="refs/heads/main")]) == []
    assert refusals == []
    refusals.extend([1, 1, 1])
    with pytest.raises(OperationalError):
        pipeline.run_checks(ctx, [RefUpdate(old=ZERO_SHA, new=head, ref="refs/heads/main")])


def test_effects_the_database_kept_out_are_rebuilt_by_a_reconcile_job(repo, monkeypatch):
    """With the database away through all the effects' retries, a pushed branch had no row until an operator ran
    `driftstone admin reconcile` (failure-injection sweep). A spy stands in for the outage, as above."""
    from contextlib import contextmanager

    from sqlalchemy.exc import OperationalError

    from hooks import pipeline

    ctx, path = repo
    (head,) = commits(path, 1)
    git(path, "update-ref", "refs/heads/main", head)
    real_session = ctx.db.session

    @contextmanager
    def away(*args, **kwargs):
        raise OperationalError("select", {}, Exception("the database is starting up"))
        yield

    monkeypatch.setattr(ctx.db, "session", away)
    monkeypatch.setattr(pipeline, "EFFECT_RETRY_DELAYS", (0, 0, 0))
    run_effects(ctx, [RefUpdate(old=ZERO_SHA, new=head, ref="refs/heads/main")])
    monkeypatch.setattr(ctx.db, "session", real_session)  # back before the job's first retry (1 s)
    ctx.db.jobs.join()
    assert branch_rows(ctx) == {"main": head}
