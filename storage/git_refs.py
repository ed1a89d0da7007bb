"""Refs: read on dulwich (in-process), compare-and-swap by git's own ref transaction."""
from __future__ import annotations

import time
from pathlib import Path

from dulwich.refs import DiskRefsContainer

from .errors import Conflict
from .git_env import run_git

ZERO_SHA = "0" * 40


def read_ref(repo_path: Path, ref: str) -> str | None:
    """The ref's value (symbolic refs followed); a refs container alone, not a whole Repo (20x cheaper)."""
    try:
        value = DiskRefsContainer(str(repo_path))[ref.encode()]
    except KeyError:
        return None
    return value.decode()


LOCK_RETRY_DELAYS = (0.01, 0.05)  # after git's own wait on a held lock (core.filesRefLockTimeout, 100 ms)


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
        if ".lock': File exists" not in error or delay is None:
            return False
        time.sleep(delay)
    return False


def _clash(name: bytes) -> Conflict:
    """`refs/heads/a/b` cannot exist beside `refs/heads/a` (each is a path on disk), as in git."""
    ref = name.decode()
    return Conflict(f"{ref} clashes with an existing ref: a name cannot be both a ref and a prefix of one",
                    {"ref": ref})
