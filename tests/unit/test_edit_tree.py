"""edit_tree never lets one change silently overwrite another (a real bare repository, dulwich objects)."""
from __future__ import annotations

import subprocess

import pytest
from dulwich.repo import Repo

from storage import git_objects
from storage.git_objects import FILE_MODE, PathClash, edit_tree


@pytest.fixture
def repo(tmp_path):
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "r.git")], check=True)
    with Repo(str(tmp_path / "r.git")) as opened:
        yield opened


def files(repo, tree: bytes) -> set[str]:
    return {entry.path for entry in git_objects._entries(repo, tree, "", True)}


def blob(repo, text: str = "x") -> tuple[int, str]:
    return FILE_MODE, git_objects.write_blob(repo, text.encode())


@pytest.fixture
def base(repo):
    return edit_tree(repo, None, {"README.md": blob(repo), "src/a.ts": blob(repo), "src/b.ts": blob(repo)})


@pytest.mark.parametrize("order", [("lib/x.ts", "lib"), ("lib", "lib/x.ts")])
def test_a_file_and_a_path_inside_it_clash_in_either_order(repo, order):
    with pytest.raises(PathClash):
        edit_tree(repo, None, {path: blob(repo) for path in order})


def test_nothing_goes_inside_a_file_that_stays(repo, base):
    with pytest.raises(PathClash, match="README.md"):
        edit_tree(repo, base, {"README.md/sub": blob(repo)})


@pytest.mark.parametrize("deletion_first", [True, False])
def test_deleting_a_file_makes_way_for_a_directory(repo, base, deletion_first):
    items = [("README.md", None), ("README.md/sub", blob(repo))]
    changes = dict(items if deletion_first else reversed(items))
    assert files(repo, edit_tree(repo, base, changes)) == {"README.md/sub", "src/a.ts", "src/b.ts"}


def test_a_file_does_not_replace_a_directory(repo, base):
    with pytest.raises(PathClash, match="directory"):
        edit_tree(repo, base, {"src": blob(repo)})


def test_a_file_replaces_a_directory_whose_files_are_all_deleted(repo, base):
    changes = {"src/a.ts": None, "src/b.ts": None, "src": blob(repo, "now a file")}
    assert files(repo, edit_tree(repo, base, changes)) == {"README.md", "src"}


@pytest.mark.parametrize("extra", [{}, {"src/c.ts": (FILE_MODE, "0" * 40)}])
def test_a_file_does_not_replace_a_directory_that_keeps_or_gains_a_file(repo, base, extra):
    with pytest.raises(PathClash, match="src"):
        edit_tree(repo, base, {"src/a.ts": None, **extra, "src": blob(repo)})


def test_independent_changes_still_apply(repo, base):
    tree = edit_tree(repo, base, {"src/a.ts": None, "src/c.ts": blob(repo), "docs/x/y.md": blob(repo)})
    assert files(repo, tree) == {"README.md", "src/b.ts", "src/c.ts", "docs/x/y.md"}
