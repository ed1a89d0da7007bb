#!/usr/bin/env python3
"""Agents committing to one branch at once through the API: --writers `POST /v1/repos/{repo}/commits` without
`expectedHeadSha` (each onto whatever the head is), started together, --rounds times, against one or more
revisions of Driftstone in the same run, each on a fresh server and repository.

Figures per revision (median over the rounds): the round's wall time (the first request's start to the last
answer), each request's time (p50, max), how many landed (201), and how many commits the server built for them
(the repository's commit objects that appeared: a writer that lost the race to its ref built its commit again).

  .venv/bin/python bench/commit_race_bench.py --compare c59f8d9     # that revision against the working tree
  .venv/bin/python bench/commit_race_bench.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/race
      (a database of its own: it is dropped and made again for each server)
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_servers import HOST, Driftstone, plain_git  # noqa: E402
from git_bench import export_revision, machine_info, served_code  # noqa: E402
from results_md import load_average, write_section  # noqa: E402

WORK = BENCH / ".work"
REPO = "race"


def fresh_database(url: str) -> None:
    """Drop and create the database `url` names (through the server's `postgres` database)."""
    from sqlalchemy import create_engine, text

    base, name = url.rsplit("/", 1)
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def commit_objects(repo_path: Path) -> int:
    listed = plain_git("cat-file", "--batch-all-objects", "--batch-check=%(objecttype)", cwd=repo_path)
    return listed.split().count("commit")


def seed(server: Driftstone, scratch: Path, branches: int = 0) -> Path:
    path = server.create_repo(REPO)
    tree = scratch / "seed"
    plain_git("init", "-q", "-b", "main", str(tree))
    for i in range(50):
        (tree / f"file{i:02d}.txt").write_text(f"{i}\n" * 100)
    plain_git("add", "-A", cwd=tree)
    plain_git("-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "seed", cwd=tree)
    plain_git("push", "-q", server.url(REPO), "main", *(f"main:refs/heads/agent-{i}" for i in range(branches)),
              cwd=tree)
    return path


def race_round(server: Driftstone, repo_path: Path, writers: int, round_: int, own_branches: bool = False) -> dict:
    url = f"http://{HOST}:{server.port}/v1/repos/{REPO}/commits"
    before = commit_objects(repo_path)
    start = threading.Barrier(writers)
    results: list[tuple[int, float]] = [(0, 0.0)] * writers

    def write(i: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {server.key}"
        branch = f"agent-{i}" if own_branches else "main"
        body = {"branch": branch, "message": f"writer {i}, round {round_}",
                "operations": [{"action": "create", "path": f"round{round_}/writer{i}.txt",
                                "content": base64.b64encode(f"{i}\n".encode()).decode()}]}
        start.wait()
        began = time.perf_counter()
        response = session.post(url, json=body, timeout=120)
        results[i] = (response.status_code, time.perf_counter() - began)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return {"wall": wall, "times": [t for _, t in results], "landed": sum(code == 201 for code, _ in results),
            "built": commit_objects(repo_path) - before}


def run_revision(label: str, source: Path | None, args, work: Path) -> list[dict]:
    directory = work / label
    directory.mkdir(parents=True)
    server = Driftstone(directory, source=source)
    if args.database_url:
        fresh_database(args.database_url)
        server.env["DRIFTSTONE_DATABASE_URL"] = args.database_url
    try:
        server.start()
        repo_path = seed(server, directory, args.writers if args.own_branches else 0)
        rounds = []
        for round_ in range(args.rounds + 1):  # round 0 warms the server up; not recorded
            result = race_round(server, repo_path, args.writers, round_, args.own_branches)
            print(f"  {label:24} round {round_}: {result['landed']}/{args.writers} landed, wall {result['wall']:.2f} s, "
                  f"p50 {statistics.median(result['times']):.2f} s, max {max(result['times']):.2f} s, "
                  f"{result['built']} commits built", flush=True)
            if round_:
                rounds.append(result)
        return rounds
    finally:
        server.stop()


def render(args, results: dict[str, list[dict]], loads: tuple[str, str]) -> str:
    rows = []
    for label, rounds in results.items():
        times = sorted(t for r in rounds for t in r["times"])
        rows.append(f"| {label} | {sum(r['landed'] for r in rounds)}/{args.writers * len(rounds)} | "
                    f"{statistics.median(r['wall'] for r in rounds):.2f} s | {statistics.median(times):.2f} s | "
                    f"{times[-1]:.2f} s | {statistics.median(r['built'] for r in rounds):.0f} |")
    database = "PostgreSQL" if args.database_url else "SQLite"
    return "\n".join([
        f"## Commit race (`bench/commit_race_bench.py`, {database}"
        f"{', own branches' if args.own_branches else ''})",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M')} UTC; machine: {machine_info()}",
        f"- {args.writers} agents committing one file each at once, without `expectedHeadSha`, "
        f"{'each to a branch of its own' if args.own_branches else 'all to one branch'}, "
        f"{args.rounds} rounds per revision after a warm-up round, each revision on a fresh server",
        f"- load average (1, 5, 15 min) before / after: {loads[0]} / {loads[1]}",
        "",
        "| Driftstone | landed | round wall (median) | request p50 | request max | commits built per round |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "Without turns every writer builds its commit on the head it read, one swap wins, and the others build "
        "again; with them (storage/ref_turns.py) each builds once, on the head the writer before it left.",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", metavar="REV", action="append", default=[],
                        help="also run this revision (exported with git archive); repeatable")
    parser.add_argument("--database-url", help="a PostgreSQL database of its own (dropped and made again)")
    parser.add_argument("--own-branches", action="store_true",
                        help="each writer commits to a branch of its own (agent-N) instead of all to main")
    parser.add_argument("--output", type=Path, default=BENCH / "RESULTS.md")
    args = parser.parse_args(argv)
    work = WORK / f"race-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    loads = [load_average()]
    results: dict[str, list[dict]] = {}
    try:
        for revision in args.compare:
            source, sha = export_revision(revision)
            results[served_code(revision, sha)] = run_revision(revision, source, args, work)
        results[served_code(None, None)] = run_revision("working-tree", None, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    loads.append(load_average())
    section = render(args, results, (loads[0], loads[1]))
    print(section)
    name = ("commit_race_bench" + ("_pg" if args.database_url else "") + ("_own_branches" if args.own_branches else ""))
    write_section(args.output, name, section)
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
