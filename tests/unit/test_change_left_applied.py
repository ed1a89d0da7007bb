"""A request that fails after its ref moved, where the ref cannot be put back either.

A disk-full sweep found it: an API commit's ref moved, then the database refused the transaction ("database or
disk is full") and git refused the lock file the undo needed, and the request was answered 503 "the database is
unavailable or busy" (nothing changed) with the commit in place. A full disk cannot be arranged portably here
(no mount in a test), so the two refusals it produced are injected: the transaction's commit and the undo's
compare-and-swap raise. Everything else is real: the application in-process, SQLite, git.
"""
from __future__ import annotations

import base64
import sqlite3
import subprocess

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from hooks import pipeline
from storage import git_refs
from storage.git_env import GitFailed
from tests.support import in_process_app


def _disk_full() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode, error.sqlite_errorname = 13, "SQLITE_FULL"  # as sqlite3 raises it
    return error


def _commit(client, auth, message: str):
    body = {"branch": "main", "message": message, "operations": [
        {"action": "create", "path": f"{message}.txt", "content": base64.b64encode(message.encode()).decode()}]}
    key = base64.b64decode(auth["Authorization"].split()[1]).decode().split(":", 1)[1]
    return client.post("/v1/repos/r/commits", json=body, headers={"Authorization": f"Bearer {key}"})


def test_a_change_that_could_not_be_taken_back_is_not_answered_as_nothing_changed(tmp_path, monkeypatch):
    client, auth, repo_path = in_process_app(tmp_path, "acme", "admin")
    assert _commit(client, auth, "first").status_code == 201
    before = git_refs.read_ref(repo_path, "refs/heads/main")
    reconciles = []
    monkeypatch.setattr(pipeline, "_ask_for_reconcile", reconciles.append)
    real_commit, real_swap = Session.commit, git_refs.compare_and_swap

    def full_database(session):
        if session.info.get("undo_on_rollback"):
            raise OperationalError("COMMIT", {}, _disk_full())
        real_commit(session)

    def swap(repo, ref, old, new):
        if new == before:  # the undo: git could not write the ref's lock file
            raise GitFailed(128, ["git", "update-ref"], b"", b"fatal: cannot lock ref: No space left on device")
        return real_swap(repo, ref, old, new)

    monkeypatch.setattr(Session, "commit", full_database)
    monkeypatch.setattr(git_refs, "compare_and_swap", swap)
    answer = _commit(client, auth, "second")
    assert answer.status_code == 500, answer.text
    assert "the change stands" in answer.json["error"] and answer.json["code"] == "internal", answer.json
    assert git_refs.read_ref(repo_path, "refs/heads/main") != before  # the ref did move: the answer says so
    assert len(reconciles) == 1  # and the branch rows are rebuilt from the refs


def test_a_change_taken_back_is_answered_as_nothing_changed(tmp_path, monkeypatch):
    client, auth, repo_path = in_process_app(tmp_path, "acme", "admin")
    assert _commit(client, auth, "first").status_code == 201
    before = git_refs.read_ref(repo_path, "refs/heads/main")
    real_commit = Session.commit

    def full_database(session):
        if session.info.get("undo_on_rollback"):
            raise OperationalError("COMMIT", {}, _disk_full())
        real_commit(session)

    monkeypatch.setattr(Session, "commit", full_database)
    answer = _commit(client, auth, "second")
    assert answer.status_code == 503 and answer.json["code"] == "unavailable", answer.text
    # a full database is the storage's failure, not a busy moment: retry later, not in a second
    assert "could not write to its storage" in answer.json["error"] and answer.headers["Retry-After"] == "30"
    assert git_refs.read_ref(repo_path, "refs/heads/main") == before
    assert subprocess.run(["git", "fsck", "--no-dangling"], cwd=repo_path, capture_output=True).returncode == 0
