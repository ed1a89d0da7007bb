"""A reconcile asked for after a change's effects were kept out is remembered on disk beside the repository: a
queue that loses the job (Redis restarted without its data) no longer loses the ask. A real repository and
database; the lost job is a queue whose enqueue drops it (what Redis's restart did to it, which this test cannot
do to the in-process queue)."""
from __future__ import annotations

import os

from sqlalchemy import select

from control import jobs as job_functions
from hooks import pipeline
from storage import reconcile_marks
from storage.models import Branch
from tests.unit.test_effects_follow_refs import change_context, commits, git


def branch_rows(ctx) -> dict[str, str]:
    with ctx.db.session() as session:
        return dict(session.execute(select(Branch.name, Branch.head_sha).where(Branch.repo_id == ctx.repo.id)).all())


def test_a_reconcile_whose_job_was_lost_runs_at_the_next_ask_for_interrupted_work(tmp_path, monkeypatch):
    with change_context(tmp_path) as (ctx, path):
        (head,) = commits(path, 1)
        git(path, "update-ref", "refs/heads/main", head)  # the ref moved; its row was never written
        monkeypatch.setattr(ctx.db.jobs, "enqueue", lambda job: None)
        pipeline._ask_for_reconcile(ctx)
        assert reconcile_marks.marked_repositories(path.parent.parent) == [ctx.repo.id]
        assert branch_rows(ctx) == {}

        job_functions.finish_interrupted_work()

        assert branch_rows(ctx) == {"main": head}
        assert reconcile_marks.marked_repositories(path.parent.parent) == []


def test_a_mark_renewed_while_a_reconcile_runs_stays_for_the_next(tmp_path, monkeypatch):
    """A change whose effects failed after the reconcile read the refs asks for another: its mark stays."""
    from control.services import repos

    with change_context(tmp_path) as (ctx, path):
        reconcile_marks.mark(path)
        real = repos.reconcile_branches

        def reconcile_then_marked_again(*args, **kwargs):
            result = real(*args, **kwargs)
            marked = (path / reconcile_marks.MARK).stat()
            os.utime(path / reconcile_marks.MARK, ns=(marked.st_atime_ns, marked.st_mtime_ns + 1_000_000))
            return result

        monkeypatch.setattr(repos, "reconcile_branches", reconcile_then_marked_again)
        job_functions.reconcile_repository(ctx.repo.id)
        assert reconcile_marks.marked_repositories(path.parent.parent) == [ctx.repo.id]

        monkeypatch.setattr(repos, "reconcile_branches", real)
        job_functions.reconcile_repository(ctx.repo.id)
        assert reconcile_marks.marked_repositories(path.parent.parent) == []


def test_a_reconcile_that_fails_keeps_its_mark_and_stops_no_other(tmp_path, monkeypatch):
    from control.bootstrap import bootstrap
    from control.services import repos
    from control.services.accounts import create_org
    from storage.settings import Settings

    context = bootstrap(Settings(data_dir=tmp_path))
    try:
        with context.db.session() as session:
            org = create_org(session, "marks")
            first, second = (repos.create_repo(session, context.store, org.id, name).id for name in ("a", "b"))
        for repo_id in (first, second):
            reconcile_marks.mark(context.store.path_for(repo_id))
        broken = min(first, second)  # reconciled first: marked repositories go in order
        real = repos.reconcile_branches

        def fails_for_one(session, store, repo):
            if repo.id == broken:
                raise RuntimeError("the repository cannot be read")
            return real(session, store, repo)

        monkeypatch.setattr(repos, "reconcile_branches", fails_for_one)
        job_functions.finish_interrupted_work()
        assert reconcile_marks.marked_repositories(context.store.root) == [broken]
    finally:
        context.db.dispose()
