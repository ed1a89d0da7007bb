"""Housekeeping drops what nothing needs any more, on real repositories with the real git: unreachable objects
older than the grace go, recent ones and the ones the database names stay, whatever their age; writers that find
their object already stored give it the time of now."""
from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
from dulwich.objects import Blob

from storage.git_objects import open_repo, store_object
from storage import git_prune
from storage.git_prune import HOLD_DIR, PIN_REF, leftover_pins, ref_change_window, repack_and_prune
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


def after_the_repack(monkeypatch, then) -> None:
    """Run `then` once the run's repack (and the drop) is done: as if a ref moved (update-ref) between the repack's
    look at the refs and its end."""
    real_run_git = git_prune.run_git

    def run_git_then(repo_path, args, **kwargs):
        result = real_run_git(repo_path, args, **kwargs)
        if args[0] == "repack":
            then()
        return result

    monkeypatch.setattr(git_prune, "run_git", run_git_then)


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
    git(bare, "repack", "-d", "-q")  # one pack and no loose object, so a run has one to repack
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


@pytest.mark.parametrize("days", ["-1", "3651", "two weeks"])
def test_settings_refuse_a_grace_out_of_bounds(tmp_path, days):
    with pytest.raises(ValueError):
        Settings.from_env({"DRIFTSTONE_DATA_DIR": str(tmp_path), "DRIFTSTONE_HOUSEKEEPING_PRUNE_AFTER_DAYS": days})


def test_settings_give_the_grace_in_seconds(tmp_path):
    settings = Settings.from_env({"DRIFTSTONE_DATA_DIR": str(tmp_path),
                                  "DRIFTSTONE_HOUSEKEEPING_PRUNE_AFTER_DAYS": "3"})
    assert settings.housekeeping_limits.prune_after_seconds == 3 * DAY
    assert Settings(data_dir=tmp_path).housekeeping_limits.prune_after_seconds == 14 * DAY


def test_a_grace_of_years_is_counted_back_from_now(repo):
    """git reads "N.seconds.ago" with 9 digits or more as a date: 1,200 days meant 1973, and nothing was dropped
    (above ~20,000 days, everything: a date in the future)."""
    bare, ids = repo
    age_object_files(bare, 1300)
    assert housekeep(bare, HousekeepingLimits(max_packs=0, prune_after_seconds=1200 * DAY), lambda: ()) is True
    assert not has_object(bare, ids["gone"])
    recent = git(bare, "hash-object", "-w", "--stdin", input=b"a day old\n")
    age_object_files(bare, 1)
    assert housekeep(bare, HousekeepingLimits(max_packs=0, prune_after_seconds=1200 * DAY), lambda: ()) is True
    assert has_object(bare, recent) and has_object(bare, ids["main"])


def test_an_object_a_row_names_once_the_run_began_is_put_back(repo):
    """The rows are read again after the run: one written meanwhile (a workspace on an old commit, a file the API
    stored again) names what the repack had already judged unreachable and dropped."""
    bare, ids = repo
    age_object_files(bare, 30)
    answers = iter([(), [ids["gone"]]])

    assert repack_and_prune(bare, lambda: next(answers), 14 * DAY) == [ids["gone"]]

    for name in ("gone", "gone_tree", "gone_blob"):
        assert has_object(bare, ids[name]), name
    assert not (bare / HOLD_DIR).exists()
    git(bare, "fsck", "--no-dangling", "--no-progress")


def test_a_ref_moved_onto_an_old_commit_during_the_run_keeps_its_history(repo, monkeypatch):
    """A branch made at an old unreachable commit while the repack runs (the API's branch from a sha): the
    repack dropped the commit; the check after the run finds the ref's history incomplete and puts it back."""
    bare, ids = repo
    age_object_files(bare, 30)
    after_the_repack(monkeypatch, lambda: (bare / "refs" / "heads" / "revived").write_text(ids["gone"] + "\n"))
    missing = repack_and_prune(bare, lambda: (), 14 * DAY)

    assert missing
    assert git(bare, "rev-parse", "refs/heads/revived") == ids["gone"]
    git(bare, "fsck", "--no-dangling", "--no-progress")
    assert git(bare, "show", "refs/heads/revived:gone.txt") == "left behind"


def test_storing_an_object_after_a_repack_replaced_the_packs_writes_it(repo):
    """dulwich listed the packs before the repack: looking in them again met a vanished pack (a 500)."""
    bare, ids = repo
    git_repo = open_repo(bare)
    blob = git_repo.object_store[ids["gone_blob"].encode()]  # the packs are listed and open
    age_object_files(bare, 30)
    housekeep(bare, PRUNING, lambda: ())  # the pack it was in is gone, and so is it
    store_object(git_repo, blob)
    assert has_object(bare, ids["gone_blob"])


def test_the_pin_ref_is_not_a_ref_the_push_checks_count_as_existing(repo):
    """Objects reachable from the pins alone are new to a change that names them: its checks must see them."""
    from storage.git_read import oversized_blobs

    bare, ids = repo
    git(bare, "update-ref", PIN_REF, ids["gone"])
    assert oversized_blobs(bare, [ids["gone"]], 1) == [ids["gone_blob"]]


def test_a_force_pushed_commit_goes_once_its_reflog_entry_is_older_than_the_grace(tmp_path):
    """Repositories log every ref update (core.logAllRefUpdates): the entries name the commits a force-push left
    behind, and while they stayed, so did those commits."""
    bare, work = tmp_path / "repo.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(bare, "config", "core.logAllRefUpdates", "always")
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    commit(work, {"a.txt": "a\n"}, "a")
    left = commit(work, {"b.txt": "force-pushed away\n"}, "b")
    git(work, "push", "-q", str(bare), "main")
    git(work, "reset", "-q", "--hard", "HEAD~1")
    kept = commit(work, {"c.txt": "c\n"}, "c")
    git(work, "push", "-q", "-f", str(bare), "main")
    git(bare, "repack", "-a", "-d", "-q")  # reflogs count as reachable: both commits are in the pack
    age_object_files(bare, 30)

    assert housekeep(bare, PRUNING, lambda: ()) is True
    assert has_object(bare, left)  # its reflog entry is a moment old

    month_ago = int(time.time()) - 30 * DAY
    for log in [path for path in (bare / "logs").rglob("*") if path.is_file()]:  # main's and HEAD's
        log.write_text("".join(re.sub(r"> \d+ ", f"> {month_ago} ", line, count=1)
                               for line in log.read_text().splitlines(keepends=True)))
    age_object_files(bare, 30)
    assert housekeep(bare, PRUNING, lambda: ()) is True
    assert not has_object(bare, left) and has_object(bare, kept)
    git(bare, "fsck", "--no-dangling", "--no-progress")


def test_a_loose_object_named_once_the_run_began_is_put_back_loose(repo):
    bare, _ = repo
    loose = git(bare, "hash-object", "-w", "--stdin", input=b"an overlay file stored long ago\n")
    age_object_files(bare, 30)
    answers = iter([(), [loose]])

    assert repack_and_prune(bare, lambda: next(answers), 14 * DAY) == [loose]
    assert (bare / "objects" / loose[:2] / loose[2:]).is_file()


def test_a_branch_deleted_between_the_refs_and_the_rows_being_read_is_kept(repo):
    """Its deletion's event row was not written yet when the rows were read: the refs, read first, name it."""
    bare, ids = repo
    git(bare, "update-ref", "refs/heads/late", ids["gone"])
    age_object_files(bare, 30)

    def rows_read_after_the_deletion():
        git(bare, "update-ref", "-d", "refs/heads/late")
        return ()

    repack_and_prune(bare, rows_read_after_the_deletion, 14 * DAY)
    assert has_object(bare, ids["gone"]) and has_object(bare, ids["gone_blob"])


def test_reflog_entries_of_reachable_commits_stay_ninety_days(tmp_path):
    bare, work = tmp_path / "repo.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(bare, "config", "core.logAllRefUpdates", "always")
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    for name in ("a", "b"):
        commit(work, {f"{name}.txt": name}, name)
        git(work, "push", "-q", str(bare), "main")
    log = bare / "logs" / "refs" / "heads" / "main"
    month_ago = int(time.time()) - 30 * DAY
    log.write_text(re.sub(r"> \d+ ", f"> {month_ago} ", log.read_text()))

    repack_and_prune(bare, lambda: (), 14 * DAY)
    assert len(log.read_text().splitlines()) == 2


def test_a_run_that_fails_after_the_repack_puts_back_what_it_dropped(repo, monkeypatch):
    """The rows cannot be read a second time (the database went away): the check cannot be made, so nothing the
    repack dropped may stay dropped (a branch made at an old commit meanwhile would be left broken)."""
    bare, ids = repo
    age_object_files(bare, 30)
    after_the_repack(monkeypatch, lambda: (bare / "refs" / "heads" / "revived").write_text(ids["gone"] + "\n"))
    answers = iter([()])
    with pytest.raises(StopIteration):
        repack_and_prune(bare, lambda: next(answers), 14 * DAY)

    assert not (bare / HOLD_DIR).exists()
    git(bare, "fsck", "--no-dangling", "--no-progress")
    assert git(bare, "show", "refs/heads/revived:gone.txt") == "left behind"


def test_a_killed_runs_set_aside_objects_are_put_back_first(repo):
    bare, ids = repo
    (pack,) = (bare / "objects" / "pack").glob("*.pack")
    held = bare / HOLD_DIR / "pack"
    held.mkdir(parents=True)
    for part in (pack, pack.with_suffix(".idx")):
        os.link(part, held / part.name)
        part.unlink()  # the killed run's repack had dropped them (and a ref names them)
    assert not has_object(bare, ids["main"])

    repack_and_prune(bare, lambda: (), 14 * DAY)

    assert has_object(bare, ids["main"]) and not (bare / HOLD_DIR).exists()
    git(bare, "fsck", "--no-dangling", "--no-progress")


def test_a_killed_runs_leftovers_go_at_the_next_run_whether_or_not_a_repack_is_due(repo):
    """A run killed before its check left a second copy of every pack and its pins, and only a run that repacked
    again undid them: until the limits were met again (weeks) the repository took twice its size on disk and every
    API change checked its objects as if a run were dropping them (a failure-injection sweep)."""
    from storage.housekeeping import needs_housekeeping

    bare, ids = repo
    (pack,) = (bare / "objects" / "pack").glob("*.pack")
    held = bare / HOLD_DIR / "pack"
    held.mkdir(parents=True)
    os.link(pack, held / pack.name)
    os.link(pack.with_suffix(".idx"), held / pack.with_suffix(".idx").name)
    git(bare, "update-ref", PIN_REF, ids["gone"])
    relaxed = HousekeepingLimits(max_packs=50, prune_after_seconds=14 * DAY)
    assert needs_housekeeping(bare, relaxed)

    assert housekeep(bare, relaxed, lambda: ()) is False  # no repack was due

    assert not (bare / HOLD_DIR).exists() and leftover_pins(bare) == {}
    assert has_object(bare, ids["main"]) and not needs_housekeeping(bare, relaxed)
    git(bare, "fsck", "--no-dangling", "--no-progress")


def test_a_run_killed_while_removing_its_pins_does_not_stop_the_next(repo):
    """Killed as it deleted its pins, a run left them with their lock; the next runs undid its leftovers before
    the stale locks were swept and failed on that lock for good (the session's review)."""
    bare, ids = repo
    git(bare, "update-ref", PIN_REF, ids["gone"])
    lock = bare / f"{PIN_REF}.lock"
    lock.write_text("")
    os.utime(lock, (time.time() - 2 * DAY, time.time() - 2 * DAY))
    age_object_files(bare, 30)

    assert housekeep(bare, PRUNING, lambda: ()) is True

    assert not lock.exists() and leftover_pins(bare) == {} and not has_object(bare, ids["gone"])


def test_a_stale_reflog_lock_does_not_stop_housekeeping(repo):
    bare, ids = repo
    git(bare, "config", "core.logAllRefUpdates", "always")
    git(bare, "update-ref", "refs/heads/logged", ids["main"])
    lock = bare / "logs" / "refs" / "heads" / "logged.lock"
    lock.write_text("")
    os.utime(lock, (time.time() - DAY, time.time() - DAY))
    age_object_files(bare, 30)

    assert housekeep(bare, PRUNING, lambda: ()) is True
    assert not lock.exists() and not has_object(bare, ids["gone"])


def test_links_the_file_system_refuses_leave_every_object_in_place(repo, monkeypatch):
    """fs.protected_hardlinks refuses a link to another account's read-only file: nothing can be set aside, so
    the run repacks without dropping anything."""
    bare, ids = repo
    age_object_files(bare, 30)

    def refuse(source, target):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(git_prune.os, "link", refuse)
    assert repack_and_prune(bare, lambda: (), 14 * DAY) == []
    assert all(has_object(bare, sha) for sha in ids.values())
    assert not (bare / HOLD_DIR).exists()


def test_the_check_after_the_repack_waits_for_an_api_change_between_its_checks_and_its_ref_move(repo, monkeypatch):
    """An API change read its history whole in its checks, then the repack dropped part of it: the run's check
    must see the ref that change then moves, or the branch is left broken."""
    bare, ids = repo
    age_object_files(bare, 30)
    dropped = threading.Event()
    after_the_repack(monkeypatch, dropped.set)
    run = threading.Thread(target=repack_and_prune, args=(bare, lambda: (), 14 * DAY))
    with ref_change_window(bare):  # the change is past its checks
        run.start()
        assert dropped.wait(30)
        time.sleep(0.3)  # the run gets to its check and waits there
        assert run.is_alive()
        (bare / "refs" / "heads" / "made-from-a-sha").write_text(ids["gone"] + "\n")  # its compare-and-swap
    run.join(30)

    git(bare, "fsck", "--no-dangling", "--no-progress")
    assert git(bare, "show", "refs/heads/made-from-a-sha:gone.txt") == "left behind"


def test_a_killed_runs_set_aside_directory_cut_short_is_cleared(repo):
    bare, ids = repo
    (bare / HOLD_DIR / "ab").mkdir(parents=True)  # killed between its two mkdirs, or while removing it
    age_object_files(bare, 30)
    assert housekeep(bare, PRUNING, lambda: ()) is True
    assert not (bare / HOLD_DIR).exists() and not has_object(bare, ids["gone"])


def test_pins_git_cannot_remove_now_are_left_to_the_next_run(repo):
    """A branch deletion in flight holds packed-refs.lock, which removing a ref takes too."""
    bare, ids = repo
    age_object_files(bare, 30)
    lock = bare / "packed-refs.lock"
    lock.write_text("")
    assert repack_and_prune(bare, lambda: [ids["gone"]], 14 * DAY) == []
    assert not (bare / HOLD_DIR).exists() and leftover_pins(bare)
    lock.unlink()
    repack_and_prune(bare, lambda: (), 14 * DAY)
    assert leftover_pins(bare) == {}


def test_reflogs_git_cannot_lock_now_do_not_stop_the_run(repo):
    """An API change in flight holds its ref's lock, which `git reflog expire --all` takes for every ref."""
    bare, ids = repo
    git(bare, "config", "core.logAllRefUpdates", "always")
    git(bare, "update-ref", "refs/heads/logged", ids["main"])
    lock = bare / "refs" / "heads" / "logged.lock"
    lock.write_text("")
    age_object_files(bare, 30)
    assert housekeep(bare, PRUNING, lambda: ()) is True
    assert lock.exists() and not has_object(bare, ids["gone"])


def test_housekeeping_removes_the_turn_files_of_refs_nobody_is_writing(repo):
    """One is made for every ref an API writer wrote (storage/ref_turns.py), deleted branches' too."""
    from storage.ref_turns import ref_turn, turn_file

    bare, _ = repo
    with ref_turn(bare, "refs/heads/deleted-since", time.monotonic() + 5):
        pass
    with ref_turn(bare, "refs/heads/main", time.monotonic() + 5):
        assert housekeep(bare, PRUNING, lambda: ()) is True
        assert turn_file(bare, "refs/heads/main").exists()  # a writer holds it
    assert not turn_file(bare, "refs/heads/deleted-since").exists()
