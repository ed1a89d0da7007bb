"""A commit written out for an agent and what it changed there: real repositories, real files, real git."""
from __future__ import annotations

import os
import subprocess

import pytest

from control.services.agent_process import REDACTED, _tail
from storage import git_checkout
from storage.errors import TooLarge


def git(path, *args: str, input: bytes | None = None) -> str:
    return subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True, input=input).stdout.decode().strip()


@pytest.fixture
def commit(tmp_path):
    """A commit with a file, an executable, a nested file, a symlink and a submodule entry."""
    work = tmp_path / "src"
    work.mkdir()
    git(work, "init", "-q")
    (work / "a.txt").write_text("a\n")
    (work / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(work / "run.sh", 0o755)
    (work / "deep" / "er").mkdir(parents=True)
    (work / "deep" / "er" / "c.txt").write_text("c\n")
    os.symlink("/etc/passwd", work / "link")
    git(work, "add", "-A")
    git(work, "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},sub")
    git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    return work, git(work, "rev-parse", "HEAD")


def test_only_regular_files_are_written_and_an_untouched_directory_changes_nothing(commit, tmp_path):
    repo, sha = commit
    dest = tmp_path / "out"
    written = git_checkout.write_out(repo / ".git", sha, dest)
    assert sorted(written.entries) == ["a.txt", "deep/er/c.txt", "link", "run.sh", "sub"]
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == ["a.txt", "deep/er/c.txt", "run.sh"]
    assert not os.path.lexists(dest / "link")  # never a symlink on the server's disk
    assert os.stat(dest / "run.sh").st_mode & 0o100
    found = git_checkout.changes_in(dest, written, 1 << 20, 1 << 20)
    assert found.changes == [] and found.skipped == []


def test_changes_creates_updates_deletes_and_mode_flips_are_found(commit, tmp_path):
    repo, sha = commit
    dest = tmp_path / "out"
    written = git_checkout.write_out(repo / ".git", sha, dest)
    (dest / "a.txt").write_text("changed\n")
    os.chmod(dest / "run.sh", 0o644)
    os.remove(dest / "deep" / "er" / "c.txt")
    (dest / "new").mkdir()
    (dest / "new" / "n.txt").write_bytes(b"\x00binary")
    (dest / "link").write_text("a file where the commit has a symlink\n")
    os.symlink("/etc", dest / "escape")
    (dest / "sub").mkdir()
    (dest / "sub" / "x").write_text("x\n")
    (dest / bytes.fromhex("ff").decode("utf-8", "surrogateescape")).write_text("not utf-8\n")
    found = git_checkout.changes_in(dest, written, 1 << 20, 1 << 20)
    assert [(c.action, c.path, c.executable) for c in found.changes] == [
        ("update", "a.txt", False), ("delete", "deep/er/c.txt", False), ("create", "new/n.txt", False),
        ("update", "run.sh", False)]
    assert found.changes[2].content == b"\x00binary"
    assert sorted((s["path"], s["reason"]) for s in found.skipped) == [
        ("?", "a name that is not UTF-8"), ("escape", "a symlink"), ("link", "a symlink or submodule in the commit, kept"),
        ("sub", "a symlink or submodule in the commit, kept")]


def test_sizes_are_bounded_per_file_and_together(commit, tmp_path):
    repo, sha = commit
    dest = tmp_path / "out"
    written = git_checkout.write_out(repo / ".git", sha, dest)
    (dest / "big").write_bytes(b"x" * 2000)
    with pytest.raises(TooLarge, match="big is larger"):
        git_checkout.changes_in(dest, written, 1000, 10_000)
    (dest / "big").write_bytes(b"x" * 600)
    (dest / "big2").write_bytes(b"x" * 600)
    with pytest.raises(TooLarge, match="together|pass"):
        git_checkout.changes_in(dest, written, 1000, 1000)


def test_an_empty_branch_writes_nothing(tmp_path):
    written = git_checkout.write_out(tmp_path / "nowhere", None, tmp_path / "out")
    assert written.entries == {} and list((tmp_path / "out").iterdir()) == []


def test_files_whose_stamp_is_unchanged_are_not_read_and_any_change_still_shows(commit, tmp_path):
    import time

    repo, sha = commit
    dest = tmp_path / "out"
    written = git_checkout.write_out(repo / ".git", sha, dest)
    assert set(written.stamps) == {"a.txt", "deep/er/c.txt", "run.sh"}  # what it wrote: no symlink, no submodule
    time.sleep(0.02)
    trusted = time.time_ns()
    (dest / "a.txt").write_text("b\n")  # same size, later time
    os.chmod(dest / "deep" / "er" / "c.txt", 0o600)  # a new ctime, same content: read, found equal
    found = git_checkout.changes_in(dest, written, 1 << 20, 1 << 20, trusted_before_ns=trusted)
    assert [(c.action, c.path) for c in found.changes] == [("update", "a.txt")]


@pytest.mark.parametrize("cut", range(0, 12))
def test_a_secret_is_blanked_even_where_the_kept_end_begins_inside_it(tmp_path, cut):
    secret = "s3cr3t-value"
    path = tmp_path / "out"
    limit = 40
    before = "x" * (100 - len(secret) + cut)
    path.write_text(before + secret + "y" * (limit - cut))
    kept = _tail(path, limit, [secret])
    assert not any(secret[i:] in kept for i in range(len(secret) - 2)) and len(kept) <= limit
    assert kept.endswith("y" * (limit - cut))


def test_whole_secrets_become_the_marker(tmp_path):
    path = tmp_path / "out"
    path.write_text("key=abcdefgh12345678 and again abcdefgh12345678\n")
    assert _tail(path, 1000, ["abcdefgh12345678"]) == f"key={REDACTED} and again {REDACTED}\n"
