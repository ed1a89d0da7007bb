"""Credentials on git URLs: HTTP Basic with the key as password (any username) or `Authorization: Bearer`."""
from __future__ import annotations

import base64


def credential_from_header(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer":
        return value or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True)
        except ValueError:  # binascii.Error, and a value that is not ASCII at all
            return None
        username, _, password = decoded.partition(b":")  # the username is any bytes a client sends: never read
        try:
            return (password or username).decode("utf-8") or None
        except UnicodeDecodeError:
            return None
    return None
