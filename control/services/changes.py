"""Building a ref-change context for the hook pipeline, and resolving user-given revisions."""
from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from hooks.context import ChangeContext, RepoRef
from hooks.refs import branch_name_problem, new_branch_problem, ref_name_problem
from storage import git_objects, git_read, git_refs
from storage.errors import Conflict, Invalid, NotFound
from storage.keys import Principal
from storage.models import Branch, Repository

_HEX = re.compile(r"^[0-9a-f]{40}$")
_SHORT_HEX = re.compile(r"^[0-9a-f]{7,39}$")
_ANCESTRY = re.compile(r"^(?P<start>[^~^]+)(?P<steps>(?:[~^][0-9]{0,5})+)\Z")  # main~2, v1.0^2, abc1234^^
_STEP = re.compile(r"([~^])([0-9]*)")
MAX_ANCESTRY_STEPS = 10_000


def change_context(app, repo: Repository, actor: Principal | None, source: str) -> ChangeContext:
    return ChangeContext(db=app.db, settings=app.settings, actor=actor, source=source,
                         repo=RepoRef(id=repo.id, org_id=repo.org_id, slug=repo.slug,
                                      default_branch=repo.default_branch),
                         repo_path=app.store.path_for(repo.id))


def checked_branch_name(name: str, new: bool = False) -> str:
    """`name` if a branch may have it (`new`: if a branch may be created with it), else Invalid."""
    problem = branch_name_problem(name) or (new_branch_problem(f"refs/heads/{name}") if new else None)
    if problem:
        raise Invalid(f"invalid branch name {name!r}: {problem}", {"fields": [{"loc": "name", "msg": problem}]})
    return name


def resolve_revision(app, repo: Repository, revision: str, session: Session | None = None) -> str:
    """A branch name, a tag name (either also as `refs/heads/...`, `refs/tags/...`) or a commit sha (full, or 7+
    digits naming one commit, in either case) that exists in the repository, as a commit sha; an annotated tag is
    peeled to its commit. A branch wins over a tag, and both over a short sha that spells their name, as in git.
    `HEAD` is the default branch. Any of them may be followed by git's ancestry steps: `~N` (N first parents
    back), `^N` (the N-th parent).
    With a `session`, a branch recorded but awaiting its first commit (recordOnly) is a 409, not a 404."""
    path = app.store.path_for(repo.id)
    if revision == "HEAD":  # a bare repository's HEAD: its default branch
        revision = repo.default_branch
    ancestry = _ANCESTRY.match(revision)
    if ancestry is not None:
        return _walked(path, resolve_revision(app, repo, ancestry["start"], session), ancestry["steps"], revision)
    if revision.startswith(("refs/heads/", "refs/tags/")):
        sha = git_refs.read_ref(path, revision) if ref_name_problem(revision) is None else None
        if sha is None and revision.startswith("refs/heads/"):
            _refuse_awaiting(session, repo, revision.removeprefix("refs/heads/"))
        if sha is None:
            raise NotFound(f"{revision!r} not found")
        return _peeled_commit(path, sha, f"{revision!r} does not point to a commit")
    if _HEX.match(revision.lower()):  # git takes hex digits in either case
        return _peeled_commit(path, revision.lower(), f"commit {revision} not found")
    if branch_name_problem(revision) is None:  # no name git could not have is looked up: no path leaves refs/
        sha = git_refs.read_ref(path, f"refs/heads/{revision}")
        if sha is not None:
            return sha
        tagged = git_refs.read_ref(path, f"refs/tags/{revision}")
        if tagged is not None:
            return _peeled_commit(path, tagged, f"tag {revision!r} does not point to a commit")
        _refuse_awaiting(session, repo, revision)
    if _SHORT_HEX.match(revision.lower()):
        info = find_commit(path, revision.lower())
        if info is None:
            raise NotFound(f"no branch or commit {revision!r}")
        return info.sha
    raise NotFound(f"branch {revision!r} not found")


def _refuse_awaiting(session: Session | None, repo: Repository, branch: str) -> None:
    if session is not None and awaits_first_commit(session, repo, branch):
        raise Conflict(f"branch {branch!r} has no commits yet: it awaits its first upload", {"branch": branch})


def awaits_first_commit(session: Session, repo: Repository, name: str) -> bool:
    """A branch recorded without a ref: made recordOnly (or in an empty repository), before its first commit."""
    return session.scalar(select(Branch.id).where(Branch.repo_id == repo.id, Branch.name == name,
                                                  Branch.head_sha.is_(None))) is not None


def _walked(path, sha: str, steps: str, revision: str) -> str:
    moves = [(kind, int(count) if count else 1) for kind, count in _STEP.findall(steps)]
    if sum(count if kind == "~" else 1 for kind, count in moves) > MAX_ANCESTRY_STEPS:
        raise Invalid(f"{revision!r} walks back more than {MAX_ANCESTRY_STEPS} commits",
                      {"fields": [{"loc": "revision", "msg": "too many steps"}]})
    with git_objects.open_repo(path) as git_repo:
        for kind, count in moves:
            for _ in range(count if kind == "~" else 1):
                parents = git_repo[sha.encode()].parents
                index = 0 if kind == "~" else count - 1
                if kind == "^" and count == 0:  # ^0: the commit itself
                    break
                if index >= len(parents):
                    raise NotFound(f"{revision!r} names no commit: {sha[:12]} has {len(parents)} parent(s)")
                sha = parents[index].decode()
    return sha


def _peeled_commit(path, sha: str, missing: str) -> str:
    with git_objects.open_repo(path) as git_repo:
        try:
            obj = git_repo[sha.encode()]
            while obj.type_name == b"tag":
                obj = git_repo[obj.object[1]]
        except KeyError:
            obj = None
        if obj is not None and obj.type_name == b"commit":
            return obj.id.decode()
    raise NotFound(missing)


def find_commit(repo_path, sha: str) -> git_read.CommitInfo | None:
    """The commit a full or short sha names; a short one naming several objects is refused (422)."""
    try:
        return git_read.commit_info(repo_path, sha)
    except git_read.AmbiguousSha:
        raise Invalid(f"the short sha {sha} names several objects; give more digits",
                      {"fields": [{"loc": "sha", "msg": "ambiguous"}]}) from None


def first_parent(repo_path, row: Branch | None) -> str | None:
    """A record-only branch's first commit follows its base branch's head; any other new branch (a new default
    branch) starts fresh."""
    if row is None or not row.base_branch or row.base_branch == row.name:
        return None
    return git_refs.read_ref(repo_path, f"refs/heads/{row.base_branch}")


def checked_path(path: str, field: str = "path") -> str:
    """A user-given repository path, refused when hostile (DESIGN.md's rules; see hooks/paths.py)."""
    from hooks.paths import path_problem

    problem = path_problem(path)
    if problem:
        raise Invalid(f"invalid path {path!r}: {problem}", {"fields": [{"loc": field, "msg": problem}]})
    return path
