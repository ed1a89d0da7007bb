#!/usr/bin/env python3
"""Generate (once, deterministically) the big repository the git benchmark serves.

The history is written through `git fast-import` and then repacked the way a server keeps a repository
(one pack, real deltas, a reachability bitmap):

- thousands of commits of source-like text (a few files changed per commit, new files now and then,
  a small side branch merged back every so often), so clone and fetch have a long history to walk;
- some binary assets (mostly incompressible, a few regenerated later), which bring the pack past the
  size floor (200 MiB by default).

The result is cached under bench/.work/repo-<key>/ (gitignored), keyed by the parameters and the
generator version, with:

  full.git   refs/heads/main = the tip
  base.git   refs/heads/main = the tip minus the last --increment first-parent commits, only the objects
             reachable from it (the state a client or server has before an incremental fetch / push)
  meta.json  tip and base ids, commit and object counts, pack sizes

Same parameters and same git: same commit ids. Usage:

  python bench/gen_repo.py                 # the default (>= 200 MiB packed), prints the cache directory
  python bench/gen_repo.py --quick         # a small repository for a smoke run
  python bench/gen_repo.py --force         # regenerate even if cached
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

GENERATOR_VERSION = 4
BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / ".work"
EPOCH = 1_600_000_000
MiB = 1024 * 1024


@dataclass(frozen=True)
class Params:
    commits: int = 8000          # first-parent commits on main (side-branch commits come on top)
    initial_files: int = 2400    # text files in the first commit
    binary_mb: int = 205         # MiB of binary assets written over the history
    increment: int = 40          # last first-parent commits that make the incremental fetch / push
    min_packed_mb: int = 200     # refuse a result whose pack is smaller than this many MiB
    seed: int = 20240601

    def key(self) -> str:
        raw = json.dumps({"v": GENERATOR_VERSION, **asdict(self)}, sort_keys=True).encode()
        return hashlib.sha256(raw).hexdigest()[:12]


QUICK = Params(commits=300, initial_files=200, binary_mb=12, increment=20, min_packed_mb=10)

# ---------------------------------------------------------------------------------------------------
# Source-like text


class TextMaker:
    """Lines that look like code: identifiers from a fixed vocabulary, a few shapes of statement."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        syllables = ["ab", "ac", "al", "an", "ar", "ba", "be", "co", "da", "de", "el", "en", "er", "fa", "fi",
                     "ga", "ha", "in", "is", "ka", "la", "le", "li", "lo", "ma", "me", "mi", "mo", "na", "ne",
                     "no", "or", "pa", "pe", "po", "ra", "re", "ri", "ro", "sa", "se", "si", "so", "ta", "te",
                     "ti", "to", "un", "va", "ve", "wa", "xe", "yo", "za"]
        words = set()
        while len(words) < 1800:
            words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
        self.words = sorted(words)
        self.types = ["int", "str", "bytes", "float", "list", "dict", "Path", "Node", "Config", "Result"]

    def ident(self) -> str:
        rng = self.rng
        if rng.random() < 0.5:
            return rng.choice(self.words)
        return f"{rng.choice(self.words)}_{rng.choice(self.words)}"

    def line(self, indent: int) -> str:
        rng, pad = self.rng, "    " * indent
        kind = rng.random()
        if kind < 0.30:
            return f"{pad}{self.ident()} = {self.ident()}({self.ident()}, {rng.randint(0, 4096)})"
        if kind < 0.45:
            return f"{pad}if {self.ident()} {rng.choice(['<', '>', '==', '!=', 'is not'])} {self.ident()}:"
        if kind < 0.58:
            return f"{pad}return {self.ident()}.{self.ident()}({self.ident()})"
        if kind < 0.70:
            words = " ".join(rng.choice(self.words) for _ in range(rng.randint(4, 12)))
            return f"{pad}# {words}"
        if kind < 0.80:
            return f"{pad}for {self.ident()} in {self.ident()}.{self.ident()}():"
        if kind < 0.90:
            return f"{pad}self.{self.ident()}: {rng.choice(self.types)} = {self.ident()}"
        return ""

    def block(self, count: int) -> list[str]:
        rng = self.rng
        lines = [f"def {self.ident()}({self.ident()}: {rng.choice(self.types)}, {self.ident()}=None):"]
        indent = 1
        for _ in range(count - 1):
            text = self.line(indent)
            lines.append(text)
            if text.endswith(":"):
                indent = min(indent + 1, 4)
            elif rng.random() < 0.2:
                indent = max(1, indent - 1)
        return lines

    def file(self, count: int) -> list[str]:
        lines = [f'"""{" ".join(self.rng.choice(self.words) for _ in range(8))}."""', "",
                 f"import {self.ident()}", f"from {self.ident()} import {self.ident()}", ""]
        while len(lines) < count:
            lines.extend(self.block(self.rng.randint(6, 30)))
            lines.append("")
        return lines


# ---------------------------------------------------------------------------------------------------
# Binary assets


def binary_blob(rng: random.Random, size: int) -> bytes:
    """Mostly incompressible bytes (like images or archives); one in four is half-compressible."""
    if rng.random() < 0.75:
        return rng.randbytes(size)
    chunk = rng.randbytes(4096)
    parts, total = [], 0
    while total < size:
        piece = rng.randbytes(2048) if rng.random() < 0.5 else chunk[: rng.randint(512, 4096)]
        parts.append(piece)
        total += len(piece)
    return b"".join(parts)[:size]


# ---------------------------------------------------------------------------------------------------
# The history, written as a fast-import stream


class History:
    def __init__(self, params: Params, out):
        self.p = params
        self.out = out
        self.rng = random.Random(params.seed)
        self.text = TextMaker(self.rng)
        self.files: dict[str, list[str]] = {}
        self.mark = 0
        self.time = EPOCH
        self.first_parent: list[int] = []   # marks of main's first-parent chain
        self.dirs = [f"src/{self.text.ident()}/{self.text.ident()}" for _ in range(60)] + \
                    [f"lib/{self.text.ident()}" for _ in range(30)] + ["docs", "tests/unit", "tests/e2e"]
        self.binary_written = 0
        self.assets: list[str] = []

    def _write(self, data: bytes) -> None:
        self.out.write(data)

    def _new_mark(self) -> int:
        self.mark += 1
        return self.mark

    def _new_path(self) -> str:
        while True:
            path = f"{self.rng.choice(self.dirs)}/{self.text.ident()}.py"
            if path not in self.files:
                return path

    def _edit(self, path: str) -> None:
        rng, lines = self.rng, self.files[path]
        for _ in range(rng.randint(1, 3)):
            action = rng.random()
            at = rng.randint(0, len(lines))
            if action < 0.55 or len(lines) < 80:
                lines[at:at] = self.text.block(rng.randint(3, 25))
            elif action < 0.8:
                del lines[at:at + rng.randint(2, 20)]
            else:
                for i in range(at, min(at + rng.randint(1, 8), len(lines))):
                    lines[i] = self.text.line(rng.randint(1, 3))
        if len(lines) > 900:  # keep files source-sized: drop a chunk
            start = rng.randint(0, len(lines) - 200)
            del lines[start:start + 150]

    def _commit(self, ref: str, parents: list[int], changes: dict[str, bytes | None], message: str) -> int:
        mark = self._new_mark()
        self.time += self.rng.randint(60, 7200)
        author = f"Dev {self.rng.randint(1, 40):02d} <dev{self.rng.randint(1, 40):02d}@example.test>"
        msg = message.encode()
        body = [f"commit {ref}\nmark :{mark}\n".encode(),
                f"author {author} {self.time} +0000\ncommitter {author} {self.time} +0000\n".encode(),
                f"data {len(msg)}\n".encode(), msg, b"\n"]
        if parents:
            body.append(f"from :{parents[0]}\n".encode())
            body.extend(f"merge :{p}\n".encode() for p in parents[1:])
        for path, data in sorted(changes.items()):
            if data is None:
                body.append(f"D {path}\n".encode())
            else:
                body.append(f"M 100644 inline {path}\ndata {len(data)}\n".encode())
                body.append(data)
                body.append(b"\n")
        body.append(b"\n")
        self._write(b"".join(body))
        return mark

    def _content(self, path: str) -> bytes:
        return ("\n".join(self.files[path]) + "\n").encode()

    def _text_changes(self, exclude: set[str] = frozenset()) -> dict[str, bytes | None]:
        rng, changes = self.rng, {}
        paths = sorted(self.files)
        for _ in range(rng.randint(1, 5)):
            path = rng.choice(paths)
            if path in exclude:
                continue
            self._edit(path)
            changes[path] = self._content(path)
        if rng.random() < 0.06:
            path = self._new_path()
            self.files[path] = self.text.file(rng.randint(60, 400))
            changes[path] = self._content(path)
        if rng.random() < 0.01 and len(self.files) > 50:
            path = rng.choice(paths)
            if path not in exclude and path not in changes:
                del self.files[path]
                changes[path] = None
        return changes

    def _binary_change(self, index: int, count: int) -> dict[str, bytes]:
        rng = self.rng
        remaining = self.p.binary_mb * MiB - self.binary_written
        left = max(1, count - index)
        size = max(64 * 1024, min(remaining, int(remaining / left * rng.uniform(0.4, 1.6))))
        if self.assets and rng.random() < 0.25:
            path = rng.choice(self.assets)  # a new version of an existing asset
        else:
            path = f"assets/{rng.choice(['img', 'fonts', 'models', 'fixtures'])}/{self.text.ident()}.bin"
            self.assets.append(path)
        self.binary_written += size
        return {path: binary_blob(rng, size)}

    def generate(self) -> tuple[int, int]:
        """Write the whole stream; returns (mark of the tip, mark of the base)."""
        p, rng = self.p, self.rng
        for _ in range(p.initial_files):
            self.files[self._new_path()] = self.text.file(rng.randint(60, 400))
        initial = {path: self._content(path) for path in self.files}
        initial["README.md"] = b"# generated benchmark repository\n"
        tip = self._commit("refs/heads/main", [], initial, "initial import")
        self.first_parent.append(tip)
        # Binary assets land on evenly spread commits; one of them falls inside the increment.
        binary_count = max(4, p.binary_mb // 2)
        step = max(1, (p.commits - 1) // binary_count)
        binary_at = {1 + i * step for i in range(binary_count)}
        binary_at = {n + 3 if n % 97 in (50, 51, 52) else n for n in binary_at}  # not on a merge's commits
        in_increment = p.commits - p.increment // 2  # the increment carries one new 1 MiB asset too
        binary_index = 0
        n = 1
        while n < p.commits:
            if n % 97 == 50 and n < p.commits - p.increment - 10:
                # A side branch of a few commits merged back; main moves on other files meanwhile.
                side_files = set(rng.sample(sorted(self.files), 6))
                side = tip
                for j in range(rng.randint(2, 5)):
                    changes = {}
                    for path in rng.sample(sorted(side_files), 2):
                        self._edit(path)
                        changes[path] = self._content(path)
                    side = self._commit("refs/heads/side", [side], changes, f"feature {n}: step {j}")
                for _ in range(2):
                    tip = self._commit("refs/heads/main", [tip], self._text_changes(exclude=side_files),
                                       f"change {n}")
                    self.first_parent.append(tip)
                    n += 1
                merged = {path: self._content(path) for path in sorted(side_files) if path in self.files}
                tip = self._commit("refs/heads/main", [tip, side], merged, f"Merge feature {n}")
                self.first_parent.append(tip)
                n += 1
                continue
            changes = self._text_changes()
            if n in binary_at:
                changes.update(self._binary_change(binary_index, len(binary_at)))
                binary_index += 1
            if n == in_increment:
                changes[f"assets/img/{self.text.ident()}-new.bin"] = binary_blob(rng, MiB)
            tip = self._commit("refs/heads/main", [tip], changes, f"change {n}: {self.text.ident()}")
            self.first_parent.append(tip)
            n += 1
        self._write(b"reset refs/heads/side\nfrom 0000000000000000000000000000000000000000\n\n")
        base = self.first_parent[-1 - p.increment]
        return tip, base


# ---------------------------------------------------------------------------------------------------


def git(*args: str, cwd: Path | None = None, input: bytes | None = None) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    result = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, env=env, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed:\n{result.stderr.decode(errors='replace')}")
    return result.stdout.decode().strip()


def pack_bytes(repo: Path) -> int:
    return sum(f.stat().st_size for f in (repo / "objects" / "pack").glob("*.pack"))


def generate(params: Params, target: Path) -> dict:
    started = time.monotonic()
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    full = tmp / "full.git"
    git("init", "--bare", "--quiet", "--initial-branch=main", str(full))
    marks = tmp / "marks"
    print(f"gen_repo: writing {params.commits} commits through git fast-import ...", flush=True)
    proc = subprocess.Popen(["git", "fast-import", "--quiet", "--done", f"--export-marks={marks}",
                             "--depth=50"], cwd=full, stdin=subprocess.PIPE,
                            env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull})
    try:
        history = History(params, proc.stdin)
        tip_mark, base_mark = history.generate()
        proc.stdin.write(b"done\n")
        proc.stdin.close()
    finally:
        if proc.wait(timeout=3600) != 0:
            raise RuntimeError("git fast-import failed")
    mark_to_sha = {}
    for line in marks.read_text().splitlines():
        mark, sha = line.split()
        mark_to_sha[int(mark[1:])] = sha
    tip, base = mark_to_sha[tip_mark], mark_to_sha[base_mark]
    assert git("rev-parse", "refs/heads/main", cwd=full) == tip
    print(f"gen_repo: fast-import done in {time.monotonic() - started:.0f}s; repacking (deltas, bitmap) ...",
          flush=True)
    git("repack", "-a", "-d", "-f", "-b", "--window=10", "--depth=50", "-q", cwd=full)
    git("prune-packed", cwd=full)
    git("pack-refs", "--all", cwd=full)

    base_repo = tmp / "base.git"
    git("init", "--bare", "--quiet", "--initial-branch=main", str(base_repo))
    git("update-ref", "refs/bench/base", base, cwd=full)
    git("fetch", "--quiet", "--no-tags", str(full), "refs/bench/base:refs/heads/main", cwd=base_repo)
    git("update-ref", "-d", "refs/bench/base", cwd=full)
    git("repack", "-a", "-d", "-b", "-q", cwd=base_repo)
    git("pack-refs", "--all", cwd=base_repo)
    for repo in (full, base_repo):
        git("fsck", "--connectivity-only", "--no-dangling", cwd=repo)

    counts = {line.split(":")[0]: line.split(":")[1].strip()
              for line in git("count-objects", "-v", cwd=full).splitlines()}
    meta = {
        "params": asdict(params),
        "generator_version": GENERATOR_VERSION,
        "git_version": git("--version"),
        "tip": tip,
        "base": base,
        "commits_total": int(git("rev-list", "--count", tip, cwd=full)),
        "commits_increment": int(git("rev-list", "--count", f"{base}..{tip}", cwd=full)),
        "objects": int(counts.get("in-pack", 0)),
        "packed_bytes": pack_bytes(full),
        "base_packed_bytes": pack_bytes(base_repo),
        "seconds": round(time.monotonic() - started, 1),
    }
    marks.unlink()
    if meta["packed_bytes"] < params.min_packed_mb * MiB:
        raise RuntimeError(f"packed size {meta['packed_bytes'] / MiB:.0f} MiB is under {params.min_packed_mb} MiB")
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return meta


def ensure_repo(params: Params, force: bool = False) -> tuple[Path, dict]:
    """The cache directory for `params` (generating it first if needed) and its meta.json."""
    target = WORK_DIR / f"repo-{params.key()}"
    meta_path = target / "meta.json"
    if force or not meta_path.is_file():
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        generate(params, target)
    return target, json.loads(meta_path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small repository for a smoke run")
    parser.add_argument("--force", action="store_true", help="regenerate even if cached")
    parser.add_argument("--commits", type=int, help="first-parent commits on main")
    parser.add_argument("--binary-mb", type=int, help="total size of binary assets")
    args = parser.parse_args(argv)
    params = QUICK if args.quick else Params()
    overrides = {k: v for k, v in (("commits", args.commits), ("binary_mb", args.binary_mb)) if v is not None}
    if overrides:
        params = Params(**{**asdict(params), **overrides})
    target, meta = ensure_repo(params, force=args.force)
    print(json.dumps(meta, indent=2))
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
