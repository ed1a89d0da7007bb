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
    """Holds `ref`'s turn while the block runs; yields whether it got it before `deadline` (time.monotonic())
    or the repository's directory could not hold the turn's file (the block then runs without one)."""
    path = turn_file(repo_path, ref)
    try:
        path.parent.mkdir(exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:  # the repository is gone or read-only: its change fails or races as it would have
        yield False
        return
    try:
        yield _wait_for_turn(fd, deadline)
    finally:
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
