"""Which paths a ref change touches: the question the lock check and the path check both ask of a push."""
from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Sequence, TypeVar

from storage import git_read, git_refs
from storage.git_env import GitFailed

from .context import ChangeContext
from .refs import RefUpdate

T = TypeVar("T")


def paths_changed_by(ctx: ChangeContext, update: RefUpdate) -> list[str]:
    """Paths that differ between what the ref held and its new value; renames count as a delete and an add. A
    new ref is compared with where it leaves the default branch (their merge base; the default branch's head
    when they share no history): a branch made from an older commit changes no path the default branch changed
    since (a workspace based there could not submit past a lock on one)."""
    if not update.is_create:
        return changed_between(ctx, update.old, update.new)
    head = default_head(ctx)
    if head is None or head == update.new:
        return changed_between(ctx, head, update.new)
    base = _once_per_push(ctx, ("merge base", head, update.new),
                          lambda: git_read.merge_base(ctx.repo_path, head, update.new, env=ctx.git_env))
    return changed_between(ctx, base or head, update.new)


def default_head(ctx: ChangeContext) -> str | None:
    return git_refs.read_ref(ctx.repo_path, f"refs/heads/{ctx.repo.default_branch}")


def changed_between(ctx: ChangeContext, base: str | None, new: str, directories: bool = False) -> list[str]:
    """Paths that differ between `base` (None: nothing) and `new` (with `directories`, the directories too),
    found once per push however many checks ask (ctx.push_scans)."""
    def find() -> list[str]:
        return git_read.changed_paths(ctx.repo_path, base, new, env=ctx.git_env, directories=directories)

    if base == new:  # a ref set to what another already holds (a thousand tags of one commit: a git each)
        return []
    return list(_once_per_push(ctx, ("changed paths", base, new, directories), find))


def _once_per_push(ctx: ChangeContext, key: tuple, compute: Callable[[], T]) -> T:
    """`compute()`, asked of git once per push however many checks (or threads) ask; each time for other changes."""
    return compute() if ctx.push_scans is None else ctx.push_scans.once(key, compute)


def new_paths(ctx: ChangeContext, updates: Sequence[RefUpdate],
              chained: bool = True) -> Iterator[tuple[RefUpdate, list[str]]]:
    """For each ref a push sets, paths that no tree already accepted has: what it changes against its old value,
    and a new ref against the new ref before it in name order (tags v1.0, v1.1, ...: a few files apart), the
    first against the default branch. Every path of the new value is then either in the diff or in a tree
    whose paths were all seen; directories are listed too (an empty one's name shows nowhere else). A mirror
    push of 270 refs diffed each against the default branch listed millions of paths (libgit2: 58 s against
    7 s without). A value that is a blob (a tag of one) has no paths; where the base is one, the new value is
    diffed against nothing.

    `chained=False`: each new ref against the default branch instead, so that its paths are its own and not
    partly those of the new ref before it (slower: for telling which refs of a push hold a path found refused)."""
    for update, base in _diffs_to_make(ctx, updates, chained):
        try:
            paths = changed_between(ctx, base, update.new, directories=True)
        except GitFailed:
            if git_read.peeled_type(ctx.repo_path, update.new, env=ctx.git_env) == "blob":
                continue
            if git_read.peeled_type(ctx.repo_path, base, env=ctx.git_env) != "blob":
                raise  # the push is refused as one that could not be checked
            paths = changed_between(ctx, None, update.new, directories=True)  # a blob's tag moved, or after one
        yield update, paths


def _diffs_to_make(ctx: ChangeContext, updates: Sequence[RefUpdate],
                   chained: bool = True) -> list[tuple[RefUpdate, str | None]]:
    """Each ref the push sets, with the value its new value is diffed against: updates first, then new refs in
    name order, each after the first against the one before it (`chained`) or each against the default branch."""
    creates = sorted((u for u in updates if u.is_create), key=lambda u: _natural(u.ref))
    pairs, previous = [], None
    for update in [u for u in updates if not u.is_delete and not u.is_create] + creates:
        pairs.append((update, update.old if not update.is_create else (previous or default_head(ctx))))
        previous = update.new if update.is_create and chained else previous
    return pairs


def _natural(ref: str) -> list:
    """v1.10 after v1.9: the runs of digits the split captured (the odd parts) compare as numbers."""
    return [int(part) if index % 2 else part for index, part in enumerate(re.split(r"(\d+)", ref))]


def start_finding_new_paths(ctx: ChangeContext, updates: Sequence[RefUpdate]) -> None:
    """Start a push's diffs on threads of their own (up to DIFF_THREADS gits at once), so that git works on them
    while the checks before the path check ask the database; the path check then takes the results from
    ctx.push_scans (or waits for them)."""
    if ctx.push_scans is None:
        return
    pairs = [(base, update.new) for update, base in _diffs_to_make(ctx, updates)]
    if pairs:
        threading.Thread(target=_find_all, args=(ctx, pairs), name="new-paths", daemon=True).start()


DIFF_THREADS = 4


def _find_all(ctx: ChangeContext, pairs: list[tuple[str | None, str]]) -> None:
    def find(pair: tuple[str | None, str]) -> None:
        try:
            changed_between(ctx, *pair, directories=True)
        except Exception:  # kept by push_scans: the check meets the same error
            pass

    if len(pairs) == 1:
        find(pairs[0])
        return
    with ThreadPoolExecutor(min(DIFF_THREADS, len(pairs)), thread_name_prefix="new-paths") as pool:
        list(pool.map(find, pairs))
