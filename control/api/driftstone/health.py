"""GET /healthz (liveness, no auth) and GET /readyz (database, repo store and its free disk, blob store, Redis when
configured)."""
from __future__ import annotations

from flask import Blueprint

from ..endpoint import Call, endpoint
from ..envelope import failure
from .common import WireModel

bp = Blueprint("health", __name__)


class NotMigrated(RuntimeError):
    """The database answers but has no schema: `driftstone migrate` has not run (`driftstone serve` runs it)."""


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

    probe("database", database)
    probe("repoStore", lambda: context.store.check(context.settings.ready_min_free))
    probe("blobStore", context.blobs.check)
    if context.settings.redis_url:
        probe("redis", lambda: context.jobs.connection.ping())
    failing = [name for name, state in checks.items() if state != "ok"]
    if failing:
        return failure(f"not ready: {', '.join(failing)}", "not_ready", 503, {"checks": checks})
    return Health(status="ready", checks=checks)
