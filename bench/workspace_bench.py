"""Overlay workspaces on a 5,000-file repository: write / read latency (p50, p99), search, commit, tree.

    .venv/bin/python bench/workspace_bench.py [--files 5000] [--ops 300]

Runs `driftstone serve` (production gunicorn settings) on a scratch data dir under bench/.work/, makes the
repository with git, then drives the dojo API from this process over loopback.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_report import percentile  # noqa: E402
from bench_servers import Driftstone, plain_git  # noqa: E402

WORK = Path(__file__).resolve().parent / ".work"


def make_repo(server: Driftstone, files: int, scratch: Path) -> str:
    server.create_repo("ws-bench")
    tree = scratch / "tree"
    plain_git("init", "-q", "-b", "main", str(tree))
    for i in range(files):
        path = tree / f"src/module{i % 50:02d}/file{i:05d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"def function_{i}_{n}(value):\n    return value * {n}  # marker{i % 97}\n"
                                for n in range(20)))
    plain_git("add", "-A", cwd=tree)
    plain_git("-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "5000 files", cwd=tree)
    plain_git("push", "-q", server.url("ws-bench"), "main", cwd=tree)
    return "ws-bench"


def timed(fn, runs: int) -> list[float]:
    samples = []
    for i in range(runs):
        start = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - start)
    return samples


def row(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | {percentile(ms, 0.99):.1f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--ops", type=int, default=300)
    args = parser.parse_args(argv)
    WORK.mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="wsbench-", dir=WORK))
    server = Driftstone(scratch)
    server.start()
    try:
        repo = make_repo(server, args.files, scratch)
        base = f"http://127.0.0.1:{server.port}/api/repos/{server.org}/{repo}"
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {server.key}"
        ws = session.post(f"{base}/workspaces", json={"name": "bench", "agent_name": "bench"}).json()["workspace"]
        ws_url = f"{base}/workspaces/{ws['id']}"
        payload = os.urandom(2048)

        def write(i):
            response = session.put(f"{ws_url}/files/src/module{i % 50:02d}/file{i:05d}.py", data=payload)
            assert response.status_code == 200, response.text

        def read(i):
            assert session.get(f"{ws_url}/files/src/module{i % 50:02d}/file{i:05d}.py").status_code == 200

        def read_base(i):
            assert session.get(f"{ws_url}/files/src/module{(i + 2000) % 50:02d}/file{i + 2000:05d}.py").status_code == 200

        def search(i):
            result = session.get(f"{ws_url}/search", params={"q": f"marker{i % 97}"}).json()
            assert result["results"], result

        writes = timed(write, args.ops)
        reads = timed(read, args.ops)
        base_reads = timed(read_base, args.ops)
        searches = timed(search, 20)
        everywhere = timed(lambda i: session.get(f"{ws_url}/search", params={"q": "value"}).raise_for_status(), 5)
        tree = timed(lambda i: session.get(f"{ws_url}/tree", params={"recursive": "true"}).raise_for_status(), 10)
        top = timed(lambda i: session.get(f"{ws_url}/tree").raise_for_status(), 10)
        status = timed(lambda i: session.get(f"{ws_url}/status").raise_for_status(), 10)
        session.delete(ws_url)

        def commit_ten(i):
            w = session.post(f"{base}/workspaces", json={"name": f"c{i}"}).json()["workspace"]
            url = f"{base}/workspaces/{w['id']}"
            for n in range(10):
                session.put(f"{url}/files/src/module{n:02d}/file{n:05d}.py", data=f"changed {i} {n}\n".encode())
            start = time.perf_counter()
            response = session.post(f"{url}/commit", json={"message": "ten files"})
            elapsed = time.perf_counter() - start
            assert response.status_code == 201, response.text
            return elapsed

        commits = [commit_ten(i) for i in range(15)]
        lines = [
            f"## Overlay workspaces ({args.files} files, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)",
            "",
            "`.venv/bin/python bench/workspace_bench.py` — dojo API over loopback, one client, production gunicorn.",
            "",
            "| operation | runs | p50 ms | p99 ms |",
            "| --- | --- | --- | --- |",
            row("overlay write (2 KiB)", writes),
            row("overlay read (overlay)", reads),
            row("overlay read (base)", base_reads),
            row("search, a word in 1 file of 97", searches),
            row("search, a word in every file (50 of 5,000 shown)", everywhere),
            row("tree, recursive (5,000 entries + overlay)", tree),
            row("tree, top level (5,000 files below it)", top),
            row("status (300 overlay entries)", status),
            row("commit 10 overlay files", commits),
            "",
        ]
        print("\n".join(lines))
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
