"""What housekeeping saves: a repository that many pushes left in many packs and many loose branches.

    .venv/bin/python bench/housekeeping_bench.py [--pushes 300] [--branches 5000] [--runs 7] [--output FILE]
    .venv/bin/python bench/housekeeping_bench.py --quick     # 40 pushes, 500 branches, 3 runs, print only

One `driftstone serve` with its housekeeping limits raised out of reach, one repository, then `--pushes`
pushes over HTTP, each a commit changing 110 files (so receive-pack keeps each push as a pack of its own,
as it does for agents' pushes of 100 objects or more), and `--branches` branches (`agent-N/task`, written
as loose refs with `git update-ref`, as pushes leave them). Then, through the server, median of `--runs`:
`git ls-remote`, `git clone --bare` and an incremental fetch of the last 5 commits; then the housekeeping
job (`storage.housekeeping.housekeep`: repack and pack-refs, timed) and the same measurements again. Writes
the section "housekeeping_bench" of bench/RESULTS.md.
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
from storage.housekeeping import HousekeepingLimits, count_packs, housekeep, note_ref_updates  # noqa: E402

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


def add_branches(path: Path, count: int) -> None:
    head = plain_git("rev-parse", "main", cwd=path)
    commands = "".join(f"create refs/heads/agent-{i}/task {head}\n" for i in range(count))
    subprocess.run(["git", "update-ref", "--stdin"], cwd=path, input=commands.encode(), check=True)
    note_ref_updates(path, count)


def measure(server: Driftstone, scratch: Path, runs: int) -> dict[str, list[float]]:
    result: dict[str, list[float]] = {"ls-remote": [], "clone": [], "fetch": []}
    for run in range(runs + 1):  # the first round warms the page cache and is not counted
        ls_remote = timed("ls-remote", server.url(REPO))
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
            result["ls-remote"].append(ls_remote)
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
        f"`.venv/bin/python bench/housekeeping_bench.py --pushes {args.pushes} --branches {args.branches} "
        f"--runs {args.runs}` — "
        f"{args.pushes} pushes over HTTP, each a commit changing {FILES} files, and {args.branches:,} loose "
        f"branches; then, through the server, median of {args.runs} runs after a warm-up, before and after the "
        "housekeeping job (repack, pack-refs).",
        "",
        f"| | {state['packs_before']} packs, {state['loose_refs_before']:,} loose refs | 1 pack + bitmap, "
        "packed refs | speed-up |",
        "| --- | ---: | ---: | ---: |",
        row("`git ls-remote`", "ls-remote"),
        row("`git clone --bare`", "clone"),
        row(f"incremental fetch ({FETCH_BEHIND} commits)", "fetch"),
        "",
        f"Housekeeping job: {repack_s:.2f} s; objects on disk {state['disk_before']:.1f} -> {state['disk_after']:.1f} MiB. "
        f"Load average before / after: {load[0]} / {load[1]}.",
        "",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pushes", type=int, default=300)
    parser.add_argument("--branches", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.pushes, args.branches, args.runs = 40, 500, 3
    WORK.mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="housekeeping-", dir=WORK))
    server = Driftstone(scratch)
    server.env["DRIFTSTONE_HOUSEKEEPING_MAX_PACKS"] = str(10**9)  # the server must not repack on its own
    server.env["DRIFTSTONE_HOUSEKEEPING_MAX_LOOSE_OBJECTS"] = str(10**9)
    server.env["DRIFTSTONE_HOUSEKEEPING_MAX_REF_UPDATES"] = str(10**9)
    server.start()
    try:
        path = server.create_repo(REPO)
        push_rounds(server, scratch, args.pushes)
        add_branches(path, args.branches)
        load_before = load_average()
        state = {"packs_before": count_packs(path), "disk_before": disk_mib(path),
                 "loose_refs_before": sum(1 for p in (path / "refs").rglob("*") if p.is_file())}
        before = measure(server, scratch, args.runs)
        start = time.perf_counter()
        if not housekeep(path, HousekeepingLimits(max_packs=1, max_ref_updates=1), lambda: ()):
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
