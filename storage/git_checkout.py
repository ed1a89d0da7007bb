"""A commit's files written out as a plain directory for a program to work in, and what that program changed.

Only regular files are written: a symlink or a submodule of the commit is left out of the directory, and kept
as it is whatever the program puts at its path; nothing the program leaves is followed (symlinks it makes are
reported, never read through).
"""
from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import git_objects
from .git_env import GIT, GitFailed, clean_git_env, run_git
from .errors import TooLarge

MAX_REPORTED = 100  # left-out paths listed one by one; the rest are counted
REGULAR = git_objects.FILE_MODE
EXECUTABLE = git_objects.EXEC_MODE


@dataclass(frozen=True)
class FileChange:
    action: str  # create | update | delete
    path: str
    content: bytes | None = None
    executable: bool = False


@dataclass
class Checkout:
    """What write_out wrote: every tree entry's path -> (mode, sha), and how each file it wrote looked right after
    (size, mtime, ctime, inode), so that changes_in need not read back a file nobody touched (git's index does the
    same)."""

    entries: dict[str, tuple[int, str]] = field(default_factory=dict)
    stamps: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)


@dataclass
class DirectoryChanges:
    changes: list[FileChange] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"}: what the program left that git won't take


def write_out(repo_path: Path, commit: str | None, dest: Path) -> Checkout:
    """The commit's regular files under `dest` (which must not exist).

    One `git ls-tree` and one `git cat-file --batch` stream the blobs as they are stored (no attribute, filter or
    end-of-line conversion, which `git checkout` would apply): what `changes_in` compares against is the blob."""
    dest.mkdir(parents=True)
    written = Checkout()
    if commit is None:
        return written
    listing = run_git(repo_path, ["ls-tree", "-r", "-z", "--full-tree", "--end-of-options", commit]).stdout
    entries = written.entries
    wanted: list[tuple[str, int, bytes]] = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, _kind, sha = meta.split(b" ")
        path = raw_path.decode("utf-8", "surrogateescape")
        entries[path] = (int(mode, 8), sha.decode())
        if int(mode, 8) in (REGULAR, EXECUTABLE) and _plain(path) and _utf8(path):
            wanted.append((path, int(mode, 8), sha))
    with subprocess.Popen([GIT, "-C", str(repo_path), "cat-file", "--batch"], env=clean_git_env(),
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as batch:
        feeder = threading.Thread(target=_ask_for, args=(batch.stdin, [sha for _, _, sha in wanted]), daemon=True)
        feeder.start()
        made: set[Path] = set()
        for path, mode, sha in wanted:
            header = batch.stdout.readline().split()
            if len(header) != 3 or header[0] != sha:
                raise GitFailed(1, ["git", "cat-file", "--batch"], b"", b"blob " + sha + b" is missing")
            content = batch.stdout.read(int(header[2]))
            batch.stdout.read(1)  # the newline after each object
            target = dest / path
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                         0o755 if mode == EXECUTABLE else 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                info = os.fstat(handle.fileno())
            written.stamps[path] = _stamp(info)
        feeder.join()
    return written


def _ask_for(stdin, shas: list[bytes]) -> None:
    with stdin:
        for sha in shas:
            stdin.write(sha + b"\n")


def changes_in(dest: Path, checkout: Checkout, max_file: int, max_total: int,
               path_problem: Callable[[str], str | None] = lambda path: None, trusted_before_ns: int = 0
               ) -> DirectoryChanges:
    """What differs between `dest` now and the files `write_out` wrote there (`written`). What git would not take
    (a name `path_problem` refuses, a symlink, a `.git`) is left out and reported, and a committed file at such a
    path is kept as it was. A directory or file that cannot be read raises OSError: a walk that skipped it would
    take its files for deleted. A file whose size, times and inode are still those write_out saw is unchanged,
    unless its time is `trusted_before_ns` or later (a change within the clock's tick could keep the time: read)."""
    written = checkout.entries
    found = DirectoryChanges()
    seen: set[str] = set()
    total = 0

    def leave_out(path: str, reason: str) -> None:
        seen.add(path)
        found.skipped.append({"path": path.encode("utf-8", "replace").decode(), "reason": reason})

    for top, dirs, files, top_fd in os.fwalk(dest, follow_symlinks=False, onerror=_raise):
        relative = os.path.relpath(top, dest)
        prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
        for name in list(dirs):
            reason = _directory_left_out(prefix + name, name, top_fd, written)
            if reason:
                dirs.remove(name)
                leave_out(prefix + name, reason)
        for name in files:
            path = prefix + name
            info = os.lstat(name, dir_fd=top_fd)
            mode, sha = written.get(path, (None, None))
            reason = _file_left_out(path, name, info.st_mode, mode, path_problem)
            if reason:
                leave_out(path, reason)
                continue
            seen.add(path)
            stamp = checkout.stamps.get(path)
            if stamp is not None and stamp == _stamp(info) and stamp[1] < trusted_before_ns:
                continue
            if info.st_size > max_file:
                raise TooLarge(f"{path} is larger than the {max_file} byte limit", {"path": path, "limit": max_file})
            content = _read(name, top_fd)
            executable = bool(info.st_mode & stat.S_IXUSR)
            if mode is not None and _blob_sha(content) == sha and executable == (mode == EXECUTABLE):
                continue
            total += len(content)
            if total > max_total:
                raise TooLarge(f"the changed files pass the {max_total} byte limit", {"limit": max_total})
            found.changes.append(FileChange("update" if mode is not None else "create", path, content, executable))
    for path, (mode, _sha) in sorted(written.items()):
        if mode in (REGULAR, EXECUTABLE) and _plain(path) and _utf8(path) and path not in seen:
            found.changes.append(FileChange("delete", path))
    found.changes.sort(key=lambda change: change.path)
    if len(found.skipped) > MAX_REPORTED:
        more = len(found.skipped) - MAX_REPORTED
        found.skipped = found.skipped[:MAX_REPORTED] + [{"path": "", "reason": f"and {more} more left out"}]
    return found


def _stamp(info: os.stat_result) -> tuple[int, int, int, int]:
    return info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino


def _raise(error: OSError) -> None:
    raise error


def _file_left_out(path: str, name: str, st_mode: int, committed_mode: int | None,
                   path_problem: Callable[[str], str | None]) -> str | None:
    if not _utf8(name):
        return "a name that is not UTF-8"
    if stat.S_ISLNK(st_mode):
        return "a symlink" if committed_mode is None else "a symlink where the commit has a file, kept"
    if not stat.S_ISREG(st_mode):
        return "not a regular file"
    if committed_mode is not None and committed_mode not in (REGULAR, EXECUTABLE):
        return "a symlink or submodule in the commit, kept"
    if _is_git_name(name):
        return "a .git file"
    problem = path_problem(path)
    return f"a path git is not given: {problem}" if problem else None


def _directory_left_out(path: str, name: str, dir_fd: int, written: dict[str, tuple[int, str]]) -> str | None:
    if not _utf8(name):
        return "a name that is not UTF-8"
    if stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode):
        return "a symlink"  # os.fwalk lists a symlink to a directory among the directories
    if _is_git_name(name):
        return "a .git directory"
    if path in written and written[path][0] not in (REGULAR, EXECUTABLE):
        return "a symlink or submodule in the commit, kept"
    return None


def _is_git_name(name: str) -> bool:
    return name.lower().rstrip(". ") == ".git"


def _plain(path: str) -> bool:
    return all(part not in ("", ".", "..") for part in path.split("/"))


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.fwalk hands bytes that are not UTF-8 back as lone surrogates
        return False
    return True


def _read(name: str, dir_fd: int) -> bytes:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def _blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
