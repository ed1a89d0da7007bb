"""Refs: read on dulwich (in-process), compare-and-swap by git's own ref transaction."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterable

from dulwich.refs import DiskRefsContainer

from .errors import Conflict, StorageFailure
from .git_env import run_git

ZERO_SHA = "0" * 40


def read_ref(repo_path: Path, ref: str) -> str | None:
    """The ref's value (symbolic refs followed); a refs container alone, not a whole Repo (20x cheaper)."""
    return read_refs(repo_path, [ref])[ref]


def read_refs(repo_path: Path, refs: Iterable[str]) -> dict[str, str | None]:
    """Each ref's value (None: absent), packed-refs read once for all of them: one container per ref read it
    again for each (a push deleting 15,000 of a repository's 15,000 packed refs took its checks 16 minutes)."""
    container = DiskRefsContainer(str(repo_path))
    values: dict[str, str | None] = {}
    for ref in refs:
        try:
            values[ref] = container[ref.encode()].decode()
        except KeyError:
            values[ref] = None
    return values


LOCK_RETRY_DELAYS = (0.01, 0.05)  # after git's own wait on a held lock (core.filesRefLockTimeout, 100 ms)
# A lock older than these was left by a git killed holding it, and would refuse every update of the ref for good.
# git holds a ref's lock for one ref transaction (milliseconds; seconds for a push of thousands of refs): after a
# whole server was killed, 15 minutes (the bound before) kept its branches from every push and API write for that
# long. packed-refs.lock is held while pack-refs writes every ref.
STALE_REF_LOCK_SECONDS = 2 * 60
STALE_PACKED_REFS_LOCK_SECONDS = 15 * 60


# how `git update-ref` says the ref is not at the value given (anything else it says is a failure to write)
VALUE_DIFFERS = ("but expected", "reference already exists", "unable to resolve reference", "reference is missing")


def compare_and_swap(repo_path: Path, ref: str, old: str, new: str) -> bool:
    """Move `ref` from `old` to `new` (ZERO_SHA: absent) only if it still points at `old`.

    Done by `git update-ref`, a ref transaction under git's own locks (the loose ref's and, to delete,
    packed-refs'), so it serialises with receive-pack and `git pack-refs` exactly as git does with itself; a
    lock held by someone else is waited out and the comparison made again; only a value that differs fails.
    (dulwich's ref container deleted a loose ref before taking packed-refs.lock, and checked packed-refs
    without it: a failed delete could rewind a branch to its packed value, a successful one come back.)
    """
    if old == ZERO_SHA:
        command = f"create {ref} {new}"
    elif new == ZERO_SHA:
        command = f"delete {ref} {old}"
    else:
        command = f"update {ref} {new} {old}"
    for delay in (*LOCK_RETRY_DELAYS, None):
        result = run_git(repo_path, ["update-ref", "-m", "driftstone", "--stdin"], input=f"{command}\n".encode(),
                         check=False, timeout=60)
        if result.returncode == 0:
            return True
        error = result.stderr.decode("utf-8", "replace")
        if "not a git repository" in error:
            raise FileNotFoundError(repo_path)
        if "exists; cannot create" in error:
            raise _clash(ref.encode())
        if ".lock': File exists" not in error:
            if any(differs in error for differs in VALUE_DIFFERS):
                return False
            raise StorageFailure(f"git update-ref of {ref} failed: {error.strip()[:500]}")
        if delay is None:
            if remove_stale_locks(repo_path, [ref]):
                return compare_and_swap(repo_path, ref, old, new)
            raise Conflict(f"{ref} is being updated by another request (git holds its lock): try again",
                           {"ref": ref})
        time.sleep(delay)
    return False


def remove_stale_locks(repo_path: Path, refs: list[str] | None = None) -> list[str]:
    """Remove the stale lock files of `refs` (all refs and reflogs when None) and packed-refs'; returns their
    paths relative to the repository."""
    if refs is None:  # reflogs' locks too: `git reflog expire` takes one per ref and fails on a stale one
        candidates = [Path(root) / name for top in ("refs", "logs") for root, _, files in os.walk(repo_path / top)
                      for name in files if name.endswith(".lock")]
    else:  # names from a client's push: only those that are a path inside refs/
        candidates = [repo_path / f"{ref}.lock" for ref in refs if _a_path_in_refs(ref)]
    now = time.time()
    removed = []
    for lock, older_than in [*((c, STALE_REF_LOCK_SECONDS) for c in candidates),
                             (repo_path / "packed-refs.lock", STALE_PACKED_REFS_LOCK_SECONDS)]:
        try:
            if lock.stat().st_mtime < now - older_than:
                lock.unlink()
                removed.append(str(lock.relative_to(repo_path)))
        except OSError:  # gone, or no such path: a file where a directory would be, a name too long
            continue
    return removed


def _a_path_in_refs(ref: str) -> bool:
    parts = ref.split("/")
    return (len(parts) > 1 and parts[0] == "refs" and "\0" not in ref and "\\" not in ref
            and all(part not in ("", ".", "..") for part in parts))


def clashes_with_a_ref(repo_path: Path, ref: str) -> bool:
    """Whether `ref` cannot be made because another ref is a prefix of it, or lies under it."""
    parts = ref.split("/")
    if any(read_ref(repo_path, "/".join(parts[:end])) is not None for end in range(3, len(parts))):
        return True
    return bool(DiskRefsContainer(str(repo_path)).subkeys(ref.encode()))


def _clash(name: bytes) -> Conflict:
    """`refs/heads/a/b` cannot exist beside `refs/heads/a` (each is a path on disk), as in git."""
    ref = name.decode()
    return Conflict(f"{ref} clashes with an existing ref: a name cannot be both a ref and a prefix of one",
                    {"ref": ref})
