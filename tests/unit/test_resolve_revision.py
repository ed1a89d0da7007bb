"""Revisions as the API takes them (a branch, a tag, a sha, full ref names, git's ancestry steps), resolved in a real
repository made with the git CLI."""
from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest

from control.services.changes import resolve_revision
from storage.errors import Invalid, NotFound


def _git(repo, *args) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(repo), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def history(tmp_path):
    """main: one - two - merge(two, side), side: one - s; tag v1 (annotated) at two."""
    repo = tmp_path / "r"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    shas = {}
    for name in ("one", "two"):
        _git(repo, "commit", "-q", "--allow-empty", "-m", name)
        shas[name] = _git(repo, "rev-parse", "HEAD")
    _git(repo, "tag", "-a", "-m", "v1", "v1")
    _git(repo, "checkout", "-q", "-b", "side", shas["one"])
    _git(repo, "commit", "-q", "--allow-empty", "-m", "s")
    shas["s"] = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "main")
    _git(repo, "merge", "-q", "--no-ff", "-m", "merge", "side")
    shas["merge"] = _git(repo, "rev-parse", "HEAD")
    app = SimpleNamespace(store=SimpleNamespace(path_for=lambda _id: repo / ".git"))
    return (lambda revision: resolve_revision(app, SimpleNamespace(id="r", default_branch="main"), revision)), shas


@pytest.mark.parametrize("revision, expected", [
    ("main", "merge"), ("refs/heads/main", "merge"), ("side", "s"), ("v1", "two"), ("refs/tags/v1", "two"),
    ("main~1", "two"), ("main^", "two"), ("main^2", "s"), ("main~2", "one"), ("main^2~1", "one"), ("main^^", "one"),
    ("main^0", "merge"), ("main~0", "merge"), ("v1~1", "one"), ("refs/tags/v1^", "one"),
])
def test_names_and_ancestry_steps_resolve_to_the_commit_git_names(history, revision, expected):
    resolve, shas = history
    assert resolve(revision) == shas[expected]


@pytest.mark.parametrize("revision, expected", [("HEAD", "merge"), ("HEAD~1", "two"), ("HEAD^2", "s")])
def test_head_is_the_default_branch(history, revision, expected):
    resolve, shas = history
    assert resolve(revision) == shas[expected]


def test_a_sha_in_capitals_is_the_same_commit_as_git_takes_it(history):
    resolve, shas = history
    assert resolve(shas["two"].upper()) == shas["two"]
    assert resolve(shas["two"][:10].upper()) == shas["two"]
    assert resolve(shas["merge"].upper() + "^2") == shas["s"]


def test_a_short_sha_takes_steps_too(history):
    resolve, shas = history
    assert resolve(shas["merge"][:10] + "^2") == shas["s"]


@pytest.mark.parametrize("revision", ["main~3", "main^3", "side^2", "nope~1", "refs/heads/nope", "refs/remotes/x"])
def test_steps_past_the_history_or_from_nothing_are_not_found(history, revision):
    resolve, _ = history
    with pytest.raises(NotFound):
        resolve(revision)


def test_a_walk_too_long_is_refused_before_it_starts(history):
    resolve, _ = history
    with pytest.raises(Invalid, match="more than"):
        resolve("main~99999")
