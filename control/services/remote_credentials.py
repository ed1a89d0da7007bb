"""A workspace's token for its remote (repository_url, agirunner's settings.credentials.git_token): kept sealed
(storage/secret_box.py) together with the origin (scheme, host, port) it was given for, and sent to that origin
only. A repository_url moved to another server leaves the token behind, and a check against another URL does not
take it along: whoever may change the URL can use the token, never carry it elsewhere or read it back."""
from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from storage import secret_box
from storage.errors import BadRequest
from storage.models import Repository

PURPOSE = "workspace remote token"
REDACTED = "redacted://workspace-settings-secret"  # how agirunner shows a kept secret; sent back, it keeps it
MAX_TOKEN = 20_000
_TOKEN = re.compile(r"[\x21-\x7e]+")  # tokens are printable ASCII: anything else is a paste gone wrong
FIELD = "settings.credentials.git_token"


def origin_of(url: str | None) -> str | None:
    try:
        parts = urlsplit(url or "")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    port = port or {"https": 443, "http": 80}.get(parts.scheme)
    return f"{parts.scheme}://{parts.hostname.lower()}:{port}"


def checked_token(token: str, field: str = FIELD) -> str:
    if len(token) > MAX_TOKEN or not _TOKEN.fullmatch(token):
        raise BadRequest(f"{field} must be 1 to {MAX_TOKEN} printable ASCII characters without spaces",
                         {"field": field})
    return token


def token_change(settings: dict | None) -> str | None | bool:
    """What settings.credentials asks for: a new token (str), forgetting it ("": False), or nothing (None: the
    key left out, null, or the redacted value an earlier answer showed)."""
    credentials = (settings or {}).get("credentials")
    if not isinstance(credentials, dict):
        return None
    token = credentials.get("git_token")
    if token is None or token == REDACTED:
        return None
    if not isinstance(token, str):
        raise BadRequest(f"{FIELD} must be a string", {"field": FIELD})
    return False if token == "" else checked_token(token)


def keep(secret_key: str, repo: Repository, token: str | None) -> None:
    """Keep `token` for repo.upstream_url's origin (None: keep none)."""
    if token is None:
        repo.upstream_credentials = None
        return
    origin = require_origin(repo.upstream_url)
    repo.upstream_credentials = secret_box.seal(secret_key, PURPOSE, json.dumps({"origin": origin, "token": token}))


def require_origin(url: str | None) -> str:
    origin = origin_of(url)
    if origin is None:
        raise BadRequest("a git token needs a repository_url to be used with", {"field": FIELD})
    return origin


def follow_url(repo: Repository, previous_url: str | None) -> None:
    """The URL changed: a token kept for another origin is forgotten."""
    if repo.upstream_credentials is not None and origin_of(previous_url) != origin_of(repo.upstream_url):
        repo.upstream_credentials = None


def configured(repo: Repository) -> bool:
    return repo.upstream_credentials is not None


def token_for(secret_key: str, repo: Repository, url: str | None = None) -> str | None:
    """The token kept for the origin of `url` (the repository_url by default), if any; none when it was sealed
    under another secret key."""
    if repo.upstream_credentials is None:
        return None
    opened = secret_box.opened(secret_key, PURPOSE, repo.upstream_credentials)
    if opened is None:
        return None
    kept = json.loads(opened)
    return kept["token"] if kept["origin"] == origin_of(url or repo.upstream_url) else None
