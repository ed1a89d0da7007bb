"""Rate limits every server process shares: calls counted in the database in fixed windows (GitHub's model), one
row per key and window, the key's older windows removed as a new one starts."""
from __future__ import annotations

import time

from sqlalchemy import delete

from .db import dialect_insert
from .errors import RateLimited
from .models import RateWindow


def take(db, key: str, calls: int, seconds: int, now: float | None = None,
         refusal: type[RateLimited] = RateLimited) -> None:
    """One call more for `key`, at most `calls` in each `seconds`; past it `refusal`, with `retryAfterMs` until
    the next window. Counted in a transaction of its own: a call that fails afterwards still counts."""
    now = time.time() if now is None else now
    slot = int(now // seconds)
    with db.session() as session:
        counted = session.execute(_counting(dialect_insert(session), key, slot)).scalar_one()
        if counted == 1:
            session.execute(delete(RateWindow).where(RateWindow.key == key, RateWindow.slot < slot))
    if counted > calls:
        retry_ms = int(((slot + 1) * seconds - now) * 1000) + 1
        raise refusal("Rate limit exceeded", {"retryAfterMs": retry_ms})


def _counting(insert, key: str, slot: int):
    statement = insert(RateWindow).values(key=key, slot=slot, calls=1)
    return statement.on_conflict_do_update(index_elements=[RateWindow.key, RateWindow.slot],
                                           set_={"calls": RateWindow.calls + 1}).returning(RateWindow.calls)
