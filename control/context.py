"""Everything the control plane needs, built once by the composition root and passed down."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from storage.blobs import BlobStore
from storage.db import Database
from storage.jobs import InProcessQueue, JobQueue, RedisQueue
from storage.repo_store import RepoStore
from storage.settings import Settings


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class AppContext:
    settings: Settings
    db: Database
    store: RepoStore
    blobs: BlobStore
    jobs: JobQueue
    clock: Callable[[], datetime] = field(default=utc_now)

    @classmethod
    def build(cls, settings: Settings) -> "AppContext":
        settings = settings.with_secret()
        if settings.redis_url:
            jobs: JobQueue = RedisQueue(settings.redis_url, settings.redis_namespace)
        else:
            jobs = InProcessQueue()
        db = Database(settings.effective_database_url, jobs=jobs, pool_size=settings.database_pool_size,
                      max_overflow=settings.database_max_overflow)
        context = cls(settings=settings, db=db, store=RepoStore(settings.repos_dir),
                      blobs=BlobStore(settings.effective_blob_url), jobs=jobs)
        from control import jobs as job_functions

        job_functions.configure(context)
        return context
