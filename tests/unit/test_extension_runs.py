"""An extension run's job: its claim, its take-over when the job holding it died, and what a later try finds.
The database (SQLite), the repository, git, bubblewrap and the agent program (tests/agents) are real; a job that
died is played by the row it leaves (status running, a heartbeat that stopped), which is what a kill leaves."""
from __future__ import annotations

import base64
import subprocess
from datetime import timedelta

import pytest

from control import jobs as job_functions
from control.bootstrap import bootstrap
from control.services import accounts, extension_runs, repos
from control.services.contents import FileOperation, commit_files
from storage.errors import Invalid
from storage.git_checkout import FileChange
from storage.models import ExtensionRun, utcnow
from storage.keys import Principal
from storage.settings import Settings
from tests.conftest import AGENT
from tests.support import in_process_app


@pytest.fixture
def app(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", extension_command=AGENT["DRIFTSTONE_EXTENSION_COMMAND"])
    context = bootstrap(settings)
    with context.db.session() as session:
        org = accounts.create_org(session, "runs")
        repo = repos.create_repo(session, context.store, org.id, "r")
        key = accounts.create_key(session, org.id, "agent", "agent").key
        actor = Principal(key_id=key.id, org_id=org.id, scope="agent")
        head = commit_files(session, context, repo, actor, "main",
                            [FileOperation("create", "a.txt", b"a\n")], "seed").sha
    context.test_ids = (org.id, repo.id, head, key.id)
    try:
        yield context
    finally:
        context.jobs.join()
        context.db.dispose()


def a_run(app, prompt: str, **fields) -> str:
    org_id, repo_id, head, key_id = app.test_ids
    run = ExtensionRun(created_by_key_id=key_id, id=f"run-{len(prompt)}{abs(hash(prompt)) % 10**8:08d}", org_id=org_id, extension_id="ext-x",
                       repo_id=repo_id, path="organizations/o/repositories/r/main", branch="main", base_commit=head,
                       prompt=prompt, presets=[], **fields)
    with app.db.session() as session:
        session.add(run)
    return run.id


def row(app, run_id: str) -> ExtensionRun:
    with app.db.session() as session:
        found = session.get(ExtensionRun, run_id)
        session.expunge(found)
        return found


def stopped(seconds: float = 2 * extension_runs.LEASE_SECONDS):
    return utcnow() - timedelta(seconds=seconds)


def test_a_run_whose_job_died_is_taken_up_by_the_interrupted_work_job(app):
    run_id = a_run(app, "write b.txt after a restart", status="running", claimed_by="dead", attempts=1,
                   heartbeat_at=stopped(), created_at=stopped())
    job_functions.finish_interrupted_work()
    app.jobs.join()
    done = row(app, run_id)
    assert done.status == "completed" and done.attempts == 2 and done.claimed_by is None
    assert done.result["changes"] == [{"path": "b.txt", "action": "create"}]


def test_a_queued_run_whose_job_was_lost_is_taken_up_too(app):
    run_id = a_run(app, "print picked up", status="queued", created_at=stopped())
    job_functions.finish_interrupted_work()
    app.jobs.join()
    assert row(app, run_id).result["output"] == "picked up\n"


def test_a_run_a_live_job_holds_is_left_to_it(app):
    run_id = a_run(app, "print twice?", status="running", claimed_by="alive", attempts=1, heartbeat_at=utcnow(),
                   created_at=stopped())
    job_functions.finish_interrupted_work()
    job_functions.run_extension(run_id)  # a second copy of its job, as rq's retry or a duplicate would be
    app.jobs.join()
    held = row(app, run_id)
    assert (held.status, held.claimed_by, held.attempts, held.result) == ("running", "alive", 1, None)


def test_a_run_whose_job_died_again_and_again_fails_instead_of_starting_its_agent_once_more(app):
    run_id = a_run(app, "write never.txt x", status="running", claimed_by="dead", attempts=extension_runs.MAX_ATTEMPTS,
                   heartbeat_at=stopped())
    job_functions.run_extension(run_id)
    failed = row(app, run_id)
    assert failed.status == "failed" and f"{extension_runs.MAX_ATTEMPTS} times" in failed.error


def test_a_try_that_committed_and_died_before_recording_it_completes_the_run(app):
    run_id = a_run(app, "fail 9 the agent must not run again", status="running", claimed_by="dead", attempts=1,
                   heartbeat_at=stopped())
    _, repo_id, head, _key = app.test_ids
    subprocess.run(["git", "-C", str(app.store.path_for(repo_id)), "update-ref",
                    f"refs/heads/{extension_runs.run_branch(run_id)}", head], check=True)
    job_functions.run_extension(run_id)
    done = row(app, run_id)
    assert done.status == "completed" and done.result["commit"] == head


def test_a_finished_run_is_never_run_again(app):
    run_id = a_run(app, "write again.txt x", status="completed", result={"output": "first"}, finished_at=utcnow())
    job_functions.run_extension(run_id)
    assert row(app, run_id).result == {"output": "first"}


def test_a_run_of_a_deleted_repository_fails(app):
    run_id = a_run(app, "print hello", status="queued")
    with app.db.session() as session:
        from storage.models import Repository

        session.get(Repository, app.test_ids[1]).deleted_at = utcnow()
    job_functions.run_extension(run_id)
    assert row(app, run_id).error == "the repository was deleted"


def test_a_server_without_an_agent_command_refuses_runs_with_a_503(tmp_path):
    client, basic, _path = in_process_app(tmp_path, "plain", "agent")
    secret = base64.b64decode(basic["Authorization"].split()[1]).decode().partition(":")[2]
    auth = {"Authorization": f"Bearer {secret}"}
    made = client.post("/v1/extensions/create", json={"type": "agent", "name": "n", "prompt": "p"}, headers=auth)
    assert made.status_code == 201
    ext_id = made.get_json()["data"]["extensionId"]
    started = client.post("/v1/extensions/run", headers=auth,  # the organization named by its slug
                          json={"extensionId": ext_id, "path": "organizations/plain/repositories/r/main"})
    assert started.status_code == 503, started.get_data(as_text=True)
    body = started.get_json()
    assert (body["success"], body["code"]) == (False, "unavailable")
    assert "DRIFTSTONE_EXTENSION_COMMAND" in body["error"]


def test_settings_refuse_passing_the_servers_own_variables_to_agents():
    with pytest.raises(ValueError, match="not for agents"):
        Settings(extension_env="PATH_EXTRA,DRIFTSTONE_SECRET_KEY")
    assert Settings(extension_env=" A_KEY , B ").extension_env_names == ["A_KEY", "B"]


def test_a_run_whose_key_was_revoked_meanwhile_commits_nothing(app):
    run_id = a_run(app, "write b.txt by a key revoked since", status="queued")
    org_id, _repo, _head, key_id = app.test_ids
    with app.db.session() as session:
        accounts.revoke_key(session, org_id, key_id, utcnow())
    job_functions.run_extension(run_id)
    failed = row(app, run_id)
    assert failed.status == "failed" and "revoked" in failed.error


def test_the_watcher_takes_up_a_run_whose_job_died_after_every_start_up_look(app, monkeypatch):
    """A worker killed mid-run is replaced at once; its start-up look comes before the lease ran out (a sweep left
    such a run `running` for good). The watcher's later look takes it up."""
    import threading
    import time

    monkeypatch.setattr(job_functions, "WATCH_SECONDS", 0.2)
    run_id = a_run(app, "write late.txt taken up", status="running", claimed_by="dead", attempts=1,
                   heartbeat_at=utcnow())
    job_functions.finish_interrupted_work()  # the replacement worker's start-up: the lease still runs
    assert row(app, run_id).status == "running"
    with app.db.session() as session:  # then the lease runs out
        session.get(ExtensionRun, run_id).heartbeat_at = stopped()
    stop = threading.Event()
    job_functions.watch_abandoned_jobs(stop)
    try:
        deadline = time.monotonic() + 30
        while row(app, run_id).status == "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        stop.set()
    app.jobs.join()
    assert row(app, run_id).result["changes"] == [{"path": "late.txt", "action": "create"}]


def test_each_try_of_a_run_is_a_job_of_its_own():
    assert extension_runs.run_job("run-1", 1).job_id != extension_runs.run_job("run-1", 2).job_id


def test_a_refusal_names_the_agents_path_in_the_part_it_came_from():
    changes = [FileChange("delete", "notes"), FileChange("create", "notes/a.txt", b"a"),
               FileChange("create", "z.txt", b"z")]
    deletions, rest = extension_runs._commit_parts(changes)
    assert [c.path for c in deletions] == ["notes"] and [c.path for c in rest] == ["notes/a.txt", "z.txt"]
    refused = Invalid("invalid file operations", {"fields": [{"loc": "operations.1.path", "msg": "too long"}]})
    assert extension_runs._explained(refused, rest) == "invalid file operations (z.txt: too long)"
