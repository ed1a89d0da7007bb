"""Ref compare-and-swap (storage.git_refs) on real repositories: packed refs, and locks held by others."""
from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from storage.errors import StorageFailure
from storage.git_refs import ZERO_SHA, compare_and_swap, read_ref


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True).stdout.decode().strip()


@pytest.fixture
def repo(tmp_path):
    """A bare repository with two commits; main at the second, `other` at the first."""
    work = tmp_path / "work"
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    shas = []
    for n in range(2):
        (work / "f.txt").write_text(f"{n}\n")
        git(work, "add", "-A")
        git(work, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", f"c{n}")
        shas.append(git(work, "rev-parse", "HEAD"))
    bare = tmp_path / "repo.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    git(bare, "update-ref", "refs/heads/other", shas[0])
    return bare, shas


def test_swaps_on_packed_refs(repo):
    bare, (first, second) = repo
    git(bare, "pack-refs", "--all", "--prune")
    assert not (bare / "refs" / "heads" / "main").exists()
    assert compare_and_swap(bare, "refs/heads/main", second, first)
    assert read_ref(bare, "refs/heads/main") == first
    assert not compare_and_swap(bare, "refs/heads/other", second, first)  # other is at first, not second
    assert compare_and_swap(bare, "refs/heads/other", first, ZERO_SHA)
    assert read_ref(bare, "refs/heads/other") is None
    assert "refs/heads/other" not in (bare / "packed-refs").read_text()
    assert not compare_and_swap(bare, "refs/heads/main", ZERO_SHA, second)  # exists already
    git(bare, "fsck", "--no-progress")


@pytest.mark.parametrize("old_of", [lambda shas: shas[1], lambda shas: ZERO_SHA])
def test_a_ref_git_cannot_write_is_a_storage_failure_not_a_value_that_differs(repo, old_of):
    """An unwritable refs/heads (here a directory git cannot make a lock file in: its place is a dangling
    symlink) answered False, "the ref moved": the API said 409 stale_ref ("main is at X, not X") and a client
    retrying on that would retry for good."""
    bare, shas = repo
    git(bare, "pack-refs", "--all")
    heads = bare / "refs" / "heads"
    for loose in heads.iterdir():
        loose.unlink()
    heads.rmdir()
    heads.symlink_to(bare / "nowhere")
    ref = "refs/heads/main" if old_of(shas) != ZERO_SHA else "refs/heads/new"
    with pytest.raises(StorageFailure):
        compare_and_swap(bare, ref, old_of(shas), shas[0])
    assert read_ref(bare, "refs/heads/main") == shas[1]


def test_a_lock_released_soon_is_waited_out(repo):
    bare, (first, second) = repo
    lock = bare / "refs" / "heads" / "main.lock"
    lock.write_text(second + "\n")
    threading.Timer(0.01, lock.unlink).start()
    assert compare_and_swap(bare, "refs/heads/main", second, first)
    assert read_ref(bare, "refs/heads/main") == first


def test_a_lock_held_on_is_a_conflict_that_says_so_and_changes_nothing(repo):
    """It was answered as a lost race: "main is at X, not X", naming the same commit twice."""
    from storage.errors import Conflict

    bare, (first, second) = repo
    lock = bare / "refs" / "heads" / "main.lock"
    lock.write_text(second + "\n")
    started = time.monotonic()
    with pytest.raises(Conflict, match="being updated by another request"):
        compare_and_swap(bare, "refs/heads/main", second, first)
    assert time.monotonic() - started < 1
    assert read_ref(bare, "refs/heads/main") == second
    assert lock.exists()


@pytest.mark.parametrize("lock_name", ["refs/heads/main.lock", "packed-refs.lock"])
def test_a_lock_a_killed_git_left_long_ago_is_removed_and_the_swap_made(repo, lock_name):
    """A killed `pack-refs` (housekeeping's job stopped with kill -9) left refs/heads/b17.lock: every update of
    b17, by the API or a push, failed from then on."""
    bare, (first, second) = repo
    git(bare, "pack-refs", "--all")
    lock = bare / lock_name
    lock.write_text("")
    an_hour_ago = time.time() - 3600
    os.utime(lock, (an_hour_ago, an_hour_ago))
    assert compare_and_swap(bare, "refs/heads/main", second, ZERO_SHA)  # a delete takes both locks
    assert read_ref(bare, "refs/heads/main") is None and not lock.exists()


def test_housekeeping_removes_stale_ref_locks_and_leaves_fresh_ones(repo):
    from storage.git_refs import remove_stale_locks

    bare, _ = repo
    (bare / "refs" / "heads" / "deep").mkdir()
    stale = [bare / "refs" / "heads" / "deep" / "b17.lock", bare / "packed-refs.lock"]
    fresh = bare / "refs" / "heads" / "main.lock"
    for lock in (*stale, fresh):
        lock.write_text("")
    an_hour_ago = time.time() - 3600
    for lock in stale:
        os.utime(lock, (an_hour_ago, an_hour_ago))
    assert sorted(remove_stale_locks(bare)) == ["packed-refs.lock", "refs/heads/deep/b17.lock"]
    assert fresh.exists() and not any(lock.exists() for lock in stale)


def test_a_ref_lock_is_stale_after_minutes_packed_refs_lock_after_a_quarter_hour(repo):
    """git holds a ref's lock for one ref transaction, packed-refs.lock while pack-refs writes every ref."""
    from storage.git_refs import remove_stale_locks

    bare, _ = repo
    ref_lock, packed_lock = bare / "refs" / "heads" / "main.lock", bare / "packed-refs.lock"
    three_minutes_ago = time.time() - 180
    for lock in (ref_lock, packed_lock):
        lock.write_text("")
        os.utime(lock, (three_minutes_ago, three_minutes_ago))
    assert remove_stale_locks(bare, ["refs/heads/main"]) == ["refs/heads/main.lock"]
    assert packed_lock.exists()


@pytest.mark.parametrize("packed", [False, True])
def test_a_ref_cannot_be_both_a_ref_and_a_prefix_of_one(repo, packed):
    """git's rule (each name is a path on disk); loose or packed, the clash is a Conflict, not an OSError."""
    from storage.errors import Conflict

    bare, (first, _) = repo
    git(bare, "update-ref", "refs/heads/deep/a", first)
    if packed:
        git(bare, "pack-refs", "--all", "--prune")
    with pytest.raises(Conflict):
        compare_and_swap(bare, "refs/heads/main/x", ZERO_SHA, first)  # main is a ref
    with pytest.raises(Conflict):
        compare_and_swap(bare, "refs/heads/deep", ZERO_SHA, first)  # deep/a is below it
    assert read_ref(bare, "refs/heads/deep") is None and read_ref(bare, "refs/heads/main/x") is None
    assert compare_and_swap(bare, "refs/heads/deep/b", ZERO_SHA, first)


def test_a_delete_that_cannot_take_packed_refs_lock_leaves_the_branch_where_it_was(repo):
    """A branch packed at its old value and loose at its new one (as after `git pack-refs` and a push): while
    packed-refs.lock is held (pack-refs, git deleting a ref), a delete fails; it used to remove the loose file
    first and answer "moved", leaving the branch rewound to the packed, older value."""
    from storage.errors import Conflict

    bare, (first, second) = repo
    git(bare, "update-ref", "refs/heads/feat", first)
    git(bare, "pack-refs", "--all")
    git(bare, "update-ref", "refs/heads/feat", second, first)
    lock = bare / "packed-refs.lock"
    lock.write_text("")
    try:
        with pytest.raises(Conflict):
            compare_and_swap(bare, "refs/heads/feat", second, ZERO_SHA)
    finally:
        lock.unlink()
    assert read_ref(bare, "refs/heads/feat") == second
    assert compare_and_swap(bare, "refs/heads/feat", second, ZERO_SHA) is True
    assert read_ref(bare, "refs/heads/feat") is None
    git(bare, "pack-refs", "--all")
    assert read_ref(bare, "refs/heads/feat") is None  # a delete that succeeded does not come back


@pytest.mark.parametrize("ref", ["refs/heads/../../../../victim", "/tmp/victim", "refs/../victim", "../victim",
                                 "refs//victim", "refs/heads/./victim", "victim"])
def test_a_pushed_ref_name_never_reaches_a_lock_outside_refs(repo, tmp_path, ref):
    """A push deleting `refs/heads/../../../../victim` (git refuses the name; the server then looked for a stale
    lock of each refused ref) removed any victim.lock a day old the server could write, and an absolute name
    answered 500."""
    from storage.git_refs import remove_stale_locks

    bare, _ = repo
    victims = [tmp_path / "victim.lock", bare / "victim.lock", Path("/tmp/victim.lock")]
    an_hour_ago = time.time() - 3600
    made = []
    for victim in victims:
        if not victim.exists():
            victim.write_text("")
            os.utime(victim, (an_hour_ago, an_hour_ago))
            made.append(victim)
    try:
        assert remove_stale_locks(bare, [ref]) == []
        assert all(victim.exists() for victim in made)
    finally:
        for victim in made:
            victim.unlink(missing_ok=True)


def test_a_push_of_many_deletes_reads_packed_refs_once_per_question(repo, monkeypatch):
    """Each ref read made its own refs container, which parsed packed-refs again: a push deleting 15,000 of a
    repository's 15,000 packed refs kept its checks busy for 16 minutes (quadratic in the refs)."""
    import dulwich.refs

    from hooks.checks import check_deletes_name_the_current_value
    from hooks.context import ChangeContext, RepoRef
    from hooks.push_outcome import found_in_place, now_in_place
    from hooks.refs import RefUpdate

    bare, (first, second) = repo
    names = [f"refs/heads/topic-{n}" for n in range(300)]
    subprocess.run(["git", "update-ref", "--stdin"], cwd=bare, check=True,
                   input="".join(f"create {name} {first}\n" for name in names).encode())
    git(bare, "pack-refs", "--all", "--prune")
    parses = []
    real = dulwich.refs.read_packed_refs_with_peeled
    monkeypatch.setattr(dulwich.refs, "read_packed_refs_with_peeled", lambda f: parses.append(1) or real(f))
    deletes = [RefUpdate(old=first, new=ZERO_SHA, ref=name) for name in names]
    ctx = ChangeContext(db=None, settings=None, repo=RepoRef("r", "o", "r", "main"), repo_path=bare, actor=None)
    assert check_deletes_name_the_current_value(ctx, deletes, session=None) == []
    moves = [RefUpdate(old=second, new=first, ref=name) for name in names]
    assert found_in_place(bare, moves, {name: "failed to update ref" for name in names}, atomic=False) == moves
    assert now_in_place(bare, deletes) == []
    assert len(parses) == 3
