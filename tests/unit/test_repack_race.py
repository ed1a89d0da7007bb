"""Reads through dulwich while git repacks: a loose object packed (and its file deleted) between dulwich's look at
the packs and its look at the loose objects must still be found, as git finds it."""
from __future__ import annotations

import subprocess

from storage import git_objects


def test_an_object_packed_between_the_two_looks_is_found(tmp_path):
    repo_path = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo_path)], check=True)
    blob = subprocess.run(["git", "-C", str(repo_path), "hash-object", "-w", "--stdin"], input=b"loose\n",
                          capture_output=True, check=True).stdout.strip()
    subprocess.run(["git", "-C", str(repo_path), "update-ref", "refs/heads/keep", _commit_of(repo_path, blob)],
                   check=True)
    with git_objects.open_repo(repo_path) as repo:
        store = repo.object_store
        store.packs  # the pack list as it was before the repack
        loose_lookup = store._get_loose_object
        raced = []

        def repack_first(sha):
            if not raced:
                raced.append(True)
                subprocess.run(["git", "-C", str(repo_path), "repack", "-a", "-d", "-q"], check=True)
            return loose_lookup(sha)

        store._get_loose_object = repack_first
        assert store[blob].as_raw_string() == b"loose\n"
        assert raced


def _commit_of(repo_path, blob: bytes) -> str:
    tree = subprocess.run(["git", "-C", str(repo_path), "mktree"], input=b"100644 blob " + blob + b"\tf\n",
                          capture_output=True, check=True).stdout.strip()
    return subprocess.run(["git", "-C", str(repo_path), "commit-tree", "-m", "c", tree.decode()],
                          capture_output=True, check=True, env={"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x",
                                                                "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@x",
                                                                "PATH": "/usr/bin:/bin"}).stdout.strip().decode()


def test_an_object_directory_removed_under_a_write_is_made_again(tmp_path, monkeypatch):
    """`git repack -d` runs prune-packed, which removes empty objects/xx/ directories: one removed between
    dulwich making it and opening the object's lock file made 57 of 1,569 API commits answer 500 beside a
    housekeeping loop (FileNotFoundError)."""
    import os

    import dulwich.object_store
    from dulwich.objects import Blob

    repo_path = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo_path)], check=True)
    made = dulwich.object_store.adjust_shared_perm
    removed = []

    def pruned_right_after(path, *args, **kwargs):
        made(path, *args, **kwargs)
        if not removed:
            removed.append(path)
            os.rmdir(path)  # what prune-packed does to a directory it finds empty

    monkeypatch.setattr(dulwich.object_store, "adjust_shared_perm", pruned_right_after)
    blob = Blob.from_string(b"written while a repack ran\n")
    with git_objects.open_repo(repo_path) as repo:
        git_objects.store_object(repo, blob)
    assert removed
    shown = subprocess.run(["git", "-C", str(repo_path), "cat-file", "-p", blob.id.decode()], capture_output=True)
    assert shown.stdout == b"written while a repack ran\n"
