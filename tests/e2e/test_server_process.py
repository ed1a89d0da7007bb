"""How `driftstone serve` lays out its processes (the shared server: gunicorn's master and its workers)."""
from __future__ import annotations

from pathlib import Path


def _children(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def _maps_pydantic_core(pid: int) -> bool:
    return "_pydantic_core" in Path(f"/proc/{pid}/maps").read_text()


def test_workers_fork_from_a_master_that_has_imported_the_application(server):
    """The master imports the code before it forks (gunicorn's preload_app), so the workers share those pages
    instead of each loading its own copy. pydantic-core's extension stands for the application's imports:
    gunicorn itself never loads it."""
    master = server.process.pid  # `driftstone serve` execs gunicorn: the same process
    workers = _children(master)
    assert workers, "gunicorn's master has no workers"
    assert _maps_pydantic_core(master)
    assert all(_maps_pydantic_core(worker) for worker in workers)
