"""git's own object checks (what `receive.fsckObjects` runs on a push) for objects the server wrote itself."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

from dulwich.object_store import DiskObjectStore

from .git_objects import open_repo
from .git_read import walk_past_refs
from .object_checks import objects_problem


def fsck_problem(repo: Path, tips: Iterable[str], env: Mapping[str, str] | None = None) -> str | None:
    """git's first complaint about the commits and trees reachable from `tips` but from no ref, and about the
    `.gitmodules` blobs those trees name (git reads them from the repository); None when it has none."""
    tips = list(tips)
    if not tips:
        return None
    listed = walk_past_refs(repo, ["--objects", "--no-object-names", "--filter=blob:none", *tips], env=env)
    if not listed.strip():
        return None
    with open_repo(repo) as git_repo:
        store = git_repo.object_store
        if env and env.get("GIT_OBJECT_DIRECTORY"):  # a quarantine: its objects, and the repository's (alternate)
            store = DiskObjectStore(env["GIT_OBJECT_DIRECTORY"])
        objects = [store[oid] for oid in listed.split()]
        return objects_problem(repo, objects, git_repo.object_store.object_format, env=env)
