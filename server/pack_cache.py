"""The pack cache: clones of one repository at one state within minutes share one `git pack-objects` run.

git upload-pack hands pack-objects to server/git/pack-objects-cache (uploadpack.packObjectsHook, which git
takes only from the command line, never from a repository's config), and that program keeps each pack it
makes for a few minutes, in one directory for the whole server (RepoStore.kept_packs) under the repository's
id. Making a pack is where a clone spends the server's CPU (and, without a bitmap, memory for every object);
sending a kept one costs a file read. Fetches that name objects the client has ("have" lines) differ from
client to client and are left to git alone: the cache's bookkeeping (a shell and a few small processes) would
only slow them down.
"""
from __future__ import annotations

import logging
import os
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

from .pktline import PktError, PktReader
from .scripts import install_script

log = logging.getLogger(__name__)
PROGRAM = Path(__file__).parent / "git" / "pack-objects-cache"


@dataclass(frozen=True)
class PackCache:
    program: Path | None  # the installed program; None: no cache
    minutes: int = 10  # how long a pack is sent again
    min_free_bytes: int = 2 * 1024**3  # below this much free disk, packs are made as usual and not kept
    max_bytes: int = 4 * 1024**3  # all kept packs together, the newest kept first
    # repositories whose packs are smaller make their packs in less time than the cache's few processes take
    min_repository_bytes: int = 4 * 1024**2
    min_occurrences: int = 1  # earlier clones of a state before its pack is kept (the program says why)

    def install(self, target_dir: Path) -> "PackCache":
        """This cache with its program installed in `target_dir`; without a program (no cache) when its limits
        turn it off or the program cannot be installed."""
        if self.minutes <= 0 or self.max_bytes <= 0:
            return replace(self, program=None)
        try:
            return replace(self, program=install_script(PROGRAM, target_dir))
        except OSError:
            log.exception("cannot install the pack cache in %s: packs are made for every clone", target_dir)
            return replace(self, program=None)

    def git_options(self, cache_dir: Path, repo_path: Path, repo_id: str,
                    request: Iterable[bytes]) -> tuple[list[str], dict[str, str]]:
        """upload-pack's extra arguments and environment for `request` (its whole body, or a stream when
        large): the hook for a request that repeats, nothing otherwise."""
        if self.program is None or not isinstance(request, list) or not is_fetch_from_nothing(request):
            return [], {}
        repository_bytes = packed_size(repo_path)
        if repository_bytes < self.min_repository_bytes:
            return [], {}
        # git runs the hook through the shell
        return (["-c", f"uploadpack.packObjectsHook={shlex.quote(str(self.program))}"],
                {"DRIFTSTONE_PACK_CACHE_DIR": str(cache_dir), "DRIFTSTONE_PACK_CACHE_REPOSITORY": repo_id,
                 "DRIFTSTONE_PACK_CACHE_MINUTES": str(self.minutes),
                 "DRIFTSTONE_PACK_CACHE_MAX_BYTES": str(self.max_bytes),
                 "DRIFTSTONE_PACK_CACHE_MIN_FREE": str(self.min_free_bytes),
                 "DRIFTSTONE_PACK_CACHE_REPOSITORY_SIZE": str(repository_bytes),
                 "DRIFTSTONE_PACK_CACHE_MIN_OCCURRENCES": str(self.min_occurrences)})


def packed_size(repo_path: Path) -> int:
    """Bytes in the repository's packs (0 when it cannot be read: git will say what is wrong)."""
    try:
        with os.scandir(repo_path / "objects" / "pack") as entries:
            return sum(entry.stat().st_size for entry in entries if entry.name.endswith(".pack"))
    except OSError:
        return 0


def is_fetch_from_nothing(request: list[bytes]) -> bool:
    """Whether an upload-pack request is a fetch (protocol v0 and v1: "want" first; v2: command=fetch) without
    "have" lines. Unreadable requests are not: git answers them."""
    reader = PktReader()
    first = None
    try:
        for chunk in request:
            for _, payload in reader.feed(chunk):
                if payload is None:
                    continue
                if first is None:
                    first = payload
                    if not (first.startswith(b"want ") or first.rstrip(b"\n") == b"command=fetch"):
                        return False
                if payload.startswith(b"have "):
                    return False
    except PktError:
        return False
    return first is not None
