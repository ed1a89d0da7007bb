"""GET /healthz (liveness, no auth) and GET /readyz (database, repo store and its free disk, blob store, Redis when
configured)."""
from __future__ import annotations

import os

from flask import Blueprint

from ..endpoint import Call, endpoint
from ..envelope import failure
from .common import WireModel

bp = Blueprint("health", __name__)


class NotMigrated(RuntimeError):
    """The database answers but has no schema: `driftstone migrate` has not run (`driftstone serve` runs it)."""


class DiskNearlyFull(RuntimeError):
    """The repositories' disk has less free space than DRIFTSTONE_READY_MIN_FREE: a push or commit sent here would
    fail partway (git cannot write its pack or its lock files), so traffic should go elsewhere until it is freed."""


class Health(WireModel):
    status: str
    checks: dict[str, str] | None = None


@endpoint(bp, "GET", "/healthz", summary="Liveness (no auth)", scope=None, response=Health)
def healthz():
    return Health(status="ok")


@endpoint(bp, "GET", "/readyz", summary="Readiness: database, repo store, blob store, Redis (no auth)", scope=None,
          response=Health, errors={503: "Not ready (details.checks says which part fails)"})
def readyz(call: Call):
    context = call.context
    checks = {}

    def probe(name, action):
        try:
            action()
            checks[name] = "ok"
        except Exception as error:  # report which part failed, not its internals
            checks[name] = f"failing: {type(error).__name__}"

    def database():
        if not context.db.has_schema():
            raise NotMigrated()

    def repo_store():
        if not context.store.root.is_dir():
            raise FileNotFoundError("repository root missing")
        usage = os.statvfs(context.store.root)
        if usage.f_bavail * usage.f_frsize < context.settings.ready_min_free:
            raise DiskNearlyFull()

    probe("database", database)
    probe("repoStore", repo_store)
    probe("blobStore", context.blobs.check)
    if context.settings.redis_url:
        probe("redis", lambda: context.jobs.connection.ping())
    failing = [name for name, state in checks.items() if state != "ok"]
    if failing:
        return failure(f"not ready: {', '.join(failing)}", "not_ready", 503, {"checks": checks})
    return Health(status="ready", checks=checks)
