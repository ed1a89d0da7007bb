"""Which paths a ref change touches: the question the lock check and the path check both ask of a push."""
from __future__ import annotations

import threading
from typing import Sequence

from storage import git_read, git_refs

from .context import ChangeContext
from .refs import RefUpdate


def paths_changed_by(ctx: ChangeContext, update: RefUpdate) -> list[str]:
    """Paths that differ between what the ref held (for a new ref, the default branch's head: what it adds to
    the repository) and its new value; renames count as a delete and an add. Found once per push however
    many checks ask (ctx.push_scans)."""
    def find() -> list[str]:
        base = update.old if not update.is_create else git_refs.read_ref(
            ctx.repo_path, f"refs/heads/{ctx.repo.default_branch}")
        return git_read.changed_paths(ctx.repo_path, base, update.new, env=ctx.git_env)

    if ctx.push_scans is None:
        return find()
    return list(ctx.push_scans.once(("changed paths", update), find))


def start_finding_changed_paths(ctx: ChangeContext, updates: Sequence[RefUpdate]) -> None:
    """Start the diffs of a push on a thread of their own, so that git works on them while the checks before the
    path check ask the database; the checks then take the results from ctx.push_scans (or wait for them)."""
    if ctx.push_scans is None:
        return
    wanted = [update for update in updates if not update.is_delete]
    if wanted:
        threading.Thread(target=_find_all, args=(ctx, wanted), name="changed-paths", daemon=True).start()


def _find_all(ctx: ChangeContext, updates: Sequence[RefUpdate]) -> None:
    for update in updates:
        try:
            paths_changed_by(ctx, update)
        except Exception:  # kept by push_scans: the check that asks meets the same error
            pass
