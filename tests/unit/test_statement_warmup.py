"""server.statement_warmup on the suite's database (SQLite, or PostgreSQL with DRIFTSTONE_TEST_DATABASE_URL): the
master compiles the statements of a git request's authentication and of a push's checks and effects, and keeps
nothing of the rows and the scratch repository it ran them on."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from sqlalchemy import func, select

from server.statement_warmup import warm_statement_cache
from storage.db import Database
from storage.models import ApiKey, Branch, Event, Organization, Repository
from storage.settings import Settings

KEPT = (Organization, ApiKey, Repository, Branch, Event)


def _counts(db: Database) -> dict[str, int]:
    with db.session() as session:
        return {model.__name__: session.scalar(select(func.count()).select_from(model)) for model in KEPT}


def _scratch_dirs() -> set[str]:
    return {path.name for path in Path(tempfile.gettempdir()).glob("driftstone-warmup-*")}


def test_the_git_paths_statements_are_compiled_and_nothing_is_kept(server, caplog):
    db = Database(server.context.settings.effective_database_url)  # a fresh engine: an empty statement cache
    try:
        before, scratch = _counts(db), _scratch_dirs()
        compiled = db.engine._compiled_cache  # SQLAlchemy's per-engine cache, which forked workers inherit
        cached_before = len(compiled)
        with caplog.at_level(logging.INFO, logger="server.statement_warmup"):
            warm_statement_cache(db, server.context.settings)
        assert caplog.records == []  # neither refused nor failed: the effects' statements are compiled too
        assert len(compiled) >= cached_before + 12
        assert _counts(db) == before
        assert _scratch_dirs() <= scratch
    finally:
        db.dispose()


def test_an_unreachable_database_is_left_to_the_workers(tmp_path, caplog):
    db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with caplog.at_level(logging.INFO, logger="server.statement_warmup"):
        warm_statement_cache(db, Settings(data_dir=tmp_path))
    assert "could not compile" in caplog.text
