"""Scan a large push's pack for oversized objects while receive-pack still checks its connectivity.

receive-pack keeps a push of `transfer.unpackLimit` objects or more as one pack in its quarantine
(`objects/tmp_objdir-incoming-*/pack/`), with a `.keep` file that names it: "receive-pack <pid> on <host>".
index-pack moves the `.idx` into place last, so once it is there the pack is complete. Its scan then runs
beside git's connectivity walk instead of after it, in the pre-receive check; on a 200 MiB push that takes
the scan (~0.2 s) off the push's critical path. Nothing here decides anything: the check asks the same
`PushScans` and gets this result, or scans the pack itself if it was not found in time.
"""
from __future__ import annotations

import os
from pathlib import Path

from storage.git_env import QUARANTINE_PREFIX
from storage.push_scans import PushScans

from .git_process import GitProcess

PRESCAN_MIN_BYTES = 1024 * 1024  # below this the check's own scan takes a millisecond or two
POLL_SECONDS = 0.02


def prescan_pushed_pack(repo_path: Path, process: GitProcess, scans: PushScans, limit: int) -> None:
    """Run on the thread that fed receive-pack the request body, once it has all been written."""
    if process.bytes_fed < PRESCAN_MIN_BYTES:
        return
    marker = f"receive-pack {process.proc.pid} on ".encode()
    while not process.exited.is_set() and process.proc.poll() is None:
        idx = kept_pack_index(repo_path / "objects", marker, since=process.started - 1)
        if idx is not None:
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
