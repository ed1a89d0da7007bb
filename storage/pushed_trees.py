"""The entry names of the trees a push brought, read from its quarantine.

A small push's objects are loose there (fewer than `transfer.unpackLimit`): a loose object's header says its
type, and only trees are inflated whole, in-process. A larger push is one pack, complete once receive-pack has
indexed it (the bases of a thin pack are appended): `git cat-file` lists its trees and prints them, with the
repository's own objects out of sight, so only what the push brought is read.
"""
from __future__ import annotations

import os
import re
import subprocess
import threading
import zlib
from pathlib import Path
from typing import Iterator

from .git_env import GIT, GitFailed, clean_git_env
from .object_headers import CorruptObject

_HEX = frozenset("0123456789abcdef")
_ENTRY = re.compile(rb"[0-7]+ ([^\0]*)\0[\s\S]{20}")  # a SHA-1 id
_HEADER_BYTES = 32


def pushed_tree_names(repo: Path, quarantine: Path) -> set[bytes]:
    """Every distinct entry name of the trees stored directly in `quarantine`."""
    names: set[bytes] = set()
    packed = (quarantine / "pack").is_dir() and any((quarantine / "pack").glob("*.pack"))
    trees = _all_trees_by_git(repo, quarantine) if packed else _loose_trees(quarantine)
    for tree in trees:
        names.update(tree_entry_names(tree))
    return names


def tree_entry_names(tree: bytes) -> list[bytes]:
    """The names in a raw tree object: entries are `<mode> <name>\\0<binary object id>`, one after the other
    (each match starts where the last one's id ended: git's fsck has checked the format before the hook runs)."""
    return _ENTRY.findall(tree)


def _loose_trees(object_dir: Path) -> Iterator[bytes]:
    for fan in os.scandir(object_dir):
        if len(fan.name) != 2 or not set(fan.name) <= _HEX or not fan.is_dir(follow_symlinks=False):
            continue
        for entry in os.scandir(fan.path):
            if entry.is_file(follow_symlinks=False) and set(entry.name) <= _HEX:
                tree = _loose_tree(Path(entry.path))
                if tree is not None:
                    yield tree


def _loose_tree(path: Path) -> bytes | None:
    """A loose object's content if it is a tree; other objects are inflated only as far as their header."""
    data = path.read_bytes()
    inflater = zlib.decompressobj()
    try:
        head = inflater.decompress(data, _HEADER_BYTES)
        if not head.startswith(b"tree "):
            return None
        whole = head + inflater.decompress(inflater.unconsumed_tail)
    except zlib.error as error:
        raise CorruptObject(f"corrupt loose object {path.name}") from error
    _, nul, body = whole.partition(b"\0")
    if not nul:
        raise CorruptObject(f"bad loose object header {path.name}")
    return body


def _all_trees_by_git(repo: Path, object_dir: Path) -> Iterator[bytes]:
    env = clean_git_env({"GIT_OBJECT_DIRECTORY": str(object_dir), "GIT_ALTERNATE_OBJECT_DIRECTORIES": ""})
    listing = subprocess.run([GIT, "-C", str(repo), "cat-file", "--batch-all-objects", "--unordered",
                              "--batch-check=%(objecttype) %(objectname)"], env=env, capture_output=True, timeout=600)
    if listing.returncode != 0:
        raise GitFailed(listing.returncode, listing.args, listing.stdout, listing.stderr)
    tree_ids = b"".join(line[5:] + b"\n" for line in listing.stdout.splitlines() if line.startswith(b"tree "))
    if tree_ids:
        yield from _contents_by_git(repo, env, tree_ids)


def _contents_by_git(repo: Path, env: dict[str, str], ids: bytes) -> Iterator[bytes]:
    process = subprocess.Popen([GIT, "-C", str(repo), "cat-file", "--batch"], env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    writer = threading.Thread(target=_write_and_close, args=(process.stdin, ids), daemon=True)
    writer.start()
    try:
        while header := process.stdout.readline():
            fields = header.split()
            if len(fields) != 3 or not fields[2].isdigit():
                raise CorruptObject(f"unexpected cat-file output {header[:80]!r}")
            body = process.stdout.read(int(fields[2]) + 1)[:-1]  # each content ends with a newline
            yield body
    finally:
        process.stdout.close()
        process.kill()
        process.wait()
        writer.join()


def _write_and_close(stream, data: bytes) -> None:
    try:
        stream.write(data)
    except BrokenPipeError:
        pass
    finally:
        try:
            stream.close()
        except BrokenPipeError:
            pass
