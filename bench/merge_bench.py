#!/usr/bin/env python3
"""How long a merge dry run takes on a 5,000-file repository: storage.git_merge in-process (what
POST /v1/repos/{repo}/merges with dry_run computes), next to `git merge-tree --write-tree` (C git, same merge
algorithm) for reference, and optionally the whole HTTP request on a real server (--api).

The repository is generated deterministically with `git fast-import`: 5,000 text files (~40 lines each) in 100
directories, one base commit, then pairs of branches:

  typical   each side edits 20 files (5 of them on both sides, different lines), one side renames 3 files the
            other side edits, each side adds 5 files                                            -> clean
  conflict  typical plus 3 files both sides edit on the same lines                              -> 3 conflicts
  wide      each side edits 500 files (100 of them on both sides, different lines)              -> clean
  rebase    a 10-commit branch replayed onto a target that moved (strategy rebase, dry run)     -> clean

Every run starts from a fresh in-memory overlay (no merge state reused); the OS page cache is warm.

  python bench/merge_bench.py              # prints a table; --runs N (default 7), --api, --files N
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dulwich.repo import Repo  # noqa: E402

from storage.git_merge import merge_commits  # noqa: E402
from storage.git_objects import Identity  # noqa: E402
from storage.merge_strategies import plan_merge  # noqa: E402

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
         "upsilon phi chi psi omega").split()


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent", "XDG_CONFIG_HOME": "/nonexistent"})
    return env


def file_text(rng: random.Random, n: int) -> list[str]:
    return [f"{i:03d} {' '.join(rng.choice(WORDS) for _ in range(6))}" for i in range(n)]


class FastImport:
    """A tiny `git fast-import` writer: commits with full-content file modifications."""

    def __init__(self, repo: Path):
        self.process = subprocess.Popen(["git", "-C", str(repo), "fast-import", "--quiet"], stdin=subprocess.PIPE,
                                        env=git_env())
        self.mark = 0
        self.when = 1_700_000_000

    def commit(self, branch: str, parents: list[str], changes: dict[str, list[str] | None], message: str) -> str:
        self.mark += 1
        self.when += 60
        out = [f"commit refs/heads/{branch}", f"mark :{self.mark}",
               f"author Bench <bench@example.test> {self.when} +0000",
               f"committer Bench <bench@example.test> {self.when} +0000",
               f"data {len(message.encode())}", message]
        if parents:
            out.append(f"from {parents[0]}")
            out += [f"merge {p}" for p in parents[1:]]
        body = "\n".join(out) + "\n"
        chunks = [body.encode()]
        for path, lines in changes.items():
            if lines is None:
                chunks.append(f"D {path}\n".encode())
                continue
            data = ("\n".join(lines) + "\n").encode()
            chunks.append(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
        self.process.stdin.write(b"".join(chunks) + b"\n")
        return f":{self.mark}"

    def close(self) -> None:
        self.process.stdin.close()
        if self.process.wait() != 0:
            raise RuntimeError("git fast-import failed")


def edit_lines(rng: random.Random, lines: list[str], region: tuple[int, int], tag: str) -> list[str]:
    out = list(lines)
    for i in rng.sample(range(*region), 3):
        out[i] = f"{out[i]} [{tag}]"
    return out


def build(repo: Path, n_files: int, seed: int = 5000) -> dict[str, tuple[str, str]]:
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True, env=git_env())
    rng = random.Random(seed)
    dirs = [f"pkg{d:02d}/mod{d % 7}" for d in range(100)]
    paths = [f"{dirs[i % len(dirs)]}/file{i:05d}.txt" for i in range(n_files)]
    base = {p: file_text(rng, 40) for p in paths}
    fi = FastImport(repo)
    base_mark = fi.commit("base", [], base, "base")

    def side_changes(own: list[str], shared: list[str], renames: dict[str, str], adds: int, region, tag,
                     conflicts: list[str] = ()) -> dict:
        changes: dict = {}
        for p in own:
            changes[p] = edit_lines(rng, base[p], (0, 40), tag)
        for p in shared:
            changes[p] = edit_lines(rng, base[p], region, tag)
        for p in conflicts:
            changes[p] = [f"{line} [{tag} conflict]" if i < 3 else line for i, line in enumerate(base[p])]
        for old, new in renames.items():
            changes[old] = None
            changes[new] = base[old]
        for i in range(adds):
            changes[f"new/{tag}/added{i}.txt"] = file_text(rng, 20)
        return changes

    pool = list(paths)
    rng.shuffle(pool)
    heads: dict[str, tuple[str, str]] = {}

    def pair(name: str, own: int, shared: int, renames: int, adds: int, conflicts: int) -> None:
        picks = [pool.pop() for _ in range(2 * own + shared + renames + conflicts)]
        ours_own, picks = picks[:own], picks[own:]
        theirs_own, picks = picks[:own], picks[own:]
        both, picks = picks[:shared], picks[shared:]
        renamed, picks = picks[:renames], picks[renames:]
        conflicted = picks[:conflicts]
        ours = side_changes(ours_own, both, {p: p.replace("/file", "/renamed") for p in renamed}, adds, (0, 15),
                            f"{name}-ours", conflicted)
        theirs = side_changes(theirs_own + renamed, both, {}, adds, (25, 40), f"{name}-theirs", conflicted)
        fi.commit(f"{name}-ours", [base_mark], ours, f"{name}: ours")
        fi.commit(f"{name}-theirs", [base_mark], theirs, f"{name}: theirs")
        heads[name] = (f"{name}-ours", f"{name}-theirs")

    pair("typical", 20, 5, 3, 5, 0)
    pair("conflict", 20, 5, 3, 5, 3)
    pair("wide", 400, 100, 0, 0, 0)
    # rebase: a 10-commit source branch; the target moved by one commit
    fi.commit("rebase-target", [base_mark], {pool.pop(): file_text(rng, 40)}, "target moves")
    parent = base_mark
    for i in range(10):
        p = pool.pop()
        parent = fi.commit("rebase-source", [parent], {p: edit_lines(rng, base[p], (0, 40), f"r{i}")}, f"step {i}")
    heads["rebase"] = ("rebase-target", "rebase-source")
    fi.close()
    subprocess.run(["git", "-C", str(repo), "repack", "-adq"], check=True, env=git_env())
    return heads


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--api", action="store_true", help="also time POST /v1/repos/{repo}/merges on a server")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="merge-bench-"))
    try:
        repo_path = work / "repo.git"
        started = time.perf_counter()
        heads = build(repo_path, args.files)
        build_time = time.perf_counter() - started
        repo = Repo(str(repo_path))
        rows = []
        for name, (ours_ref, theirs_ref) in heads.items():
            ours = repo.refs[f"refs/heads/{ours_ref}".encode()].decode()
            theirs = repo.refs[f"refs/heads/{theirs_ref}".encode()].decode()
            if name == "rebase":
                def ours_fn(o=ours, t=theirs):
                    return plan_merge(Repo(str(repo_path)).object_store, o, t, "rebase", target_name="target",
                                      source_name="source", committer=Identity("b", "b@x"))
                plan = ours_fn()
                outcome = f"clean, {len(plan.new_commits)} commits replayed"
            else:
                def ours_fn(o=ours, t=theirs):
                    return merge_commits(Repo(str(repo_path)).object_store, o, t, ours_ref, theirs_ref)
                result = ours_fn()
                git = subprocess.run(["git", "-C", str(repo_path), "merge-tree", "--write-tree", "--name-only",
                                      ours_ref, theirs_ref], capture_output=True, env=git_env())
                git_tree = git.stdout.decode().split("\n")[0]
                assert git_tree == result.tree and (git.returncode == 0) == result.clean, name
                outcome = "clean" if result.clean else f"{len(result.conflicts)} conflicts"
            ours_times = timed(ours_fn, args.runs)
            git_times = []
            if name != "rebase":
                git_times = timed(lambda o=ours_ref, t=theirs_ref: subprocess.run(
                    ["git", "-C", str(repo_path), "merge-tree", "--write-tree", o, t], capture_output=True,
                    env=git_env()), args.runs)
            rows.append({"case": name, "outcome": outcome, "ours_median_ms": statistics.median(ours_times) * 1000,
                         "ours_min_ms": min(ours_times) * 1000,
                         "git_median_ms": statistics.median(git_times) * 1000 if git_times else None})
        api_row = api_bench(repo_path, heads, args.runs) if args.api else None
        report = {"files": args.files, "runs": args.runs, "build_s": round(build_time, 1), "rows": rows,
                  "api": api_row, "python": sys.version.split()[0],
                  "git": subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()}
        if args.json:
            print(json.dumps(report, indent=2))
            return
        print(f"{args.files} files, {args.runs} runs each (repo built in {build_time:.1f}s); {report['git']}")
        print(f"{'case':10} {'outcome':28} {'in-process median':>18} {'min':>8} {'git merge-tree':>15}")
        for row in rows:
            git_ms = f"{row['git_median_ms']:.0f} ms" if row["git_median_ms"] is not None else "-"
            print(f"{row['case']:10} {row['outcome']:28} {row['ours_median_ms']:15.0f} ms "
                  f"{row['ours_min_ms']:5.0f} ms {git_ms:>15}")
        if api_row:
            print(f"HTTP POST /merges dry_run (typical): median {api_row['median_ms']:.0f} ms, "
                  f"min {api_row['min_ms']:.0f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def api_bench(repo_path: Path, heads: dict, runs: int) -> dict:
    """The whole request on a real gunicorn server: auth, DB, merge dry run, JSON."""
    import requests

    from tests.support import start_server

    server = start_server(Path(tempfile.mkdtemp(prefix="merge-bench-server-")) / "data")
    try:
        tenant = server.tenant()
        slug = tenant.repo("merge-bench")
        ours_ref, theirs_ref = heads["typical"]
        subprocess.run(["git", "-C", str(repo_path), "push", "-q", tenant.url(slug), f"{ours_ref}:refs/heads/main",
                        f"{theirs_ref}:refs/heads/{theirs_ref}"], check=True, env=git_env())
        url = f"{server.url}/v1/repos/{slug}/merges"
        headers = {"Authorization": f"Bearer {tenant.keys['agent']}"}
        body = {"source": theirs_ref, "dry_run": True}

        def call():
            response = requests.post(url, json=body, headers=headers, timeout=120)
            assert response.status_code == 200 and response.json()["data"]["success"], response.text

        call()
        times = timed(call, runs)
        return {"median_ms": statistics.median(times) * 1000, "min_ms": min(times) * 1000}
    finally:
        server.stop()


if __name__ == "__main__":
    main()
