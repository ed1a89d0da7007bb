"""What the checks read from one push's quarantine, each computed once however many threads (or checks) ask.

The server starts a large push's scans as soon as git has written its pack, while git still checks the push's
connectivity; the checks then take those results, or wait for them, instead of reading the pack again. A pack
is named by its path: the files of a finished pack are never rewritten in place.
"""
from __future__ import annotations

import copy
import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

from . import object_headers
from .object_headers import SizeScan


class PushScans:
    def __init__(self, sent_objects: int | None = None):
        self.sent_objects = sent_objects  # what the pack's header says it holds (None: not read)
        self._lock = threading.Lock()
        self._scans: dict[tuple, Future] = {}
        self._keeps_errors = True

    def tentative(self) -> "PushScans":
        """The same scans, for work started before the push is known to need it (while git still checks it): an
        error met there is not kept, whoever asks next computes again. Objects the repository gains meanwhile
        could make it succeed."""
        view = copy.copy(self)  # the same lock and results
        view._keeps_errors = False
        return view

    def objects(self, object_dir: Path, limit: int, hash_size: int = 20) -> SizeScan:
        """The objects stored directly in `object_dir` (loose, or in its packs): those larger than `limit`, and
        what they all inflate to."""
        loose = object_headers.loose_scan(object_dir, limit)
        oversized, total, count = list(loose.oversized), loose.total, loose.count
        for idx in object_headers.pack_indexes(object_dir):
            packed = self.pack(idx, limit, hash_size)
            oversized += packed.oversized
            total += packed.total
            count += packed.count
        return SizeScan(oversized, total, count)

    def pack(self, idx: Path, limit: int, hash_size: int = 20) -> SizeScan:
        idx = Path(os.path.realpath(idx))  # git names the quarantine its own way: one key per file
        scanned = self.once(("pack", idx, limit, hash_size), lambda: object_headers.pack_scan(idx, limit, hash_size))
        return SizeScan(list(scanned.oversized), scanned.total, scanned.count)

    def finished(self) -> list[Path]:
        """The packs whose size scan is over (its result or its error is in)."""
        with self._lock:
            return [key[1] for key, future in self._scans.items() if key[0] == "pack" and future.done()]

    def once(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """`compute()`'s result (or error) for `key`: computed by the first caller, waited for by the others."""
        with self._lock:
            future = self._scans.get(key)
            mine = future is None
            if mine:
                future = self._scans[key] = Future()
                future.tentative = not self._keeps_errors
        if mine:
            try:
                future.set_result(compute())
            except BaseException as error:  # CorruptObject, OSError, GitFailed: whoever asks gets the same error
                if future.tentative:
                    with self._lock:  # before the waiters hear of it: each of them then finds the key free
                        del self._scans[key]
                future.set_exception(error)
        try:
            return future.result()
        except BaseException:
            if mine or not future.tentative:
                raise
        return self.once(key, compute)
