"""storage.object_headers against `git cat-file --batch-check`: every object's size, in packs (whole objects,
OFS and REF deltas) and loose, and a clear error for damaged files."""
from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from storage.object_headers import CorruptObject, loose_size, pack_sizes
from storage.push_scans import PushScans


def git_sizes(repo: Path) -> dict[str, int]:
    out = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objectsize)"],
                         cwd=repo, capture_output=True, check=True).stdout.decode()
    return {name: int(size) for name, size in (line.split() for line in out.splitlines())}


@pytest.fixture
def history(git, tmp_path) -> Path:
    """A repository whose files grow and shrink over 40 commits, so packs hold deltas in both directions."""
    work = git.new_worktree(tmp_path / "w")
    rng = random.Random(7)
    words = [f"word{i}" for i in range(400)]
    text = {f"f{i}.txt": " ".join(rng.choice(words) for _ in range(3000)) for i in range(5)}
    for step in range(40):
        name = f"f{step % 5}.txt"
        cut = rng.randrange(len(text[name]))
        text[name] = text[name][:cut] + " ".join(rng.choice(words) for _ in range(rng.randrange(1, 900))) + \
            text[name][cut + rng.randrange(0, 400):]
        git.commit(work, {name: text[name], "big.bin": b"\0" * (100_000 + step)}, f"step {step}")
    return work


def only_pack(repo: Path) -> tuple[Path, Path]:
    (idx,) = (repo / ".git" / "objects" / "pack").glob("*.idx")
    return idx, idx.with_suffix(".pack")


@pytest.mark.parametrize("repack", [["-adf"], ["-adf", "--depth=3", "--window=50"]])
def test_pack_sizes_match_git(git, history, repack):
    git("repack", "-q", *repack, cwd=history)
    idx, pack = only_pack(history)
    assert dict(pack_sizes(idx, pack)) == git_sizes(history)


def test_ref_deltas_of_a_thin_pack(git, history, tmp_path):
    """A thin pack (as a push sends it) has REF_DELTA entries against objects it does not contain."""
    git("repack", "-q", "-adf", cwd=history)
    base = git.out("rev-parse", "HEAD~5", cwd=history)
    pack_data = subprocess.run(["git", "pack-objects", "--stdout", "--thin", "--revs"], cwd=history,
                               input=f"HEAD\n^{base}\n".encode(), capture_output=True, check=True).stdout
    target = tmp_path / "thin.pack"
    result = subprocess.run(["git", "index-pack", "--fix-thin", "--stdin", str(target)], cwd=history,
                            input=pack_data, capture_output=True)
    assert result.returncode == 0, result.stderr
    listing = subprocess.run(["git", "verify-pack", "-v", str(target.with_suffix(".idx"))], cwd=history,
                             capture_output=True, check=True).stdout.decode()
    assert "chain length = 1:" in listing  # without --delta-base-offset every delta is a REF_DELTA
    sizes = dict(pack_sizes(target.with_suffix(".idx"), target))
    everything = git_sizes(history)
    assert sizes and all(everything[name] == size for name, size in sizes.items())


def test_loose_objects_and_the_limit(git, history):
    everything = git_sizes(history)
    loose_dir = history / ".git" / "objects"
    big = sorted(n for n, s in everything.items() if s > 100_038)
    scanned = PushScans().objects(loose_dir, 100_038)
    assert big and sorted(scanned.oversized) == big
    assert scanned.total == sum(everything.values())  # every object is loose here
    assert PushScans().objects(loose_dir, max(everything.values())).oversized == []
    some = next(p for p in loose_dir.glob("??/*"))
    assert loose_size(some) == everything[some.parent.name + some.name]


def test_damaged_files_are_reported_not_crashed_on(git, history, tmp_path):
    git("repack", "-q", "-adf", cwd=history)
    idx, pack = only_pack(history)
    bad_idx = tmp_path / "bad.idx"
    bad_idx.write_bytes(idx.read_bytes()[:2000])
    with pytest.raises(CorruptObject):
        list(pack_sizes(bad_idx, pack))
    bad_pack = tmp_path / "bad.pack"
    bad_pack.write_bytes(pack.read_bytes()[:64])
    with pytest.raises(CorruptObject):
        list(pack_sizes(idx, bad_pack))
    loose = tmp_path / "ab" / ("c" * 38)
    loose.parent.mkdir()
    loose.write_bytes(b"not zlib at all")
    with pytest.raises(CorruptObject):
        PushScans().objects(tmp_path, 10)


def test_pack_scans_read_each_pack_once_for_all_who_ask(git, history, monkeypatch):
    """The server's early scan and the check's ask for the same pack: one reading, one answer for both."""
    from concurrent.futures import ThreadPoolExecutor

    from storage import object_headers

    git("repack", "-q", "-adf", cwd=history)
    idx, _ = only_pack(history)
    readings = []
    real_pack_sizes = object_headers.pack_sizes

    def counted(*args, **kwargs):
        readings.append(args[0])
        return real_pack_sizes(*args, **kwargs)

    monkeypatch.setattr(object_headers, "pack_sizes", counted)
    scans = PushScans()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: scans.pack(idx, 100_038), range(8)))
    expected = sorted(n for n, s in git_sizes(history).items() if s > 100_038)
    assert expected and all(sorted(answer.oversized) == expected for answer in answers)
    assert {answer.total for answer in answers} == {sum(git_sizes(history).values())}
    assert readings == [idx] and scans.finished() == [idx]
    assert sorted(scans.objects(history / ".git" / "objects", 100_038).oversized) == expected
    assert readings == [idx]  # taken from the scan above
    assert scans.objects(history / ".git" / "objects", 10**9).oversized == []  # another limit: read again
    assert readings == [idx, idx]
    link = history / "objects-link"
    link.symlink_to(history / ".git" / "objects")
    assert sorted(scans.pack(link / "pack" / idx.name, 100_038).oversized) == expected  # the same file by another path
    assert readings == [idx, idx]


def test_pack_scans_hand_a_damaged_pack_error_to_every_caller(git, history, tmp_path):

    git("repack", "-q", "-adf", cwd=history)
    idx, pack = only_pack(history)
    objects = tmp_path / "objects"
    (objects / "pack").mkdir(parents=True)
    (objects / "pack" / idx.name).write_bytes(idx.read_bytes())
    (objects / "pack" / pack.name).write_bytes(pack.read_bytes()[:64])
    scans = PushScans()
    for _ in range(2):
        with pytest.raises(CorruptObject):
            scans.objects(objects, 10)
