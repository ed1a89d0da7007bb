"""Bare repositories on disk, addressed by repository id (never by a name taken from a URL)."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from .errors import StorageFailure
from .git_env import GitFailed, run_git

_ID = re.compile(r"^[a-z]+_[0-9a-f]{24}$")

# Applied to every repository we create; the server adds per-request settings (hooks path) on the command line.
REPO_CONFIG = {
    "core.fsync": "committed,derived-metadata",
    "core.fsyncMethod": "fsync",
    "core.logAllRefUpdates": "always",
    "receive.fsckObjects": "true",
    "receive.fsck.hasDot": "error",
    "receive.fsck.hasDotdot": "error",
    "receive.fsck.hasDotgit": "error",
    "receive.fsck.fullPathname": "error",
    "receive.fsck.emptyName": "error",
    "receive.fsck.nullSha1": "error",
    "receive.advertisePushOptions": "true",
    "receive.advertiseAtomic": "true",
    "receive.denyDeleteCurrent": "false",
    "receive.autogc": "false",
    "receive.shallowUpdate": "false",
    "uploadpack.allowFilter": "true",
    "uploadpack.allowAnySHA1InWant": "true",
    "http.receivepack": "true",
}


def render_config(values: dict[str, str]) -> str:
    """Render dotted keys as git config text (one `git config` call per key costs a process each)."""
    sections: dict[str, list[str]] = {}
    for key, value in values.items():
        section, _, name = key.rpartition(".")
        head, _, sub = section.partition(".")
        header = f'[{head} "{sub}"]' if sub else f"[{head}]"
        sections.setdefault(header, []).append(f"\t{name} = {value}")
    return "".join(f"{header}\n" + "\n".join(lines) + "\n" for header, lines in sections.items())


class DiskNearlyFull(RuntimeError):
    """The repositories' disk has less free space than readiness wants (DRIFTSTONE_READY_MIN_FREE): a push or commit
    sent here would fail partway (git cannot write its pack or its lock files)."""


class RepoStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        # packs made for clones, kept a while to send again (server/pack_cache.py), named "<repository id>.*"
        self.kept_packs = self.root / ".kept-packs"

    def check(self, min_free: int) -> None:
        """Raise if the store is missing or its disk has less than `min_free` bytes free (readiness probe)."""
        if not self.root.is_dir():
            raise FileNotFoundError("repository root missing")
        usage = os.statvfs(self.root)
        if usage.f_bavail * usage.f_frsize < min_free:
            raise DiskNearlyFull()

    def path_for(self, repo_id: str) -> Path:
        if not _ID.match(repo_id):
            raise ValueError("invalid repository id")
        return self.root / repo_id[-2:] / f"{repo_id}.git"

    def exists(self, repo_id: str) -> bool:
        return (self.path_for(repo_id) / "HEAD").is_file()

    def create(self, repo_id: str, default_branch: str = "main") -> Path:
        """A new bare repository; on a disk that refuses it (full, read-only), nothing of it is left."""
        path = self.path_for(repo_id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            run_git(path.parent, ["init", "--bare", "--quiet", f"--initial-branch={default_branch}", path.name])
            with open(path / "config", "a", encoding="utf-8") as config:
                config.write(render_config(REPO_CONFIG))
        except (GitFailed, OSError) as error:
            shutil.rmtree(path, ignore_errors=True)
            reason = error.stderr.decode("utf-8", "replace").strip() if isinstance(error, GitFailed) else error
            raise StorageFailure(f"repository {repo_id} could not be created: {str(reason)[:500]}") from error
        return path

    def ids_on_disk(self) -> list[str]:
        """The ids of the repositories whose directories are here."""
        found = []
        for fan_out in self.root.glob("[0-9a-f][0-9a-f]"):
            for entry in fan_out.glob("*.git"):
                repo_id = entry.name.removesuffix(".git")
                if _ID.match(repo_id) and repo_id.endswith(fan_out.name):
                    found.append(repo_id)
        return found

    def holds_nothing(self, repo_id: str) -> bool:
        """Whether the repository has no ref and no object: what `create` made, and no more."""
        path = self.path_for(repo_id)
        try:
            if (path / "packed-refs").exists() or any(files for _, _, files in os.walk(path / "refs")):
                return False
            with os.scandir(path / "objects") as entries:
                for entry in entries:
                    if entry.name == "info":
                        continue
                    if entry.name != "pack" or _has_entries(entry.path):
                        return False
        except OSError:
            return False
        return True

    def has_files(self, repo_id: str) -> bool:
        """Whether anything of the repository is on disk: itself, or what a delete killed midway left."""
        path = self.path_for(repo_id)
        return path.exists() or self._doomed(path).exists()

    def delete(self, repo_id: str) -> None:
        """Move the directory aside, then remove it; also what an earlier delete killed midway left."""
        path = self.path_for(repo_id)
        doomed = self._doomed(path)
        shutil.rmtree(doomed, ignore_errors=True)
        for kept in self.kept_packs.glob(f"{repo_id}.*"):
            kept.unlink(missing_ok=True)
        try:
            path.rename(doomed)
        except FileNotFoundError:  # not there, or another delete moved it first
            return
        shutil.rmtree(doomed, ignore_errors=True)

    @staticmethod
    def _doomed(path: Path) -> Path:
        return path.with_name(path.name + ".deleting")


def _has_entries(directory: str) -> bool:
    with os.scandir(directory) as entries:
        return next(entries, None) is not None
