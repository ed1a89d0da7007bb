"""A repository's remotes (DESIGN.md: Remote, a name, a url, credentials kept encrypted): `origin` is its
upstream_url (agirunner's repository_url, with the token kept for it); others are named here, `upstream` say, as
hoody's document shows them, each with a token of its own, sealed with the repository it was given for
(remote_credentials.py) and never answered."""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from storage.errors import BadRequest, Conflict, RemoteNotConfigured, UnsafeRemoteName
from storage.ids import new_id
from storage.models import Remote, Repository, utcnow
from storage.repo_writes import serialize_repository_writes

from . import remote_credentials
from .projects import checked_repository_url

log = logging.getLogger(__name__)

ORIGIN = "origin"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_REMOTES = 20  # named ones, per repository
TOKEN_FIELD = "token"


@dataclass(frozen=True)
class Configured:
    name: str
    url: str
    token: str | None  # for this remote's repository, if one is kept
    sealed: str | None = None  # the token as kept: what the remote's verdict on it is recorded against
    refused: bool = False  # the remote refused this token the last time it was sent

    @property
    def authenticated(self) -> bool:
        """A token is kept for the remote's repository, and the remote did not refuse it when last asked."""
        return self.token is not None and not self.refused


def checked_name(name: str) -> str:
    """hoody's assertSafeRemoteName: a plain identifier, nothing git or a shell could read as an option or path."""
    if not SAFE_NAME.fullmatch(name):
        raise UnsafeRemoteName("Unsafe remote name", {"remote": name[:100]})
    return name


def configured(session: Session, secret_key: str, repo: Repository) -> list[Configured]:
    """`origin` (when the repository has an upstream_url) first, then the named ones by name."""
    found = [Configured(ORIGIN, repo.upstream_url, remote_credentials.token_for(secret_key, repo),
                        repo.upstream_credentials,
                        _refused(repo.upstream_credentials, repo.upstream_credentials_refused))] \
        if repo.upstream_url else []
    return found + [Configured(remote.name, remote.url,
                               remote_credentials.opened(secret_key, remote.credentials, remote.url),
                               remote.credentials, _refused(remote.credentials, remote.credentials_refused))
                    for remote in _named(session, repo)]


def _fingerprint(sealed: str) -> str:
    return hashlib.sha256(sealed.encode()).hexdigest()


def _refused(sealed: str | None, refused: str | None) -> bool:
    return sealed is not None and refused == _fingerprint(sealed)


def record_token_verdict(session: Session, repo: Repository, remote: Configured, refused: bool) -> None:
    """What the remote answered the token last sent to it (`refused`: it turned the credentials down), kept
    against that token: one given since starts with no verdict. Committed at once: the request may fail after."""
    if remote.token is None or remote.refused == refused:
        return
    verdict = _fingerprint(remote.sealed) if refused else None
    try:
        if remote.name == ORIGIN:
            session.execute(update(Repository)
                            .where(Repository.id == repo.id, Repository.upstream_credentials == remote.sealed)
                            .values(upstream_credentials_refused=verdict, updated_at=Repository.updated_at))
        else:
            session.execute(update(Remote).where(Remote.repo_id == repo.id, Remote.name == remote.name,
                                                 Remote.credentials == remote.sealed)
                            .values(credentials_refused=verdict))
        session.commit()
    except SQLAlchemyError:  # a note about the token: the call it follows (a push that landed, say) stands
        session.rollback()
        log.warning("the verdict on remote %s's token of repository %s could not be kept", remote.name, repo.id,
                    exc_info=True)


def one(session: Session, secret_key: str, repo: Repository, name: str | None) -> Configured:
    """The remote `name`, or the default one (`origin` when there is one, else the first named, as hoody's
    router picks it)."""
    found = configured(session, secret_key, repo)
    if name is None and found:
        return found[0]
    name = checked_name(name or ORIGIN)
    for remote in found:
        if remote.name == name:
            return remote
    raise RemoteNotConfigured(f"Remote '{name}' not configured", {"remote": name})


def put(session: Session, secret_key: str, repo: Repository, name: str, url: str, token: str | None) -> Remote:
    """Add or change a named remote. `token`: a new one, "" to forget it, None to keep the one kept (for the same
    repository only: a URL moved to another forgets it)."""
    if checked_name(name).lower() == ORIGIN:
        raise BadRequest("origin is the workspace's repository_url: set it there", {"remote": name})
    url = checked_repository_url(url, "url")
    if token:
        token = remote_credentials.checked_token(token, TOKEN_FIELD)
    serialize_repository_writes(session, repo.id)  # concurrent adds: the count sees them all
    remote = session.scalar(select(Remote).where(Remote.repo_id == repo.id, Remote.name == name))
    if remote is None:
        count = session.scalar(select(func.count()).select_from(Remote).where(Remote.repo_id == repo.id))
        if count >= MAX_REMOTES:
            raise Conflict(f"a repository has at most {MAX_REMOTES} named remotes", {"limit": MAX_REMOTES})
        remote = Remote(id=new_id("rmt"), repo_id=repo.id, name=name, url=url)
        session.add(remote)
    elif remote_credentials.remote_of(remote.url) != remote_credentials.remote_of(url):
        remote.credentials = None
    remote.url, remote.updated_at = url, utcnow()
    if token == "":
        remote.credentials = None
    elif token is not None:
        remote.credentials = remote_credentials.sealed(secret_key, url, token, TOKEN_FIELD)
    session.flush()
    return remote


def delete(session: Session, repo: Repository, name: str) -> None:
    checked_name(name)
    remote = session.scalar(select(Remote).where(Remote.repo_id == repo.id, Remote.name == name))
    if remote is None:
        raise RemoteNotConfigured(f"Remote '{name}' not configured", {"remote": name})
    session.delete(remote)
    session.flush()


def _named(session: Session, repo: Repository) -> list[Remote]:
    return list(session.scalars(select(Remote).where(Remote.repo_id == repo.id).order_by(Remote.name)))
