"""storage.pushed_trees against `git ls-tree`: the entry names of every tree, loose or packed (as deltas), odd
bytes included, and read once per quarantine however many threads ask."""
from __future__ import annotations

import subprocess
from pathlib import Path

from storage.push_scans import PushScans
from storage.pushed_trees import pushed_tree_names

ODD = [b"caf\xc3\xa9", b"a\\b", b"tab\there", b"\xff\xfe", b"x" * 300, b"sp ace"]


def _git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["git", *args], cwd=repo, input=data, capture_output=True, check=True).stdout


def _every_tree_name(repo: Path) -> set[bytes]:
    listing = _git(repo, "cat-file", "--batch-all-objects", "--batch-check=%(objecttype) %(objectname)")
    names = set()
    for line in listing.splitlines():
        kind, sha = line.split()
        if kind == b"tree":
            names.update(entry.split(b"\t", 1)[1] for entry in _git(repo, "ls-tree", "-z", sha).split(b"\0") if entry)
    return names


def _history(git, tmp_path: Path) -> Path:
    work = git.new_worktree(tmp_path / "w")
    for step in range(30):
        git.commit(work, {f"dir{step % 3}/file{i}.txt": f"{step} {i}\n" for i in range(20)}, f"step {step}")
    blob = _git(work, "hash-object", "-w", "--stdin", data=b"x\n").decode().strip()
    entries = sorted(ODD)
    raw = b"".join(b"100644 " + name + b"\0" + bytes.fromhex(blob) for name in entries)
    tree = _git(work, "hash-object", "-t", "tree", "-w", "--literally", "--stdin", data=raw).decode().strip()
    commit = _git(work, "commit-tree", tree, "-p", "HEAD", "-m", "odd").decode().strip()
    _git(work, "update-ref", "refs/heads/odd", commit)
    return work


def test_loose_and_packed_trees_give_the_names_git_lists(git, tmp_path):
    work = _history(git, tmp_path)
    objects = work / ".git" / "objects"
    expected = _every_tree_name(work)
    assert set(ODD) <= expected
    assert pushed_tree_names(work, objects) == expected
    _git(work, "repack", "-q", "-adf", "--depth=20", "--window=50")  # trees as deltas of one another
    assert not list(objects.glob("??/*"))
    assert pushed_tree_names(work, objects) == expected


def test_tree_names_are_read_once_for_all_who_ask(git, tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from storage import pushed_trees

    work = _history(git, tmp_path)
    readings = []
    real = pushed_trees.pushed_tree_names

    def counted(*args):
        readings.append(args)
        return real(*args)

    monkeypatch.setattr(pushed_trees, "pushed_tree_names", counted)
    scans = PushScans()
    objects = work / ".git" / "objects"
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: scans.tree_names(work, objects), range(8)))
    assert len(readings) == 1 and all(answer == answers[0] for answer in answers) and set(ODD) <= answers[0]
