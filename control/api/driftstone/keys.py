"""/v1/keys: issue (secret shown once), list (never the secret), revoke."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Blueprint
from pydantic import Field

from control.services import accounts
from control.services import repos as repo_service
from storage.errors import Invalid
from storage.times import as_utc

from ..endpoint import Call, endpoint
from .common import Timestamp, WholeListQuery, WireModel, whole_or_page

bp = Blueprint("keys", __name__)


class CreateKey(WireModel):
    name: str = Field(min_length=1, max_length=200)
    scope: Literal["admin", "agent", "read"]
    expires_at: datetime | None = None
    repos: list[str] | None = Field(default=None, max_length=1000)


class KeyOut(WireModel):
    id: str
    name: str
    scope: str
    prefix: str
    repos: list[str] | None
    expires_at: Timestamp | None
    created_at: Timestamp


class IssuedKeyOut(KeyOut):
    key: str


class Revoked(WireModel):
    id: str
    revoked: bool = True


def key_out(call: Call, row, model=KeyOut, **extra):
    from storage.models import Repository

    slugs = None
    if row.repo_ids is not None:
        slugs = [r.slug for r in call.session.query(Repository).filter(Repository.id.in_(row.repo_ids),
                                                                     Repository.deleted_at.is_(None))]
    return model(id=row.id, name=row.name, scope=row.scope, prefix=row.prefix, repos=slugs,
                 expires_at=row.expires_at, created_at=row.created_at, **extra)


@endpoint(bp, "POST", "/v1/keys", summary="Create an API key (the secret is returned once)", scope="admin",
          body=CreateKey, response=IssuedKeyOut, status=201)
def create_key(call: Call, body: CreateKey):
    repo_ids = None
    if body.repos is not None:
        repo_ids = [repo_service.visible_repo(call.session, call.principal, slug).id for slug in body.repos]
    expires = body.expires_at
    if expires is not None:
        try:  # stored and answered in UTC: 9999-12-31T23:59:59-23:59 is past the year 9999 there
            expires = as_utc(expires)
        except OverflowError:
            raise Invalid("expiresAt is out of range", {"fields": [{"loc": "expiresAt", "msg": "out of range"}]})
    if expires is not None and expires <= call.context.clock():
        raise Invalid("expiresAt must be in the future", {"fields": [{"loc": "expiresAt", "msg": "in the past"}]})
    issued = accounts.create_key(call.session, call.org_id, body.name, body.scope, expires, repo_ids,
                                 creator=call.principal)
    return key_out(call, issued.key, IssuedKeyOut, key=issued.secret)


@endpoint(bp, "GET", "/v1/keys", summary="List API keys (never their secrets; oldest first)", scope="admin",
          query=WholeListQuery, response=list[KeyOut], paginated=True)
def list_keys(call: Call, query: WholeListQuery):
    return whole_or_page(accounts.list_keys(call.session, call.org_id, viewer=call.principal), query,
                         lambda key: key_out(call, key))


@endpoint(bp, "DELETE", "/v1/keys/<key_id>", summary="Revoke an API key at once", scope="admin", response=Revoked)
def revoke_key(call: Call, key_id: str):
    key = accounts.revoke_key(call.session, call.org_id, key_id, call.context.clock(), revoker=call.principal)
    return Revoked(id=key.id)
