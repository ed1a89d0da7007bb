"""Objects fetched from another server, kept apart from the repository's until a change takes them: an object
directory of their own inside the repository's, with the repository's objects as its alternate (as git's receive
quarantine, whose name it shares: housekeeping removes one a killed worker left). Moved in only to be used;
removed, with whatever a refused or measured fetch brought, on leaving."""
from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from .git_env import QUARANTINE_PREFIX
from .git_prune import fan_out_dirs

FETCH_QUARANTINE_PREFIX = f"{QUARANTINE_PREFIX}driftstone-fetch-"
_PACK_FILES_LAST = ".idx"  # git sees a pack once its index is there: the index goes in after the rest


class ObjectQuarantine:
    def __init__(self, repo_path: Path):
        self.objects = repo_path / "objects"
        self.path = self.objects / f"{FETCH_QUARANTINE_PREFIX}{secrets.token_hex(8)}"

    def __enter__(self) -> "ObjectQuarantine":
        (self.path / "pack").mkdir(parents=True)
        (self.path / "info").mkdir()
        (self.path / "info" / "alternates").write_text(f"{self.objects}\n")  # for readers that take no env
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    @property
    def env(self) -> dict[str, str]:
        """For git reading or writing through the quarantine: new objects land in it, the repository's are seen."""
        return {"GIT_OBJECT_DIRECTORY": str(self.path), "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(self.objects)}

    def size(self) -> int:
        total = 0
        for folder, _, files in os.walk(self.path):
            for name in files:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                except FileNotFoundError:  # a temporary file git renamed meanwhile
                    pass
        return total

    def migrate(self) -> None:
        """Into the repository: loose objects, then each pack with its index last. An object already there stays."""
        for fan in fan_out_dirs(self.path):
            target = self.objects / fan.name
            target.mkdir(exist_ok=True)
            for name in os.listdir(fan):
                _move_unless_there(fan / name, target / name)
        packs = sorted((self.path / "pack").iterdir(), key=lambda p: p.suffix == _PACK_FILES_LAST)
        for file in packs:
            if file.suffix in (".pack", ".idx", ".rev", ".bitmap"):
                _move_unless_there(file, self.objects / "pack" / file.name)


def _move_unless_there(source: Path, target: Path) -> None:
    if not target.exists():
        os.replace(source, target)
