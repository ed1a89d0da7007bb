"""hooks.checks.check_object_sizes on a real thin pack completed by `git index-pack --fix-thin` in a quarantine, as
receive-pack leaves it: the bases git appends are stored objects and do not count toward what the push inflates
to (a sweep saw 13,764 bytes of new objects refused as 23,654, the stored base added)."""
from __future__ import annotations

import os
import subprocess

from hooks.checks import check_object_sizes
from hooks.context import ChangeContext, RepoRef
from hooks.refs import RefUpdate
from storage.settings import Settings


def _git(cwd, *args: str, data: bytes | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(cwd), *args], input=data, capture_output=True, check=True,
                          env=env).stdout.decode().strip()


def test_the_bases_of_a_thin_pack_are_not_counted(tmp_path):
    bare, work = tmp_path / "r.git", tmp_path / "w"
    _git(tmp_path, "init", "-q", "--bare", str(bare))
    _git(tmp_path, "init", "-q", "-b", "main", str(work))
    text = "".join(f"line {i} of a file the server has\n" for i in range(2000))  # ~70 KB
    (work / "big.txt").write_text(text)
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "base")
    _git(work, "push", "-q", str(bare), "main")
    old = _git(work, "rev-parse", "HEAD")
    (work / "big.txt").write_text(text.replace("line 7 ", "line seven "))
    for i in range(110):  # 100 objects or more: receive-pack would keep the pack
        (work / f"s{i}.txt").write_text(f"{i}\n")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "change one line")
    new = _git(work, "rev-parse", "HEAD")
    pack = subprocess.run(["git", "-C", str(work), "pack-objects", "--thin", "--stdout", "--revs", "-q"],
                          input=f"{new}\n^{old}\n".encode(), capture_output=True, check=True).stdout
    quarantine = bare / "objects" / "tmp_objdir-incoming-test"
    (quarantine / "pack").mkdir(parents=True)
    subprocess.run(["git", "-C", str(bare), "index-pack", "--fix-thin", "--stdin", str(quarantine / "pack" / "p.pack")],
                   input=pack, capture_output=True, check=True)
    base_size = len(text)
    brought = _git(work, "rev-list", "--objects", "--no-object-names", new, f"^{old}").split()
    sizes = _git(work, "cat-file", "--batch-check=%(objectsize)", data="\n".join(brought).encode() + b"\n")
    new_total = sum(int(size) for size in sizes.split())  # the push's own objects, the changed big.txt among them

    def check(limit: int):
        ctx = ChangeContext(db=None, settings=Settings(data_dir=tmp_path, max_push_inflated_size=limit),
                            repo=RepoRef("r", "o", "r", "main"), repo_path=bare, actor=None,
                            git_env={"GIT_QUARANTINE_PATH": str(quarantine)})
        return check_object_sizes(ctx, [RefUpdate(old, new, "refs/heads/main")], None)

    assert check(new_total) == []  # the base (~70 KB) is stored: only the push's own objects count
    assert check(new_total + base_size - 1) == []
    refused = check(new_total - 1)
    assert refused and f"inflate to {new_total} bytes" in refused[0].reason
