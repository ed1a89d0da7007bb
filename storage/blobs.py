"""The blob store (fsspec): uploads, workspace files, artifacts. Paths are validated relative keys."""
from __future__ import annotations

import posixpath
from typing import BinaryIO

import fsspec


class BlobStore:
    def __init__(self, url: str):
        self.fs, root = fsspec.core.url_to_fs(url)
        self.root = root.rstrip("/")
        if self.fs.protocol in ("file", ("file", "local")) or "file" in getattr(self.fs, "protocol", ()):
            self.fs.mkdirs(self.root, exist_ok=True)

    def _full(self, key: str) -> str:
        normal = posixpath.normpath(key)
        if key.startswith("/") or normal.startswith("..") or normal != key.rstrip("/") or "\0" in key:
            raise ValueError("invalid blob key")
        return f"{self.root}/{key}"

    def open_write(self, key: str) -> BinaryIO:
        full = self._full(key)
        parent = posixpath.dirname(full)
        self.fs.mkdirs(parent, exist_ok=True)
        return self.fs.open(full, "wb")

    def open_read(self, key: str) -> BinaryIO:
        return self.fs.open(self._full(key), "rb")

    def exists(self, key: str) -> bool:
        return self.fs.exists(self._full(key))

    def size(self, key: str) -> int:
        return self.fs.size(self._full(key))

    def move(self, source: str, target: str) -> None:
        full = self._full(target)
        self.fs.mkdirs(posixpath.dirname(full), exist_ok=True)
        self.fs.mv(self._full(source), full)

    def delete(self, key: str) -> None:
        full = self._full(key)
        if self.fs.exists(full):
            self.fs.rm(full)

    def delete_prefix(self, prefix: str) -> None:
        full = self._full(prefix.rstrip("/"))
        if self.fs.exists(full):
            self.fs.rm(full, recursive=True)

    def check(self) -> None:
        """Raise if the store is unreachable (readiness probe)."""
        self.fs.ls(self.root)
