"""Which paths a ref change touches: the question the lock check and the path check both ask of a push."""
from __future__ import annotations

from storage import git_read

from .context import ChangeContext
from .refs import RefUpdate


def paths_changed_by(ctx: ChangeContext, update: RefUpdate) -> list[str]:
    """Paths that differ between what the ref held (for a new ref, the default branch's head: what it adds to
    the repository) and its new value; renames count as a delete and an add. Asked once per push however
    many checks ask (ctx.push_scans)."""
    base = update.old if not update.is_create else git_read.resolve_ref(
        ctx.repo_path, f"refs/heads/{ctx.repo.default_branch}", env=ctx.git_env)
    if ctx.push_scans is not None:
        return ctx.push_scans.changed_paths(ctx.repo_path, base, update.new, ctx.git_env)
    return git_read.changed_paths(ctx.repo_path, base, update.new, env=ctx.git_env)
