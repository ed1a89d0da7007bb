"""hoody's branches (seed 003): a repository's branches by id, with display names, their state against their base
branch, what their files take, reset to their base, merge into it, and the repository's remote (its
repository_url). Every ref change goes through the same pipeline as a push."""
from __future__ import annotations

import re
import threading
import time
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hooks.pipeline import apply_ref_change, refuse_unless_checks_pass
from hooks.refs import ZERO_SHA, RefUpdate
from storage import git_diff, git_objects, git_read, git_refs, git_remote
from storage.errors import BadRequest, Conflict, NotFound, RateLimited, TooLarge
from storage.keys import Principal
from storage.object_quarantine import ObjectQuarantine
from storage.models import Branch, Repository, Stack, utcnow

from . import branches, merges, stacks
from .changes import change_context, checked_path, resolve_revision

GIT_NAME_TRIES = 100
DEFAULT_REMOTE = "origin"
SAFE_REMOTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
PROVIDERS = {"github.com": "github", "gitlab.com": "gitlab", "bitbucket.org": "bitbucket"}


@dataclass
class Listed:
    row: Branch
    head: str | None


_LISTED = (Branch.id, Branch.name, Branch.display_name, Branch.status, Branch.base_branch, Branch.base_commit,
           Branch.head_sha, Branch.created_at, Branch.updated_at)


def list_branches(session: Session, app, repo: Repository) -> list[Listed]:
    """Every branch with a ref (and those recorded awaiting their first commit), oldest first. Plain rows of
    the columns a listing shows, not entities (as branches.list_branches: a quarter of a 1,000-branch list)."""
    heads = git_read.branch_heads(app.store.path_for(repo.id))
    rows = session.execute(select(*_LISTED).where(Branch.repo_id == repo.id).order_by(Branch.created_at, Branch.id))
    return [Listed(row, heads.get(row.name)) for row in rows if row.name in heads or row.head_sha is None]


def branch_by_id(session: Session, app, repo: Repository, branch_id: str) -> Listed:
    row = session.get(Branch, branch_id)
    head = git_refs.read_ref(app.store.path_for(repo.id), f"refs/heads/{row.name}") if row is not None else None
    if row is None or row.repo_id != repo.id or (head is None and row.head_sha is not None):
        raise NotFound("Branch not found", {"id": branch_id})
    return Listed(row, head)


def create(session: Session, app, repo: Repository, actor: Principal, name: str | None, base_branch: str | None,
           git_name: str | None = None) -> Listed:
    """From the head of `base_branch` (default: the repository's default branch). The git branch is `git_name`, or
    one made from the display name (`-2`, `-3`, ... while that is taken)."""
    base = base_branch or repo.default_branch
    path = app.store.path_for(repo.id)
    if git_name == base:
        raise BadRequest(f"a branch cannot be its own base ({base!r})", {"branch": git_name})
    if git_refs.read_ref(path, f"refs/heads/{base}") is None and base != repo.default_branch:
        raise NotFound(f"base branch {base!r} not found", {"baseBranch": base})
    source = base if git_refs.read_ref(path, f"refs/heads/{base}") else None  # an empty repository: record only
    for candidate in [git_name] if git_name else _git_names(name):
        try:
            view = branches.create_branch(session, app, repo, actor, candidate, source=source)
        except Conflict:
            if git_name:
                raise
            continue
        row = session.scalar(select(Branch).where(Branch.repo_id == repo.id, Branch.name == view.name))
        row.display_name = name
        session.flush()
        return Listed(row, view.head_sha)
    raise Conflict(f"no free branch name for {name!r}: name the git branch with `branch`")


def _git_names(name: str | None):
    """"Été à Paris" -> ete-a-paris: accents dropped, anything else not a letter or digit a dash."""
    ascii_name = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode()
    stem = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].strip("-") or "branch"
    yield stem
    for number in range(2, GIT_NAME_TRIES + 1):
        yield f"{stem}-{number}"


def rename(session: Session, listed: Listed, name: str) -> Listed:
    """A statement, not the loaded row: a deletion committed meanwhile leaves nothing to rename (not found)."""
    renamed = session.execute(update(Branch).where(Branch.id == listed.row.id)
                              .values(display_name=name, updated_at=utcnow())
                              .execution_options(synchronize_session=False))
    if renamed.rowcount == 0:
        raise NotFound("Branch not found", {"id": listed.row.id})
    session.refresh(listed.row)
    return listed


def delete(session: Session, app, repo: Repository, actor: Principal, listed: Listed) -> None:
    branches.delete_branch(session, app, repo, actor, listed.row.name)


def reset(session: Session, app, repo: Repository, actor: Principal, listed: Listed) -> Listed:
    """Back to the commit it was made from: a forced move, which protection may refuse like a forced push."""
    row = listed.row
    if row.name == repo.default_branch:
        raise BadRequest("the default branch has no base to reset to", {"id": row.id})
    if listed.head is None or row.base_commit is None:
        raise BadRequest("the branch has no commits to reset", {"id": row.id})
    if listed.head != row.base_commit:
        ctx = change_context(app, repo, actor, "api")
        apply_ref_change(ctx, RefUpdate(old=listed.head, new=row.base_commit, ref=f"refs/heads/{row.name}"),
                         session=session)
        if session.scalar(select(Branch.id).where(Branch.id == row.id)) is None:  # deleted by a writer meanwhile
            raise NotFound("Branch not found", {"id": row.id})
        session.refresh(row)
    return Listed(row, row.base_commit)


def retry(listed: Listed) -> Listed:
    """Only a failed branch is retried; a branch here is made in its request, so none is ever left failed."""
    if listed.row.status != "failed":
        raise BadRequest(f"only a failed branch can be retried; this one is {listed.row.status}",
                         {"id": listed.row.id, "status": listed.row.status})
    return listed


def base_of(app, repo: Repository, row: Branch) -> str:
    """The branch it merges into: its base branch, or the default branch once that is gone (merged and deleted:
    as GitHub retargets a pull request onto the base of the one merged)."""
    base = row.base_branch or repo.default_branch
    if base != repo.default_branch and git_refs.read_ref(app.store.path_for(repo.id), f"refs/heads/{base}") is None:
        return repo.default_branch
    return base


def base_head(app, repo: Repository, row: Branch) -> str | None:
    """Where its base is now (its base commit if the repository has no commits there)."""
    return git_refs.read_ref(app.store.path_for(repo.id), f"refs/heads/{base_of(app, repo, row)}") or row.base_commit


@dataclass
class Status:
    ahead: int
    behind: int


def status(app, repo: Repository, listed: Listed) -> Status:
    """Commits ahead of and behind its base branch. Nothing is ever staged or untracked: a branch here has no
    working tree, every change to it is a commit."""
    base = base_head(app, repo, listed.row)
    if listed.head is None or base is None:
        return Status(0, 0)
    return Status(*git_read.ahead_behind(app.store.path_for(repo.id), base, listed.head))


def diff(app, repo: Repository, listed: Listed, base: str | None, file: str | None, full: bool) -> dict:
    """From where the branch left `base` (default: its base branch), as a pull request shows it."""
    if file is not None:
        checked_path(file, "file")
    start = resolve_revision(app, repo, base) if base else base_head(app, repo, listed.row)
    if listed.head is None:
        return {"base_commit": start, "head_commit": None, "files": [], "truncated": False}
    path = app.store.path_for(repo.id)
    fork = git_read.merge_base(path, start, listed.head) if start else None
    with git_objects.open_repo(path) as git_repo:  # no shared history (or no base): from the empty tree
        return git_diff.diff_commits(git_repo, fork, listed.head, full=full, path=file)


def disk_usage(session: Session, app, repo: Repository, branch_id: str | None) -> list[tuple[Listed, int]]:
    chosen = [branch_by_id(session, app, repo, branch_id)] if branch_id else list_branches(session, app, repo)
    path = app.store.path_for(repo.id)
    sizes = {head: git_read.tree_bytes(path, head) for head in {listed.head for listed in chosen if listed.head}}
    return [(listed, sizes.get(listed.head, 0)) for listed in chosen]  # a head many branches share: measured once


def merge(session: Session, app, repo: Repository, actor: Principal, listed: Listed, strategy: str,
          message: str | None, dry_run: bool, delete_branch: bool) -> merges.MergeOutcome:
    """Into its base branch; its open pull request there is merged with it."""
    if listed.head is None:
        raise BadRequest("the branch has no commits yet", {"id": listed.row.id})
    outcome = merges.merge_branch(session, app, repo, actor, listed.row.name, base_of(app, repo, listed.row),
                                  strategy, message, dry_run, delete_branch)
    if outcome.success and not dry_run and not outcome.already_merged:
        stacks.mark_branch_stack_merged(session, repo, listed.row.name, outcome.target, outcome.head_commit,
                                        since=listed.row.created_at)
    return outcome


@dataclass
class PullRequest:
    stack: Stack
    number: int
    review_status: str


def pull_request(session: Session, repo: Repository, listed: Listed) -> PullRequest | None:
    """The branch's pull request (a stack of its commits): the open one, else the newest it had. Reviews count
    for the head they were given on: an open one's on the branch's head now."""
    stack = stacks.latest_stack_of_branch(session, repo, listed.row.name, since=listed.row.created_at)
    if stack is None:
        return None
    head = listed.head if stack.status == "open" and listed.head else stack.head_commit
    return PullRequest(stack, stacks.stack_number(session, stack),
                       stacks.review_decision(stacks.reviews_of(session, stack), head))


def open_pull_request(session: Session, app, repo: Repository, actor: Principal,
                      listed: Listed) -> tuple[PullRequest, bool]:
    """Onto its base branch, with its commits as they are now (an open one is brought up to the branch's head).
    (pull request, whether it was opened now)."""
    row = listed.row
    stack, created = stacks.submit_branch(session, app, repo, row.name, base_of(app, repo, row), actor,
                                          row.display_name or row.name, since=row.created_at)
    return PullRequest(stack, stacks.stack_number(session, stack),
                       stacks.review_decision(stacks.reviews_of(session, stack), stack.head_commit)), created


# --- the remote -----------------------------------------------------------------------------------------------


@dataclass
class RemoteInfo:
    name: str
    url: str
    provider: str
    owner: str | None
    repo: str | None
    authenticated: bool


def remotes(repo: Repository) -> list[RemoteInfo]:
    """The repository's repository_url, as `origin`. No credentials are stored for it."""
    if not repo.upstream_url:
        return []
    parts = urlsplit(repo.upstream_url)
    segments = [segment for segment in parts.path.split("/") if segment]
    owner, name = (segments[-2], segments[-1].removesuffix(".git")) if len(segments) >= 2 else (None, None)
    provider = PROVIDERS.get((parts.hostname or "").lower(), "git")
    return [RemoteInfo(DEFAULT_REMOTE, git_remote.shown(repo.upstream_url), provider, owner, name, False)]


def remote_refs(app, repo: Repository, name: str | None) -> tuple[list[str], list[str]]:
    """(branches, tags) the remote has now, by `git ls-remote` under the rules for remote URLs."""
    remote = _remote(app, repo, name)
    with _talking_to(repo, "the remote's refs could not be listed"):
        found = git_remote.ls_remote(remote, [], None, app.settings.remote_allow_http)
    refs = sorted(ref for ref in found if not ref.endswith("^{}"))
    return [ref for ref in refs if ref.startswith("refs/heads/")], [ref for ref in refs if ref.startswith("refs/tags/")]


def _remote(app, repo: Repository, name: str | None = None) -> git_remote.Remote:
    """The remote named (only `origin` is), checked against the rules for remote URLs; one call more of the few
    a minute it may have."""
    name = name or DEFAULT_REMOTE
    if not SAFE_REMOTE_NAME.fullmatch(name):
        raise BadRequest("Unsafe remote name", {"remote": name[:100]})
    if name != DEFAULT_REMOTE or not repo.upstream_url:
        raise NotFound(f"Remote '{name}' not configured", {"remote": name})
    _CALLS.take((repo.id, name))
    settings = app.settings
    with _talking_to(repo, "the remote cannot be used"):
        return git_remote.checked_remote(repo.upstream_url, settings.remote_allow_http, settings.remote_allow_private)


@contextmanager
def _talking_to(repo: Repository, failed: str):
    try:
        yield
    except git_remote.RemoteTooLarge as error:
        raise TooLarge(str(error), {"remote": DEFAULT_REMOTE}) from None
    except (git_remote.RemoteRefused, git_remote.RemoteFailed) as error:
        raise BadRequest(f"{failed}: {error}", {"remote": DEFAULT_REMOTE,
                                                "url": git_remote.shown(repo.upstream_url)}) from None


@dataclass
class RemoteStatus:
    remote_branch: str | None
    ahead: int
    behind: int


def remote_status(app, repo: Repository, listed: Listed) -> RemoteStatus:
    """Against the remote's branch of the same name as it is now (fetched if this server lacks its commits, as
    `git fetch` and `git status` would); none: no upstream."""
    remote = _remote(app, repo)
    ref = f"refs/heads/{listed.row.name}"
    with _talking_to(repo, "the remote branch could not be read"):
        theirs = git_remote.ls_remote(remote, [ref], None, app.settings.remote_allow_http).get(ref)
    if theirs is None:
        return RemoteStatus(None, 0, 0)
    path = app.store.path_for(repo.id)
    with _fetched(app, repo, remote, ref, theirs) as fetched:
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


@contextmanager
def _fetched(app, repo: Repository, remote: git_remote.Remote, ref: str, expected: str):
    """The remote's `ref` at `expected`: the repository's own objects if it has them, else fetched into a
    quarantine (at most as much as a push may bring) that is removed on leaving unless taken."""
    path = app.store.path_for(repo.id)
    if git_read.object_sizes(path, [expected]):
        yield _Fetched(expected, None, None)
        return
    with ObjectQuarantine(path) as quarantine:
        with _talking_to(repo, "the remote branch could not be fetched"):
            git_remote.fetch_ref(remote, path, ref, quarantine.env, app.settings.max_push_size, quarantine.size,
                                 None, app.settings.remote_allow_http)
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
    remote = _remote(app, repo)
    name = listed.row.name
    ref = f"refs/heads/{name}"
    with _talking_to(repo, "the remote branch could not be read"):
        theirs = git_remote.ls_remote(remote, [ref], None, app.settings.remote_allow_http).get(ref)
    if theirs is None:
        raise NotFound(f"Remote branch '{DEFAULT_REMOTE}/{name}' not found", {"remote": DEFAULT_REMOTE, "ref": ref})
    with _fetched(app, repo, remote, ref, theirs) as fetched:
        conflicts = _refused_before_taking(session, app, repo, actor, listed, fetched)
        if conflicts:
            return Pulled(False, conflicts, f"Pull stopped by conflicts in {len(conflicts)} path(s); {name} was not "
                                            "changed.")
        fetched.take()
        outcome = merges.merge_refs(app, session, repo, actor, fetched.commit, name, "merge", fast_forward=True,
                                    message=f"Merge branch '{name}' of {git_remote.shown(repo.upstream_url)}",
                                    source_label=f"{DEFAULT_REMOTE}/{name}")
    if not outcome.success:
        return Pulled(False, outcome.conflicts, f"Pull stopped by conflicts in {len(outcome.conflicts)} path(s); "
                                                f"{name} was not changed.")
    if outcome.already_merged:
        return Pulled(True, [], "Already up to date.")
    if outcome.fast_forward:
        return Pulled(True, [], f"Fast-forwarded {name} to {outcome.head_commit[:12]}.")
    return Pulled(True, [], f"Merged {DEFAULT_REMOTE}/{name} into {name} ({outcome.head_commit[:12]}).")


class _Limiter:
    """At most `count` listings of one remote per `window` seconds in this process."""

    def __init__(self, count: int, window: float):
        self.count, self.window = count, window
        self.times: dict[tuple, list[float]] = {}
        self.lock = threading.Lock()

    def take(self, key: tuple) -> None:
        now = time.monotonic()
        with self.lock:
            recent = [t for t in self.times.get(key, []) if t > now - self.window]
            if len(recent) >= self.count:
                retry_ms = int((recent[0] + self.window - now) * 1000) + 1
                self.times[key] = recent
                raise RateLimited("Rate limit exceeded", {"retryAfterMs": retry_ms})
            self.times[key] = [*recent, now]
            if len(self.times) > 10_000:  # forget remotes not listed within the window
                self.times = {k: v for k, v in self.times.items() if v and v[-1] > now - self.window}


REMOTE_CALLS_PER_MINUTE = 10  # to one remote (listings, status, pulls), in each server process
_CALLS = _Limiter(count=REMOTE_CALLS_PER_MINUTE, window=60.0)


def refuse_push(repo: Repository, listed: Listed) -> None:
    """A push to another server needs its credentials, which Driftstone does not keep."""
    if not repo.upstream_url:
        raise BadRequest("the workspace has no remote to push to: set its repository_url", {"id": listed.row.id})
    raise BadRequest("pushing to the remote needs credentials for it, which this server does not store; push "
                     "from a clone of this repository instead", {"id": listed.row.id, "remote": DEFAULT_REMOTE})
