"""A reconcile asked for after a change's effects were kept out is remembered on disk beside the repository: a
queue that loses the job (Redis restarted without its data) no longer loses the ask. A real repository and
database; the lost job is a queue whose enqueue drops it (what Redis's restart did to it, which this test cannot
do to the in-process queue)."""
from __future__ import annotations

import os
import threading
import time

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


def _repository(root, repo_id: str = "repo_0123456789abcdef01234567"):
    path = root / repo_id[-2:] / f"{repo_id}.git"
    path.mkdir(parents=True)
    return path


def _changing(path) -> list[str]:
    return sorted(p.name for p in path.glob(reconcile_marks.CHANGING + "*"))


def test_a_change_marked_by_a_process_that_died_becomes_a_reconcile_ask(tmp_path):
    """A process killed between a ref's move and its rows' commit leaves its change mark; once it is dead (here:
    exited without ending it, as a SIGKILL leaves it), the next ask for interrupted work turns the mark into a
    reconcile's. A live process's mark, this one's, is left alone."""
    import subprocess
    import sys

    path = _repository(tmp_path)
    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from storage import reconcile_marks; "
                    "reconcile_marks.begin_change(Path(sys.argv[1]))", str(path)], check=True)
    mine = reconcile_marks.begin_change(path)
    assert len(_changing(path)) == 2
    assert reconcile_marks.ask_for_abandoned_changes(tmp_path) == [path.name[:-len(".git")]]
    assert _changing(path) == [mine.name]
    assert (path / reconcile_marks.MARK).exists()
    (path / reconcile_marks.MARK).unlink()
    assert reconcile_marks.ask_for_abandoned_changes(tmp_path) == []
    reconcile_marks.end_change(mine)
    assert _changing(path) == [] and not (path / reconcile_marks.MARK).exists()


def test_a_pid_given_to_another_process_or_a_zombie_is_not_the_owner(tmp_path):
    import subprocess

    path = _repository(tmp_path)
    start = reconcile_marks._start_time(os.getpid())
    here = reconcile_marks._where()
    (path / f"{reconcile_marks.CHANGING}{here}-{os.getpid()}.{int(start) + 1}-0a1b2c3d4e5f").touch()  # pid reused
    zombie = subprocess.Popen(["true"])
    zombie_start = reconcile_marks._start_time(zombie.pid)
    (path / f"{reconcile_marks.CHANGING}{here}-{zombie.pid}.{zombie_start}-1a1b2c3d4e5f").touch()
    deadline = time.monotonic() + 10
    while reconcile_marks._stat_fields(zombie.pid)[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        assert reconcile_marks.ask_for_abandoned_changes(tmp_path) == [path.name[:-len(".git")]]
        assert _changing(path) == []
    finally:
        zombie.wait()


def test_a_receive_pack_still_moving_refs_after_its_worker_died_is_waited_for(tmp_path, monkeypatch):
    """A push's mark names its worker and its receive-pack: a killed worker's receive-pack may still be moving the
    refs, and a reconcile that read them before would miss its change."""
    import subprocess
    import sys

    path = _repository(tmp_path)
    git_like = subprocess.Popen(["sleep", "600"])
    try:
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from storage import "
                        "reconcile_marks; reconcile_marks.begin_change(Path(sys.argv[1]), [int(sys.argv[2])])",
                        str(path), str(git_like.pid)], check=True)
        monkeypatch.setattr(reconcile_marks, "ORPHAN_WAIT_SECONDS", 0.05)
        assert reconcile_marks.ask_for_abandoned_changes(tmp_path) == []  # still at work: looked at again later
        assert len(_changing(path)) == 1
        monkeypatch.setattr(reconcile_marks, "ORPHAN_WAIT_SECONDS", 60)
        ended = threading.Timer(0.3, lambda: (git_like.kill(), git_like.wait()))  # it ends, and is reaped
        ended.start()
        assert reconcile_marks.ask_for_abandoned_changes(tmp_path) == [path.name[:-len(".git")]]
        ended.join()  # Popen.poll() answers None while another thread is inside wait(): a flake in 1 CI run
        assert git_like.poll() is not None and _changing(path) == []
    finally:
        git_like.kill()
        git_like.wait()


def test_a_mark_whose_owners_this_process_cannot_see_is_judged_by_its_age(tmp_path):
    """A job worker in another container (another pid namespace) or on another host sharing the disk found every
    pid in the server's marks dead, and took the marks of changes still under way; one from before this host's
    last boot is abandoned at once."""
    path = _repository(tmp_path)
    host, boot, namespace = reconcile_marks._where().split(".")
    other_namespace = path / f"{reconcile_marks.CHANGING}{host}.{boot}.{int(namespace) + 1}-1.100-0a0a0a0a0a0a"
    other_host = path / f"{reconcile_marks.CHANGING}0000ffff.{boot}.{namespace}-1.100-1b1b1b1b1b1b"
    before_boot = path / f"{reconcile_marks.CHANGING}{host}.0123456789ab.{namespace}-1.100-2c2c2c2c2c2c"
    for mark in (other_namespace, other_host, before_boot):
        mark.touch()
    assert reconcile_marks.ask_for_abandoned_changes(tmp_path) == [path.name[:-len(".git")]]
    assert _changing(path) == sorted([other_namespace.name, other_host.name])
    long_ago = time.time() - reconcile_marks.FOREIGN_CHANGE_SECONDS - 60
    os.utime(other_host, (long_ago, long_ago))
    reconcile_marks.ask_for_abandoned_changes(tmp_path)
    assert _changing(path) == [other_namespace.name]


def test_a_repository_purged_while_marks_are_looked_at_stops_no_other(tmp_path, monkeypatch):
    first, second = _repository(tmp_path, "repo_" + "a" * 24), _repository(tmp_path, "repo_" + "b" * 24)
    for path in (first, second):
        (path / f"{reconcile_marks.CHANGING}{reconcile_marks._where()}-999999999.1-0a0a0a0a0a0a").touch()
    real = reconcile_marks.mark

    def purged_first(repo_path):
        if repo_path == first:
            raise FileNotFoundError(repo_path)
        real(repo_path)

    monkeypatch.setattr(reconcile_marks, "mark", purged_first)
    assert reconcile_marks.ask_for_abandoned_changes(tmp_path) == [second.name[:-len(".git")]]


def test_a_workspace_commit_whose_request_died_is_taken_up_by_the_reconcile(tmp_path):
    """A workspace commit killed after its ref moved left the row at the commit before, its overlay still holding
    what the commit holds: status and tree showed the state before it until the next commit (a race sweep: 1 in
    34 killed rounds). The reconcile its change's mark asks for takes the commit up. The kill is played by a
    transaction that ends without its undo or its mark's end, as a killed process leaves it."""
    import io

    from control.bootstrap import bootstrap
    from control.services import repos, workspaces
    from control.services.accounts import create_key, create_org
    from storage.keys import Principal
    from storage.models import Workspace, WorkspaceFile
    from storage.models.base import utcnow
    from storage.settings import Settings
    from tests.unit.test_effects_follow_refs import git as run_git

    context = bootstrap(Settings(data_dir=tmp_path))
    try:
        with context.db.session() as session:
            org = create_org(session, "lost")
            key = create_key(session, org.id, "agent", "agent").key
            repo = repos.create_repo(session, context.store, org.id, "r")
            repo_id = repo.id
        actor = Principal(key_id=key.id, org_id=org.id, scope="agent")
        path = context.store.path_for(repo_id)
        with context.db.session() as session:
            repo = session.get(repos.Repository, repo_id)
            workspace = workspaces.create_workspace(session, context, repo, actor, "w", None, None)
            workspace_id = workspace.id
            for name in ("a.txt", "b.txt"):
                workspaces.write_file(session, context, repo, workspace, name, io.BytesIO(b"kept\n"), utcnow(), actor)

        class Killed(Exception):
            pass

        try:
            with context.db.session() as session:
                repo, workspace = session.get(repos.Repository, repo_id), session.get(Workspace, workspace_id)
                made = workspaces.commit(session, context, repo, workspace, actor, "lost", "a", "a@example.com", None)
                session.info.pop("undo_on_rollback")  # a killed process takes nothing back
                session.info.pop("after_end")  # and leaves its mark
                raise Killed
        except Killed:
            pass
        assert run_git(path, "rev-parse", workspaces.workspace_ref_of(workspace_id)) == made.sha
        with context.db.session() as session:
            assert session.get(Workspace, workspace_id).current_commit != made.sha
            written_since = workspaces.write_file(session, context, session.get(repos.Repository, repo_id),
                                                  session.get(Workspace, workspace_id), "c.txt",
                                                  io.BytesIO(b"written after the kill\n"), utcnow(), actor)
        job_functions.reconcile_repository(repo_id)

        with context.db.session() as session:
            assert session.get(Workspace, workspace_id).current_commit == made.sha
            left = session.scalars(select(WorkspaceFile.path).where(WorkspaceFile.workspace_id == workspace_id))
            assert list(left) == [written_since.path]  # what the commit holds left the overlay; a later write stays
    finally:
        context.db.dispose()
