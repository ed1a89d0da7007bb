"""hooks.changed_paths.new_paths and the push path check on a real bare repository: a new ref is diffed against
the new ref before it in name order (the first against the default branch), so a mirror push of many tags lists
each tag's few changes instead of its whole tree; a failing diff refuses the push unless the value is a blob."""
from __future__ import annotations

import os
import subprocess

import pytest

from hooks import changed_paths, checks
from hooks.context import ChangeContext, RepoRef
from hooks.refs import ZERO_SHA, RefUpdate
from storage import git_read
from storage.git_env import GitFailed
from storage.push_scans import PushScans
from storage.settings import Settings


def _git(repo, *args: str, data: bytes | None = None, index: str | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", **({"GIT_INDEX_FILE": index} if index else {})}
    return subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True, check=True,
                          env=env).stdout.decode().strip()


def _commit(repo, parent: str | None, files: dict[str, str]) -> str:
    index = str(repo / "scratch-index")
    _git(repo, "read-tree", "--empty", index=index)
    for path, text in files.items():
        blob = _git(repo, "hash-object", "-w", "--stdin", data=text.encode())
        _git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", index=index)
    tree = _git(repo, "write-tree", index=index)
    return _git(repo, "commit-tree", tree, *(["-p", parent] if parent else []), "-m", "c")


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def _ctx(repo, tmp_path) -> ChangeContext:
    return ChangeContext(db=None, settings=Settings(data_dir=tmp_path), repo=RepoRef("r", "o", "r", "main"),
                         repo_path=repo, actor=None, push_scans=PushScans())


def test_new_tags_are_diffed_one_against_the_next(repo, tmp_path, monkeypatch):
    files = {f"src/f{i}.txt": f"{i}\n" for i in range(50)}
    main = _commit(repo, None, files)
    _git(repo, "update-ref", "refs/heads/main", main)
    tips, parent = [], main
    for version in range(1, 12):
        parent = _commit(repo, parent, {**files, f"v{version}.txt": "x"})
        tips.append(parent)
    asked = []
    real = git_read.changed_paths

    def counted(repo_path, base, head, env=None, directories=False):
        asked.append((base, head))
        return real(repo_path, base, head, env=env, directories=directories)

    monkeypatch.setattr(git_read, "changed_paths", counted)
    updates = [RefUpdate(ZERO_SHA, tip, f"refs/tags/v{i + 1}") for i, tip in reversed(list(enumerate(tips)))]
    found = dict(changed_paths.new_paths(_ctx(repo, tmp_path), updates))
    assert asked == [(main, tips[0])] + list(zip(tips, tips[1:]))  # v1 against main, v2 against v1, ... v11
    assert found[updates[0]] == ["v10.txt", "v11.txt"]  # v11 against v10: not the 50 files again


def test_a_bad_path_in_a_later_tag_is_found(repo, tmp_path):
    main = _commit(repo, None, {"a.txt": "a"})
    _git(repo, "update-ref", "refs/heads/main", main)
    v1 = _commit(repo, main, {"a.txt": "a", "b.txt": "b"})
    v2 = _commit(repo, v1, {"a.txt": "a", "b.txt": "b", "c/GIT~2/x": "evil"})
    updates = [RefUpdate(ZERO_SHA, v2, "refs/tags/v2"), RefUpdate(ZERO_SHA, v1, "refs/tags/v1")]
    refused = checks.check_pushed_paths(_ctx(repo, tmp_path), updates, None)
    assert {r.ref for r in refused} == {"refs/tags/v2"}  # v1 holds no such path (the push is refused whole)
    assert "path 'c/GIT~2' is refused" in refused[0].reason  # the directory is listed before what is in it


def test_a_bad_path_a_later_tag_only_inherits_refuses_it_too(repo, tmp_path):
    """v2 is diffed against v1, where the path came in: it is still v2's."""
    main = _commit(repo, None, {"a.txt": "a"})
    _git(repo, "update-ref", "refs/heads/main", main)
    v1 = _commit(repo, main, {"a.txt": "a", "c/GIT~2/x": "evil"})
    v2 = _commit(repo, v1, {"a.txt": "a", "c/GIT~2/x": "evil", "d.txt": "d"})
    v3 = _commit(repo, main, {"a.txt": "a", "e.txt": "e"})
    updates = [RefUpdate(ZERO_SHA, v, f"refs/tags/v{n}") for n, v in ((1, v1), (2, v2), (3, v3))]
    refused = checks.check_pushed_paths(_ctx(repo, tmp_path), updates, None)
    assert sorted(r.ref for r in refused) == ["refs/tags/v1", "refs/tags/v2"]


def test_a_diff_git_could_not_make_refuses_the_push(repo, tmp_path, monkeypatch):
    head = _commit(repo, None, {"a.txt": "a"})
    _git(repo, "update-ref", "refs/heads/main", head)
    blob = _git(repo, "hash-object", "-w", "--stdin", data=b"x")

    def failing(*_args, **_kwargs):
        raise GitFailed(128, ["git", "diff-tree"], b"", b"fatal: something went wrong")

    monkeypatch.setattr(git_read, "changed_paths", failing)
    assert checks.check_pushed_paths(_ctx(repo, tmp_path), [RefUpdate(ZERO_SHA, blob, "refs/tags/b")], None) == []
    ahead = _commit(repo, head, {"b.txt": "b"})
    with pytest.raises(GitFailed):
        checks.check_pushed_paths(_ctx(repo, tmp_path), [RefUpdate(ZERO_SHA, ahead, "refs/heads/x")], None)


def test_ref_names_sort_with_digits_of_any_kind():
    """'²' is a digit to str.isdigit but not to the \\d that split the name: v1²2 failed every push creating it."""
    from hooks.changed_paths import _natural

    names = ["refs/tags/v1.10", "refs/tags/v1.9", "refs/heads/v1\u00b22", "refs/tags/x1\u06632", "refs/heads/v1\u00b2"]
    ordered = sorted(names, key=_natural)
    assert ordered.index("refs/tags/v1.9") < ordered.index("refs/tags/v1.10")


def test_an_empty_directory_with_a_refused_name_is_found(repo, tmp_path):
    """diff-tree -r lists files only: an empty tree entry named `x::y` showed nowhere."""
    main = _commit(repo, None, {"a.txt": "a"})
    _git(repo, "update-ref", "refs/heads/main", main)
    blob = _git(repo, "rev-parse", f"{main}:a.txt")
    empty = _git(repo, "mktree", data=b"")
    raw = (b"100644 a.txt\0" + bytes.fromhex(blob) + b"40000 x::y\0" + bytes.fromhex(empty))
    tree = _git(repo, "hash-object", "-t", "tree", "-w", "--literally", "--stdin", data=raw)
    bad = _git(repo, "commit-tree", tree, "-p", main, "-m", "empty dir")
    refused = checks.check_pushed_paths(_ctx(repo, tmp_path), [RefUpdate(main, bad, "refs/heads/main")], None)
    assert refused and "path 'x::y' is refused" in refused[0].reason


def test_a_tag_of_a_blob_moved_to_a_commit_is_checked_against_nothing(repo, tmp_path):
    main = _commit(repo, None, {"a.txt": "a"})
    _git(repo, "update-ref", "refs/heads/main", main)
    blob = _git(repo, "hash-object", "-w", "--stdin", data=b"x")
    good = _commit(repo, main, {"a.txt": "a", "b.txt": "b"})
    bad = _commit(repo, main, {"a.txt": "a", "b\\c.txt": "b"})
    assert checks.check_pushed_paths(_ctx(repo, tmp_path), [RefUpdate(blob, good, "refs/tags/t")], None) == []
    refused = checks.check_pushed_paths(_ctx(repo, tmp_path), [RefUpdate(blob, bad, "refs/tags/t")], None)
    assert refused and "backslash" in refused[0].reason


def test_the_api_checks_a_new_ref_but_not_its_own_commits(repo, tmp_path):
    """A commit only history reaches (a later one removed its bad path) became a branch through
    POST /v1/repos/{repo}/branches {"from": sha}: a ref the API makes may point at any stored commit."""
    main = _commit(repo, None, {"a.txt": "a"})
    _git(repo, "update-ref", "refs/heads/main", main)
    bad = _commit(repo, main, {"a.txt": "a", "bad::1": "x"})
    ctx = _ctx(repo, tmp_path)
    api = ChangeContext(db=None, settings=ctx.settings, repo=ctx.repo, repo_path=repo, actor=None, source="api")
    assert checks.check_pushed_paths(api, [RefUpdate(ZERO_SHA, bad, "refs/heads/from-sha")], None)
    assert checks.check_pushed_paths(api, [RefUpdate(main, bad, "refs/heads/main")], None) == []  # its own commit
