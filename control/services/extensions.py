"""Extensions (seed 001): an organization's stored agent prompts, and starting and reading their runs.

A run works on a storage path, `organizations/{org}/repositories/{repo}[/{branch}][/{identifier}]`: the
organization by id or slug (the caller's own; any other is not found), the repository by slug, the branch
(default: the repository's default branch, names with slashes work) and optionally the identifier its head
was uploaded under (`ver-...`, or any other after a branch named in the path that exists, when the whole is no
branch's name), which must still be its head's (else 409 stale_ref: the run would work on
something other than what the caller looked at). The run itself is `control.services.extension_runs`.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from storage import git_refs
from storage.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, StaleRef
from storage.jobs import defer_job
from storage.keys import Principal
from storage.models import Branch, Extension, ExtensionRun, Organization, Repository

from .extension_runs import run_job
from .repos import visible_repo

PRESETS = ("openclaw",)
STATUSES = ("active", "disabled")


class RunnerUnavailable(DomainError):
    """The server has no agent program to run (DRIFTSTONE_EXTENSION_COMMAND is unset)."""

    code, status = "unavailable", 503


def _prompt_digest(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def _refuse_duplicate_prompt(session: Session, org_id: str, digest: str, other_than: str | None = None) -> None:
    found = session.scalar(select(Extension.id).where(Extension.org_id == org_id, Extension.prompt_digest == digest))
    if found is not None and found != other_than:
        raise Conflict("an extension of this organization already has this prompt", {"extensionId": found})


def _flush_unique(session: Session, extension_id: str | None = None) -> None:
    """The same prompt saved by two requests at once: the unique index decides, the loser gets the 409. An
    extension deleted by another request between its read and this write is not found."""
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("an extension of this organization already has this prompt") from None
    except StaleDataError:
        raise NotFound(f"extension {extension_id!r} not found", {"extensionId": extension_id}) from None


def create_extension(session: Session, actor: Principal, type: str, name: str, prompt: str,
                     description: str | None = None, presets: list[str] | None = None) -> Extension:
    _refuse_limited_key(actor)
    digest = _prompt_digest(prompt)
    _refuse_duplicate_prompt(session, actor.org_id, digest)
    extension = Extension(id=_new_id("ext"), org_id=actor.org_id, type=type, name=name, description=description,
                          prompt=prompt, prompt_digest=digest, presets=list(presets or []), status="active",
                          created_by_key_id=actor.key_id)
    session.add(extension)
    _flush_unique(session)
    return extension


def get_extension(session: Session, org_id: str, extension_id: str) -> Extension:
    """Another organization's extension is not found: private extensions are their owner's alone."""
    extension = session.get(Extension, extension_id)
    if extension is None or extension.org_id != org_id:
        raise NotFound(f"extension {extension_id!r} not found", {"extensionId": extension_id})
    return extension


def list_extensions(session: Session, org_id: str) -> list[Extension]:
    return list(session.scalars(select(Extension).where(Extension.org_id == org_id)
                                .order_by(Extension.created_at, Extension.id)))


def _refuse_limited_key(actor: Principal) -> None:
    """Extensions are the organization's: a prompt changed by a key limited to some repositories would steer what
    runs commit in every other one."""
    if actor.repo_ids is not None:
        raise Forbidden("a key limited to some repositories cannot create, change or delete the organization's "
                        "extensions")


def update_extension(session: Session, actor: Principal, extension_id: str, changes: dict) -> Extension:
    """`changes`: any of name, description, status, prompt, presets (at least one)."""
    _refuse_limited_key(actor)
    if not changes:
        raise Invalid("give at least one of name, description, status, prompt, presets",
                      {"fields": [{"loc": "body", "msg": "no mutable field"}]})
    extension = get_extension(session, actor.org_id, extension_id)
    if "prompt" in changes:
        digest = _prompt_digest(changes["prompt"])
        _refuse_duplicate_prompt(session, actor.org_id, digest, other_than=extension.id)
        extension.prompt, extension.prompt_digest = changes["prompt"], digest
    for name in ("name", "description", "status"):
        if name in changes:
            setattr(extension, name, changes[name])
    if "presets" in changes:
        extension.presets = list(changes["presets"])
    _flush_unique(session, extension_id)
    return extension


def delete_extension(session: Session, actor: Principal, extension_id: str) -> str:
    """Its runs stay readable (their results are the caller's record of what they did)."""
    _refuse_limited_key(actor)
    extension = get_extension(session, actor.org_id, extension_id)
    session.delete(extension)
    _flush_unique(session, extension_id)  # deleted by another request meanwhile: not found
    return extension_id


@dataclass(frozen=True)
class RunTarget:
    repo: Repository
    branch: str
    head: str | None  # None: the branch (of an empty repository) has no commit yet


def resolve_storage_path(session: Session, app, actor: Principal, path: str) -> RunTarget:
    parts = path.strip("/").split("/")
    if len(parts) < 4 or parts[0] != "organizations" or parts[2] != "repositories" or "" in parts[:4]:
        raise Invalid("path is organizations/{organization}/repositories/{repository}[/{branch}][/{identifier}]",
                      {"fields": [{"loc": "path", "msg": "not a Driftstone storage path"}]})
    rest = parts[4:]
    if any(part in ("", ".", "..") for part in rest):
        raise Invalid("path has an empty, '.' or '..' segment", {"fields": [{"loc": "path", "msg": "bad segment"}]})
    org = session.get(Organization, actor.org_id)
    if parts[1] not in (org.id, org.slug):
        raise NotFound(f"repository {parts[3]!r} not found")  # the same answer as for a repository of ours
    repo = visible_repo(session, actor, parts[3])
    repo_path = app.store.path_for(repo.id)
    branch, identifier = "/".join(rest) or repo.default_branch, None
    if rest and not _branch_exists(session, repo, repo_path, branch):  # then the last segment is an identifier
        shorter = "/".join(rest[:-1]) or repo.default_branch
        if rest[-1].startswith("ver-") or (len(rest) > 1 and _branch_exists(session, repo, repo_path, shorter)):
            branch, identifier = shorter, rest[-1]
    head = git_refs.read_ref(repo_path, f"refs/heads/{branch}")
    row = session.scalar(select(Branch).where(Branch.repo_id == repo.id, Branch.name == branch))
    if head is None and branch != repo.default_branch and (row is None or row.head_sha is not None):
        raise NotFound(f"branch {branch!r} not found", {"branch": branch})
    if identifier is not None:
        current = row.head_identifier if row is not None else None
        if branch == repo.default_branch:
            current = current or repo.main_head_identifier
        if identifier != current:
            raise StaleRef(f"{identifier} is not the head of branch {branch!r} (its head is {current or 'unnamed'})",
                           {"branch": branch, "identifier": identifier, "currentIdentifier": current})
    return RunTarget(repo, branch, head)


def _branch_exists(session: Session, repo: Repository, repo_path, branch: str) -> bool:
    if git_refs.read_ref(repo_path, f"refs/heads/{branch}") is not None:
        return True
    return session.scalar(select(Branch.id).where(Branch.repo_id == repo.id, Branch.name == branch)) is not None


def start_run(session: Session, app, actor: Principal, extension_id: str, path: str,
              prompt: str | None = None) -> ExtensionRun:
    extension = get_extension(session, actor.org_id, extension_id)
    if extension.status != "active":
        raise Conflict(f"extension {extension_id!r} is {extension.status}: enable it to run it",
                       {"extensionId": extension_id, "status": extension.status})
    target = resolve_storage_path(session, app, actor, path)
    full_prompt = extension.prompt + (f"\n\n{prompt}" if prompt else "")
    return _queue_run(session, app, actor, extension.id, list(extension.presets or []), target, path, full_prompt)


PLANNING = "planning-workflow"  # the extension id of a planning run: the brief is its whole prompt


def start_planning_run(session: Session, app, actor: Principal, repo: Repository, brief: str,
                       name: str) -> ExtensionRun:
    """agirunner's planning workflow (seed 002): an agent run on the default branch with the brief as its prompt."""
    head = git_refs.read_ref(app.store.path_for(repo.id), f"refs/heads/{repo.default_branch}")
    target = RunTarget(repo, repo.default_branch, head)
    path = f"organizations/{repo.org_id}/repositories/{repo.slug}/{repo.default_branch}"
    run = _queue_run(session, app, actor, PLANNING, [], target, path, brief)
    run.name = name
    return run


def _queue_run(session: Session, app, actor: Principal, extension_id: str, presets: list[str], target: RunTarget,
               path: str, prompt: str) -> ExtensionRun:
    if app.settings.extension_argv is None:
        raise RunnerUnavailable("this server runs no agents: its operator has set no DRIFTSTONE_EXTENSION_COMMAND")
    run = ExtensionRun(id=_new_id("run"), org_id=actor.org_id, extension_id=extension_id, repo_id=target.repo.id,
                       path=path, branch=target.branch, base_commit=target.head, prompt=prompt, presets=presets,
                       status="queued", created_by_key_id=actor.key_id)
    session.add(run)
    session.flush()
    defer_job(session, run_job(run.id))
    return run


def get_run(session: Session, principal: Principal, run_id: str) -> ExtensionRun:
    """Another organization's run, or one on a repository the key may not see, is not found."""
    run = session.get(ExtensionRun, run_id)
    if run is None or run.org_id != principal.org_id or not principal.can_see_repo(run.repo_id):
        raise NotFound(f"run {run_id!r} not found", {"runId": run_id})
    return run
