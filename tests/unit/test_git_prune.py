"""Housekeeping drops what nothing needs any more, on real repositories with the real git: unreachable objects
older than the grace go, recent ones and the ones the database names stay, whatever their age; writers that find
their object already stored give it the time of now."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from dulwich.objects import Blob

from storage.git_objects import open_repo, store_object
from storage.git_prune import PIN_REF, leftover_pins
from storage.housekeeping import HousekeepingLimits, housekeep
from storage.settings import Settings
from tests.support import age_object_files, has_object

DAY = 24 * 3600
PRUNING = HousekeepingLimits(max_packs=0, prune_after_seconds=14 * DAY)  # max_packs 0: every run repacks


def git(cwd: Path, *args: str, input: bytes | None = None, check: bool = True) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, check=check)
    return result.stdout.decode().strip()


def commit(work: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (work / name).write_text(text)
    git(work, "add", "-A")
    git(work, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", message)
    return git(work, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path):
    """main, and a branch `gone` and a tag deleted after their push: what they named is reachable from nothing,
    and in a pack."""
    bare, work = tmp_path / "repo.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    main = commit(work, {"a.txt": "kept\n"}, "main")
    git(work, "push", "-q", str(bare), "main")
    git(work, "checkout", "-q", "-b", "gone")
    gone = commit(work, {"gone.txt": "left behind\n"}, "gone")
    git(work, "push", "-q", str(bare), "gone")
    git(work, "tag", "-a", "-m", "an annotated tag", "v1")
    git(work, "push", "-q", str(bare), "v1")
    tag = git(bare, "rev-parse", "refs/tags/v1")
    git(bare, "repack", "-q")  # one pack, so a run has one to repack
    git(bare, "update-ref", "-d", "refs/heads/gone")
    git(bare, "update-ref", "-d", "refs/tags/v1")
    return bare, {"main": main, "gone": gone, "gone_tree": git(bare, "rev-parse", f"{gone}^{{tree}}"),
                  "gone_blob": git(bare, "rev-parse", f"{gone}:gone.txt"), "tag": tag}


def test_unreachable_objects_older_than_the_grace_are_dropped_and_recent_ones_kept(repo):
    bare, ids = repo
    old_loose = git(bare, "hash-object", "-w", "--stdin", input=b"an old loose object\n")
    age_object_files(bare, 30)
    recent = git(bare, "hash-object", "-w", "--stdin", input=b"written a moment ago\n")
    refs_before = git(bare, "for-each-ref")

    assert housekeep(bare, PRUNING, lambda: ()) is True

    for name in ("gone", "gone_tree", "gone_blob", "tag"):
        assert not has_object(bare, ids[name]), name
    assert not has_object(bare, old_loose)
    assert has_object(bare, recent) and has_object(bare, ids["main"])
    assert git(bare, "for-each-ref") == refs_before
    git(bare, "fsck", "--no-dangling", "--no-progress")


def test_objects_the_database_names_are_kept_however_old_with_what_they_reach(repo):
    bare, ids = repo
    overlay = git(bare, "hash-object", "-w", "--stdin", input=b"an overlay file no commit holds\n")
    tree = git(bare, "mktree", input=f"100644 blob {overlay}\tnotes.txt\n".encode())
    age_object_files(bare, 400)
    named = [ids["gone"], ids["tag"], overlay, tree, "f" * 40, "0" * 40]  # two that do not exist

    assert housekeep(bare, PRUNING, lambda: named) is True

    for sha in (ids["gone"], ids["gone_tree"], ids["gone_blob"], ids["tag"], overlay, tree):
        assert has_object(bare, sha), sha
    assert leftover_pins(bare) == {} and not git(bare, "for-each-ref", "refs/driftstone/")
    git(bare, "fsck", "--no-dangling", "--no-progress")
    # named no more: the next run drops them (their pack was written by the run before, so age it again)
    age_object_files(bare, 30)
    assert housekeep(bare, PRUNING, lambda: ()) is True
    for sha in (ids["gone"], ids["gone_blob"], ids["tag"], overlay, tree):
        assert not has_object(bare, sha), sha


def test_a_killed_runs_pins_are_replaced_not_kept(repo):
    bare, ids = repo
    git(bare, "update-ref", PIN_REF, ids["gone"])
    git(bare, "update-ref", f"{PIN_REF}-tag-{ids['tag']}", ids["tag"])
    age_object_files(bare, 30)

    assert housekeep(bare, PRUNING, lambda: ()) is True

    assert leftover_pins(bare) == {}
    assert not has_object(bare, ids["gone"]) and not has_object(bare, ids["tag"])


def test_with_no_grace_set_nothing_is_dropped(repo):
    bare, ids = repo
    age_object_files(bare, 400)
    assert housekeep(bare, HousekeepingLimits(max_packs=0, prune_after_seconds=0), lambda: ()) is True
    assert all(has_object(bare, sha) for sha in ids.values())


def test_the_database_is_asked_only_when_a_repack_runs(repo):
    bare, _ = repo
    asked = []
    housekeep(bare, HousekeepingLimits(prune_after_seconds=14 * DAY), lambda: asked.append(1) or ())
    assert asked == []


def test_pins_that_cannot_be_made_leave_every_object_in_place(repo, monkeypatch):
    """The database cannot be asked: nothing is repacked, nothing dropped (the job fails and runs again)."""
    bare, ids = repo
    age_object_files(bare, 30)

    def failing():
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        housekeep(bare, PRUNING, failing)
    assert all(has_object(bare, sha) for sha in ids.values())


def test_storing_an_object_that_is_there_gives_it_the_time_of_now(repo):
    bare, _ = repo
    git_repo = open_repo(bare)
    loose = Blob.from_string(b"stored loose, long ago\n")
    store_object(git_repo, loose)
    loose_path = bare / "objects" / loose.id.decode()[:2] / loose.id.decode()[2:]
    age_object_files(bare, 30)

    store_object(git_repo, loose)
    assert time.time() - loose_path.stat().st_mtime < 60

    packed = Blob.from_string(b"kept, then in the cruft pack\n")
    store_object(git_repo, packed)
    age_object_files(bare, 1)
    housekeep(bare, PRUNING, lambda: ())  # unreachable, a day old: into the cruft pack, loose copy gone
    packed_path = bare / "objects" / packed.id.decode()[:2] / packed.id.decode()[2:]
    assert not packed_path.exists() and list((bare / "objects" / "pack").glob("*.mtimes"))
    age_object_files(bare, 30)
    git_repo = open_repo(bare)
    store_object(git_repo, packed)
    assert time.time() - packed_path.stat().st_mtime < 60  # a loose copy: the cruft pack keeps its own times
    housekeep(bare, PRUNING, lambda: ())
    assert has_object(bare, packed.id.decode())


def test_an_object_in_an_ordinary_pack_is_freshened_by_the_pack_s_time(repo):
    bare, ids = repo
    git(bare, "repack", "-a", "-d", "-q")
    (pack,) = (bare / "objects" / "pack").glob("*.pack")
    blob = git(bare, "rev-parse", "main:a.txt")
    age_object_files(bare, 30)

    store_object(open_repo(bare), open_repo(bare).object_store[blob.encode()])

    assert time.time() - pack.stat().st_mtime < 60
    assert not (bare / "objects" / blob[:2] / blob[2:]).exists()  # no copy needed


@pytest.mark.parametrize("days", ["-1", "36501", "two weeks"])
def test_settings_refuse_a_grace_out_of_bounds(tmp_path, days):
    with pytest.raises(ValueError):
        Settings.from_env({"DRIFTSTONE_DATA_DIR": str(tmp_path), "DRIFTSTONE_HOUSEKEEPING_PRUNE_AFTER_DAYS": days})


def test_settings_give_the_grace_in_seconds(tmp_path):
    settings = Settings.from_env({"DRIFTSTONE_DATA_DIR": str(tmp_path),
                                  "DRIFTSTONE_HOUSEKEEPING_PRUNE_AFTER_DAYS": "3"})
    assert settings.housekeeping_limits.prune_after_seconds == 3 * DAY
    assert Settings(data_dir=tmp_path).housekeeping_limits.prune_after_seconds == 14 * DAY
