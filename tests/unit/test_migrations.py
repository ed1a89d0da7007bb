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

    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    migrate.upgrade(db)
    statement = listing_query("org_x", page=3, per_page=50)
    compiled = statement.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    with db.engine.connect() as connection:
        plan = " | ".join(row[-1] for row in connection.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
    assert "ix_repositories_live_listing" in plan and "TEMP B-TREE" not in plan, plan
    db.dispose()
