"""Writers of one ref that build on whatever its head is take turns, across threads and processes.

Each reads the head, builds its commit on it and swaps the ref; without turns, writers that start together all
build on one head, one swap wins and the others build again (32 commits at once to one branch of a loaded machine:
3-5% still refused after 10 s of tries). A writer waits for its turn (an flock on a file named after the ref, in
the repository's directory) until a deadline and then goes on without it; pushes take no turn, and a swap that
loses to one is tried again as before.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TURNS_DIR = "driftstone-turns"
LONGEST_POLL = 0.01


def turn_file(repo_path: Path, ref: str) -> Path:
    return Path(repo_path) / TURNS_DIR / (hashlib.sha256(ref.encode("utf-8", "surrogateescape")).hexdigest()[:32]
                                          + ".lock")


@contextmanager
def ref_turn(repo_path: Path, ref: str, deadline: float) -> Iterator[bool]:
    """Holds `ref`'s turn while the block runs; yields whether it got it before `deadline` (time.monotonic()),
    False also where the repository's directory cannot hold the turn's file (the block then runs without one)."""
    path = turn_file(repo_path, ref)
    fd, got = None, False
    try:
        while True:
            try:
                path.parent.mkdir(exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError:  # the repository is gone or read-only: its change fails or races as it would have
                break
            got = _wait_for_turn(fd, deadline)
            if not got or _still_named(fd, path):
                break
            os.close(fd)  # removed as idle (remove_idle_turns) while this waited: the turn is the new file's
            fd, got = None, False
        yield got
    finally:
        if fd is not None:
            os.close(fd)  # releases the turn


def _wait_for_turn(fd: int, deadline: float) -> bool:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(random.uniform(0.001, LONGEST_POLL))


def _still_named(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def remove_idle_turns(repo_path: Path) -> int:
    """Remove the turn files nobody holds or waits for (one was made for every ref an API writer ever wrote,
    deleted branches' too); a writer that opened one just before sees it gone once it holds it, and opens the
    new one. Returns how many went."""
    removed = 0
    try:
        entries = list(os.scandir(Path(repo_path) / TURNS_DIR))
    except OSError:
        return 0
    for entry in entries:
        try:
            fd = os.open(entry.path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _still_named(fd, Path(entry.path)):
                os.unlink(entry.path)
                removed += 1
        except OSError:  # held: in use
            pass
        finally:
            os.close(fd)
    return removed
