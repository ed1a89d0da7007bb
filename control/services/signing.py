"""Signed upload URLs: HMAC-SHA256 with the server secret over method, storage path, expiry and file id.

Pure functions; the caller passes `now`. A URL is valid while now < expires (unix seconds).
"""
from __future__ import annotations

import hashlib
import hmac
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from storage.errors import Forbidden

URL_LIFETIME = timedelta(minutes=15)
_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
_EXPIRES = re.compile(r"^[1-9][0-9]{0,11}$")


@dataclass(frozen=True)
class Signature:
    method: str
    path: str
    file_id: str
    expires: int
    signature: str


def _digest(secret: str, method: str, path: str, file_id: str, expires: int) -> str:
    message = "\n".join((method.upper(), path, str(expires), file_id)).encode("utf-8", "surrogatepass")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def expiry_for(now: datetime) -> int:
    return math.floor((now + URL_LIFETIME).timestamp())


def sign(secret: str, method: str, path: str, file_id: str, now: datetime) -> Signature:
    expires = expiry_for(now)
    return Signature(method.upper(), path, file_id, expires, _digest(secret, method, path, file_id, expires))


def verify(secret: str, method: str, path: str, file_id: str | None, expires: str | int | None,
           signature: str | None, now: datetime) -> None:
    """Raise Forbidden unless `signature` was made by `sign` for exactly this request and has not expired."""
    if not file_id or signature is None or expires is None:
        raise Forbidden("upload URL is not signed")
    if not _EXPIRES.fullmatch(str(expires)):
        raise Forbidden("upload URL signature is invalid")
    expires_at = int(expires)
    expected = _digest(secret, method, path, file_id, expires_at)
    given = signature if _SIGNATURE.fullmatch(signature) else ""
    if not hmac.compare_digest(expected, given):
        raise Forbidden("upload URL signature is invalid")
    if now.timestamp() >= expires_at:
        raise Forbidden("upload URL has expired", {"expiredAt": expires_at})
