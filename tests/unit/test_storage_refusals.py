"""A disk that refuses a write (full, read-only) gets the storage answer (503, nothing changed), never a 500 with
a traceback, and leaves nothing half made (a disk-full sweep).

A full disk cannot be arranged portably in a test (no mount here), so the refusals it produced are injected where
noted: `git init` failing with "No space left on device", and a file write raising ENOSPC. The application,
SQLite and git are real.
"""
from __future__ import annotations

import base64
import errno
import hashlib

import pytest

from storage import repo_store
from storage.errors import StorageFailure
from storage.git_env import GitFailed
from storage.repo_store import RepoStore
from tests.support import in_process_app


def _bearer(auth: dict) -> dict:
    key = base64.b64decode(auth["Authorization"].split()[1]).decode().split(":", 1)[1]
    return {"Authorization": f"Bearer {key}"}


def test_a_repository_whose_directory_cannot_be_made_is_a_storage_failure(tmp_path):
    store = RepoStore(tmp_path)
    repo_id = "repo_" + "ab" * 12
    (tmp_path / repo_id[-2:]).write_text("a file where the fan-out directory goes")
    with pytest.raises(StorageFailure):
        store.create(repo_id)


def test_a_repository_git_cannot_create_is_a_503_and_leaves_nothing(tmp_path, monkeypatch):
    client, auth, repo_path = in_process_app(tmp_path, "acme", "admin")
    real_run_git = repo_store.run_git

    def full_disk(cwd, args, **kwargs):
        if args[0] == "init":
            (cwd / args[-1]).mkdir()  # git had begun: `description` and `hooks/` were there when it failed
            (cwd / args[-1] / "description").write_text("x")
            raise GitFailed(128, ["git", *args], b"", b"fatal: could not write config file: No space left on device")
        return real_run_git(cwd, args, **kwargs)

    monkeypatch.setattr(repo_store, "run_git", full_disk)
    answer = client.post("/v1/repos", json={"name": "r2"}, headers=_bearer(auth))
    assert answer.status_code == 503 and answer.json["code"] == "unavailable", answer.text
    repos_dir = repo_path.parent.parent
    assert sorted(p.name for p in repos_dir.glob("*/*.git")) == [repo_path.name]
    assert client.get("/v1/repos/r2", headers=_bearer(auth)).status_code == 404


def test_an_upload_file_the_disk_refuses_is_a_503_and_the_upload_can_be_sent_again(tmp_path, monkeypatch):
    client, auth, _ = in_process_app(tmp_path, "acme", "admin")
    data = b"x" * 100_000
    asked = client.post("/v1/repos/r/uploads", headers=_bearer(auth), json={
        "identifier": "ver-1", "files": [{"name": "a.bin", "hash": hashlib.sha256(data).hexdigest()}]}).json
    url = asked["data"]["files"][0]["uploadUrl"]
    path = url.split("://", 1)[1].split("/", 1)[1]
    blobs = client.application.fallback.config["DRIFTSTONE"].blobs
    real_open_write = type(blobs).open_write

    class FullDisk:
        def __init__(self, target):
            self.target = target

        def __enter__(self):
            return self

        def write(self, chunk):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __exit__(self, *exc):
            return self.target.__exit__(*exc)

    monkeypatch.setattr(type(blobs), "open_write", lambda self, key: FullDisk(real_open_write(self, key).__enter__()))
    refused = client.put("/" + path, data=data)
    assert refused.status_code == 503 and refused.json["code"] == "unavailable", refused.text
    monkeypatch.undo()
    assert client.put("/" + path, data=data).status_code == 200
    done = client.post(f"/v1/repos/r/uploads/{asked['data']['uploadId']}/complete", headers=_bearer(auth))
    assert done.status_code == 200, done.text


def test_the_command_line_says_a_refused_write_in_one_line(tmp_path, monkeypatch):
    """`driftstone admin create-repo` printed a traceback on a full disk (here the store's refusal is injected)."""
    from click.testing import CliRunner

    from control.cli import main

    monkeypatch.setenv("DRIFTSTONE_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    assert runner.invoke(main, ["admin", "create-org", "acme"]).exit_code == 0

    def refused(self, repo_id, default_branch="main"):
        raise StorageFailure(f"repository {repo_id} could not be created: No space left on device")

    monkeypatch.setattr(RepoStore, "create", refused)
    result = runner.invoke(main, ["admin", "create-repo", "acme/r"])
    assert result.exit_code == 1 and "No space left on device" in result.output, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, StorageFailure)


def test_a_repository_whose_row_the_database_refuses_leaves_no_directory(tmp_path, monkeypatch):
    """git init succeeded, then the database refused the transaction (its disk full, injected): the directory
    stayed with no row, and nothing ever removed it (a review of 68fd394)."""
    import sqlite3

    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    client, auth, repo_path = in_process_app(tmp_path, "acme", "admin")
    real_commit = Session.commit
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13

    def full_database(session):
        if session.info.get("undo_on_rollback"):
            raise OperationalError("COMMIT", {}, full)
        real_commit(session)

    monkeypatch.setattr(Session, "commit", full_database)
    answer = client.post("/v1/repos", json={"name": "r2"}, headers=_bearer(auth))
    assert answer.status_code == 503 and answer.json["code"] == "unavailable", answer.text
    assert sorted(p.name for p in repo_path.parent.parent.glob("*/*.git")) == [repo_path.name]
