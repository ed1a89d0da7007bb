"""How often `driftstone serve` replaces its workers (control/worker_memory.py), and what that costs requests.

    .venv/bin/python bench/worker_churn_bench.py [--seconds 40] [--limits 0,16777216]

For each value of DRIFTSTONE_WORKER_PRIVATE_MEMORY_LIMIT (bytes; 0: never), one server: `/healthz` every 20 ms
on a new connection each (so a worker is often idle, free to retire) while a client clones a small repository
every 1.5 s, for `--seconds`. Prints the workers replaced (the server log's "fresh fork" lines), those the
elastic pool (control/worker_pool.py) added and let go, and the `/healthz` latency p50 / p99 / max. Prints only: bench/RESULTS.md records the runs by hand.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_servers import HOST, ROOT, Driftstone, plain_git  # noqa: E402


def measure(limit: int, seconds: float, work: Path) -> str:
    server = Driftstone(work)
    server.env["DRIFTSTONE_WORKER_PRIVATE_MEMORY_LIMIT"] = str(limit)
    try:
        server.start()
        server.create_repo("small")
        plain_git("push", "-q", server.url("small"), "HEAD:refs/heads/main", cwd=ROOT)
        stop = time.monotonic() + seconds

        def clones() -> None:
            while time.monotonic() < stop:
                target = work / "clone"
                shutil.rmtree(target, ignore_errors=True)
                plain_git("clone", "-q", "--bare", server.url("small"), str(target))
                time.sleep(1.5)

        cloner = threading.Thread(target=clones)
        cloner.start()
        latencies = []
        while time.monotonic() < stop:
            started = time.perf_counter()
            with urllib.request.urlopen(f"http://{HOST}:{server.port}/healthz", timeout=30) as answer:
                answer.read()
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
        cloner.join()
    finally:
        server.stop()
    latencies.sort()
    log = server.log_path.read_text(errors="replace")
    replaced, added, left = log.count("fresh fork"), log.count("a worker added"), log.count("asked to leave")
    return (f"limit {limit}: {replaced} workers replaced, {added} added and {left} let go by the elastic pool; "
            f"/healthz n {len(latencies)}, p50 "
            f"{statistics.median(latencies) * 1e3:.1f} ms, p99 {latencies[int(len(latencies) * 0.99)] * 1e3:.1f} ms, "
            f"max {latencies[-1] * 1e3:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--limits", default=f"0,{16 * 1024 * 1024}", help="comma-separated limits in bytes")
    args = parser.parse_args()
    for limit in (int(value) for value in args.limits.split(",")):
        with tempfile.TemporaryDirectory(prefix="churn-") as work:
            print(measure(limit, args.seconds, Path(work)), flush=True)


if __name__ == "__main__":
    main()
