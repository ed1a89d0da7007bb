"""Housekeeping on real repositories with the real git: which repositories need it, and what it keeps."""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from storage.housekeeping import (HousekeepingLimits, count_packs, housekeep, needs_housekeeping, note_ref_updates,
                                  ref_updates_since_packing, remove_stale_quarantines,
                                  remove_stale_pack_leftovers, too_many_loose_objects)


def NOTHING_PINNED():
    return ()


def git(cwd: Path, *args: str, input: bytes | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, check=True).stdout.decode().strip()


def push_packs(tmp_path: Path, bare: Path, count: int) -> None:
    """Each push carries over 100 objects, so receive-pack keeps it as a pack of its own."""
    work = tmp_path / "work"
    if not work.exists():
        git(tmp_path, "init", "-q", "-b", "main", str(work))
    for round_ in range(count):
        for i in range(110):
            (work / f"f{i}.txt").write_text(f"{round_} {i}\n")
        git(work, "add", "-A")
        git(work, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", f"round {round_}")
        git(work, "push", "-q", str(bare), "main")


def blobs_with_prefix(prefix: str, count: int) -> list[bytes]:
    """Contents whose blob ids start with `prefix`, so they land in objects/<prefix>/."""
    found, n = [], 0
    while len(found) < count:
        data = f"loose {n}\n".encode()
        if hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest().startswith(prefix):
            found.append(data)
        n += 1
    return found


@pytest.fixture
def bare(tmp_path):
    path = tmp_path / "repo.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(path))
    return path


def test_counts_packs_but_not_ones_a_push_keeps(tmp_path, bare):
    push_packs(tmp_path, bare, 3)
    assert count_packs(bare) == 3
    pack = next((bare / "objects" / "pack").glob("*.pack"))
    pack.with_suffix(".keep").write_text("receive-pack in flight\n")
    assert count_packs(bare) == 2
    assert needs_housekeeping(bare, HousekeepingLimits(max_packs=1))
    assert not needs_housekeeping(bare, HousekeepingLimits(max_packs=2))


def test_estimates_loose_objects_from_one_fanout_directory(bare):
    limit = 256  # git's estimate allows one object in objects/17 for every 256
    first, second = blobs_with_prefix("17", 2)
    assert not too_many_loose_objects(bare, limit)
    git(bare, "hash-object", "-w", "--stdin", input=first)
    assert not too_many_loose_objects(bare, limit)
    git(bare, "hash-object", "-w", "--stdin", input=second)
    assert too_many_loose_objects(bare, limit)
    assert needs_housekeeping(bare, HousekeepingLimits(max_loose_objects=limit))
    assert not needs_housekeeping(bare, HousekeepingLimits(max_loose_objects=512))


def test_repack_folds_packs_and_loose_objects_and_keeps_recent_unreachable_ones(tmp_path, bare):
    push_packs(tmp_path, bare, 4)
    kept = next((bare / "objects" / "pack").glob("*.pack"))
    kept.with_suffix(".keep").write_text("receive-pack in flight\n")
    loose = git(bare, "hash-object", "-w", "--stdin", input=b"reachable from nothing: an overlay file\n")
    heads_before = git(bare, "for-each-ref")
    limits = HousekeepingLimits(max_packs=1)

    assert housekeep(bare, limits, NOTHING_PINNED) is True

    packs = sorted(p.name for p in (bare / "objects" / "pack").glob("*.pack"))
    assert len(packs) == 3 and kept.name in packs  # the pack a push still keeps is left alone
    assert len(list((bare / "objects" / "pack").glob("*.mtimes"))) == 1  # the cruft pack, holding the loose one
    assert list((bare / "objects" / "pack").glob("*.bitmap"))
    assert not [p for p in (bare / "objects").glob("??/*")]  # every loose object went into the new pack
    assert git(bare, "cat-file", "-p", loose) == "reachable from nothing: an overlay file"
    assert git(bare, "for-each-ref") == heads_before
    git(bare, "fsck", "--no-dangling", "--no-progress")
    assert count_packs(bare) == 1 and not needs_housekeeping(bare, limits)
    assert housekeep(bare, limits, NOTHING_PINNED) is False  # nothing left to do


def test_a_second_run_does_nothing_while_one_holds_the_lock(tmp_path, bare):
    push_packs(tmp_path, bare, 3)
    with open(bare / "driftstone-housekeeping.flock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert housekeep(bare, HousekeepingLimits(max_packs=1), NOTHING_PINNED) is False
    assert count_packs(bare) == 3
    assert housekeep(bare, HousekeepingLimits(max_packs=1), NOTHING_PINNED) is True
    assert count_packs(bare) == 1


def loose_refs(bare: Path) -> list[str]:
    return sorted(str(p.relative_to(bare)) for p in (bare / "refs").rglob("*") if p.is_file())


def test_ref_updates_are_counted_and_packing_resets_the_count(tmp_path, bare):
    push_packs(tmp_path, bare, 1)
    head = git(bare, "rev-parse", "main")
    git(bare, "update-ref", "--stdin", input="".join(f"create refs/heads/agent/{i}/work {head}\n"
                                                    for i in range(300)).encode())
    note_ref_updates(bare, 299)
    limits = HousekeepingLimits(max_ref_updates=300)
    assert ref_updates_since_packing(bare) == 299 and not needs_housekeeping(bare, limits)
    note_ref_updates(bare, 1)
    assert needs_housekeeping(bare, limits)
    refs_before = git(bare, "for-each-ref")
    packs_before = count_packs(bare)

    assert housekeep(bare, limits, NOTHING_PINNED) is True

    assert loose_refs(bare) == []
    assert git(bare, "for-each-ref") == refs_before
    assert count_packs(bare) == packs_before  # the objects did not need a repack, so none ran
    assert ref_updates_since_packing(bare) == 0 and not needs_housekeeping(bare, limits)


def test_the_effect_is_best_effort_when_the_repository_directory_is_unusable(tmp_path, caplog):
    """The ref has already moved when effects run: an unusable repository directory is logged, not raised; one
    deleted and purged meanwhile (a push racing the delete) without a warning and its traceback (an API sweep)."""
    import logging
    from dataclasses import replace

    from hooks.context import ChangeContext, RepoRef
    from hooks.effects import request_housekeeping
    from hooks.refs import RefUpdate
    from storage.housekeeping import REF_UPDATES_FILE
    from storage.settings import Settings

    ctx = ChangeContext(db=None, settings=Settings(data_dir=tmp_path), repo=RepoRef("repo_x", "org_x", "x", "main"),
                        repo_path=tmp_path / "gone.git", actor=None)
    update = RefUpdate(old="0" * 40, new="1" * 40, ref="refs/heads/main")
    with caplog.at_level(logging.INFO, logger="hooks.effects"):
        request_housekeeping(ctx, [update], session=None)
    assert [r.levelno for r in caplog.records] == [logging.INFO]

    unusable = tmp_path / "unusable.git"
    (unusable / REF_UPDATES_FILE).mkdir(parents=True)  # the counter cannot be written
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hooks.effects"):
        request_housekeeping(replace(ctx, repo_path=unusable), [update], session=None)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_the_quarantine_of_a_killed_push_is_removed_once_stale(tmp_path, bare):
    """receive-pack killed while its pre-receive hook runs leaves the pushed pack in its quarantine for good."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "pre-receive").write_text("#!/bin/sh\nsleep 60\n")
    (hooks / "pre-receive").chmod(0o755)
    git(bare, "config", "core.hooksPath", str(hooks))
    work = tmp_path / "work"
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    for i in range(110):
        (work / f"f{i}.txt").write_text(f"{i}\n")
    git(work, "add", "-A")
    git(work, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "killed")
    push = subprocess.Popen(["git", "push", "-q", str(bare), "main"], cwd=work, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not list((bare / "objects").glob("tmp_objdir-incoming-*/pack/*.idx")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(push.pid, signal.SIGKILL)
    push.wait()
    (quarantine,) = (bare / "objects").glob("tmp_objdir-incoming-*")
    assert remove_stale_quarantines(bare) == []  # it might still be a push in flight
    assert not needs_housekeeping(bare, HousekeepingLimits())
    two_hours_ago = time.time() - 2 * 3600  # a killed worker's quarantine was kept a day (crash sweep: 150 MB)
    for path in (quarantine, *quarantine.rglob("*")):
        os.utime(path, (two_hours_ago, two_hours_ago), follow_symlinks=False)
    # the next change asks for housekeeping though nothing needs repacking or packing (a sweep found such
    # quarantines kept for good in repositories that never reached the other limits)
    assert needs_housekeeping(bare, HousekeepingLimits())
    housekeep(bare, HousekeepingLimits(), NOTHING_PINNED)
    assert not quarantine.exists()
    assert remove_stale_quarantines(bare) == []
    assert not needs_housekeeping(bare, HousekeepingLimits())


def test_a_quarantine_that_vanishes_while_it_is_looked_at_is_passed_over(bare, monkeypatch):
    """A push that ends removes its quarantine whenever it likes; the job used to fail on one gone between the
    listing and the look inside. The push is stood in for by removing the directory at that very moment."""
    from storage import housekeeping
    quarantine = bare / "objects" / "tmp_objdir-incoming-gone"
    (quarantine / "pack").mkdir(parents=True)
    look_inside = housekeeping._newest_change

    def push_ends_first(directory):
        shutil.rmtree(directory)
        return look_inside(directory)

    monkeypatch.setattr(housekeeping, "_newest_change", push_ends_first)
    assert remove_stale_quarantines(bare) == []


def test_temporary_pack_files_left_by_killed_writers_are_removed_once_stale_and_never_counted(bare):
    """dulwich's pack writer (which merges used) left tmpXXXXXXXX.pack behind when it failed, a killed
    index-pack leaves tmp_pack_* / tmp_idx_*; a repack removes none of them, and they counted as packs."""
    pack_dir = bare / "objects" / "pack"
    pack_dir.mkdir(parents=True, exist_ok=True)
    names = ["tmpk3j9x2ab.pack", "tmp_pack_Ab12Cd", "tmp_idx_Ef34Gh", ".tmp-4242-pack-0a1b.pack"]
    for name in names + ["tmpfresh01.pack"]:
        (pack_dir / name).write_bytes(b"PACK partial")
    before = count_packs(bare)
    assert before == 0
    assert remove_stale_pack_leftovers(bare) == []  # a writer may still be at work
    two_days_ago = time.time() - 2 * 24 * 3600
    for name in names:
        os.utime(pack_dir / name, (two_days_ago, two_days_ago))
    housekeep(bare, HousekeepingLimits(), NOTHING_PINNED)
    assert sorted(p.name for p in pack_dir.iterdir() if p.name.startswith(("tmp", ".tmp-"))) == ["tmpfresh01.pack"]


def test_keep_files_a_killed_writer_left_are_removed_once_stale_and_others_never(bare):
    """A merge or a push holds its pack with a `.keep` while moving it in; killed before removing it, the pack
    would never be repacked again. A `.keep` an operator wrote stays."""
    pack_dir = bare / "objects" / "pack"
    pack_dir.mkdir(parents=True, exist_ok=True)
    left = {"pack-1.keep": "driftstone merge\n", "pack-2.keep": "receive-pack 4242 on host\n"}
    kept_by_hand = {"pack-3.keep": "", "pack-4.keep": "pinned: release 1.0\n"}
    for name, text in {**left, **kept_by_hand}.items():
        (pack_dir / name).write_text(text)
    assert remove_stale_pack_leftovers(bare) == []  # the writer may still be moving its pack in
    two_days_ago = time.time() - 2 * 24 * 3600
    for name in pack_dir.iterdir():
        os.utime(name, (two_days_ago, two_days_ago))
    assert remove_stale_pack_leftovers(bare) == sorted(left)
    assert sorted(p.name for p in pack_dir.iterdir()) == sorted(kept_by_hand)


def test_loose_object_files_a_failed_write_left_are_removed_once_stale(bare):
    """A write the disk refused leaves git's `tmp_obj_*` (10 MiB of a 20 MB upload, in a disk-full sweep) or
    dulwich's empty `<object>.lock` in the fan-out directories; nothing removed them, and what they held kept
    the disk full after the rest was freed. Objects, and what may still be being written, stay."""
    fan = bare / "objects" / "b2"
    fan.mkdir(parents=True, exist_ok=True)
    left = ["tmp_obj_Ab12Cd", "a" * 38 + ".lock"]
    for name in left + ["tmp_obj_fresh1"]:
        (fan / name).write_bytes(b"partial")
    stored = git(bare, "hash-object", "-w", "--stdin", input=b"an object that stays\n")
    two_days_ago = time.time() - 2 * 24 * 3600
    for name in left:
        os.utime(fan / name, (two_days_ago, two_days_ago))
    stored_path = bare / "objects" / stored[:2] / stored[2:]
    os.utime(stored_path, (two_days_ago, two_days_ago))
    housekeep(bare, HousekeepingLimits(), NOTHING_PINNED)
    assert sorted(p.name for p in fan.iterdir()) == ["tmp_obj_fresh1"] + ([stored[2:]] if stored[:2] == "b2" else [])
    assert stored_path.exists()


def test_object_check_scratch_a_killed_process_left_is_removed_once_stale(bare):
    """Checks of server-made objects read them from a scratch pack in the repository's directory (hidden from
    extension agents); a process killed meanwhile left it there for good."""
    left, fresh = bare / "driftstone-fsck-abc123", bare / "driftstone-fsck-def456"
    for scratch in (left, fresh):
        scratch.mkdir()
        (scratch / "new.pack").write_bytes(b"PACK")
    two_days_ago = time.time() - 2 * 24 * 3600
    for path in (left / "new.pack", left):
        os.utime(path, (two_days_ago, two_days_ago))
    housekeep(bare, HousekeepingLimits(), NOTHING_PINNED)
    assert not left.exists() and fresh.exists()
