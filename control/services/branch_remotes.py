"""hoody's branches and their remote (seed 003): the workspace's repository_url as `origin` (with the token kept
for it, remote_credentials.py), its refs, a branch's state against the remote branch of the same name, pulling
that branch in and pushing it out. What is fetched waits in a quarantine, checked as a push's objects are, and
enters the repository only for a pull that lands."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from hooks.checks import THROUGH_A_STACK, takes_changes_only_through_stacks
from hooks.pipeline import refuse_unless_checks_pass
from hooks.refs import ZERO_SHA, RefUpdate
from storage import git_read, git_remote, rate_limits
from storage.errors import (BadRequest, Conflict, Forbidden, NotFound, RemoteNotConfigured, RemoteRateLimited,
                            TooLarge)
from storage.keys import Principal
from storage.ids import new_id
from storage.models import Event, Repository
from storage.object_quarantine import ObjectQuarantine

from . import merges
from . import remotes as remote_service
from .changes import change_context
from .workspace_branches import Listed

DEFAULT_REMOTE = remote_service.ORIGIN
PROVIDERS = {"github.com": "github", "gitlab.com": "gitlab", "bitbucket.org": "bitbucket"}


@dataclass
class RemoteInfo:
    name: str
    url: str
    provider: str
    owner: str | None
    repo: str | None
    authenticated: bool


def remotes(session: Session, app, repo: Repository) -> list[RemoteInfo]:
    """`origin` (the repository_url) and the named remotes; authenticated: a token is kept for it and the remote
    did not refuse it the last time it was sent."""
    return [_described(remote) for remote in remote_service.configured(session, app.settings.secret_key, repo)]


def _described(remote: remote_service.Configured) -> RemoteInfo:
    parts = urlsplit(remote.url)
    segments = [segment for segment in parts.path.split("/") if segment]
    # everything before the repository's name: GitLab's subgroups (group/sub/repo) are part of the owner
    owner, name = (None, None)
    if len(segments) >= 2:
        owner, name = "/".join(segments[:-1]), segments[-1].removesuffix(".git")
    provider = PROVIDERS.get((parts.hostname or "").lower(), "git")
    return RemoteInfo(remote.name, git_remote.shown(remote.url), provider, owner, name, remote.authenticated)


def remote_refs(session: Session, app, repo: Repository, name: str | None) -> tuple[list[str], list[str]]:
    """(branches, tags) the remote has now, by `git ls-remote` under the rules for remote URLs."""
    upstream = _upstream(session, app, repo, name, READS)
    with _talking_to(session, repo, upstream, "the remote's refs could not be listed"):
        found = git_remote.ls_remote(upstream.remote, [], upstream.token, app.settings.remote_allow_http)
    refs = sorted(ref for ref in found if not ref.endswith("^{}"))
    return [ref for ref in refs if ref.startswith("refs/heads/")], [ref for ref in refs if ref.startswith("refs/tags/")]


@dataclass(frozen=True)
class _Upstream:
    name: str
    url: str
    remote: git_remote.Remote
    token: str | None
    kept: remote_service.Configured


def _upstream(session: Session, app, repo: Repository, name: str | None, kind: str) -> _Upstream:
    """The remote named (the default one: `origin` when there is one), checked against the rules for remote URLs,
    and the token kept for it; one call more of the few a minute it may have of `kind` (READS or CHANGES: a client
    polling a branch's remote status must not use up the calls that pull and push it)."""
    configured = remote_service.one(session, app.settings.secret_key, repo, name)
    # nothing is written before a remote call: the request's connection goes back to the pool before the count
    # takes one (threads each holding one and waiting for a second starved the pool: 503s, 30 s stalls)
    session.commit()
    rate_limits.take(app.db, f"remote:{repo.id}:{configured.name}:{kind}", REMOTE_CALLS_PER_MINUTE, 60,
                     refusal=RemoteRateLimited)
    settings = app.settings
    try:
        remote = git_remote.checked_remote(configured.url, settings.remote_allow_http, settings.remote_allow_private)
    except git_remote.RemoteRefused as error:
        raise BadRequest(f"the remote cannot be used: {error}",
                         {"remote": configured.name, "url": git_remote.shown(configured.url)}) from None
    return _Upstream(configured.name, configured.url, remote, configured.token, configured)


@contextmanager
def _talking_to(session: Session, repo: Repository, upstream: _Upstream, failed: str):
    """A call to the remote: its failures as this API's errors, and its verdict on the token sent kept (hoody's
    `authenticated`)."""
    try:
        yield
    except git_remote.RemoteTooLarge as error:
        raise TooLarge(str(error), {"remote": upstream.name}) from None
    except git_remote.RemoteRejected:  # the remote took the token and refused the ref
        remote_service.record_token_verdict(session, repo, upstream.kept, refused=False)
        raise
    except git_remote.RemoteFailed as error:
        if error.unauthenticated:  # a 403 is the access refused, not the token: a read-only one pushing
            remote_service.record_token_verdict(session, repo, upstream.kept, refused=True)
        raise BadRequest(f"{failed}: {error}", {"remote": upstream.name, "url": git_remote.shown(upstream.url)}) \
            from None
    except git_remote.RemoteRefused as error:
        raise BadRequest(f"{failed}: {error}", {"remote": upstream.name, "url": git_remote.shown(upstream.url)}) \
            from None
    remote_service.record_token_verdict(session, repo, upstream.kept, refused=False)


@dataclass
class RemoteStatus:
    remote_branch: str | None
    ahead: int
    behind: int


def remote_status(session: Session, app, repo: Repository, listed: Listed) -> RemoteStatus:
    """Against the remote's branch of the same name as it is now (fetched if this server lacks its commits, as
    `git fetch` and `git status` would); none: no upstream, as when the repository has no remote at all."""
    if not repo.upstream_url:
        return RemoteStatus(None, 0, 0)
    upstream = _upstream(session, app, repo, DEFAULT_REMOTE, READS)
    ref = f"refs/heads/{listed.row.name}"
    theirs = _remote_head(session, app, repo, upstream, ref)
    if theirs is None:
        return RemoteStatus(None, 0, 0)
    path = app.store.path_for(repo.id)
    with _fetched(session, app, repo, upstream, ref, theirs) as fetched:
        if listed.head is None:
            ahead, behind = 0, len(git_read.commits_between(path, None, fetched.commit, env=fetched.env))
        else:
            ahead, behind = git_read.ahead_behind(path, fetched.commit, listed.head, env=fetched.env)
    return RemoteStatus(f"{DEFAULT_REMOTE}/{listed.row.name}", ahead, behind)


@dataclass
class _Fetched:
    commit: str
    env: dict[str, str] | None  # for git to see the fetched objects (None: they are the repository's own)
    quarantine: ObjectQuarantine | None

    def take(self) -> None:
        """Into the repository, for a change to use them."""
        if self.quarantine is not None:
            self.quarantine.migrate()
            self.env = None


def _remote_head(session: Session, app, repo: Repository, upstream: _Upstream, ref: str) -> str | None:
    with _talking_to(session, repo, upstream, "the remote branch could not be read"):
        return git_remote.ls_remote(upstream.remote, [ref], upstream.token, app.settings.remote_allow_http).get(ref)


@contextmanager
def _fetched(session: Session, app, repo: Repository, upstream: _Upstream, ref: str, expected: str):
    """The remote's `ref` at `expected`: the repository's own objects if it has them, else fetched into a
    quarantine (at most as much as a push may bring) that is removed on leaving unless taken."""
    path = app.store.path_for(repo.id)
    if git_read.object_sizes(path, [expected]):
        yield _Fetched(expected, None, None)
        return
    with ObjectQuarantine(path) as quarantine:
        with _talking_to(session, repo, upstream, "the remote branch could not be fetched"):
            git_remote.fetch_ref(upstream.remote, path, ref, quarantine.env, app.settings.max_push_size,
                                 quarantine.size, upstream.token, app.settings.remote_allow_http)
        if not git_read.object_sizes(path, [expected], env=quarantine.env):
            raise Conflict("the remote branch moved while it was fetched; try again", {"ref": ref})
        yield _Fetched(expected, quarantine.env, quarantine)


def _refused_before_taking(session: Session, app, repo: Repository, actor: Principal, listed: Listed,
                           fetched: _Fetched) -> list[str]:
    """While the fetched objects are still in their quarantine, what would keep the pull from landing: the
    checks of a ref change bringing the remote's commits (raised), or the paths git's merge leaves in conflict
    (returned). Taken into the repository, a refused pull's objects stayed there (and could be fetched by id)."""
    path = app.store.path_for(repo.id)
    head = listed.head
    fork = git_read.merge_base(path, head, fetched.commit, env=fetched.env) if head else None
    if head is not None and fork is None:
        raise Conflict(f"cannot merge: {DEFAULT_REMOTE}/{listed.row.name} and {listed.row.name} share no history",
                       {"branch": listed.row.name})
    ctx = change_context(app, repo, actor, "api")
    ctx.git_env = fetched.env or {}
    # checked as a branch made at the remote's commit: the paths it brings (the rules a push's paths follow),
    # sizes, git's fsck, locks
    refuse_unless_checks_pass(ctx, RefUpdate(old=ZERO_SHA, new=fetched.commit, ref=f"refs/heads/{listed.row.name}"),
                              session)
    if head is None or fork in (head, fetched.commit):  # a fast-forward, or nothing to bring
        return []
    return git_read.merge_conflicts(path, head, fetched.commit, env=fetched.env)


@dataclass
class Pulled:
    success: bool
    conflicts: list[str]
    message: str


def pull(session: Session, app, repo: Repository, actor: Principal, listed: Listed) -> Pulled:
    """The remote branch of the same name merged in: a fast-forward where it can be, else a merge commit; with
    conflicts nothing changes. The move is a ref change like any other (checks, protection, locks, sizes)."""
    name = listed.row.name
    ref = f"refs/heads/{name}"
    if takes_changes_only_through_stacks(session, repo.id, name):  # before anything is fetched
        raise Forbidden(THROUGH_A_STACK, {"ref": ref})
    upstream = _upstream(session, app, repo, DEFAULT_REMOTE, CHANGES)
    theirs = _remote_head(session, app, repo, upstream, ref)
    if theirs is None:
        raise NotFound(f"Remote branch '{DEFAULT_REMOTE}/{name}' not found", {"remote": DEFAULT_REMOTE, "ref": ref})
    with _fetched(session, app, repo, upstream, ref, theirs) as fetched:
        conflicts = _refused_before_taking(session, app, repo, actor, listed, fetched)
        if conflicts:
            return _stopped(name, conflicts)
        fetched.take()
        outcome = merges.merge_refs(app, session, repo, actor, fetched.commit, name, "merge", fast_forward=True,
                                    message=f"Merge branch '{name}' of {git_remote.shown(repo.upstream_url)}",
                                    source_label=f"{DEFAULT_REMOTE}/{name}")
    if not outcome.success:
        return _stopped(name, outcome.conflicts)
    if outcome.already_merged:
        return Pulled(True, [], "Already up to date.")
    if outcome.fast_forward:
        return Pulled(True, [], f"Fast-forwarded {name} to {outcome.head_commit[:12]}.")
    return Pulled(True, [], f"Merged {DEFAULT_REMOTE}/{name} into {name} ({outcome.head_commit[:12]}).")


def _stopped(name: str, conflicts: list[str]) -> Pulled:
    return Pulled(False, conflicts, f"Pull stopped by conflicts in {len(conflicts)} path(s); {name} was not changed.")


REMOTE_CALLS_PER_MINUTE = 10  # to one remote, of each kind, counted across server processes
READS, CHANGES = "reads", "changes"  # listings and status; pulls and pushes


@dataclass
class Pushed:
    ref: str
    remote: str
    url: str
    message: str


def push(session: Session, app, repo: Repository, actor: Principal, listed: Listed) -> Pushed:
    """The branch's head to the remote branch of the same name with the token kept for the remote, as `git push`
    without --force: a remote branch with commits this one lacks stays as it is (pull first). A push that landed is
    an event of the repository's (its timeline), as a ref change here is."""
    if not repo.upstream_url:  # as a pull's, a listing's
        raise RemoteNotConfigured(f"Remote '{DEFAULT_REMOTE}' not configured: set the workspace's repository_url",
                                  {"id": listed.row.id, "remote": DEFAULT_REMOTE})
    if listed.head is None:
        raise BadRequest("the branch has no commits to push", {"id": listed.row.id})
    upstream = _upstream(session, app, repo, DEFAULT_REMOTE, CHANGES)
    if upstream.token is None:
        raise BadRequest("no token is kept for the remote: set the workspace's settings.credentials.git_token",
                         {"id": listed.row.id, "remote": DEFAULT_REMOTE})
    ref = f"refs/heads/{listed.row.name}"
    try:
        with _talking_to(session, repo, upstream, "the branch could not be pushed"):
            git_remote.push_ref(upstream.remote, app.store.path_for(repo.id), listed.head, ref, upstream.token,
                                app.settings.remote_allow_http)
    except git_remote.RemoteRejected as rejected:
        if rejected.behind:
            raise Conflict(f"{DEFAULT_REMOTE}/{listed.row.name} has commits this branch does not: pull first",
                           {"ref": ref, "remote": DEFAULT_REMOTE}) from None
        raise BadRequest(f"the remote refused the push: {rejected}", {"ref": ref, "remote": DEFAULT_REMOTE}) from None
    url = git_remote.shown(repo.upstream_url)
    session.add(Event(id=new_id("ev"), org_id=repo.org_id, repo_id=repo.id, actor_key_id=actor.key_id,
                      kind="remote.push",
                      payload={"remote": DEFAULT_REMOTE, "url": url, "ref": ref, "new": listed.head}))
    return Pushed(ref, DEFAULT_REMOTE, url, "Branch pushed successfully.")
