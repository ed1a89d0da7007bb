"""Run Alembic migrations programmatically against a Database."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from .db import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade(db: Database) -> None:
    with db.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")


def autogenerate(db: Database, message: str) -> None:
    """Developer helper: write a new revision from the models' difference to the database."""
    with db.engine.begin() as connection:
        command.revision(alembic_config(connection), message=message, autogenerate=True)
