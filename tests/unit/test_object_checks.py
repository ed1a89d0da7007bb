"""git's checks of objects the server writes itself, with the real git: the scratch pack they are read from lies in
the repository's directory (hidden from extension agents), never in the shared temporary directory, where another
organization's agent read the commits and trees being checked."""
from __future__ import annotations

import subprocess
import tempfile

from dulwich.objects import Blob, Tree
from dulwich.repo import Repo

from storage import object_checks


def test_the_scratch_pack_is_in_the_repository_and_gone_afterwards(tmp_path, monkeypatch):
    repo_path = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo_path)], check=True)
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    packs = []
    real_run_git = object_checks.run_git

    def watched(path, args, **kwargs):
        packs.append(args[-1])
        return real_run_git(path, args, **kwargs)

    monkeypatch.setattr(object_checks, "run_git", watched)
    blob = Blob.from_string(b"x\n")
    bad = Tree()
    bad.add(b".GIT", 0o100644, blob.id)
    good = Tree()
    good.add(b"a.txt", 0o100644, blob.id)
    object_format = Repo(str(repo_path)).object_store.object_format
    assert ".git" in object_checks.objects_problem(repo_path, [blob, bad], object_format).lower()
    assert object_checks.objects_problem(repo_path, [blob, good], object_format) is None
    assert len(packs) == 2 and all(str(pack).startswith(str(repo_path) + "/") for pack in packs)
    assert list(shared.iterdir()) == []
    assert not [entry for entry in repo_path.iterdir() if entry.name.startswith("driftstone-fsck-")]


def _commit_with_author_line(repo_path, author_line: bytes):
    from dulwich.objects import Commit

    raw = (b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n" + b"author " + author_line + b"\n"
           + b"committer C <c@x> 1500000000 +0000\n\nold history\n")
    return Commit.from_raw_string(Commit.type_num, raw)


def test_cosmetic_findings_of_old_histories_pass_and_the_rest_still_refuse(tmp_path):
    """What old git and other implementations wrote (a bad time zone, zero-padded modes) is taken, as Gitaly takes
    it: a rebase or pull of such history was refused. Others still are."""
    repo_path = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo_path)], check=True)
    object_format = Repo(str(repo_path)).object_store.object_format
    empty = Tree()
    bad_zone = _commit_with_author_line(repo_path, b"A <a@x> 1500000000 +25000")
    assert object_checks.objects_problem(repo_path, [empty, bad_zone], object_format) is None
    no_space = _commit_with_author_line(repo_path, b"A <a@x>1500000000 +0000")  # dulwich reads no date there
    assert "missingSpaceBeforeDate" in object_checks.objects_problem(repo_path, [empty, no_space], object_format)
    padded = Tree()
    blob = Blob.from_string(b"x\n")
    padded.add(b"a.txt", 0o100644, blob.id)
    raw = padded.as_raw_string().replace(b"100644 a.txt", b"0100644 a.txt")
    zero_padded = Tree.from_raw_string(Tree.type_num, raw)
    assert object_checks.objects_problem(repo_path, [blob, zero_padded], object_format) is None
    bad_email = _commit_with_author_line(repo_path, b"A <a@x 1500000000 +0000")
    assert "badEmail" in object_checks.objects_problem(repo_path, [empty, bad_email], object_format)
    both = _commit_with_author_line(repo_path, b"A <a@x 1500000000 +25000")
    assert object_checks.objects_problem(repo_path, [empty, both], object_format) is not None
