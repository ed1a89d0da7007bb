"""Settings: the data dir is absolute and must be a directory; the secret key is made once, whole, even when the
workers of a fresh server all ask for it at the same moment."""
from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from storage.settings import Settings


def test_a_relative_data_dir_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({"DRIFTSTONE_DATA_DIR": "data"}).data_dir == tmp_path.resolve() / "data"
    assert Settings().data_dir == tmp_path.resolve() / "data"


def test_a_data_dir_that_is_a_file_is_refused_in_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValidationError, match="is not a directory"):
        Settings.from_env({"DRIFTSTONE_DATA_DIR": str(tmp_path / "file")})
    result = subprocess.run([str(Path(sys.executable).parent / "driftstone"), "migrate"], capture_output=True,
                            env={"DRIFTSTONE_DATA_DIR": str(tmp_path / "file"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    expected = f"Error: DRIFTSTONE_DATA_DIR: Value error, {tmp_path / 'file'} is not a directory"
    assert result.stderr.decode().strip() == expected


def _read_secret(data_dir: str, start, results) -> None:
    start.wait()
    try:
        results.put(Settings(data_dir=data_dir).with_secret().secret_key)
    except Exception as error:  # noqa: BLE001 - reported to the test
        results.put(f"error: {error!r}")


def test_workers_starting_together_share_one_complete_secret(tmp_path):
    context = multiprocessing.get_context("fork")
    for round_ in range(20):
        data_dir = tmp_path / f"d{round_}"
        start, results = context.Event(), context.Queue()
        workers = [context.Process(target=_read_secret, args=(str(data_dir), start, results)) for _ in range(6)]
        for worker in workers:
            worker.start()
        start.set()
        secrets = [results.get(timeout=30) for _ in workers]
        for worker in workers:
            worker.join()
        assert len(set(secrets)) == 1 and len(secrets[0]) >= 48, secrets
        assert (data_dir / "secret_key").read_text().strip() == secrets[0]
        assert sorted(p.name for p in data_dir.iterdir()) == ["secret_key"]


def test_an_empty_secret_file_is_refused(tmp_path):
    (tmp_path / "secret_key").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        Settings(data_dir=tmp_path).with_secret()


def test_the_database_pool_is_sized_from_the_environment():
    """More workers than PostgreSQL's connections allow at the defaults need a smaller pool per process."""
    from storage.db import Database

    settings = Settings.from_env({"DRIFTSTONE_DATABASE_POOL_SIZE": "3", "DRIFTSTONE_DATABASE_MAX_OVERFLOW": "2"})
    db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none", pool_size=settings.database_pool_size,
                  max_overflow=settings.database_max_overflow)  # no connection is made until one is needed
    assert (db.engine.pool.size(), db.engine.pool._max_overflow) == (3, 2)
    db.dispose()
