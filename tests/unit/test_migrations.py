"""Alembic history stays linear, and the migrated schema matches the models."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage import migrate
from storage.db import Database
from storage.models import Base


def test_history_is_linear():
    script = ScriptDirectory(str(migrate.MIGRATIONS_DIR))
    assert len(script.get_heads()) == 1
    assert len(script.get_bases()) == 1


def test_migrated_schema_matches_models(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    migrate.upgrade(db)
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    db.dispose()


def test_repository_listing_needs_no_sort(tmp_path):
    """GET /v1/repos pages in creation order; without a matching index SQLite sorted the whole organization
    on every call (bench/API.md)."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy import text

    from control.services.repos import listing_query
    from storage.keys import Principal

    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    migrate.upgrade(db)
    statement = listing_query(Principal(key_id="k", org_id="org_x", scope="read"), page=3, per_page=50)
    compiled = statement.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    with db.engine.connect() as connection:
        plan = " | ".join(row[-1] for row in connection.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
    assert "ix_repositories_live_listing" in plan and "TEMP B-TREE" not in plan, plan
    db.dispose()


def _fresh_databases(tmp_path):
    """A new SQLite file, and a new PostgreSQL database when the run names a server."""
    import os

    from tests.conftest import _create_database

    yield f"sqlite:///{tmp_path / 'fresh.db'}", None
    admin_url = os.environ.get("DRIFTSTONE_TEST_DATABASE_URL")
    if admin_url:
        url, drop = _create_database(admin_url)
        yield url, drop


def test_simultaneous_migrations_of_a_fresh_database_all_succeed(tmp_path):
    """`serve`, `worker` and an admin command started together each migrate first: 3 of 4 failed before."""
    import os
    import subprocess
    import sys

    driftstone = os.path.join(os.path.dirname(sys.executable), "driftstone")
    for url, drop in _fresh_databases(tmp_path):
        try:
            env = {**os.environ, "DRIFTSTONE_DATA_DIR": str(tmp_path / "data"), "DRIFTSTONE_DATABASE_URL": url}
            runs = [subprocess.Popen([driftstone, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                    for _ in range(4)]
            outcomes = [(run.wait(timeout=120), run.stderr.read().decode()[-2000:]) for run in runs]
            assert [code for code, _ in outcomes] == [0] * 4, outcomes
        finally:
            if drop:
                drop()


_ROWS_AT_0005 = [
    "INSERT INTO organizations (id, slug, name, created_at) VALUES ('org_m', 'm', 'm', '2026-12-01 00:00:00')",
    "INSERT INTO repositories (id, org_id, slug, name, default_branch, settings, created_at) "
    "VALUES ('repo_m', 'org_m', 'r', 'r', 'main', '{}', '2026-12-01 00:00:00')",
    "INSERT INTO uploads (id, repo_id, branch, identifier, status, expires_at, created_at) "
    "VALUES ('upl_m', 'repo_m', 'main', 'ver-1', 'pending', '2026-12-01 00:15:00', '2026-12-01 00:00:00')",
    "INSERT INTO upload_files (id, upload_id, name, expected_sha256, storage_path) "
    "VALUES ('uf_m', 'upl_m', 'a.txt', '" + "0" * 64 + "', 'organizations/org_m/repositories/r/main/ver-1/a.txt')",
]


def test_a_migration_that_rebuilds_a_table_keeps_the_rows_that_point_at_it(tmp_path):
    """0006 rebuilds `uploads` on SQLite (a dropped constraint): with foreign keys on, dropping the old table
    deleted every upload's file rows (ON DELETE CASCADE), and completing such an upload then committed an empty
    tree over its branch (review)."""
    from alembic import command
    from sqlalchemy import text

    for url, drop in _fresh_databases(tmp_path):
        db = Database(url)
        try:
            with db.engine.begin() as connection:
                command.upgrade(migrate.alembic_config(connection), "0005")
            with db.engine.begin() as connection:
                for statement in _ROWS_AT_0005:
                    connection.execute(text(statement))
            migrate.upgrade(db)
            with db.engine.connect() as connection:
                assert connection.execute(text("SELECT id FROM upload_files")).scalars().all() == ["uf_m"]
                assert connection.execute(text("SELECT id FROM uploads")).scalars().all() == ["upl_m"]
                assert connection.execute(text("PRAGMA foreign_keys" if url.startswith("sqlite") else "SELECT 1")) \
                    .scalar() == 1  # on again for the application's connections
        finally:
            db.dispose()
            if drop:
                drop()
