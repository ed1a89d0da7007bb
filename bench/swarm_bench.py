#!/usr/bin/env python3
"""A swarm of agents cloning one new state at once: --agents `git clone --bare` started together against
Driftstone and against `git http-backend` behind lighttpd, in the same run, on the generated repository of
bench/gen_repo.py (200+ MiB packed).

Each round is the first time the servers are asked for that state: Driftstone's pack cache for the repository is
emptied before it (its tallies too, so the first clone of the state runs its own pack-objects and keeps nothing, as
by default). Figures per server (median over --runs rounds; the servers' order alternates): the swarm's wall time
(the first clone's start to the last one's end), each clone's time (p50, max), the server tree's CPU time and its
peak RSS during the timed rounds, and the peak PSS (pages shared by processes divided among them: what the tree
really holds) in one more, untimed round, since reading PSS costs the kernel a page-table walk per process.

  bash bench/setup.sh                            # lighttpd (Debian) if missing
  .venv/bin/python bench/swarm_bench.py          # 16 agents, 3 rounds; writes bench/RESULTS.md
  .venv/bin/python bench/swarm_bench.py --quick  # small repository, 4 agents, 1 round, writes bench/.work/
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_memory import PeakSampler  # noqa: E402
from bench_servers import Driftstone, HttpBackend  # noqa: E402
from gen_repo import QUICK, WORK_DIR, Params, ensure_repo  # noqa: E402
from git_bench import Client, export_revision, machine_info, rev, served_code  # noqa: E402
from results_md import load_average, write_section  # noqa: E402

REPO = "swarm"


def run_swarm(target, git: Client, agents: int, scratch: Path, tip: str, pss: bool = False) -> dict:
    """`agents` clones started at once; their times, the swarm's wall time and the server tree's peaks."""
    if hasattr(target, "forget_kept_packs"):
        target.forget_kept_packs(REPO)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    start = threading.Barrier(agents + 1)
    times: list[float] = [0.0] * agents
    errors: list[str] = []

    def clone(i: int) -> None:
        start.wait()
        began = time.perf_counter()
        try:
            git("clone", "--bare", "--quiet", target.url(REPO), str(scratch / f"c{i}"))
        except Exception as error:  # every clone must land: a failure fails the run
            errors.append(str(error)[-500:])
        times[i] = time.perf_counter() - began

    threads = [threading.Thread(target=clone, args=(i,)) for i in range(agents)]
    for thread in threads:
        thread.start()
    with PeakSampler(target.pid, pss=pss) as peak:
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} of {agents} clones against {target.name} failed: {errors[0]}")
    for i in range(agents):
        if rev(scratch / f"c{i}", "refs/heads/main") != tip:
            raise RuntimeError(f"clone {i} against {target.name} did not get main at {tip}")
    shutil.rmtree(scratch)
    return {"wall": wall, "times": times, "cpu": peak.cpu_seconds, "rss": peak.peak_bytes,
            "pss": peak.peak_pss_bytes, "processes": peak.max_processes}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, help="clones at once (default 16; 4 with --quick)")
    parser.add_argument("--runs", type=int, help="timed rounds per server (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small repository")
    parser.add_argument("--driftstone-rev", metavar="REV",
                        help="serve the project at this git revision (exported with git archive)")
    parser.add_argument("--output", type=Path, help="markdown report (default bench/RESULTS.md; "
                                                    "bench/.work/RESULTS-quick.md with --quick)")
    args = parser.parse_args(argv)
    args.agents = args.agents or (4 if args.quick else 16)
    args.runs = args.runs or (1 if args.quick else 3)
    args.output = args.output or (WORK_DIR / "RESULTS-quick.md" if args.quick else BENCH / "RESULTS.md")
    if min(args.agents, args.runs) < 1:
        parser.error("counts must be positive")
    return args


def render(args, meta: dict, results: dict[str, list[dict]], memory: dict[str, dict], code: str,
           loads: tuple[str, str]) -> str:
    mib = 2**20
    drift, ref = Driftstone.name, HttpBackend.name

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    def clone_times(name: str) -> list[float]:
        return sorted(t for r in results[name] for t in r["times"])

    rows = []
    for label, get, unit in (
        ("swarm wall time (first start to last end)", lambda n: median(n, "wall"), "s"),
        ("one clone, p50", lambda n: statistics.median(clone_times(n)), "s"),
        ("one clone, slowest", lambda n: clone_times(n)[-1], "s"),
        ("server CPU time", lambda n: median(n, "cpu"), "s"),
        ("server peak RSS (timed rounds)", lambda n: max(r["rss"] for r in results[n]) / mib, "MiB"),
        ("server peak PSS (untimed round)", lambda n: memory[n]["pss"] / mib, "MiB"),
        ("server processes at most", lambda n: max(r["processes"] for r in results[n]), ""),
    ):
        d, r = get(drift), get(ref)
        fmt = (lambda v: f"{v:.2f} {unit}") if unit == "s" else ((lambda v: f"{v:.0f} {unit}") if unit else str)
        rows.append(f"| {label} | {fmt(r)} | {fmt(d)} | {d / r:.2f}x |" if r else f"| {label} | {fmt(r)} | {fmt(d)} | |")
    return "\n".join([
        "## Clone swarm (`bench/swarm_bench.py`)",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M')} UTC",
        f"- machine: {machine_info()}",
        f"- Driftstone: {code}",
        f"- repository: {meta['packed_bytes'] / mib:.0f} MiB packed, {meta['commits_total']} commits, "
        f"{meta['objects']} objects",
        f"- {args.agents} agents cloning at once (`git clone --bare`), {args.runs} timed rounds per server "
        "(median), servers alternating; a new state each round (Driftstone's pack cache emptied)",
        f"- load average (1, 5, 15 min) before / after: {loads[0]} / {loads[1]}",
        f"- command: `python bench/swarm_bench.py --agents {args.agents} --runs {args.runs}`",
        "",
        "| figure | git http-backend | Driftstone | Driftstone / http-backend |",
        "| --- | ---: | ---: | ---: |",
        *rows,
        "",
        "git http-backend runs one `git pack-objects` per clone; Driftstone runs one for the first clone of the state "
        "(its pack is not kept: `DRIFTSTONE_PACK_CACHE_MIN_OCCURRENCES`, default 1) and one for the second, whose pack "
        "every clone arriving meanwhile is sent as it is written (server/pack_cache.py). RSS counts the pack that "
        "each pack-objects maps once per process; PSS divides it among them, and those pages are one file's page "
        "cache either way: what the shared run saves is pack-objects' CPU and its own allocations (small on this "
        "repository, whose single pack git sends mostly as it is; a repository of many packs or loose objects, "
        "as between repacks, makes pack-objects compute deltas for every clone). On 2 cores the swarm's wall time is "
        "the 16 clients' own work (index-pack) as much as the server's.",
    ])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    params = QUICK if args.quick else Params()
    repo_dir, meta = ensure_repo(params)
    full, tip = repo_dir / "full.git", meta["tip"]
    work = WORK_DIR / f"swarm-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    work.mkdir(parents=True)
    source, sha = export_revision(args.driftstone_rev) if args.driftstone_rev else (None, None)
    code = served_code(args.driftstone_rev, sha)
    git = Client(work / "home")
    loads = [load_average()]
    targets = []
    try:
        drift = Driftstone(work, source=source)
        targets.append(drift)
        drift.start()
        template = work / "repo-config"
        drift.create_repo(REPO)
        shutil.copyfile(drift.repo_path(REPO) / "config", template)
        ref = HttpBackend(work, template)
        targets.append(ref)
        ref.start()
        ref.create_repo(REPO)
        for target in targets:
            target.populate(REPO, full, tip)
        results: dict[str, list[dict]] = {t.name: [] for t in targets}
        for i in range(args.runs + 1):  # round 0 warms the page cache and code paths; not recorded
            for target in (targets if i % 2 == 0 else targets[::-1]):
                result = run_swarm(target, git, args.agents, work / "scratch", tip)
                label = "warm-up" if i == 0 else f"run {i}/{args.runs}"
                print(f"  {label:9} {target.name:17} wall {result['wall']:6.2f} s, p50 "
                      f"{statistics.median(result['times']):6.2f} s, cpu {result['cpu']:6.1f} s, "
                      f"peak RSS {result['rss'] / 2**20:6.0f} MiB, {result['processes']} processes", flush=True)
                if i:
                    results[target.name].append(result)
        memory = {}
        for target in targets:
            memory[target.name] = run_swarm(target, git, args.agents, work / "scratch", tip, pss=True)
            print(f"  memory    {target.name:17} peak PSS {memory[target.name]['pss'] / 2**20:6.0f} MiB", flush=True)
    finally:
        for target in reversed(targets):
            try:
                target.stop()
            except Exception as error:
                print(f"warning: stopping {target.name}: {error}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    loads.append(load_average())
    section = render(args, meta, results, memory, code, (loads[0], loads[1]))
    print(section)
    write_section(args.output, "swarm_bench", section)
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
