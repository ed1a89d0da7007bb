"""The blob store (fsspec): uploads, workspace files, artifacts. Paths are validated relative keys."""
from __future__ import annotations

import posixpath
import time
from datetime import datetime
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
        """Gone afterwards, whoever removed it: two removers of one file (a purge and a refused PUT) both succeed."""
        _remove(self.fs, self._full(key))

    def delete_prefix(self, prefix: str) -> None:
        _remove(self.fs, self._full(prefix.rstrip("/")), recursive=True)

    def delete_older_than(self, prefix: str, seconds: float) -> list[str]:
        """Delete the files directly under `prefix` unchanged for `seconds`; returns their keys."""
        full = self._full(prefix.rstrip("/"))
        try:
            listing = self.fs.ls(full, detail=True)
        except FileNotFoundError:
            return []
        deadline = time.time() - seconds
        removed = []
        for info in listing:
            modified = _modified(info)
            if info.get("type") == "file" and modified is not None and modified < deadline:
                _remove(self.fs, info["name"])
                removed.append(posixpath.relpath(info["name"], self.root))
        return removed

    def check(self) -> None:
        """Raise if the store is unreachable (readiness probe)."""
        self.fs.ls(self.root)


def _remove(fs, full: str, recursive: bool = False) -> None:
    """Without looking first: a look and then a removal lets another remover slip in between."""
    try:
        fs.rm(full, recursive=recursive)
    except FileNotFoundError:
        pass


def _modified(info: dict) -> float | None:
    """A listing entry's modification time: `mtime` (local files), `updated` (GCS) or `LastModified` (S3)."""
    value = info.get("mtime") or info.get("updated") or info.get("LastModified")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None
