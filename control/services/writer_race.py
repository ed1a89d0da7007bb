"""How long a change that names no expected head goes on trying while other writers win its ref."""
from __future__ import annotations

import random
import time

RACE_SECONDS = 10.0  # 32 commits at once to one branch: 10 tries each left about half of them refused
LONGEST_PAUSE = 0.25


class WriterRace:
    """`again()` after a lost compare-and-swap: pauses (randomly, longer each time, so that the losers spread
    out) and says whether to try again; `tries` counts the attempts made."""

    def __init__(self, seconds: float = RACE_SECONDS):
        self.deadline = time.monotonic() + seconds
        self.tries = 1

    def again(self) -> bool:
        if time.monotonic() >= self.deadline:
            return False
        time.sleep(random.uniform(0, min(0.02 * self.tries, LONGEST_PAUSE)))  # the winner may still hold the lock
        self.tries += 1
        return True
