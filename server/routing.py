"""Which git endpoint a request path names. Segments are checked after decoding (gunicorn decodes %2f/%2e)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from storage.org_slugs import RESERVED_ORG_SLUGS

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SMART = {"info/refs", "git-upload-pack", "git-receive-pack"}
_REPEATED_SLASHES = re.compile(r"/{2,}")
_DUMB = re.compile(
    r"^(HEAD|objects/info/(packs|alternates|http-alternates)|objects/[0-9a-f]{2}/[0-9a-f]{38,62}"
    r"|objects/pack/pack-[0-9a-f]{40,64}\.(pack|idx))$"
)


@dataclass(frozen=True)
class GitRoute:
    org: str
    repo: str
    endpoint: str  # info/refs | git-upload-pack | git-receive-pack | dumb

    @property
    def is_smart(self) -> bool:
        return self.endpoint in _SMART


def match_git_route(path: str) -> GitRoute | None:
    """Repeated slashes count as one, as Apache, nginx and lighttpd merge them in front of git http-backend:
    `acme//r1.git` and `r1.git//info/refs` reached the control API's JSON 404."""
    parts = _REPEATED_SLASHES.sub("/", path).split("/")
    if len(parts) < 4 or parts[0] != "":
        return None
    org, repo, rest = parts[1], parts[2], "/".join(parts[3:])
    if org.lower() in RESERVED_ORG_SLUGS:  # /v1/repos/HEAD is the control API's, not a git URL
        return None
    if rest in _SMART:
        endpoint = rest
    elif _DUMB.match(rest):
        endpoint = "dumb"
    else:
        return None
    if repo.lower().endswith(".git"):
        repo = repo[:-4]
    if not _SEGMENT.match(org) or not _SEGMENT.match(repo) or ".." in org or ".." in repo:
        return GitRoute(org="", repo="", endpoint="invalid")
    return GitRoute(org=org.lower(), repo=repo.lower(), endpoint=endpoint)
