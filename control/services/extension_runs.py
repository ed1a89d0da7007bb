"""An extension run as its background job does it: claim the run, write its branch's files out to a directory,
run the operator's agent program there with the run's prompt, and commit what the program changed onto a
branch of the run's own, `extensions/<run id>`, through the same checks as any ref change (paths, sizes, locks).

One job at a time holds a run (a claim with a heartbeat); a job that died is replaced by the next one that asks
(`finish_interrupted_work`, and every worker's watch, control.jobs.watch_abandoned_jobs) once its heartbeat is
LEASE_SECONDS old, and a run whose job died MAX_ATTEMPTS times fails instead of starting its program again.
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from sqlalchemy import and_, func, or_, select, update

from hooks.webhooks import queue_event
from storage import git_checkout, git_refs
from storage.errors import DomainError, Invalid
from storage.jobs import JobRequest
from storage.keys import Principal
from storage.models import Branch, ExtensionRun, Repository, utcnow

from . import artifacts
from .agent_process import agent_env, in_sandbox, prompt_title, run_agent
from .branches import create_branch
from .changes import checked_path
from .contents import FileOperation, commit_files

log = logging.getLogger(__name__)
LEASE_SECONDS = 90
MAX_ATTEMPTS = 3
MAX_CHANGED_BYTES = 256 * 1024 * 1024  # what a run's commit may add, all files together (read into memory)
CLOCK_TICK_NS = 100_000_000  # a file system's timestamps can be this coarse: what was written later is read back
SHORTEST_REDACTED = 8  # a passed-on value shorter than this ("1", "true") is not blanked out of the output


class _Failed(Exception):
    def __init__(self, message: str, result: dict | None = None, artifacts: list | None = None):
        super().__init__(message)
        self.result = result
        self.artifacts = artifacts or []


class _Lost(Exception):
    """Another job took the run over while this one's program ran."""


def run_job(run_id: str, attempts: int = 0) -> JobRequest:
    """The job of a run's next try: one id per try, so that a copy of an earlier try's job that rq still holds
    (scheduled for a retry by a worker that was killed) does not stand in for it; the claim lets one run at a time."""
    return JobRequest("control.jobs.run_extension", (run_id,), f"run_extension-{run_id}-{attempts}", lane="agents")


def run_branch(run_id: str) -> str:
    return f"extensions/{run_id}"


def run_extension(app, run_id: str) -> None:
    token = secrets.token_hex(16)
    if not _claim(app, run_id, token):
        return
    run_dir = app.settings.data_dir / "extension-runs" / run_id
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        _work(app, run_id, token, run_dir)
    except _Lost:
        log.warning("extension run %s was taken over by another job", run_id)
    except _Failed as failure:
        _finish(app, run_id, token, "failed", failure.result, str(failure), artifacts=failure.artifacts)
    except Exception:
        _release(app, run_id, token)  # queued again: the job's retry (or the next interrupted-work pass) runs it
        raise
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def stale_runs(session) -> list[tuple[str, int]]:
    """Runs no live job holds, with their tries so far: queued ones a lost job never started, running ones whose
    heartbeat stopped."""
    cutoff = utcnow() - timedelta(seconds=LEASE_SECONDS)
    return list(session.execute(select(ExtensionRun.id, ExtensionRun.attempts).where(or_(
        and_(ExtensionRun.status == "queued", ExtensionRun.created_at < cutoff),
        and_(ExtensionRun.status == "running", ExtensionRun.heartbeat_at < cutoff)))).all())


def _claim(app, run_id: str, token: str) -> bool:
    now = utcnow()
    free = or_(ExtensionRun.status == "queued",
               and_(ExtensionRun.status == "running", ExtensionRun.heartbeat_at < now - timedelta(seconds=LEASE_SECONDS)))
    with app.db.session() as session:
        claimed = session.execute(
            update(ExtensionRun).where(ExtensionRun.id == run_id, free)
            .values(status="running", claimed_by=token, heartbeat_at=now, attempts=ExtensionRun.attempts + 1,
                    started_at=func.coalesce(ExtensionRun.started_at, now))
            .execution_options(synchronize_session=False)).rowcount == 1
        attempts = session.scalar(select(ExtensionRun.attempts).where(ExtensionRun.id == run_id)) if claimed else 0
    if claimed and attempts > MAX_ATTEMPTS:
        _finish(app, run_id, token, "failed", None,
                f"the run's job ended without finishing {MAX_ATTEMPTS} times (the server or its worker was stopped "
                "or killed while the agent ran); start the run again")
        return False
    return claimed


def _beat(app, run_id: str, token: str) -> bool:
    try:
        with app.db.session() as session:
            return session.execute(
                update(ExtensionRun).where(ExtensionRun.id == run_id, ExtensionRun.claimed_by == token,
                                           ExtensionRun.status == "running")
                .values(heartbeat_at=utcnow()).execution_options(synchronize_session=False)).rowcount == 1
    except Exception:  # the database is away for a moment: the program goes on; the lease says how long it may
        log.warning("extension run %s: heartbeat not recorded", run_id, exc_info=True)
        return True


def _release(app, run_id: str, token: str) -> None:
    try:
        with app.db.session() as session:
            session.execute(update(ExtensionRun).where(ExtensionRun.id == run_id, ExtensionRun.claimed_by == token,
                                                       ExtensionRun.status == "running")
                            .values(status="queued", claimed_by=None, heartbeat_at=None)
                            .execution_options(synchronize_session=False))
    except Exception:
        log.warning("extension run %s could not be queued again; its lease runs out instead", run_id, exc_info=True)


def _finish(app, run_id: str, token: str, status: str, result: dict | None, error: str | None,
            session=None, artifacts: list | None = None) -> None:
    """The run's outcome and the artifacts it left, in one transaction, if the run is still this job's."""
    values = dict(status=status, result=result, error=error, finished_at=utcnow(), claimed_by=None)
    statement = (update(ExtensionRun).where(ExtensionRun.id == run_id, ExtensionRun.claimed_by == token)
                 .values(**values).execution_options(synchronize_session=False))
    if session is None:
        with app.db.session() as own:
            _finish(app, run_id, token, status, result, error, own, artifacts)
        return
    if session.execute(statement).rowcount == 1:
        session.add_all(artifacts or [])
        _tell_webhooks(session, run_id)
    else:  # the run was taken away (its workspace deleted, another job): the bytes collect() wrote go
        for row in artifacts or []:
            app.blobs.delete(row.storage_path)


WORKFLOW_RUN = "workflow_run"
CONCLUSIONS = {"completed": "success", "failed": "failure"}


def _tell_webhooks(session, run_id: str) -> None:
    """A finished run is a `workflow_run` event (GitHub's, `action: completed`) for its repository's webhooks:
    what polling its link would answer, so that an agent need not poll."""
    run = session.get(ExtensionRun, run_id, populate_existing=True)
    repo = session.get(Repository, run.repo_id)
    if repo is None:
        return
    result = run.result or {}
    queue_event(session, repo.id, WORKFLOW_RUN, {
        "event": WORKFLOW_RUN, "action": "completed",
        "workflowRun": {"id": run.id, "extensionId": run.extension_id,
                        "name": run.name or prompt_title(run.prompt, run.id)[:200], "status": run.status, "conclusion": CONCLUSIONS[run.status], "error": run.error,
                        "branch": result.get("branch"), "commit": result.get("commit"),
                        "link": f"/v1/extensions/poll/{run.id}"},
        "repository": {"id": repo.id, "slug": repo.slug}, "organization": {"id": repo.org_id},
        "actorKeyId": run.created_by_key_id})


def _work(app, run_id: str, token: str, run_dir: Path) -> None:
    with app.db.session() as session:
        run = session.get(ExtensionRun, run_id)
        repo = session.get(Repository, run.repo_id)
        if repo is None or repo.deleted_at is not None:
            raise _Failed("the repository was deleted")
        session.expunge(run)
    repo_path = app.store.path_for(run.repo_id)
    branch = run_branch(run_id)
    earlier = git_refs.read_ref(repo_path, f"refs/heads/{branch}")
    if earlier is not None:  # an earlier try committed, then died before recording it: its commit is the result
        _finish(app, run_id, token, "completed", _result(run, branch, earlier, [], [], None, None), None)
        return
    with app.db.session() as session:
        artifacts.forget_run_artifacts(session, app.blobs, run_id)
    workdir, artifacts_dir = run_dir / "work", run_dir / "artifacts"
    written = git_checkout.write_out(repo_path, run.base_commit, workdir)
    artifacts_dir.mkdir()
    passed = {name: os.environ[name] for name in app.settings.extension_env_names if name in os.environ}
    hidden = [value for value in passed.values() if len(value) >= SHORTEST_REDACTED] + [app.settings.secret_key or ""]
    env = agent_env(run_dir, passed, {
        "DRIFTSTONE_RUN_ID": run.id, "DRIFTSTONE_EXTENSION_ID": run.extension_id,
        "DRIFTSTONE_STORAGE_PATH": run.path, "DRIFTSTONE_BRANCH": run.branch,
        "DRIFTSTONE_BASE_COMMIT": run.base_commit or "", "DRIFTSTONE_PRESETS": ",".join(run.presets or []),
        "DRIFTSTONE_PROMPT_FILE": str(run_dir / "prompt"), "DRIFTSTONE_ARTIFACTS_DIR": str(artifacts_dir)})
    argv = app.settings.extension_argv
    if app.settings.extension_sandbox == "bwrap":
        argv = in_sandbox(argv, run_dir, workdir, _server_data(app),
                          network=app.settings.extension_network == "host")
    trusted_before_ns = time.time_ns() - CLOCK_TICK_NS  # what the agent changes is stamped after this
    outcome = run_agent(argv, workdir, run_dir, run.prompt, env, app.settings.extension_timeout,
                        lambda: _beat(app, run_id, token), hidden)
    if outcome.lost:
        raise _Lost()
    try:
        kept = artifacts.collect(app.blobs, run.org_id, run.repo_id, run.id, artifacts_dir,
                                 app.settings.max_object_size)
    except OSError as unreadable:
        raise _Failed(f"the agent's artifacts could not be read: {unreadable.strerror}",
                      {"output": outcome.stdout, "exitCode": outcome.exit_code}) from None
    listed = [{"id": row.id, "logicalPath": row.logical_path, "contentType": row.content_type,
               "sizeBytes": row.size_bytes} for row in kept.rows]
    skipped = [{**item, "path": f"$DRIFTSTONE_ARTIFACTS_DIR/{item['path']}"} for item in kept.skipped]
    ran = {"output": outcome.stdout, "exitCode": outcome.exit_code, "artifacts": listed}
    if outcome.timed_out:
        raise _Failed(f"the agent ran past its {app.settings.extension_timeout} s limit and was stopped", ran, kept.rows)
    if outcome.exit_code != 0:
        said = outcome.stderr.strip()
        raise _Failed(f"the agent exited with status {outcome.exit_code}" + (f": {said}" if said else ""), ran,
                      kept.rows)
    try:
        found = git_checkout.changes_in(workdir, written, app.settings.max_object_size, MAX_CHANGED_BYTES,
                                        _path_problem, trusted_before_ns)
    except DomainError as refused:
        raise _Failed(f"the agent's changes were not committed: {refused.message}", ran, kept.rows) from None
    except OSError as unreadable:  # the agent took the server's read permission away (chmod 000)
        raise _Failed(f"the agent's changes could not be read: {unreadable.strerror}: "
                      f"{os.path.relpath(unreadable.filename or '?', workdir)}", ran, kept.rows) from None
    changes = [{"path": change.path, "action": change.action} for change in found.changes]
    with app.db.session() as session:
        sha = None
        repo = session.get(Repository, run.repo_id)
        if repo is None or repo.deleted_at is not None:
            raise _Failed("the repository was deleted while the agent ran", ran, kept.rows)
        if found.changes:
            try:
                sha = _commit(session, app, run, branch, found.changes)
            except DomainError as refused:
                session.rollback()
                raise _Failed(f"the agent's changes were not committed: {refused.message}", ran, kept.rows) from None
        result = {**_result(run, branch if sha else None, sha, changes, found.skipped + skipped, outcome.stdout,
                            outcome.exit_code), "artifacts": listed}
        _finish(app, run_id, token, "completed", result, None, session=session, artifacts=kept.rows)


def _server_data(app) -> list[Path]:
    """The directories an agent must not see: the data directory, and the blob store's when it is elsewhere."""
    hidden = [app.settings.data_dir]
    blob_url = app.settings.effective_blob_url
    if blob_url.startswith("file://"):
        blobs = Path(url2pathname(urlsplit(blob_url).path)).resolve()  # a link's target is what gets hidden
        if not blobs.is_relative_to(app.settings.data_dir.resolve()):
            hidden.append(blobs)
    return hidden


def _commit(session, app, run: ExtensionRun, branch: str, changes: list[git_checkout.FileChange]) -> str:
    """The changes as one commit on the run's branch, or two where a file became a directory or the other way
    round (the deletions first: one commit cannot both remove a path and write inside it)."""
    repo = session.get(Repository, run.repo_id)
    actor = Principal(key_id=run.created_by_key_id or "", org_id=run.org_id, scope="agent")
    if run.base_commit is not None:
        create_branch(session, app, repo, actor, branch, source=run.base_commit)
    title = prompt_title(run.prompt, "extension run")[:72]
    intent = {"goal": title, "agent": f"extension {run.extension_id}", "run": run.id}
    head = run.base_commit
    for part in _commit_parts(changes):
        operations = [FileOperation(change.action, change.path, change.content,
                                    mode=None if change.action == "delete" else
                                    ("100755" if change.executable else "100644")) for change in part]
        try:
            head = commit_files(session, app, repo, actor, branch, operations, f"{title}\n\nExtension run {run.id}.",
                                intent=intent, expected_head=head).sha
        except DomainError as refused:
            refused.message = _explained(refused, part)  # its operations' numbers are this part's
            raise
    row = session.scalar(select(Branch).where(Branch.repo_id == repo.id, Branch.name == branch))
    if row is not None:
        row.base_branch, row.base_commit = run.branch, run.base_commit
    return head


def _commit_parts(changes: list[git_checkout.FileChange]) -> list[list[git_checkout.FileChange]]:
    deleted = {change.path for change in changes if change.action == "delete"}
    written = [change.path for change in changes if change.action != "delete"]
    clash = any(path.startswith(other + "/") or other.startswith(path + "/") for path in written for other in deleted)
    if not clash:
        return [changes]
    return [[c for c in changes if c.action == "delete"], [c for c in changes if c.action != "delete"]]


def _path_problem(path: str) -> str | None:
    try:
        checked_path(path)
    except Invalid as refused:
        fields = refused.details.get("fields") or []
        return fields[0]["msg"] if fields else refused.message
    return None


def _explained(refused: DomainError, changes: list[git_checkout.FileChange]) -> str:
    """A refusal in the agent's terms: "operations.3.path" is the path of the fourth change."""
    fields = refused.details.get("fields") or []
    named = []
    for field in fields[:5]:
        parts = str(field.get("loc", "")).split(".")
        index = int(parts[1]) if len(parts) > 1 and parts[0] == "operations" and parts[1].isdigit() else None
        where = changes[index].path if index is not None and index < len(changes) else field.get("loc")
        named.append(f"{where}: {field.get('msg')}")
    return refused.message + (f" ({'; '.join(named)})" if named else "")


def _result(run: ExtensionRun, branch: str | None, sha: str | None, changes: list[dict], skipped: list[dict],
            output: str | None, exit_code: int | None) -> dict:
    return {"output": output, "exitCode": exit_code, "branch": branch, "commit": sha, "baseCommit": run.base_commit,
            "changes": changes, "skipped": skipped}
