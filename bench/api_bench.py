#!/usr/bin/env python3
"""Control API benchmark: `driftstone serve` (gunicorn, production settings) on loopback, load from other processes.

Measures, on one fresh data directory:

- GET /v1/repos/{repo} and GET /v1/repos/{repo}/branches (a repository with --branches branches, pushed as
  refs with git through the server): requests/s and p50/p99 latency from `wrk` (a separate process);
- a 10-file upload round trip (POST .../uploads, ten PUTs to the signed URLs, POST .../complete), when the
  server has the upload endpoints: rounds/s and p50/p99 of the whole round trip, from a Python client;
- POST /v1/repos on an empty server and again with --repos repositories already present (created through the
  service layer in separate processes against the same data directory): p50/p99 per create. The cost must
  not grow with the number of repositories; GET /v1/repos/{repo} and GET /v1/repos (page 1) are measured at
  both sizes too.

Bounded loops only; the server runs in its own process group and is stopped at the end (also on failure or
Ctrl-C). Writes the table to stdout and into bench/RESULTS.md as the section "Control API" (replacing an
earlier one). Run by hand, never as a test:

    bash bench/setup.sh && .venv/bin/python bench/api_bench.py            # ~5-10 min on 2 cores
    .venv/bin/python bench/api_bench.py --quick                             # smoke run, ~1-2 min, no RESULTS.md
"""
from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

from results_md import write_section

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK_DIR = BENCH / ".work"
sys.path.insert(0, str(ROOT))



# --------------------------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(data_dir: Path, database_url: str | None, min_workers: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTSTONE_", "GIT_"))}
    env["DRIFTSTONE_DATA_DIR"] = str(data_dir)
    if min_workers:
        env["DRIFTSTONE_GUNICORN_MIN_WORKERS"] = str(min_workers)
    if database_url:
        env["DRIFTSTONE_DATABASE_URL"] = database_url
    return env


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


class Server:
    """`driftstone serve` with its defaults (gunicorn gthread, DRIFTSTONE_GUNICORN_WORKERS/THREADS or 2 x 32)."""

    def __init__(self, env: dict[str, str], log: Path, workers: int | None, threads: int | None):
        self.env, self.log_path = env, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [str(Path(sys.executable).parent / "driftstone"), "serve", "--host", "127.0.0.1", "--port",
                str(self.port)]
        if workers:
            argv += ["--workers", str(workers)]
        if threads:
            argv += ["--threads", str(threads)]
        self.argv = argv
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become healthy in 60 s")

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)


# ----------------------------------------------------------------------------------------------- set-up


def make_org(settings) -> tuple[str, str]:
    from control.bootstrap import bootstrap
    from control.services import accounts

    context = bootstrap(settings)
    with context.db.session() as session:
        org = accounts.create_org(session, "bench")
        key = accounts.create_key(session, org.id, "bench", "admin").secret
    context.db.dispose()
    return org.id, key


def _bulk_create(args: tuple[dict, str, int, int, int]) -> float:
    """Create repositories start..stop-1 through the service layer (own process, own engine), `batch` per commit."""
    settings_data, org_id, start, stop, batch = args
    from control.context import AppContext
    from control.services import repos
    from storage.settings import Settings

    context = AppContext.build(Settings(**settings_data))
    began = time.perf_counter()
    for low in range(start, stop, batch):
        with context.db.session() as session:
            for number in range(low, min(stop, low + batch)):  # short transactions: SQLite has one writer
                repos.create_repo(session, context.store, org_id, f"bulk-{number:05d}")
    context.db.dispose()
    return time.perf_counter() - began


def count_repos(settings, org_id: str) -> int:
    from sqlalchemy import func, select

    from storage.db import Database
    from storage.models import Repository

    db = Database(settings.effective_database_url)
    with db.session() as session:
        count = session.scalar(select(func.count()).select_from(Repository).where(
            Repository.org_id == org_id, Repository.deleted_at.is_(None)))
    db.dispose()
    return count


def bulk_create(settings, org_id: str, start: int, stop: int, processes: int) -> float:
    """Wall time to create repositories start..stop-1 with `processes` processes."""
    data = settings.model_dump(mode="json")
    step = -(-(stop - start) // processes)
    chunks = [(data, org_id, low, min(stop, low + step), 10) for low in range(start, stop, step)]
    began = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(_bulk_create, chunks)
    return time.perf_counter() - began


def push_many_branches(server: Server, key: str, repo: str, count: int, work: Path) -> float:
    """One commit on main plus `count` branches pointing at it, pushed in one `git push`; returns its duration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "DRIFTSTONE_"))}
    env.update({"HOME": str(work), "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
                "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.test",
                "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.test"})
    local = work / "branches-src"

    def git(*args: str, stdin: bytes | None = None) -> str:
        return subprocess.run(["git", *args], cwd=local, env=env, input=stdin, capture_output=True, check=True,
                              timeout=600).stdout.decode().strip()

    local.mkdir()
    git("init", "-q", "-b", "main")
    (local / "README.md").write_text("benchmark\n")
    git("add", "README.md")
    git("commit", "-q", "-m", "initial")
    head = git("rev-parse", "HEAD")
    git("update-ref", "--stdin", stdin="".join(f"create refs/heads/agent/{i:04d} {head}\n"
                                               for i in range(count - 1)).encode())
    url = f"http://bench:{key}@127.0.0.1:{server.port}/bench/{repo}.git"
    began = time.perf_counter()
    git("push", "-q", url, "refs/heads/*:refs/heads/*")
    return time.perf_counter() - began


# ------------------------------------------------------------------------------------------- measuring


WRK_LATENCY = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def run_wrk(url: str, key: str, seconds: int, connections: int, threads: int) -> dict:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s",
            "-H", f"Authorization: Bearer {key}", url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
    latencies = {int(p): float(v) * UNIT[u] for p, v, u in WRK_LATENCY.findall(out)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50": latencies.get(50), "p99": latencies.get(99), "requests": total,
            "non2xx": int(bad.group(1)) if bad else 0, "socket_errors": errors.group(0) if errors else "",
            "raw": out}


def timed_requests(count: int, make) -> list[float]:
    """Run `make(session, i)` `count` times sequentially on one keep-alive session; per-call seconds."""
    times = []
    with requests.Session() as session:
        for i in range(count):
            began = time.perf_counter()
            make(session, i)
            times.append(time.perf_counter() - began)
    return times


def create_repos_via_api(server: Server, key: str, prefix: str, count: int) -> list[float]:
    def make(session, i):
        response = session.post(server.url + "/v1/repos", json={"name": f"{prefix}-{i:04d}"},
                                headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert response.status_code == 201, response.text
    return timed_requests(count, make)


def get_times(server: Server, key: str, path: str, count: int) -> list[float]:
    def make(session, i):
        response = session.get(server.url + path, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert response.status_code == 200, response.text
    return timed_requests(count, make)


def upload_round_trips(server: Server, key: str, repo: str, rounds: int, files: int, size: int) -> dict:
    """`rounds` sequential round trips: POST uploads (files names + sha256), PUT each file, POST complete."""
    auth = {"Authorization": f"Bearer {key}"}
    totals, phases = [], {"create": [], "put": [], "complete": []}
    with requests.Session() as session:
        for round_no in range(rounds):
            blobs = {f"src/file-{n:02d}.bin": os.urandom(size) for n in range(files)}
            began = time.perf_counter()
            created = session.post(f"{server.url}/v1/repos/{repo}/uploads", headers=auth, timeout=60, json={
                "identifier": f"ver-{round_no:04d}",
                "files": [{"name": name, "hash": hashlib.sha256(data).hexdigest()} for name, data in blobs.items()]})
            assert created.status_code == 201, created.text
            after_create = time.perf_counter()
            body = created.json()["data"]
            for target in body["files"]:
                put = session.put(target["uploadUrl"], data=blobs[target["name"]], timeout=60,
                                  headers={"Content-Type": "application/octet-stream"})
                assert put.status_code in (200, 201), put.text
            after_puts = time.perf_counter()
            done = session.post(f"{server.url}/v1/repos/{repo}/uploads/{body['uploadId']}/complete", headers=auth,
                                timeout=60)
            assert done.status_code == 200, done.text
            ended = time.perf_counter()
            totals.append(ended - began)
            phases["create"].append(after_create - began)
            phases["put"].append(after_puts - after_create)
            phases["complete"].append(ended - after_puts)
    return {"totals": totals, "phases": phases}


def profile_workers(server: Server, seconds: int, out_dir: Path, load) -> list[Path]:
    """py-spy (if installed) on every gunicorn worker while `load()` runs; returns the flame graph files."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return []
    records = []
    for pid in server.worker_pids():
        target = out_dir / f"profile-{pid}.txt"
        records.append((subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(seconds), "--format",
                                          "raw", "--output", str(target), "--nonblocking"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), target))
    time.sleep(1)
    load()
    for process, _ in records:
        try:
            process.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            process.kill()
    return [target for _, target in records if target.exists()]


PLUMBING = re.compile(r"threading\.py|concurrent/futures|gunicorn/|flask/app\.py|wsgi\.py|server/app\.py|runpy|"
                      r"selectors\.py|endpoint\.py")


def top_frames(raw_files: list[Path], limit: int = 15) -> list[tuple[str, float]]:
    """Share of samples in which each function appears (py-spy raw, collapsed stacks), minus the request plumbing
    that every request passes (threads, gunicorn, Flask dispatch)."""
    counts: dict[str, int] = {}
    total = 0
    for path in raw_files:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, number = line.rpartition(" ")
            if not number.isdigit():
                continue
            frames = stack.split(";")
            total += int(number)
            for frame in set(frames):
                counts[frame] = counts.get(frame, 0) + int(number)
    ranked = sorted(((f, c) for f, c in counts.items() if not PLUMBING.search(f)), key=lambda kv: -kv[1])[:limit]
    return [(frame, count / total) for frame, count in ranked] if total else []


# ------------------------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, short wrk runs, no RESULTS.md")
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run (default 15)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--branches", type=int, default=1000)
    parser.add_argument("--repos", type=int, default=10000, help="repositories present for the second POST run")
    parser.add_argument("--posts", type=int, default=200, help="POST /v1/repos calls per run (default 200)")
    parser.add_argument("--upload-rounds", type=int, default=40)
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: driftstone serve's)")
    parser.add_argument("--threads", type=int, help="gunicorn threads (default: driftstone serve's)")
    parser.add_argument("--min-workers", type=int,
                        help="workers the elastic pool keeps while idle (default: driftstone serve's; = workers: all)")
    parser.add_argument("--database-url", help="e.g. postgresql+psycopg://postgres@127.0.0.1:5432/bench (empty db)")
    parser.add_argument("--profile", action="store_true", help="py-spy the workers during the branch-list load")
    parser.add_argument("--keep", action="store_true", help="keep bench/.work/api-*/ (data, logs, wrk output)")
    parser.add_argument("--output", type=Path, help="markdown file for the section (default bench/RESULTS.md)")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.branches, args.repos, args.posts, args.upload_rounds = 3, 200, 1000, 40, 8
    if not shutil.which("wrk"):
        print("wrk is not installed: run bash bench/setup.sh", file=sys.stderr)
        return 2

    from storage.settings import Settings

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    work = WORK_DIR / f"api-{stamp}"
    work.mkdir(parents=True)
    env = server_env(work / "data", args.database_url, args.min_workers)
    settings = Settings.from_env(env)
    org_id, key = make_org(settings)
    server = Server(env, work / "server.log", args.workers, args.threads)
    load_before = os.getloadavg()
    results: dict = {"args": vars(args) | {"output": str(args.output) if args.output else None}}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ok = False
    try:
        server.start()
        wrk = lambda path: run_wrk(server.url + path, key, args.duration, args.connections, args.wrk_threads)  # noqa

        print(f"server {server.url} ({' '.join(server.argv[1:])}); data in {work}", flush=True)
        # 1. POST /v1/repos on an empty server (the first calls also warm the workers up)
        create_repos_via_api(server, key, "warm", 10)
        results["post_empty"] = create_repos_via_api(server, key, "empty", args.posts)
        results["get_repo_empty"] = get_times(server, key, "/v1/repos/empty-0000", args.posts)
        results["list_repos_empty"] = get_times(server, key, "/v1/repos", args.posts)
        print(f"POST /v1/repos, empty server: p50 {ms(percentile(results['post_empty'], 50))}", flush=True)

        # 2. a repository with many branches, pushed as refs through the server
        requests.post(server.url + "/v1/repos", json={"name": "big"}, headers={"Authorization": f"Bearer {key}"},
                      timeout=60).raise_for_status()
        results["push_branches_s"] = push_many_branches(server, key, "big", args.branches, work)
        listed = requests.get(server.url + "/v1/repos/big/branches", headers={"Authorization": f"Bearer {key}"},
                              timeout=60).json()["data"]
        assert len(listed) == args.branches, len(listed)
        print(f"pushed {args.branches} branches in {results['push_branches_s']:.1f} s", flush=True)

        # 3. read throughput
        wrk("/v1/repos/big")  # warm-up pass, not reported
        results["wrk_repo"] = wrk("/v1/repos/big")
        results["wrk_branches"] = wrk("/v1/repos/big/branches")
        results["wrk_hoody_branches"] = wrk("/api/v1/workspaces/big/branches")  # the same branches, by id
        results["wrk_healthz"] = wrk("/healthz")
        results["hoody_disk_usage"] = get_times(server, key, "/api/v1/workspaces/big/branches/disk-usage", 5)
        for name in ("wrk_repo", "wrk_branches", "wrk_hoody_branches", "wrk_healthz"):
            r = results[name]
            print(f"{name}: {r['rps']:.0f} req/s, p50 {ms(r['p50'])}, p99 {ms(r['p99'])}, non-2xx {r['non2xx']}",
                  flush=True)
        if args.profile:
            raws = profile_workers(server, args.duration + 2, work, lambda: wrk("/v1/repos/big/branches"))
            results["profile_branches"] = top_frames(raws)

        # 4. uploads, when the server has them
        paths = requests.get(server.url + "/openapi.json", timeout=30).json()["paths"]
        if "/v1/repos/{repo}/uploads" in paths and "/v1/repos/{repo}/uploads/{upload}/complete" in paths:
            requests.post(server.url + "/v1/repos", json={"name": "uploads"},
                          headers={"Authorization": f"Bearer {key}"}, timeout=60).raise_for_status()
            results["uploads"] = upload_round_trips(server, key, "uploads", args.upload_rounds, 10, 16 * 1024)
            print(f"upload round trip: p50 {ms(percentile(results['uploads']['totals'], 50))}", flush=True)

        # 5. the same creates with many repositories present
        results["bulk_n"] = max(0, args.repos - 10 - count_repos(settings, org_id))
        results["bulk_s"] = bulk_create(settings, org_id, 0, results["bulk_n"], 2)
        create_repos_via_api(server, key, "warm2", 10)
        with_many = results["present_many"] = count_repos(settings, org_id)
        print(f"created {results['bulk_n']} repositories in {results['bulk_s']:.1f} s "
              f"(service layer, 2 processes); {with_many} present", flush=True)
        results["post_many"] = create_repos_via_api(server, key, "many", args.posts)
        results["get_repo_many"] = get_times(server, key, "/v1/repos/many-0000", args.posts)
        results["list_repos_many"] = get_times(server, key, "/v1/repos", args.posts)
        results["wrk_repo_many"] = wrk("/v1/repos/big")
        print(f"POST /v1/repos, {with_many} repos: p50 {ms(percentile(results['post_many'], 50))}", flush=True)
        ok = True
    finally:
        server.stop()
        results["load"] = (load_before, os.getloadavg())
        if not args.keep and ok:
            shutil.rmtree(work, ignore_errors=True)
        elif not ok:
            print(f"run failed; data and logs kept in {work}", file=sys.stderr)

    section = report(results, server, args)
    print(section)
    if not args.quick:
        output = args.output or BENCH / "RESULTS.md"
        write_section(output, "api_bench", section)
        print(f"written to {output}")
    return 0


def report(results: dict, server: Server, args) -> str:
    def row(what: str, values: list[float]) -> str:
        total = sum(values)
        return (f"| {what} | {len(values) / total:.0f} | {ms(percentile(values, 50))} | {ms(percentile(values, 99))} "
                f"| sequential, 1 client, {len(values)} calls |")

    def wrk_row(what: str, r: dict) -> str:
        note = f"wrk {args.wrk_threads} threads, {args.connections} connections, {args.duration} s, " \
               f"{r['requests']} requests, non-2xx {r['non2xx']}"
        if r["socket_errors"]:
            note += f", {r['socket_errors']}"
        return f"| {what} | {r['rps']:.0f} | {ms(r['p50'])} | {ms(r['p99'])} | {note} |"

    many = results["present_many"]
    lines = [
        "## Control API",
        "",
        f"`bench/api_bench.py`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: `driftstone serve` (gunicorn gthread, "
        f"{args.workers or 'default'} workers x {args.threads or 'default'} threads, access log on), "
        f"{'PostgreSQL' if args.database_url else 'SQLite (the default)'}, on 127.0.0.1; load generator in "
        f"separate processes on the same {os.cpu_count()} cores. Load average before/after: "
        f"{results['load'][0][0]:.1f} / {results['load'][1][0]:.1f}.",
        "",
        "| request | req/s | p50 | p99 | how |",
        "| --- | ---: | ---: | ---: | --- |",
        wrk_row("GET /v1/repos/{repo}", results["wrk_repo"]),
        wrk_row(f"GET /v1/repos/{{repo}}/branches ({args.branches} branches)", results["wrk_branches"]),
        wrk_row(f"GET /api/v1/workspaces/{{id}}/branches (hoody, the same {args.branches})",
                results["wrk_hoody_branches"]),
        row(f"GET /api/v1/workspaces/{{id}}/branches/disk-usage ({args.branches} branches)",
            results["hoody_disk_usage"]),
        wrk_row("GET /healthz (no auth, no database: the floor)", results["wrk_healthz"]),
    ]
    if "uploads" in results:
        totals = results["uploads"]["totals"]
        phases = results["uploads"]["phases"]
        lines.append(f"| 10-file upload round trip (16 KiB files) | {len(totals) / sum(totals):.1f} | "
                     f"{ms(percentile(totals, 50))} | {ms(percentile(totals, 99))} | sequential, {len(totals)} rounds; "
                     f"median create {ms(statistics.median(phases['create']))}, 10 PUTs "
                     f"{ms(statistics.median(phases['put']))}, complete {ms(statistics.median(phases['complete']))} |")
    else:
        lines.append("| 10-file upload round trip | - | - | - | the server has no upload endpoints yet |")
    lines += [
        row("POST /v1/repos, empty server", results["post_empty"]),
        row(f"POST /v1/repos, {many:,} repositories present", results["post_many"]),
        row("GET /v1/repos/{repo}, empty server", results["get_repo_empty"]),
        row(f"GET /v1/repos/{{repo}}, {many:,} repositories present", results["get_repo_many"]),
        row("GET /v1/repos (page 1 of 50), empty server", results["list_repos_empty"]),
        row(f"GET /v1/repos (page 1 of 50), {many:,} repositories present", results["list_repos_many"]),
        wrk_row(f"GET /v1/repos/{{repo}}, {many:,} repositories present", results["wrk_repo_many"]),
        "",
        f"Set-up: {args.branches} branches pushed in one `git push` through the server (every ref through the hook "
        f"pipeline) in {results['push_branches_s']:.1f} s; {results['bulk_n']:,} repositories created through "
        f"the service layer (2 processes, same data directory) in {results['bulk_s']:.1f} s. "
        f"POST p50 ratio many/empty: "
        f"{percentile(results['post_many'], 50) / percentile(results['post_empty'], 50):.2f}.",
    ]
    if results.get("profile_branches"):
        lines += ["", "py-spy on the workers, GET /v1/repos/{repo}/branches under wrk (share of samples in which a "
                  "function appears; threads, gunicorn and Flask dispatch left out):", ""]
        lines += [f"- {share:.0%} `{frame}`" for frame, share in results["profile_branches"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
