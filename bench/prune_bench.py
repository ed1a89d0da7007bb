"""What housekeeping's repack costs now that it drops unreachable objects, against the repack it replaced.

    .venv/bin/python bench/prune_bench.py [--runs 3] [--orphans 2000] [--pins 500] [--output FILE]
    .venv/bin/python bench/prune_bench.py --quick     # the small generated repository, 1 run, print only

On a copy of the generated repository (bench/gen_repo.py, 200+ MiB packed, long history): `main` moved back by
the generator's increment (a force-push: those commits reachable from nothing), and `--orphans` blobs reachable
from nothing (overlay files of abandoned workspaces, ~1 KiB to 64 KiB each), `--pins` of which the database
would still name. Each variant runs on its own fresh copy, median of `--runs`:

- `repack -k`: the repack before this change (`git repack -a -d -k -l --write-bitmap-index`): keeps everything;
- prune, nothing expired: `storage.git_prune.repack_and_prune` on objects written just now (what a repack
  triggered by many pushes usually meets: the cruft pack is written, nothing dropped);
- prune, all expired: the same with every object file back-dated by 30 days (the orphans not pinned go).

Writes the section "prune_bench" of bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_repo import QUICK, Params, ensure_repo  # noqa: E402
from results_md import RESULTS, load_average, write_section  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from storage.git_prune import repack_and_prune  # noqa: E402

GRACE = 14 * 24 * 3600


def git(repo: Path, *args: str, input: bytes | None = None) -> str:
    return subprocess.run(["git", *args], cwd=repo, input=input, capture_output=True,
                          check=True).stdout.decode().strip()


def prepare(source: Path, meta: dict, orphans: int, pins: int, target: Path) -> list[str]:
    """The repository with history and blobs no ref reaches; returns the ids the database would name."""
    shutil.copytree(source, target)
    git(target, "update-ref", "refs/heads/main", meta["base"])
    rng = random.Random(7)
    contents = [rng.randbytes(rng.randint(512, 32 * 1024)).hex().encode() for _ in range(orphans)]
    ids = git(target, "hash-object", "-w", "--stdin-paths", "--no-filters",
              input=b"".join(_scratch_files(target, contents))).split()
    return ids[:pins]


def _scratch_files(repo: Path, contents: list[bytes]) -> list[bytes]:
    scratch = repo / "bench-orphans"
    scratch.mkdir()
    paths = []
    for n, content in enumerate(contents):
        path = scratch / f"{n}.txt"
        path.write_bytes(content)
        paths.append(f"{path}\n".encode())
    return paths


def age(repo: Path, days: int) -> None:
    moment = time.time() - days * 24 * 3600
    for path in (repo / "objects").rglob("*"):
        if path.is_file():
            os.utime(path, (moment, moment))


def objects_mib(repo: Path) -> float:
    return sum(p.stat().st_size for p in (repo / "objects").rglob("*") if p.is_file()) / 2**20


def run_variant(prepared: Path, pinned: list[str], variant: str, scratch: Path) -> tuple[float, float]:
    copy = scratch / "run.git"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(prepared, copy)
    if variant == "expired":
        age(copy, 30)
    start = time.perf_counter()
    if variant == "keep":
        git(copy, "repack", "-a", "-d", "-k", "-l", "-q", "--write-bitmap-index")
    else:
        repack_and_prune(copy, lambda: pinned, GRACE)
    seconds = time.perf_counter() - start
    missing = git(copy, "cat-file", "--batch-check", input="".join(f"{sha}\n" for sha in pinned).encode())
    if "missing" in missing:
        raise RuntimeError("a pinned object was dropped")
    return seconds, objects_mib(copy)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--orphans", type=int, default=2000)
    parser.add_argument("--pins", type=int, default=500)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    source, meta = ensure_repo(QUICK if args.quick else Params())
    runs = 1 if args.quick else args.runs
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="prune-bench-") as scratch_name:
        scratch = Path(scratch_name)
        prepared = scratch / "prepared.git"
        pinned = prepare(source / "full.git", meta, args.orphans, args.pins, prepared)
        shutil.rmtree(prepared / "bench-orphans")
        before = objects_mib(prepared)
        rows = {}
        for variant in ("keep", "fresh", "expired"):
            results = [run_variant(prepared, pinned, variant, scratch) for _ in range(runs)]
            rows[variant] = (statistics.median(r[0] for r in results), results[-1][1])
    labels = {"keep": "`repack -a -d -k` (before)", "fresh": "cruft repack + prune, nothing expired",
              "expired": "cruft repack + prune, all 30 days old"}
    keep_seconds = rows["keep"][0]
    lines = [
        "## Housekeeping's repack, pruning (`bench/prune_bench.py`)", "",
        f"`.venv/bin/python bench/prune_bench.py --runs {runs} --orphans {args.orphans} --pins {args.pins}`"
        f" — the generated repository ({meta['commits_total']} commits, {meta['packed_bytes'] / 2**20:.0f} MiB"
        f" packed) with `main` moved back {meta['commits_increment']} commits and {args.orphans} unreachable"
        f" blobs, {args.pins} of them named by the database; each variant on a fresh copy, median of the runs.", "",
        "| repack | seconds | vs before | objects on disk after (MiB) |", "| --- | ---: | ---: | ---: |",
        *(f"| {labels[v]} | {rows[v][0]:.2f} | {rows[v][0] / keep_seconds:.2f}x | {rows[v][1]:.1f} |"
          for v in rows),
        "", f"Objects on disk before: {before:.1f} MiB. Load average before / after: {load_before} /"
        f" {load_average()}.",
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.quick:
        write_section(args.output, "prune_bench", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
