"""Work ahead of the pre-receive checks on a push's pack while receive-pack still checks its connectivity.

receive-pack keeps a push of `receive.unpackLimit` objects or more as one pack in its quarantine
(`objects/tmp_objdir-incoming-*/pack/`), with a `.keep` file that names it: "receive-pack <pid> on <host>".
index-pack moves the `.idx` into place last, so once it is there the pack is complete, and git's connectivity
walk and the hook's start still lie ahead (~12 ms for a push of 40 commits, seconds for a large one). The pack's
size scan and the diffs the path check asks for run in that time instead of after it, in the check (7 ms of
checks became ~2 ms on that push). Nothing here decides anything: the checks ask the same `PushScans` and get
these results, or compute them if they were not found in time.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from hooks.changed_paths import start_finding_new_paths
from hooks.context import ChangeContext
from hooks.refs import RefUpdate
from storage.git_env import QUARANTINE_PREFIX
from storage.push_scans import PushScans

from .git_process import GitProcess

UNPACK_LIMIT = 100  # receive.unpackLimit, set for every push (server/app.py): fewer objects are stored loose
POLL_SECONDS = 0.004  # a look costs ~5-50 us (a scandir of objects/)


def prescan_pushed_pack(repo_path: Path, process: GitProcess, scans: PushScans, limit: int,
                        on_found: Callable[[Path], None] | None = None) -> None:
    """Run on the thread that fed receive-pack the request body, once it has all been written. `on_found(idx)`
    starts other work on the pack before its size scan runs here."""
    if scans.sent_objects is None or scans.sent_objects < UNPACK_LIMIT:
        return
    marker = f"receive-pack {process.proc.pid} on ".encode()
    while not process.exited.is_set() and process.proc.poll() is None:
        idx = kept_pack_index(repo_path / "objects", marker, since=process.started - 1)
        if idx is not None:
            if on_found is not None:
                on_found(idx)
            try:
                scans.pack(idx, limit)
            except Exception:  # the check meets the same error and refuses the push
                pass
            return
        process.exited.wait(POLL_SECONDS)


def kept_pack_index(object_dir: Path, marker: bytes, since: float = 0) -> Path | None:
    """The index of the complete pack in a quarantine under `object_dir` whose .keep starts with `marker`.

    Quarantines last changed before `since` are passed over: one left behind by a receive-pack that was
    killed may name the same process id as a new one.
    """
    try:
        quarantines = [entry.path for entry in os.scandir(object_dir)
                       if entry.name.startswith(QUARANTINE_PREFIX) and _changed_since(entry, since)]
    except OSError:
        return None
    for quarantine in quarantines:
        pack_dir = Path(quarantine) / "pack"
        try:
            keeps = [entry.name for entry in os.scandir(pack_dir) if entry.name.endswith(".keep")]
        except OSError:
            continue
        for keep in keeps:
            keep_path = pack_dir / keep
            try:
                if not keep_path.read_bytes().startswith(marker):
                    continue
            except OSError:
                continue
            idx = keep_path.with_suffix(".idx")
            if idx.is_file():
                return idx
    return None


def _changed_since(entry: os.DirEntry, since: float) -> bool:
    try:
        return entry.stat(follow_symlinks=False).st_mtime >= since
    except OSError:
        return False


def diff_ahead(ctx: ChangeContext, updates: Sequence[RefUpdate] | None, idx: Path) -> None:
    """Start the path check's diffs (on threads of their own) on the quarantine holding the pushed pack `idx`;
    `updates`: the push's commands, None when they could not be read."""
    if updates is not None and ctx.push_scans is not None:
        start_finding_new_paths(replace(ctx, git_env=quarantine_env(ctx.repo_path, idx),
                                        push_scans=ctx.push_scans.tentative()), updates)


def quarantine_env(repo_path: Path, idx: Path) -> dict[str, str]:
    """The object directories receive-pack gives its hooks, for the quarantine holding the pack `idx`."""
    quarantine = str(idx.parent.parent)
    return {"GIT_QUARANTINE_PATH": quarantine, "GIT_OBJECT_DIRECTORY": quarantine,
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": str((repo_path / "objects").resolve())}
