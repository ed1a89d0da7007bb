"""Ref compare-and-swap (storage.git_refs) on real repositories: packed refs, and locks held by others."""
from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

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


def test_a_lock_released_soon_is_waited_out(repo):
    bare, (first, second) = repo
    lock = bare / "refs" / "heads" / "main.lock"
    lock.write_text(second + "\n")
    threading.Timer(0.01, lock.unlink).start()
    assert compare_and_swap(bare, "refs/heads/main", second, first)
    assert read_ref(bare, "refs/heads/main") == first


def test_a_lock_held_on_is_a_lost_race_and_changes_nothing(repo):
    bare, (first, second) = repo
    lock = bare / "refs" / "heads" / "main.lock"
    lock.write_text(second + "\n")
    started = time.monotonic()
    assert not compare_and_swap(bare, "refs/heads/main", second, first)
    assert time.monotonic() - started < 1
    assert read_ref(bare, "refs/heads/main") == second
    assert lock.exists()


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
    bare, (first, second) = repo
    git(bare, "update-ref", "refs/heads/feat", first)
    git(bare, "pack-refs", "--all")
    git(bare, "update-ref", "refs/heads/feat", second, first)
    lock = bare / "packed-refs.lock"
    lock.write_text("")
    try:
        assert compare_and_swap(bare, "refs/heads/feat", second, ZERO_SHA) is False
    finally:
        lock.unlink()
    assert read_ref(bare, "refs/heads/feat") == second
    assert compare_and_swap(bare, "refs/heads/feat", second, ZERO_SHA) is True
    assert read_ref(bare, "refs/heads/feat") is None
    git(bare, "pack-refs", "--all")
    assert read_ref(bare, "refs/heads/feat") is None  # a delete that succeeded does not come back
