"""Reads through dulwich while git repacks: a loose object packed (and its file deleted) between dulwich's look at
the packs and its look at the loose objects must still be found, as git finds it."""
from __future__ import annotations

import subprocess

from storage import git_objects


def test_an_object_packed_between_the_two_looks_is_found(tmp_path):
    repo_path, blob = _repo_with_a_branch(tmp_path, b"loose\n")
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


def _repo_with_a_branch(tmp_path, content: bytes):
    """A bare repository whose one branch holds a file with `content` as a loose object; and that blob's id."""
    repo_path = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo_path)], check=True)
    blob = subprocess.run(["git", "-C", str(repo_path), "hash-object", "-w", "--stdin"], input=content,
                          capture_output=True, check=True).stdout.strip()
    subprocess.run(["git", "-C", str(repo_path), "update-ref", "refs/heads/keep", _commit_of(repo_path, blob)],
                   check=True)
    return repo_path, blob


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


def test_a_pack_moved_in_before_its_index_is_deleted_by_a_repack_unless_kept(tmp_path):
    """Why merges write their packs kept: index-pack renames the `.pack` into place before the `.idx`, and a
    `git repack -a -d` that lists the packs in that moment deletes the pack it could not read (seen beside a
    repack loop: 1-2 of 1,500 merge packs lost, and a merge's own commit gone: 'bad object', a 500)."""
    repo_path, _ = _repo_with_a_branch(tmp_path, b"kept\n")
    pack_dir = repo_path / "objects" / "pack"
    for kept in (False, True):
        pending = _unindexed_pack(tmp_path / f"scratch-{kept}", pack_dir, f"merge result {kept}\n".encode())
        if kept:
            pending.with_suffix(".keep").write_text("driftstone merge\n")
        subprocess.run(["git", "-C", str(repo_path), "repack", "-a", "-d", "-k", "-q"], check=True)
        assert pending.exists() is kept


def _unindexed_pack(scratch, pack_dir, content: bytes):
    """A pack as index-pack leaves it between its two renames: the `.pack` in place, no `.idx` yet."""
    subprocess.run(["git", "init", "-q", "--bare", str(scratch)], check=True)
    oid = subprocess.run(["git", "-C", str(scratch), "hash-object", "-w", "--stdin"], input=content,
                         capture_output=True, check=True).stdout.strip()
    name = subprocess.run(["git", "-C", str(scratch), "pack-objects", str(scratch / "p")], input=oid + b"\n",
                          capture_output=True, check=True).stdout.decode().strip()
    target = pack_dir / f"pack-{name}.pack"
    (scratch / f"p-{name}.pack").rename(target)
    return target


def test_a_merge_writes_its_pack_kept_until_the_index_is_in_place(tmp_path, monkeypatch):
    from dulwich.objects import Blob

    from storage import merge_store

    repo_path = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo_path)], check=True)
    seen_while_writing = []
    real_run_git = merge_store.run_git

    def index_pack_then_look(path, args, **kwargs):
        result = real_run_git(path, args, **kwargs)
        seen_while_writing.extend(p.suffix for p in (repo_path / "objects" / "pack").iterdir())
        return result

    monkeypatch.setattr(merge_store, "run_git", index_pack_then_look)
    blob = Blob.from_string(b"merged\n")
    with git_objects.open_repo(repo_path) as repo:
        store = merge_store.MergeStore(repo.object_store)
        store.add(blob)
        assert store.persist(blob.id) == 1
    assert {".idx", ".keep", ".pack"} <= set(seen_while_writing)
    assert ".keep" not in {p.suffix for p in (repo_path / "objects" / "pack").iterdir()}
    shown = subprocess.run(["git", "-C", str(repo_path), "cat-file", "-p", blob.id.decode()], capture_output=True)
    assert shown.stdout == b"merged\n"
