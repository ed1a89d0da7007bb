"""A project's spec (seed 002): the structured contract for its resources, documents, tools, config and
instructions, kept in versions 1, 2, ...; version 0 is the empty spec a project starts with."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.errors import BadRequest, NotFound
from storage.ids import new_id
from storage.keys import Principal
from storage.models import ApiKey, ProjectSpec, Repository
from storage.repo_writes import serialize_repository_writes
from storage.times import as_utc

RESOURCE_TYPES = ("repository", "search", "document_store", "cloud_account", "artifact_store", "api")
REQUIRED_BINDING = {"repository": "url", "api": "base_url"}  # the other types: provider
SECRET_NAME = re.compile(r"secret|token|password|api[_-]?key|credential", re.IGNORECASE)
URL_FIELDS = ("url", "endpoint", "base_url", "spec_url")
URL_VALUE = re.compile(r"^(https?://|git@)")


@dataclass(frozen=True)
class SpecVersion:
    workspace_id: str
    version: int
    spec: dict
    created_at: datetime | None
    created_by_type: str | None
    created_by_id: str | None


def get_spec(session: Session, repo: Repository, version: int | None = None) -> SpecVersion:
    version = repo.current_spec_version if version is None else version
    if version == 0:
        return SpecVersion(repo.id, 0, {}, None, None, None)
    row = session.scalar(select(ProjectSpec).where(ProjectSpec.repo_id == repo.id, ProjectSpec.version == version))
    if row is None:
        raise NotFound("Workspace spec version not found", {"version": version})
    return _view(repo, row)


def put_spec(session: Session, repo: Repository, actor: Principal, spec: dict) -> SpecVersion:
    _check_resources(spec.get("resources") or {})
    _check_tools(spec.get("tools") or {})
    serialize_repository_writes(session, repo.id)  # two PUTs at once: each its own version, none lost
    session.refresh(repo)
    prefix = session.scalar(select(ApiKey.prefix).where(ApiKey.id == actor.key_id))
    row = ProjectSpec(id=new_id("spec"), repo_id=repo.id, version=repo.current_spec_version + 1, spec=spec,
                      created_by_type=actor.scope, created_by_id=prefix)
    session.add(row)
    repo.current_spec_version = row.version
    session.flush()
    return _view(repo, row)


def _view(repo: Repository, row: ProjectSpec) -> SpecVersion:
    return SpecVersion(repo.id, row.version, row.spec, as_utc(row.created_at), row.created_by_type, row.created_by_id)


def _check_resources(resources: dict) -> None:
    for name, resource in resources.items():
        where = f"resources.{name}"
        if not isinstance(resource, dict):
            raise BadRequest(f"{where} must be an object with type and binding", {"field": where})
        if resource.get("type") not in RESOURCE_TYPES:
            raise BadRequest(f"{where}.type must be one of {', '.join(RESOURCE_TYPES)}", {"field": f"{where}.type"})
        binding = resource.get("binding")
        if not isinstance(binding, dict):
            raise BadRequest(f"{where}.binding must be an object", {"field": f"{where}.binding"})
        required = REQUIRED_BINDING.get(resource["type"], "provider")
        if not isinstance(binding.get(required), str) or not binding[required].strip():
            raise BadRequest(f"{where}.binding.{required} is required for a {resource['type']} resource",
                             {"field": f"{where}.binding.{required}"})
        secret = _secret_key(binding)
        if secret:
            raise BadRequest(f"{where}.binding.{secret}: secrets do not belong in a spec", {"field": f"{where}.binding"})
        for key, value in binding.items():
            if key in URL_FIELDS and not (isinstance(value, str) and URL_VALUE.match(value)):
                raise BadRequest(f"{where}.binding.{key} must start with http://, https:// or git@",
                                 {"field": f"{where}.binding.{key}"})
        if "notes" in resource and not isinstance(resource["notes"], str):
            raise BadRequest(f"{where}.notes must be a string", {"field": f"{where}.notes"})


def _secret_key(value, prefix: str = "") -> str | None:
    """The first key, at any depth, whose name says it holds a secret (headers.Authorization, api_key, ...)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if SECRET_NAME.search(key) or key.lower() == "authorization":
                return prefix + key
            found = _secret_key(item, f"{prefix}{key}.")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _secret_key(item, f"{prefix}{index}.")
            if found:
                return found
    return None


def _check_tools(tools: dict) -> None:
    for name in ("available", "blocked"):
        listed = tools.get(name)
        if listed is None:
            continue
        if not isinstance(listed, list) or not all(isinstance(tool, str) for tool in listed):
            raise BadRequest(f"tools.{name} must be a list of tool names", {"field": f"tools.{name}"})
        if len(set(listed)) != len(listed):
            raise BadRequest(f"tools.{name} names a tool twice", {"field": f"tools.{name}"})
