"""A workspace's token for its remote (repository_url, agirunner's settings.credentials.git_token): kept sealed
(storage/secret_box.py) together with the repository it was given for (scheme, host, port and path: `remote_of`),
and sent for that repository only. A repository_url moved to another repository, on the same server too, leaves
the token behind, and a check of another URL does not take it along: whoever may change the URL can use the token
for the repository it was given for, never for another the token could reach, and can never read it back."""
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


def remote_of(url: str | None) -> str | None:
    """The repository an http(s) URL names, spelled one way (host in lower case, the port written out, no
    trailing `/` or `.git`); None for a URL a token is never sent with."""
    try:
        parts = urlsplit(url or "")
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return None
    port = port or {"https": 443, "http": 80}[parts.scheme]
    path = parts.path.rstrip("/").removesuffix(".git").rstrip("/")
    return f"{parts.scheme}://{parts.hostname.lower()}:{port}{path}"


def checked_token(token: str, field: str = FIELD) -> str:
    if len(token) > MAX_TOKEN or not _TOKEN.fullmatch(token):
        raise BadRequest(f"{field} must be 1 to {MAX_TOKEN} printable ASCII characters without spaces",
                         {"field": field})
    return token


def token_change(settings: dict | None) -> str | None | bool:
    """What settings.credentials asks for: a new token (str), forgetting it ("": False), or nothing (None: the
    key left out, null, or the redacted value an earlier answer showed)."""
    credentials = (settings or {}).get("credentials")
    if credentials is None:
        return None
    if not isinstance(credentials, dict):
        raise BadRequest("settings.credentials must be an object", {"field": "settings.credentials"})
    token = credentials.get("git_token")
    if token is None or token == REDACTED:
        return None
    if not isinstance(token, str):
        raise BadRequest(f"{FIELD} must be a string", {"field": FIELD})
    return False if token == "" else checked_token(token)


def keep(secret_key: str, repo: Repository, token: str | None) -> None:
    """Keep `token` for repo.upstream_url's repository (None: keep none). A token given without a repository_url in
    the same request is for the URL the workspace has when the request runs: send both to be sure of it."""
    repo.upstream_credentials = None if token is None else sealed(secret_key, repo.upstream_url, token)


def sealed(secret_key: str, url: str | None, token: str, field: str = FIELD) -> str:
    """`token` sealed together with the repository `url` names (opened only for that one)."""
    remote = require_remote(url, field)
    return secret_box.seal(secret_key, PURPOSE, json.dumps({"remote": remote, "token": token}))


def opened(secret_key: str, kept: str | None, url: str | None) -> str | None:
    """The token `kept` (as `sealed` made it) if it was given for the repository `url` names; None when it was
    for another or sealed under another secret key."""
    if kept is None:
        return None
    found = secret_box.opened(secret_key, PURPOSE, kept)
    if found is None:
        return None
    found = json.loads(found)
    return found["token"] if found["remote"] == remote_of(url) else None


def require_remote(url: str | None, field: str = FIELD) -> str:
    remote = remote_of(url)
    if remote is None:
        named = "repository_url" if field == FIELD else "url"
        raise BadRequest(f"a git token needs an http(s) {named} to be used with", {"field": field})
    return remote


def follow_url(repo: Repository, previous_url: str | None) -> None:
    """The URL changed: a token kept for another repository is forgotten."""
    if repo.upstream_credentials is not None and remote_of(previous_url) != remote_of(repo.upstream_url):
        repo.upstream_credentials = None


def configured(repo: Repository) -> bool:
    return repo.upstream_credentials is not None


def token_for(secret_key: str, repo: Repository, url: str | None = None) -> str | None:
    """The token kept for the repository `url` names (the repository_url by default), if any; none when it was
    sealed under another secret key."""
    return opened(secret_key, repo.upstream_credentials, url or repo.upstream_url)
