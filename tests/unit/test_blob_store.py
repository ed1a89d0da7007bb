"""The blob store's removals when another remover gets there first (a branch's purge and a refused PUT remove the
same upload file; CI saw that PUT answer 500 once on PostgreSQL with rq).

The other remover is simulated by a file system whose look says "there" for a file already gone: the window
between a look and a removal is too narrow to hit reliably with two real threads."""
from __future__ import annotations

import os
import time

import pytest

from storage.blobs import BlobStore


@pytest.fixture
def store(tmp_path):
    return BlobStore(f"file://{tmp_path}/blobs")


def _put(store: BlobStore, key: str, data: bytes = b"x") -> None:
    with store.open_write(key) as out:
        out.write(data)


def _removed_by_another_after_every_look(store: BlobStore, monkeypatch) -> None:
    real_exists = store.fs.exists

    def looked_then_removed(path, **kwargs):
        there = real_exists(path, **kwargs)
        if there:
            store.fs.rm(path, recursive=True)
        return there

    monkeypatch.setattr(store.fs, "exists", looked_then_removed)


def test_a_file_removed_by_another_remover_is_gone_without_an_error(store, monkeypatch):
    _put(store, "uploads/u1/a.txt")
    _removed_by_another_after_every_look(store, monkeypatch)
    store.delete("uploads/u1/a.txt")
    assert not os.path.exists(f"{store.root}/uploads/u1/a.txt")


def test_a_prefix_removed_by_another_remover_is_gone_without_an_error(store, monkeypatch):
    _put(store, "uploads/u2/a.txt")
    _removed_by_another_after_every_look(store, monkeypatch)
    store.delete_prefix("uploads/u2")
    assert not os.path.exists(f"{store.root}/uploads/u2")


def test_missing_keys_and_prefixes_delete_quietly(store):
    store.delete("never/written.txt")
    store.delete_prefix("never")
    assert store.delete_older_than("never", 0) == []


def test_old_files_removed_meanwhile_by_another_are_still_reported_gone(store, monkeypatch):
    for name in ("a", "b"):
        _put(store, f"tmp/{name}")
    old = time.time() - 3600
    for name in ("a", "b"):
        os.utime(f"{store.root}/tmp/{name}", (old, old))
    real_ls = store.fs.ls

    def listed_then_one_removed(path, **kwargs):
        listing = real_ls(path, **kwargs)
        os.remove(f"{store.root}/tmp/a")  # a temporary file's own request cleaned it up meanwhile
        return listing

    monkeypatch.setattr(store.fs, "ls", listed_then_one_removed)
    assert sorted(store.delete_older_than("tmp", 60)) == ["tmp/a", "tmp/b"]
    assert os.listdir(f"{store.root}/tmp") == []


def test_an_upload_file_purged_while_its_completion_looks_counts_as_not_arrived(store, monkeypatch):
    """complete_upload asks whether each file arrived; a purge (its branch deleted) removing the file between a
    look and the read of its size made that a 500 instead of the 409 naming the missing file."""
    from types import SimpleNamespace

    from control.services.uploads import _arrived

    _put(store, "uploads/u3/a.txt", b"abc")
    row = SimpleNamespace(storage_path="uploads/u3/a.txt", expected_sha256="h", received_sha256="h", size=3)
    assert _arrived(store, row)
    store.delete("uploads/u3/a.txt")
    monkeypatch.setattr(store.fs, "exists", lambda path, **kwargs: True)  # it was there when looked at
    assert not _arrived(store, row)
