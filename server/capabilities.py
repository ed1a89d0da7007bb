"""Protocol v2's capability advertisement, kept per repository instead of asking git on every request.

With protocol v2, `GET info/refs?service=git-upload-pack` lists no refs: it is git's answer to the repository's
configuration (filter, ref-in-want, object format, ...) and its own version, the same bytes until one of those
changes. Every v2 clone, fetch and ls-remote starts with it, so keeping git's answer saves a git process per
operation. An entry is used only while the repository's config file and the git binary are as they were when it
was made (inode, size, change and modification times).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

from storage.git_env import GIT, run_git

MAX_ENTRIES = 4096


def _identity(path: Path | str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class CapabilityCache:
    def __init__(self, max_entries: int = MAX_ENTRIES):
        self.max_entries = max_entries
        self._entries: dict[tuple[Path, str], tuple[tuple, bytes]] = {}
        self._lock = threading.Lock()
        self._git = shutil.which(GIT) or GIT

    def advertisement(self, repo_path: Path, protocol: str) -> bytes | None:
        """git's v2 capability advertisement for the repository (None when git gives none: not a repository)."""
        key = (repo_path, protocol)
        state = (_identity(repo_path / "config"), _identity(self._git))
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] == state and state[0] is not None:
            return entry[1]
        try:
            result = run_git(repo_path, ["upload-pack", "--stateless-rpc", "--advertise-refs", "."],
                             env={"GIT_PROTOCOL": protocol}, check=False, timeout=60)
        except subprocess.TimeoutExpired:
            return None
        if result.returncode != 0 or not result.stdout:
            return None
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = (state, result.stdout)
        return result.stdout
