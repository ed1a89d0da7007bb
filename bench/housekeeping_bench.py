"""What housekeeping saves: clone and fetch of a repository that many pushes left in many packs.

    .venv/bin/python bench/housekeeping_bench.py [--pushes 300] [--runs 7] [--output FILE]
    .venv/bin/python bench/housekeeping_bench.py --quick     # 40 pushes, 3 runs, print only

One `driftstone serve` with its housekeeping limits raised out of reach, one repository, then `--pushes`
pushes over HTTP, each a commit changing 110 files (so receive-pack keeps each push as a pack of its own,
as it does for agents' pushes of 100 objects or more). Then, through the server, median of `--runs`:
`git clone --bare` and an incremental fetch of the last 5 commits; then the housekeeping job's repack
(`storage.housekeeping.housekeep`, timed) and the same measurements again. Writes the section
"housekeeping_bench" of bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_servers import ROOT, Driftstone, plain_git  # noqa: E402
from results_md import RESULTS, load_average, write_section  # noqa: E402

sys.path.insert(0, str(ROOT))
from storage.housekeeping import HousekeepingLimits, count_packs, housekeep  # noqa: E402

WORK = Path(__file__).resolve().parent / ".work"
REPO = "housekeeping"
FILES = 110
FETCH_BEHIND = 5


def timed(*args: str, cwd: Path | None = None) -> float:
    start = time.perf_counter()
    plain_git(*args, cwd=cwd)
    return time.perf_counter() - start


def disk_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in (path / "objects").rglob("*") if p.is_file()) / 2**20


def push_rounds(server: Driftstone, scratch: Path, pushes: int) -> Path:
    work = scratch / "pusher"
    plain_git("init", "-q", "-b", "main", str(work))
    for round_ in range(pushes):
        for i in range(FILES):
            (work / f"dir{i % 10}" / f"file{i}.txt").parent.mkdir(exist_ok=True)
            (work / f"dir{i % 10}" / f"file{i}.txt").write_text(f"round {round_} file {i}\n" * 20)
        plain_git("add", "-A", cwd=work)
        plain_git("-c", "user.name=bench", "-c", "user.email=b@e", "commit", "-q", "-m", f"round {round_}", cwd=work)
        plain_git("push", "-q", server.url(REPO), "main", cwd=work)
    return work


def measure(server: Driftstone, scratch: Path, runs: int) -> dict[str, list[float]]:
    result: dict[str, list[float]] = {"clone": [], "fetch": []}
    for run in range(runs + 1):  # the first round warms the page cache and is not counted
        target = scratch / f"clone-{run}"
        clone = timed("clone", "-q", "--bare", server.url(REPO), str(target))
        shutil.rmtree(target)
        behind = scratch / f"behind-{run}"
        plain_git("clone", "-q", "--bare", server.url(REPO), str(behind))
        plain_git("update-ref", "refs/heads/main", f"main~{FETCH_BEHIND}", cwd=behind)
        plain_git("-c", "gc.auto=0", "repack", "-a", "-d", "-q", cwd=behind)
        fetch = timed("fetch", "-q", server.url(REPO), "main:main", cwd=behind)
        shutil.rmtree(behind)
        if run:
            result["clone"].append(clone)
            result["fetch"].append(fetch)
    return result


def render(args, before, after, state, repack_s, load) -> str:
    def row(what: str, key: str) -> str:
        b, a = statistics.median(before[key]), statistics.median(after[key])
        return f"| {what} | {b * 1000:,.0f} ms | {a * 1000:,.0f} ms | {b / a:.2f}x |"

    return "\n".join([
        "## Housekeeping (`bench/housekeeping_bench.py`)",
        "",
        f"`.venv/bin/python bench/housekeeping_bench.py --pushes {args.pushes} --runs {args.runs}` — "
        f"{args.pushes} pushes over HTTP, each a commit changing {FILES} files; then, through the server, "
        f"median of {args.runs} runs after a warm-up, before and after the housekeeping job's repack.",
        "",
        f"| | {state['packs_before']} packs | 1 pack + bitmap | speed-up |",
        "| --- | ---: | ---: | ---: |",
        row("`git clone --bare`", "clone"),
        row(f"incremental fetch ({FETCH_BEHIND} commits)", "fetch"),
        "",
        f"Repack: {repack_s:.2f} s; objects on disk {state['disk_before']:.1f} -> {state['disk_after']:.1f} MiB. "
        f"Load average before / after: {load[0]} / {load[1]}.",
        "",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pushes", type=int, default=300)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.pushes, args.runs = 40, 3
    WORK.mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="housekeeping-", dir=WORK))
    server = Driftstone(scratch)
    server.env["DRIFTSTONE_HOUSEKEEPING_MAX_PACKS"] = str(10**9)  # the server must not repack on its own
    server.env["DRIFTSTONE_HOUSEKEEPING_MAX_LOOSE_OBJECTS"] = str(10**9)
    server.start()
    try:
        path = server.create_repo(REPO)
        push_rounds(server, scratch, args.pushes)
        load_before = load_average()
        state = {"packs_before": count_packs(path), "disk_before": disk_mib(path)}
        before = measure(server, scratch, args.runs)
        start = time.perf_counter()
        if not housekeep(path, HousekeepingLimits(max_packs=1)):
            raise RuntimeError("housekeeping did not run")
        repack_s = time.perf_counter() - start
        state["disk_after"] = disk_mib(path)
        subprocess.run(["git", "fsck", "--no-progress", "--no-dangling"], cwd=path, check=True, capture_output=True)
        after = measure(server, scratch, args.runs)
        section = render(args, before, after, state, repack_s, (load_before, load_average()))
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(section)
    if not args.quick:
        write_section(args.output, "housekeeping_bench", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
