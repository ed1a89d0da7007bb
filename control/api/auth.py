"""Bearer keys on the control API; everything is resolved under the key's organization."""
from __future__ import annotations

from flask import g, request

from storage.errors import Forbidden, Unauthenticated
from storage.keys import AUTHENTICATED, Principal, find_principal


def authenticate(session, scope: str) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing bearer API key")
    principal = find_principal(session, token.strip())
    if principal is None:
        raise Unauthenticated("invalid, expired or revoked API key")
    request.environ[AUTHENTICATED] = True  # as on the git path: a key's refusal is heard too
    if not principal.allows(scope):
        raise Forbidden(f"this key's scope ({principal.scope}) does not allow this; {scope} is needed")
    g.principal = principal
    return principal
