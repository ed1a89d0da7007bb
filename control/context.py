"""Everything the control plane needs, built once by the composition root and passed down."""
from __future__ import annotations

from dataclasses import dataclass

from storage.db import Database
from storage.repo_store import RepoStore
from storage.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    db: Database
    store: RepoStore

    @classmethod
    def build(cls, settings: Settings) -> "AppContext":
        settings = settings.with_secret()
        return cls(settings=settings, db=Database(settings.effective_database_url), store=RepoStore(settings.repos_dir))
