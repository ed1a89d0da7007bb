"""First-start work shared by `driftstone serve`, `driftstone migrate` and the admin commands."""
from __future__ import annotations

from control.context import AppContext
from storage import migrate
from storage.settings import Settings


def bootstrap(settings: Settings) -> AppContext:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.repos_dir.mkdir(parents=True, exist_ok=True)
    context = AppContext.build(settings)
    migrate.upgrade(context.db)
    return context
