"""Ref compare-and-swap on dulwich, using git's own lock files so it serialises with receive-pack."""
from __future__ import annotations

import time
from pathlib import Path

from dulwich.errors import NotGitRepository
from dulwich.file import FileLocked
from dulwich.refs import DiskRefsContainer
from dulwich.repo import Repo

ZERO_SHA = "0" * 40


def read_ref(repo_path: Path, ref: str) -> str | None:
    """The ref's value (symbolic refs followed); a refs container alone, not a whole Repo (20x cheaper)."""
    try:
        value = DiskRefsContainer(str(repo_path))[ref.encode()]
    except KeyError:
        return None
    return value.decode()


LOCK_RETRY_DELAYS = (0.002, 0.005, 0.01, 0.02, 0.05)


def compare_and_swap(repo_path: Path, ref: str, old: str, new: str) -> bool:
    """Move `ref` from `old` to `new` (ZERO_SHA: absent) only if it still points at `old`.

    A lock file held by someone else (a push's ref transaction, `git pack-refs` pruning the loose copy) is
    waited out briefly and the comparison made again under our own lock; only a value that differs fails.
    """
    for delay in (*LOCK_RETRY_DELAYS, None):
        try:
            return _swap_once(repo_path, ref.encode(), old, new)
        except FileLocked:
            if delay is None:
                return False
            time.sleep(delay)
    return False


def _swap_once(repo_path: Path, name: bytes, old: str, new: str) -> bool:
    try:
        with Repo(str(repo_path)) as repo:
            refs = repo.refs
            if old == ZERO_SHA:
                return bool(refs.add_if_new(name, new.encode()))
            if new == ZERO_SHA:
                return bool(refs.remove_if_equals(name, old.encode()))
            return bool(refs.set_if_equals(name, old.encode(), new.encode()))
    except NotGitRepository:
        raise FileNotFoundError(repo_path) from None
