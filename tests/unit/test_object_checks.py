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
