"""hoody's branches (seed 003): a repository's branches by id, with display names, their state against their base
branch, what their files take, reset to their base, merge into it, and their pull requests (branch_remotes.py:
their remote). Every ref change goes through the same pipeline as a push."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hooks.pipeline import apply_ref_change
from hooks.refs import ZERO_SHA, RefUpdate
from hooks.stack_events import stack_number
from storage import git_diff, git_objects, git_read, git_refs
from storage.errors import BadRequest, Conflict, NotFound
from storage.keys import Principal
from storage.models import Branch, Repository, Stack, utcnow
from storage.repo_writes import serialize_repository_writes

from . import branches, merges, stacks
from .changes import change_context, checked_path, resolve_revision

GIT_NAME_TRIES = 100


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
    base_head_now = git_refs.read_ref(path, f"refs/heads/{base}")
    if base_head_now is None and base != repo.default_branch:
        raise NotFound(f"base branch {base!r} not found", {"baseBranch": base})
    source = base if base_head_now else None
    for candidate in [git_name] if git_name else _git_names(name):
        try:
            view = branches.create_branch(session, app, repo, actor, candidate, source=source)
        except Conflict:
            if git_name:
                raise
            continue
        row = session.scalar(select(Branch).where(Branch.repo_id == repo.id, Branch.name == view.name))
        row.display_name = name
        if view.head_sha is None:  # an empty repository: nothing to start from until a first commit (then `retry`)
            row.status = "failed"
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


def retry(session: Session, app, repo: Repository, actor: Principal, listed: Listed) -> Listed:
    """A branch here is made in its request and fails only for want of a commit to start from (it was created in an
    empty repository): retried, it starts from its base branch's head, once there is one."""
    row = listed.row
    if row.status != "failed":
        raise BadRequest(f"only a failed branch can be retried; this one is {row.status}",
                         {"id": row.id, "status": row.status})
    base = base_of(session, app, repo, row)
    start = git_refs.read_ref(app.store.path_for(repo.id), f"refs/heads/{base}")
    if start is None:
        raise Conflict(f"branch {base!r} has no commits yet to start this branch from: push one, then retry",
                       {"id": row.id, "baseBranch": base})
    ctx = change_context(app, repo, actor, "api")
    apply_ref_change(ctx, RefUpdate(old=ZERO_SHA, new=start, ref=f"refs/heads/{row.name}"), session=session)
    if session.scalar(select(Branch.id).where(Branch.id == row.id)) is None:  # deleted by a writer meanwhile
        raise NotFound("Branch not found", {"id": row.id})
    session.refresh(row)
    row.base_branch, row.base_commit = base, start
    session.flush()
    return Listed(row, start)


def base_of(session: Session, app, repo: Repository, row: Branch) -> str:
    """The branch it merges into: its base branch or, once that is gone, the branch it was merged into (GitHub
    retargets a pull request onto the base of the one merged). A base deleted (or rewritten) without what this
    branch was made from merged leaves none: 409, as GitHub closes the pull requests onto a deleted base, rather
    than bring those unmerged commits into another branch."""
    live = _live_base(session, app, repo, row)
    if live is None:
        raise Conflict(f"its base branch {row.base_branch!r} was deleted or rewritten without the commits this branch "
                       "was made from being merged: there is no branch to merge it into",
                       {"id": row.id, "baseBranch": row.base_branch})
    return live[0]


MAX_RETARGETS = 20


def _live_base(session: Session, app, repo: Repository, row: Branch) -> tuple[str, str | None] | None:
    """(branch, its head): its base branch while it holds the commit this branch was made from; once it is gone,
    where its pull request was merged with that commit (and so on up), or the default branch if that commit's
    changes are in it already; else None."""
    path = app.store.path_for(repo.id)
    base, fork = row.base_branch or repo.default_branch, row.base_commit
    for _ in range(MAX_RETARGETS):
        head = git_refs.read_ref(path, f"refs/heads/{base}")
        if base == repo.default_branch or (head is not None and
                                           (fork is None or merges.changes_already_in(path, fork, head))):
            return base, head
        merged = stacks.merged_stack_holding(session, app, repo, base, fork) if fork is not None else None
        if merged is None:
            default_head = git_refs.read_ref(path, f"refs/heads/{repo.default_branch}")
            landed = (fork is not None and default_head is not None
                      and merges.changes_already_in(path, fork, default_head))
            return (repo.default_branch, default_head) if landed else None
        base, fork = merged.base_branch, merged.merged_sha
    return None


def base_head(session: Session, app, repo: Repository, row: Branch) -> str | None:
    """Where its base is now (its base commit if the repository has no commits there, or the base was deleted
    unmerged)."""
    live = _live_base(session, app, repo, row)
    return (live[1] if live is not None else None) or row.base_commit


@dataclass
class Status:
    ahead: int
    behind: int


def status(session: Session, app, repo: Repository, listed: Listed) -> Status:
    """Commits ahead of and behind its base branch. Nothing is ever staged or untracked: a branch here has no
    working tree, every change to it is a commit."""
    base = base_head(session, app, repo, listed.row)
    if listed.head is None or base is None:
        return Status(0, 0)
    return Status(*git_read.ahead_behind(app.store.path_for(repo.id), base, listed.head))


def diff(session: Session, app, repo: Repository, listed: Listed, base: str | None, file: str | None,
         full: bool) -> dict:
    """From where the branch left `base` (default: its base branch), as a pull request shows it."""
    if file is not None:
        checked_path(file, "file")
    start = resolve_revision(app, repo, base, session) if base else base_head(session, app, repo, listed.row)
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
    """Into its base branch; its open pull request there is merged with it, and the merge is that pull request's
    (a base taking changes only through pull requests takes it, once it is approved as the base asks)."""
    if listed.head is None:
        raise BadRequest("the branch has no commits yet", {"id": listed.row.id})
    base = base_of(session, app, repo, listed.row)
    stack = stacks.open_stack_of_branch(session, repo, listed.row.name)
    if stack is not None and (stack.base_branch != base or stacks.older_than(stack, listed.row.created_at)):
        stack = None
    if stack is not None and not dry_run:  # a review racing it goes first or sees the merge, as a stack's merge
        serialize_repository_writes(session, repo.id)
        session.refresh(stack)
        if stack.status != "open":
            stack = None
    if stack is not None:
        stacks.refuse_unmergeable(session, app, repo, stack)

    def mark_its_stack_merged(outcome: merges.MergeOutcome) -> None:  # before its branch is deleted, which closes it
        if not outcome.already_merged:
            stacks.mark_branch_stack_merged(session, repo, listed.row.name, outcome.target, outcome.head_commit,
                                            since=listed.row.created_at, actor=actor)

    return merges.merge_branch(session, app, repo, actor, listed.row.name, base, strategy, message, dry_run,
                               delete_branch, stack_id=stack.id if stack is not None else None,
                               on_merged=mark_its_stack_merged,
                               expected_source=stack.head_commit if stack is not None else None,
                               title=stack.title if stack is not None else None)


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
    return PullRequest(stack, stack_number(session, stack),
                       stacks.review_decision(session, stack, stacks.reviews_of(session, stack), head))


def open_pull_request(session: Session, app, repo: Repository, actor: Principal,
                      listed: Listed) -> tuple[PullRequest, bool]:
    """Onto its base branch, with its commits as they are now (an open one is brought up to the branch's head).
    (pull request, whether it was opened now)."""
    row = listed.row
    stack, created = stacks.submit_branch(session, app, repo, row.name, base_of(session, app, repo, row), actor,
                                          row.display_name or row.name, since=row.created_at)
    return PullRequest(stack, stack_number(session, stack),
                       stacks.review_decision(session, stack, stacks.reviews_of(session, stack))), created
