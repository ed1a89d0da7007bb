"""Secrets the server must use again later (a remote's token), sealed with a key derived from the server's secret
key: authenticated encryption (Fernet: AES-128-CBC and HMAC-SHA256), so a database dump or backup holds no usable
token and a changed or tampered value opens to nothing rather than to garbage."""
from __future__ import annotations

import base64
import hashlib
import hmac


def _box(secret_key: str, purpose: str):
    from cryptography.fernet import Fernet  # only the few calls that seal or open pay for importing it

    derived = hmac.new(secret_key.encode(), f"driftstone secret box: {purpose}".encode(), hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(secret_key: str, purpose: str, plaintext: str) -> str:
    return _box(secret_key, purpose).encrypt(plaintext.encode()).decode("ascii")


def opened(secret_key: str, purpose: str, sealed: str) -> str | None:
    """The plaintext, or None when it was sealed under another key or purpose, or altered since."""
    from cryptography.fernet import InvalidToken

    try:
        return _box(secret_key, purpose).decrypt(sealed.encode("ascii")).decode()
    except (InvalidToken, UnicodeError, ValueError):
        return None
