"""Can the server read a repository with the access it was given? (agirunner's verify-git-access, seed 002.)

The token (given for this check, or the one kept for that repository) appears in no answer, log line or error."""
from __future__ import annotations

from dataclasses import dataclass

from storage import git_remote
from storage.errors import BadRequest

from .changes import checked_branch_name

NOT_VERIFIED = "Repository could not be verified with the supplied Git access."
DENIED = "Git access failed while verifying the repository. Check the repository token."


@dataclass(frozen=True)
class Verified:
    ok: bool
    repository_url: str
    default_branch: str | None
    branch_verified: bool


def verify_git_access(settings, repository_url: str, default_branch: str | None, token: str | None) -> Verified:
    url = repository_url.strip()
    seen = git_remote.shown(url)
    if default_branch is not None:
        checked_branch_name(default_branch)
    try:
        remote = git_remote.checked_remote(url, settings.remote_allow_http, settings.remote_allow_private)
    except git_remote.RemoteRefused as refused:
        raise BadRequest(f"{NOT_VERIFIED} {refused}", {"repository_url": seen}) from None
    refs = ["HEAD"] + ([f"refs/heads/{default_branch}"] if default_branch else [])
    try:
        found = git_remote.ls_remote(remote, refs, token, settings.remote_allow_http)
    except git_remote.RemoteFailed as failed:
        message = DENIED if failed.denied else NOT_VERIFIED
        raise BadRequest(message, {"repository_url": seen}) from None
    if default_branch and f"refs/heads/{default_branch}" not in found:
        raise BadRequest(f'Default branch "{default_branch}" could not be verified.',
                         {"repository_url": seen, "default_branch": default_branch})
    return Verified(True, url, default_branch, bool(default_branch))
