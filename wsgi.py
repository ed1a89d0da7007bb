"""Composition root: read Settings, build the app context, mount the git app in front of the control app.

`application` builds itself on first use (or when gunicorn's post_worker_init warms it), so importing this
module reads no environment and opens no connection.
"""
from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import configure_mappers

from control.api.app import create_app
from control.context import AppContext
from control.jobs import FINISH_INTERRUPTED_WORK, watch_abandoned_jobs
from server.app import GitHttpApp
from server.hook_channel import install_hook_scripts
from server.pack_cache import PackCache
from server.statement_warmup import warm_statement_cache
from storage import reconcile_marks
from storage.settings import Settings

log = logging.getLogger(__name__)


def create_application(settings: Settings | None = None):
    context = AppContext.build(settings or Settings.from_env())
    _require_schema(context)
    settings = context.settings
    hooks_path = install_hook_scripts(settings.data_dir / "git-hooks")
    pack_cache = PackCache(None, minutes=settings.pack_cache_minutes, min_free_bytes=settings.pack_cache_min_free,
                           max_bytes=settings.pack_cache_max_bytes,
                           min_repository_bytes=settings.pack_cache_min_repository_size,
                           min_occurrences=settings.pack_cache_min_occurrences)
    pack_cache = pack_cache.install(settings.data_dir / "git-programs")
    control_app = create_app(context)
    return GitHttpApp(db=context.db, settings=settings, store=context.store, hooks_path=hooks_path,
                      fallback=control_app, pack_cache=pack_cache)


def _require_schema(context: AppContext) -> None:
    """Plain gunicorn does not migrate: a worker on a database without the schema would answer every request
    with a 500, so it refuses to start instead. A database it cannot reach yet is left to /readyz."""
    try:
        migrated = context.db.has_schema()
    except SQLAlchemyError:
        return
    if not migrated:
        raise RuntimeError("the database has no Driftstone schema: run `driftstone migrate` first "
                           "(`driftstone serve` does it on start)")


class _LazyApplication:
    def __init__(self):
        self._app = None
        self._lock = threading.Lock()
        self._warmed = False  # the git path's statements compiled (before the first fork only)

    def load(self):
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = create_application()
        return self._app

    def before_fork(self) -> None:
        """Build the application in gunicorn's master (with --preload) so that the workers share it instead of
        each building its own copy, its ORM mappers configured (each worker's first query did it, 3 MiB a worker;
        tree PSS idle 92 -> 88 MiB) and the git path's statements compiled (server/statement_warmup.py); no
        database connection may cross the fork."""
        app = self.load()
        configure_mappers()
        if not self._warmed:
            warm_statement_cache(app.db, app.settings)
            self._warmed = True
        app.db.dispose()

    def after_fork(self) -> None:
        """In a worker: forget any pool state inherited from the master without closing the master's sockets."""
        if self._app is not None:
            self._app.db.forget_connections()

    def worker_started(self, look_for_undone_work: bool = True) -> None:
        """Ask for what killed workers left undone (control.jobs.finish_interrupted_work: nothing, mostly), and open
        the pool's first database connection on a thread of its own (a database slow to answer must not hold the
        worker's start past gunicorn's timeout)."""
        app = self.load()
        threading.Thread(target=_first_connection, args=(app.db,), name="first-connection", daemon=True).start()
        if look_for_undone_work:
            self.look_for_undone_work()
        watch_abandoned_jobs()

    def look_for_undone_work(self) -> None:
        """Their ref changes' marks are looked at here first: only a process in their pid namespace can tell that
        the processes they name are dead, and a job worker may run in another."""
        app = self.load()
        try:
            reconcile_marks.ask_for_abandoned_changes(app.store.root)
        except Exception:
            log.exception("could not look for ref changes that killed workers left")
        if app.db.jobs is not None:
            app.db.jobs.enqueue(FINISH_INTERRUPTED_WORK)

    def worker_exiting(self) -> None:
        """A worker leaving (replaced for its memory, or the server stopping) closes its database connections rather
        than leave PostgreSQL to find them cut."""
        if self._app is not None:
            self._app.db.dispose()

    def __call__(self, environ, start_response):
        return self.load()(environ, start_response)


def _first_connection(db) -> None:
    """The pool's first connection, opened before a request waits on it (~2 ms)."""
    try:
        with db.connection() as connection:
            connection.exec_driver_sql("SELECT 1")
    except SQLAlchemyError:
        log.info("the database is not reachable yet", exc_info=True)


application = _LazyApplication()
