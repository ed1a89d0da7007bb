"""Run Alembic migrations programmatically against a Database."""
from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from .db import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


MIGRATION_LOCK_KEY = 0x44726966  # PostgreSQL advisory lock id: one migrating process at a time


def upgrade(db: Database) -> None:
    """Processes started together on a fresh database (`serve`, `worker`, an admin command) take turns: the
    second finds the schema at head. Without the lock, three of four simultaneous migrations failed on a
    unique key or an existing table."""
    with _file_lock(db), db.engine.connect() as connection, _foreign_keys_off_on_sqlite(connection):
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            command.upgrade(alembic_config(connection), "head")
            if connection.dialect.name == "sqlite" and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                raise RuntimeError("the migration left rows whose foreign keys point at nothing: not committed")


@contextmanager
def _foreign_keys_off_on_sqlite(connection) -> Iterator[None]:
    """SQLite alters a table by building a new one and dropping the old: with foreign keys on, the drop deletes
    (ON DELETE CASCADE) every row pointing at it (0006 emptied upload_files so). Off for the migration, as
    Alembic's batch mode asks, on again for the application's connections. The pragma is a no-op inside a
    transaction: set between them."""
    if connection.dialect.name != "sqlite":
        yield
        return
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()
    try:
        yield
    finally:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


@contextmanager
def _file_lock(db: Database) -> Iterator[None]:
    """SQLite has no advisory locks: a lock file beside the database file does."""
    path = db.engine.url.database if db.engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:":
        yield
        return
    with open(f"{path}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def autogenerate(db: Database, message: str) -> None:
    """Developer helper: write a new revision from the models' difference to the database."""
    with db.engine.begin() as connection:
        command.revision(alembic_config(connection), message=message, autogenerate=True)
