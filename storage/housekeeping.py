"""Repository housekeeping: fold the packs and loose objects that pushes leave behind into one pack.

Every push of 100 objects or more keeps its own pack and smaller ones write loose objects
(`transfer.unpackLimit`); `receive.autogc` is off because it would run inside the push. Left alone, a
repository that agents push to all day ends up with hundreds of packs, and every clone and fetch then
searches them all. `needs_housekeeping` is the cheap test run after each ref change (two directory
listings, git's own `gc --auto` estimate); `housekeep` is the background job's work.

The repack keeps unreachable objects (`-k`): overlay files of dojo workspaces are blobs that no ref reaches
yet, so a prune would lose them.
"""
from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from .git_env import run_git

_LOOSE_SAMPLE_DIR = "17"  # git's gc --auto estimates the loose objects from one of the 256 fan-out dirs
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class HousekeepingLimits:
    max_packs: int = 50  # git's gc.autoPackLimit
    max_loose_objects: int = 6700  # git's gc.auto


def count_packs(repo_path: Path) -> int:
    """Packs a repack would fold together: local ones without a `.keep` (a push in flight keeps its pack)."""
    try:
        names = set(os.listdir(repo_path / "objects" / "pack"))
    except FileNotFoundError:
        return 0
    return sum(1 for name in names
               if name.endswith(".pack") and name[:-len(".pack")] + ".keep" not in names)


def too_many_loose_objects(repo_path: Path, limit: int) -> bool:
    """git's estimate: more than limit/256 loose objects in objects/17 means more than `limit` in all."""
    per_dir_limit = -(-limit // 256)
    try:
        names = os.listdir(repo_path / "objects" / _LOOSE_SAMPLE_DIR)
    except FileNotFoundError:
        return False
    loose = sum(1 for name in names if len(name) == 38 and _HEX.issuperset(name))
    return loose > per_dir_limit


def needs_housekeeping(repo_path: Path, limits: HousekeepingLimits) -> bool:
    return (count_packs(repo_path) > limits.max_packs
            or too_many_loose_objects(repo_path, limits.max_loose_objects))


def housekeep(repo_path: Path, limits: HousekeepingLimits) -> bool:
    """Repack into one pack with a bitmap if still needed; returns whether it ran.

    One run per repository at a time (an flock, released if the job dies); a second job that finds the lock
    held or the limits met does nothing. Concurrent pushes and fetches are safe: packs marked `.keep` are
    left alone, new objects are only added, and a loose object is removed only once it is in the new pack.
    """
    lock_path = repo_path / "driftstone-housekeeping.flock"
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if not needs_housekeeping(repo_path, limits):
            return False
        run_git(repo_path, ["repack", "-a", "-d", "-k", "-l", "-q", "--write-bitmap-index"], timeout=6 * 3600)
        return True
