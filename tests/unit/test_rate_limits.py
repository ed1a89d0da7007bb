"""Rate limits counted in the real database of the shared test server (SQLite, or PostgreSQL in CI's second run),
by this process and by others at once."""
from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from sqlalchemy import select

from storage import rate_limits
from storage.errors import RateLimited
from storage.models import RateWindow

NOW = 1_800_000_000.25  # 0.25 s into a one-minute window: 59.75 s remain


def test_calls_past_the_limit_wait_for_the_next_window_which_replaces_the_last(server):
    db = server.context.db
    key = f"test:{uuid.uuid4().hex}"
    for _ in range(3):
        rate_limits.take(db, key, 3, 60, now=NOW)
    with pytest.raises(RateLimited) as refused:
        rate_limits.take(db, key, 3, 60, now=NOW + 1)
    assert refused.value.details == {"retryAfterMs": 58_751}
    rate_limits.take(db, key, 3, 60, now=NOW + 60)
    rate_limits.take(db, f"{key}:another", 3, 60, now=NOW)  # every key counts alone
    with db.session() as session:
        assert session.execute(select(RateWindow.slot, RateWindow.calls).where(RateWindow.key == key)).all() == [
            (int((NOW + 60) // 60), 1)]


def test_processes_calling_at_once_share_one_count(server):
    """Two server processes each held their own count: a limit of 10 let 20 through."""
    key = f"test:{uuid.uuid4().hex}"
    script = f"""
import sys
from storage.db import Database
from storage import rate_limits
from storage.errors import RateLimited
db = Database({server.context.settings.effective_database_url!r})
passed = 0
for _ in range(15):
    try:
        rate_limits.take(db, {key!r}, 10, 60, now={NOW})
        passed += 1
    except RateLimited:
        pass
print(passed)
"""
    runs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    passed = [int(run.communicate(timeout=120)[0]) for run in runs]
    assert sum(passed) == 10 and all(run.returncode == 0 for run in runs), passed
