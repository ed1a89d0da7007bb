"""Repack a repository and drop the objects nothing needs any more, as `git gc` does with cruft packs, keeping
the objects the database names.

What no ref reaches goes into a cruft pack that records when each object was last written; an object written
less than `expire_seconds` ago stays, an older one is dropped (git's `gc.pruneExpire`, two weeks by default).
That grace covers a writer that stored an object and has not yet written the row naming it (a writer that finds
its object already stored refreshes its time: `git_objects.store_object`). The objects the database names are
made reachable for the run through one ref, `PIN_REF`, to a commit made for it: blobs and trees in its tree
(named by their ids), commits as its parents, tags each by a ref of their own. git has no other way to be told
of them before 2.42 (`gc.recentObjectsHook`); this machine's git is 2.39.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterable

from .git_env import run_git

PIN_NAMESPACE = "refs/driftstone/housekeeping/"
PIN_REF = PIN_NAMESPACE + "pins"
_TAG_PIN_PREFIX = PIN_REF + "-tag-"
_REPACK_TIMEOUT = 6 * 3600
_PIN_MESSAGE = b"Driftstone housekeeping: the objects its database names, kept through a repack\n"


def repack_and_prune(repo_path: Path, pinned: Iterable[str], expire_seconds: int) -> None:
    expire = f"{int(expire_seconds)}.seconds.ago"
    _unpin(repo_path, leftover_pins(repo_path))  # a killed run's: they would keep what the rows no longer name
    pin_refs = _pin(repo_path, pinned)
    try:
        run_git(repo_path, ["repack", "--cruft", f"--cruft-expiration={expire}", "-d", "-l", "-q",
                            "--write-bitmap-index"], timeout=_REPACK_TIMEOUT)
        if _has_loose_objects(repo_path):
            # expired loose objects are left where they are by the repack; prune walks the history once more and
            # looks at each one's time again as it removes it
            run_git(repo_path, ["prune", f"--expire={expire}"], timeout=_REPACK_TIMEOUT)
    finally:
        _unpin(repo_path, pin_refs)


def _pin(repo_path: Path, pinned: Iterable[str]) -> dict[str, str]:
    """Make every pinned object that exists reachable from a ref; returns the refs made, each with its value."""
    kinds = _object_kinds(repo_path, sorted(set(pinned)))
    refs = {f"{_TAG_PIN_PREFIX}{sha}": sha for sha, kind in kinds.items() if kind == "tag"}
    entries = [f"{'040000' if kind == 'tree' else '100644'} {kind} {sha}\t{sha}\n"
               for sha, kind in kinds.items() if kind in ("blob", "tree")]
    parents = [sha for sha, kind in kinds.items() if kind == "commit"]
    if entries or parents:
        tree = run_git(repo_path, ["mktree"], input="".join(entries).encode()).stdout.decode().strip()
        now = int(time.time())
        commit = b"".join([f"tree {tree}\n".encode(), *(f"parent {sha}\n".encode() for sha in parents),
                           f"author Driftstone <driftstone@localhost> {now} +0000\n".encode(),
                           f"committer Driftstone <driftstone@localhost> {now} +0000\n\n".encode(), _PIN_MESSAGE])
        refs[PIN_REF] = run_git(repo_path, ["hash-object", "-t", "commit", "-w", "--stdin"],
                                input=commit).stdout.decode().strip()
    if refs:
        commands = "".join(f"update {ref} {sha}\n" for ref, sha in refs.items())
        run_git(repo_path, ["update-ref", "-m", "driftstone housekeeping", "--stdin"], input=commands.encode())
    return refs


def _unpin(repo_path: Path, refs: dict[str, str]) -> None:
    if refs:
        commands = "".join(f"delete {ref} {sha}\n" for ref, sha in refs.items())
        run_git(repo_path, ["update-ref", "--stdin"], input=commands.encode())


def _object_kinds(repo_path: Path, shas: list[str]) -> dict[str, str]:
    """The type of each object that exists (a row may name one already gone, or never stored here)."""
    if not shas:
        return {}
    output = run_git(repo_path, ["cat-file", "--batch-check=%(objectname) %(objecttype)"],
                     input="".join(f"{sha}\n" for sha in shas).encode()).stdout.decode()
    kinds = {}
    for line in output.splitlines():
        sha, _, kind = line.partition(" ")
        if kind in ("blob", "tree", "commit", "tag"):
            kinds[sha] = kind
    return kinds


def leftover_pins(repo_path: Path) -> dict[str, str]:
    """The pin refs a killed run left (they keep their objects until the next run replaces them)."""
    output = run_git(repo_path, ["for-each-ref", "--format=%(refname) %(objectname)", "--",
                                 PIN_NAMESPACE]).stdout.decode()
    return dict(line.split(" ", 1) for line in output.splitlines() if line)


def _has_loose_objects(repo_path: Path) -> bool:
    objects = repo_path / "objects"
    for name in os.listdir(objects):
        if len(name) == 2 and (objects / name).is_dir() and os.listdir(objects / name):
            return True
    return False
