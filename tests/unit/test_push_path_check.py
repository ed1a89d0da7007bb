"""hooks.checks.check_pushed_paths fails closed: a diff git could not make refuses the push unless the new value
is a blob (a tag of a blob has no paths). A real bare repository; the failing diff is a spy."""
from __future__ import annotations

import subprocess

import pytest

from hooks import checks
from hooks.context import ChangeContext, RepoRef
from hooks.refs import ZERO_SHA, RefUpdate
from storage.git_env import GitFailed
from storage.settings import Settings
from tests.support import commit_in


def test_a_diff_git_could_not_make_refuses_the_push(tmp_path, monkeypatch):
    repo = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    head = commit_in(repo, "main")
    blob = subprocess.run(["git", "-C", str(repo), "hash-object", "-w", "--stdin"], input=b"x", capture_output=True,
                          check=True).stdout.decode().strip()
    ctx = ChangeContext(db=None, settings=Settings(data_dir=tmp_path), repo=RepoRef("r", "o", "r", "main"),
                        repo_path=repo, actor=None)

    def failing(*_args):
        raise GitFailed(128, ["git", "diff-tree"], b"", b"fatal: something went wrong")

    monkeypatch.setattr(checks, "paths_changed_by", failing)
    assert checks.check_pushed_paths(ctx, [RefUpdate(ZERO_SHA, blob, "refs/tags/b")], None) == []
    with pytest.raises(GitFailed):
        checks.check_pushed_paths(ctx, [RefUpdate(ZERO_SHA, head, "refs/heads/x")], None)
