"""How long a change that names no expected head goes on trying while other writers win its ref."""
from __future__ import annotations

import random
import time

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
