"""API keys: `dk-` secrets, stored as sha256 digests, looked up by digest and compared in constant time."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from .key_format import KEY_PREFIX
from .models import ApiKey
from .times import as_utc

SCOPE_RANK = {"read": 0, "agent": 1, "admin": 2}


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


# the WSGI environ entry set once a request's key (or its signed URL) was accepted: only such a request's unread
# body is drained after its answer (server/app.py), which a client that writes it all before reading needs
AUTHENTICATED = "driftstone.authenticated"


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Principal:
    key_id: str
    org_id: str
    scope: str
    repo_ids: tuple[str, ...] | None = None
    expires_at: datetime | None = None  # timezone-aware; None: never

    def allows(self, scope: str) -> bool:
        return SCOPE_RANK[self.scope] >= SCOPE_RANK[scope]

    def can_see_repo(self, repo_id: str) -> bool:
        return self.repo_ids is None or repo_id in self.repo_ids


# Built once (its cache key is memoized on the object) and plain columns: this runs on every request.
_KEY_BY_DIGEST = select(ApiKey.id, ApiKey.org_id, ApiKey.scope, ApiKey.repo_ids, ApiKey.key_hash, ApiKey.expires_at,
                        ApiKey.revoked_at).where(ApiKey.key_hash == bindparam("digest"))


def find_principal(db: Session | Connection, raw_key: str, now: datetime | None = None) -> Principal | None:
    """The key's principal, or None when unknown, revoked or expired; `db` is a session or a Core connection."""
    if not raw_key or not raw_key.startswith(KEY_PREFIX) or len(raw_key) > 200:
        return None
    digest = hash_key(raw_key)
    key = db.execute(_KEY_BY_DIGEST, {"digest": digest}).first()
    if key is None or not hmac.compare_digest(key.key_hash, digest) or not _in_force(key, now):
        return None
    repo_ids = tuple(key.repo_ids) if key.repo_ids is not None else None
    expires_at = as_utc(key.expires_at) if key.expires_at is not None else None
    return Principal(key_id=key.id, org_id=key.org_id, scope=key.scope, repo_ids=repo_ids, expires_at=expires_at)


_KEY_BY_ID = select(ApiKey.expires_at, ApiKey.revoked_at).where(ApiKey.id == bindparam("key_id"))


def key_in_force(db: Session | Connection, key_id: str, now: datetime | None = None) -> bool:
    """Whether a key found earlier (when its request began) is still neither revoked nor expired."""
    key = db.execute(_KEY_BY_ID, {"key_id": key_id}).first()
    return key is not None and _in_force(key, now)


def _in_force(key, now: datetime | None) -> bool:
    if key.revoked_at is not None:
        return False
    return key.expires_at is None or as_utc(key.expires_at) > (now or datetime.now(timezone.utc))
