"""How `driftstone serve` lays out its processes: gunicorn's master and its workers."""
from __future__ import annotations

import os
from pathlib import Path

from tests.support import start_server


def _children(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def _maps_pydantic_core(pid: int) -> bool:
    """pydantic-core's extension stands for the application's imports: gunicorn itself never loads it."""
    return "_pydantic_core" in Path(f"/proc/{pid}/maps").read_text()


def test_workers_fork_from_a_master_that_has_imported_the_application(server):
    """With two workers (the default) the master imports the code before it forks (gunicorn's --preload), so
    the workers share those pages instead of each loading its own copy."""
    master = server.process.pid  # `driftstone serve` execs gunicorn: the same process
    workers = _children(master)
    assert len(workers) == 2
    assert _maps_pydantic_core(master)
    assert all(_maps_pydantic_core(worker) for worker in workers)


def test_a_single_worker_loads_the_code_itself(tmp_path):
    """With nothing to share, a master holding the code would only add its copy to the worker's."""
    serve = str(Path(os.sys.executable).parent / "driftstone")
    server = start_server(tmp_path / "data", command=lambda port: [
        serve, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"])
    try:
        workers = _children(server.process.pid)
        assert len(workers) == 1
        assert not _maps_pydantic_core(server.process.pid)
        assert _maps_pydantic_core(workers[0])
    finally:
        server.stop()
