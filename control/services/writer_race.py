"""How long a change that names no expected head goes on trying while other writers win its ref."""
from __future__ import annotations

import random
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import func, select

from storage.db import after_end
from storage.ref_turns import ref_turn
from storage.repo_writes import HOLDS_A_REPOSITORY_TURN

RACE_SECONDS = 10.0  # 32 commits at once to one branch: 10 tries each left about half of them refused
TRIES_HOLDING_A_TURN = 10  # a transaction other writers wait on (SQLite: every writer) tries no longer than before
LONGEST_PAUSE = 0.25
TURNS_HELD = "ref_turns_held"  # in session.info: (repository path, ref) whose turn the transaction holds


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
        No turn (False) for a transaction holding a database lock others may wait on (its repository's turn, or
        anything it wrote): the writer whose turn it is may wait on it."""
        if not racing or self.session.info.get(HOLDS_A_REPOSITORY_TURN) or _wrote(self.session):
            yield False
            return
        held = self.session.info.setdefault(TURNS_HELD, set())
        if (str(repo_path), ref) in held:  # this transaction has it already: a second flock would wait on the first
            yield True
            return
        turn = ExitStack()
        got = turn.enter_context(ref_turn(repo_path, ref, time.monotonic() + self.seconds))
        self.deadline = time.monotonic() + self.seconds
        # held until the transaction has ended: the next writer reads the head once this one's rows are committed,
        # or once its ref was taken back if it failed (it built on a commit that its request then undid)
        if got:
            held.add((str(repo_path), ref))
        after_end(self.session, turn.close)
        yield got


def _wrote(session) -> bool:
    """Whether this transaction wrote: it then holds locks (SQLite's one write lock, PostgreSQL's row locks) that
    another writer may wait on while holding the ref's turn."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":  # pysqlite begins the transaction at the first write
        return bool(session.connection().connection.dbapi_connection.in_transaction)
    if dialect == "postgresql":  # a transaction gets its id at its first write
        return session.scalar(select(func.txid_current_if_assigned())) is not None
    return False
