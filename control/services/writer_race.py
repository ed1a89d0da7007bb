"""How long a change that names no expected head goes on trying while other writers win its ref."""
from __future__ import annotations

import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from storage.ref_turns import ref_turn
from storage.repo_writes import HOLDS_A_REPOSITORY_TURN

RACE_SECONDS = 10.0  # 32 commits at once to one branch: 10 tries each left about half of them refused
TRIES_HOLDING_A_TURN = 10  # a transaction other writers wait on (SQLite: every writer) tries no longer than before
LONGEST_PAUSE = 0.25


class WriterRace:
    """`again()` after a lost compare-and-swap: pauses (randomly, longer each time, so that the losers spread
    out) and says whether to try again; `tries` counts the attempts made. Only the pushes that raced it can have
    moved the ref of a change holding its repository's turn: it tries as many times as before, not for seconds
    that every other writer would wait."""

    def __init__(self, session, seconds: float = RACE_SECONDS):
        self.session = session
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.tries = 1

    def again(self) -> bool:
        if self.session.info.get(HOLDS_A_REPOSITORY_TURN) and self.tries >= TRIES_HOLDING_A_TURN:
            return False
        pause = random.uniform(0, min(0.02 * self.tries, LONGEST_PAUSE))  # the winner may still hold the lock
        if time.monotonic() + pause >= self.deadline:
            return False
        time.sleep(pause)
        self.tries += 1
        return True

    @contextmanager
    def turn(self, repo_path: Path, ref: str, racing: bool) -> Iterator[bool]:
        """For the whole race of a writer that builds on whatever the head is and writes (`racing`), `ref`'s turn
        among such writers (storage/ref_turns.py), waited for up to `seconds`; the race's seconds count from
        then (a writer that waited them out without the turn still tries, as every writer did before turns).
        None for a transaction holding a database lock others wait on (its repository's turn, or SQLite's write
        lock once it wrote): the writer whose turn it is may wait on it."""
        if not racing or self.session.info.get(HOLDS_A_REPOSITORY_TURN) or _sqlite_writing(self.session):
            yield False
            return
        with ref_turn(repo_path, ref, time.monotonic() + self.seconds) as got:
            self.deadline = time.monotonic() + self.seconds
            yield got


def _sqlite_writing(session) -> bool:
    """Whether this SQLite transaction wrote (pysqlite begins it at the first write: it then holds the lock)."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    return bool(session.connection().connection.dbapi_connection.in_transaction)
