"""Organizations and API keys."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.errors import Conflict, Forbidden, Invalid, NotFound
from storage.ids import new_id
from storage.keys import SCOPE_RANK, Principal, generate_key, hash_key
from storage.models import ApiKey, Organization
from storage.times import as_utc

from .naming import checked_org_slug


def create_org(session: Session, slug: str, name: str | None = None) -> Organization:
    slug = checked_org_slug(slug)
    if session.scalar(select(Organization.id).where(Organization.slug == slug)):
        raise Conflict(f"organization {slug!r} already exists")
    org = Organization(id=new_id("org"), slug=slug, name=name or slug)
    session.add(org)
    session.flush()
    return org


def get_org_by_slug(session: Session, slug: str) -> Organization:
    org = session.scalar(select(Organization).where(Organization.slug == slug))
    if org is None:
        raise NotFound(f"organization {slug!r} not found")
    return org


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str  # shown once, never stored


def create_key(
    session: Session,
    org_id: str,
    name: str,
    scope: str,
    expires_at: datetime | None = None,
    repo_ids: list[str] | None = None,
    creator: Principal | None = None,
) -> IssuedKey:
    """`creator`: the key asking (None: the CLI). A key never makes one that reaches more than it does."""
    if scope not in SCOPE_RANK:
        raise Invalid(f"scope must be one of {', '.join(SCOPE_RANK)}", {"field": "scope"})
    if creator is not None:
        if not creator.allows(scope):
            raise Forbidden(f"a {creator.scope} key cannot create a {scope} key")
        if not _within(creator, repo_ids):
            raise Forbidden("a key limited to some repositories can only create keys limited to those")
        if creator.expires_at is not None and (expires_at is None or as_utc(expires_at) > creator.expires_at):
            raise Forbidden("a key cannot outlive the key that creates it: expiresAt may be at most "
                            f"{creator.expires_at.isoformat()}", {"maxExpiresAt": creator.expires_at.isoformat()})
    secret = generate_key()
    key = ApiKey(id=new_id("key"), org_id=org_id, name=name, prefix=secret[:10], key_hash=hash_key(secret),
                 scope=scope, expires_at=expires_at, repo_ids=repo_ids)
    session.add(key)
    session.flush()
    return IssuedKey(key=key, secret=secret)


def list_keys(session: Session, org_id: str, viewer: Principal | None = None) -> list[ApiKey]:
    """`viewer`: a key limited to some repositories sees only the keys it could revoke (no other repository's
    name reaches it through a key's limits)."""
    keys = session.scalars(select(ApiKey).where(ApiKey.org_id == org_id, ApiKey.revoked_at.is_(None))
                           .order_by(ApiKey.created_at, ApiKey.id))
    return [key for key in keys if viewer is None or _within(viewer, key.repo_ids)]


def revoke_key(session: Session, org_id: str, key_id: str, now: datetime | None = None,
               revoker: Principal | None = None) -> ApiKey:
    key = session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.org_id == org_id,
                                              ApiKey.revoked_at.is_(None)))
    if key is None or (revoker is not None and not _within(revoker, key.repo_ids)):
        # a key the revoker cannot list is one it cannot tell from a key that does not exist
        raise NotFound(f"key {key_id!r} not found")
    revoked = session.execute(update(ApiKey).where(ApiKey.id == key.id, ApiKey.revoked_at.is_(None))
                              .values(revoked_at=now or datetime.now(timezone.utc))
                              .execution_options(synchronize_session="fetch"))
    if revoked.rowcount != 1:  # revoked by a simultaneous request: of those, one succeeds
        raise NotFound(f"key {key_id!r} not found")
    return key


def _within(principal: Principal, repo_ids: list[str] | None) -> bool:
    """Whether a key limited to `repo_ids` (None: every repository) reaches no further than `principal`."""
    if principal.repo_ids is None:
        return True
    return repo_ids is not None and set(repo_ids) <= set(principal.repo_ids)
