"""One error taxonomy for every layer; each API surface maps `code` to its own envelope and status."""
from __future__ import annotations

import errno


class DomainError(Exception):
    code = "invalid"
    status = 400

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class Invalid(DomainError):
    code, status = "invalid", 422


class BadRequest(DomainError):
    """A request well-formed by its schema that a rule of the service refuses, where the surface says 400 (agirunner)."""

    code, status = "bad_request", 400


class NotFound(DomainError):
    code, status = "not_found", 404


class Conflict(DomainError):
    code, status = "conflict", 409


class StaleRef(DomainError):
    code, status = "stale_ref", 409


class Locked(DomainError):
    code, status = "locked", 423


class MergeConflict(DomainError):
    code, status = "merge_conflict", 409


class Forbidden(DomainError):
    code, status = "forbidden", 403


class Unauthenticated(DomainError):
    code, status = "unauthenticated", 401


class RateLimited(DomainError):
    code, status = "rate_limited", 429


class UnsafeRemoteName(BadRequest):
    code = "invalid_remote_name"


class RemoteNotConfigured(NotFound):
    code = "remote_not_configured"


class RemoteRateLimited(RateLimited):
    code = "remote_rate_limited"


class TooLarge(DomainError):
    code, status = "too_large", 413


class StorageFailure(Exception):
    """The disk or git refused a write (read-only, full, no permission): the server's fault, not the caller's. The
    request changed nothing and may succeed once the storage is fixed; told apart from a stale ref, which a client
    retries at once (it would retry for good)."""


class ChangeLeftApplied(Exception):
    """A request failed after it had changed something outside the database (moved a ref), and taking that back
    failed too (a full disk refused the ref's lock file): the change stands, without its records until a
    reconcile rebuilds them. Not "nothing changed": the caller must look before it tries again."""


# the disk refusing a write: full, over quota, read-only, failing (not EACCES or EPERM: a wrong permission is a
# deployment's bug to show, not a moment to wait out)
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
_SQLITE_STORAGE_CODES = frozenset({8, 10, 13})  # SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL (primary codes)
_POSTGRES_STORAGE_STATES = frozenset({"53100", "58030"})  # disk_full, io_error


def is_storage_refusal(error: BaseException) -> bool:
    """Whether `error` is the disk refusing a write, as the OS says it or as the database wraps it (by code, not
    by message: PostgreSQL's messages follow its locale)."""
    if isinstance(error, OSError):
        return error.errno in STORAGE_ERRNOS
    cause = getattr(error, "orig", None)
    code = getattr(cause, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF in _SQLITE_STORAGE_CODES) or \
        getattr(cause, "sqlstate", None) in _POSTGRES_STORAGE_STATES
