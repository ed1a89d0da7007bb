"""Repository housekeeping: fold what pushes leave behind into one pack and one packed-refs file.

Every push of 100 objects or more keeps its own pack and smaller ones write loose objects
(`transfer.unpackLimit`); every ref update writes a loose ref file; `receive.autogc` is off because it would
run inside the push. Left alone, a repository that agents push to all day ends up with hundreds of packs and
thousands of ref files, and every clone, fetch and push reads them all (5,000 loose branches: 62 ms per ref
advertisement, 2.6 ms packed). `needs_housekeeping` is the cheap test run after each ref change (three
directory listings, git's own `gc --auto` estimate, the size of a counter file); `housekeep` is the
background job's work.

The repack drops unreachable objects older than `prune_after_seconds` (storage/git_prune.py), keeping those the
database names (overlay files of dojo workspaces are blobs no ref reaches yet): the caller passes them. With
`prune_after_seconds` 0 it keeps every object (`-k`). `git prune`'s grace is long enough not to catch a
running push's quarantine; those of pushes whose receive-pack was killed (SIGKILL, a crash: SIGTERM cleans up)
are removed by `remove_stale_quarantines` after an hour, `remove_stale_pack_leftovers` removes the temporary
files and `.keep`s a killed pack writer leaves in objects/pack, `remove_stale_loose_leftovers` what a failed
loose-object write leaves beside the loose objects, and `remove_stale_locks` the ref locks a killed git left (a
killed `pack-refs` among them).
"""
from __future__ import annotations

import fcntl
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .git_env import QUARANTINE_PREFIX, run_git
from .git_prune import (HEX, fan_out_dirs, housekeeping_runs, repack_and_prune, repack_keeping_everything,
                         undo_killed_run)
from .git_refs import remove_stale_locks
from .merge_store import KEEP_MESSAGE as MERGE_KEEP_MESSAGE
from .object_checks import SCRATCH_PREFIX as CHECK_SCRATCH_PREFIX
from .ref_turns import remove_idle_turns

# A push's quarantine changes while its pack arrives; its checks then read it for seconds to minutes. One unchanged
# for an hour was left by a push whose receive-pack or worker was killed: a crash sweep found 120-150 MB ones left
# by killed workers (git survived them), kept for a day when the limit was 24 h.
STALE_QUARANTINE_SECONDS = 3600
STALE_PACK_LEFTOVER_SECONDS = 24 * 3600
REF_UPDATES_FILE = "driftstone-ref-updates"  # one byte appended per ref update; emptied when refs are packed
_LOOSE_SAMPLE_DIR = "17"  # git's gc --auto estimates the loose objects from one of the 256 fan-out dirs
TEMPORARY_PACK_PREFIXES = ("tmp", ".tmp-")  # index-pack's and dulwich's; a repack's (.tmp-<pid>-pack-...)
LOOSE_WRITE_LEFTOVERS = "tmp_obj_"  # what `git hash-object` writes a loose object to before it renames it
WRITERS_KEEP_MESSAGES = (MERGE_KEEP_MESSAGE.encode(), b"receive-pack ")  # `index-pack --keep=<message>`


@dataclass(frozen=True)
class HousekeepingLimits:
    max_packs: int = 50  # git's gc.autoPackLimit
    max_loose_objects: int = 6700  # git's gc.auto
    max_ref_updates: int = 256  # loose ref files written since the refs were last packed (at most)
    prune_after_seconds: int = 14 * 24 * 3600  # git's gc.pruneExpire; 0: unreachable objects are kept for good


def count_packs(repo_path: Path) -> int:
    """Packs a repack would fold together: local ones without a `.keep` (a push in flight keeps its pack), but
    not the cruft pack of unreachable objects (`.mtimes`), which each repack leaves one of."""
    try:
        names = set(os.listdir(repo_path / "objects" / "pack"))
    except FileNotFoundError:
        return 0
    return sum(1 for name in names if name.endswith(".pack") and not name.startswith(TEMPORARY_PACK_PREFIXES)
               and not {name[:-len(".pack")] + ".keep", name[:-len(".pack")] + ".mtimes"} & names)


def too_many_loose_objects(repo_path: Path, limit: int) -> bool:
    """git's estimate: more than limit/256 loose objects in objects/17 means more than `limit` in all."""
    per_dir_limit = -(-limit // 256)
    try:
        names = os.listdir(repo_path / "objects" / _LOOSE_SAMPLE_DIR)
    except FileNotFoundError:
        return False
    loose = sum(1 for name in names if len(name) == 38 and HEX.issuperset(name))
    return loose > per_dir_limit


def note_ref_updates(repo_path: Path, count: int) -> None:
    """Count ref updates in the size of a file: an O_APPEND write, no read, no lock, no database."""
    fd = os.open(repo_path / REF_UPDATES_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"." * count)
    finally:
        os.close(fd)


def ref_updates_since_packing(repo_path: Path) -> int:
    try:
        return os.stat(repo_path / REF_UPDATES_FILE).st_size
    except FileNotFoundError:
        return 0


def _objects_need_repack(repo_path: Path, limits: HousekeepingLimits) -> bool:
    return (count_packs(repo_path) > limits.max_packs
            or too_many_loose_objects(repo_path, limits.max_loose_objects))


def _refs_need_packing(repo_path: Path, limits: HousekeepingLimits) -> bool:
    return ref_updates_since_packing(repo_path) >= limits.max_ref_updates


def needs_housekeeping(repo_path: Path, limits: HousekeepingLimits) -> bool:
    return (_objects_need_repack(repo_path, limits) or _refs_need_packing(repo_path, limits)
            or may_hold_stale_quarantine(repo_path) or housekeeping_runs(repo_path))


def may_hold_stale_quarantine(repo_path: Path, older_than: float = STALE_QUARANTINE_SECONDS) -> bool:
    """Whether a push quarantine may have been left behind (its directory unchanged for `older_than`; what is
    inside is looked at by `remove_stale_quarantines`). Without it, a killed push's partial pack stayed for good
    in a repository that never reached the other limits."""
    deadline = time.time() - older_than
    for entry in os.scandir(repo_path / "objects"):
        if entry.name.startswith(QUARANTINE_PREFIX):
            try:
                if entry.stat(follow_symlinks=False).st_mtime < deadline:
                    return True
            except FileNotFoundError:
                continue
    return False


def housekeep(repo_path: Path, limits: HousekeepingLimits, pinned: Callable[[], Iterable[str]]) -> bool:
    """Repack into one pack with a bitmap (and a cruft pack of recent unreachable objects), and pack the refs,
    where still needed; returns whether it ran. `pinned` gives the objects to keep although no ref reaches them,
    asked for only when a repack runs, under the lock.

    One run per repository at a time (an flock, released if the job dies); a second job that finds the lock
    held or the limits met does nothing. Concurrent pushes, merges and fetches are safe: packs marked `.keep`
    (while they are moved in) are left alone, new objects are only added, a loose object is removed only once
    it is in the new pack, and `pack-refs` drops a loose ref only under that ref's lock and only if it still
    holds the packed value.
    """
    lock_path = repo_path / "driftstone-housekeeping.flock"
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        remove_stale_locks(repo_path)  # first: a run killed while it removed its pins left their lock
        remove_stale_quarantines(repo_path)
        remove_stale_pack_leftovers(repo_path)
        remove_stale_loose_leftovers(repo_path)
        remove_stale_check_scratch(repo_path)
        remove_idle_turns(repo_path)
        repack, pack_refs = _objects_need_repack(repo_path, limits), _refs_need_packing(repo_path, limits)
        if repack and limits.prune_after_seconds:
            repack_and_prune(repo_path, pinned, limits.prune_after_seconds)  # it undoes a killed run's leftovers
        else:  # whether or not a repack is due: a killed run's second copy of the packs doubled the disk
            undo_killed_run(repo_path)
            if repack:
                repack_keeping_everything(repo_path)
        if pack_refs:
            os.truncate(repo_path / REF_UPDATES_FILE, 0)  # updates from here on count towards the next run
            run_git(repo_path, ["pack-refs", "--all", "--prune"], timeout=3600)
        return repack or pack_refs


def remove_stale_quarantines(repo_path: Path, older_than: float = STALE_QUARANTINE_SECONDS) -> list[str]:
    """Remove push quarantines (`objects/tmp_objdir-incoming-*`) in which nothing changed for `older_than`
    seconds: a push in flight keeps writing its temporary pack, and one git still checks lasts minutes."""
    deadline = time.time() - older_than
    removed = []
    objects = repo_path / "objects"
    for entry in os.scandir(objects):
        if entry.name.startswith(QUARANTINE_PREFIX) and entry.is_dir(follow_symlinks=False):
            try:
                newest = _newest_change(Path(entry.path))
            except FileNotFoundError:  # its push just ended: git removed it (or moved it into place)
                continue
            if newest < deadline:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.name)
    return removed


def remove_stale_pack_leftovers(repo_path: Path, older_than: float = STALE_PACK_LEFTOVER_SECONDS) -> list[str]:
    """Remove what a killed pack writer left in objects/pack, once unchanged for `older_than` seconds: the
    `tmp*` files of `index-pack` (`tmp_pack_*`, `tmp_idx_*`) or of dulwich's pack writer (`tmpXXXXXXXX.pack`,
    before merges wrote through git), a killed repack's `.tmp-<pid>-pack-*`, and the `.keep` a merge or
    receive-pack holds a pack with while moving it in (else that pack is never repacked). A repack removes
    none of them; `git gc`'s prune only the `tmp*` ones, after two weeks. A `.keep` someone wrote by hand is
    left alone."""
    deadline = time.time() - older_than
    removed = []
    try:
        entries = list(os.scandir(repo_path / "objects" / "pack"))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not entry.is_file(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime < deadline and _left_by_a_writer(entry):
                os.unlink(entry.path)
                removed.append(entry.name)
        except FileNotFoundError:  # its writer just finished with it
            continue
    return sorted(removed)


def remove_stale_loose_leftovers(repo_path: Path, older_than: float = STALE_PACK_LEFTOVER_SECONDS) -> list[str]:
    """Remove what a failed loose-object write left in the fan-out directories (`objects/xx/`), once unchanged
    for `older_than` seconds: git's `tmp_obj_*` (`hash-object` on a full disk left 10 MiB of a 20 MB file) and
    dulwich's `<object>.lock`. `git gc`'s prune would remove the first after two weeks; nothing ran it."""
    deadline = time.time() - older_than
    removed = []
    for fan in fan_out_dirs(repo_path / "objects"):
        try:
            with os.scandir(fan) as found:
                entries = [entry for entry in found if entry.name.startswith(LOOSE_WRITE_LEFTOVERS)
                           or entry.name.endswith(".lock")]
        except FileNotFoundError:  # emptied and removed by a repack's prune-packed
            continue
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < deadline:
                    os.unlink(entry.path)
                    removed.append(f"{fan.name}/{entry.name}")
            except FileNotFoundError:  # its writer just finished with it
                continue
    return sorted(removed)


def remove_stale_check_scratch(repo_path: Path, older_than: float = STALE_PACK_LEFTOVER_SECONDS) -> list[str]:
    """Remove the scratch directories of object checks (storage/object_checks.py) a killed process left in the
    repository's directory, once unchanged for `older_than` seconds: a check lasts milliseconds."""
    deadline = time.time() - older_than
    removed = []
    for entry in os.scandir(repo_path):
        if entry.name.startswith(CHECK_SCRATCH_PREFIX) and entry.is_dir(follow_symlinks=False):
            try:
                if _newest_change(Path(entry.path)) < deadline:
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed.append(entry.name)
            except FileNotFoundError:  # its check just ended
                continue
    return sorted(removed)


def _left_by_a_writer(entry: os.DirEntry) -> bool:
    if entry.name.startswith(TEMPORARY_PACK_PREFIXES):
        return True
    if not entry.name.endswith(".keep"):
        return False
    with open(entry.path, "rb") as keep:
        return keep.read(64).startswith(WRITERS_KEEP_MESSAGES)


def _newest_change(directory: Path) -> float:
    newest = directory.lstat().st_mtime
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except FileNotFoundError:
                pass
    return newest
