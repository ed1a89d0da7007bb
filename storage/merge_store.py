"""The object store a merge works on, and merge bases.

`MergeStore` reads from a repository's object store and keeps everything a merge writes (merged blobs, trees,
virtual merge bases, new commits) in memory; `persist(root)` copies the new objects reachable from `root` into
the repository (one pack, fsynced) so a dry run never writes anything. Merge bases follow git's
get_merge_bases: paint down to the common commits, drop redundant ones, newest first.
"""
from __future__ import annotations

import heapq
import io
import os
import stat
from pathlib import Path
from typing import Iterable

from dulwich.objects import Blob, Commit, ShaFile, Tree
from dulwich.pack import write_pack_objects

from .git_env import run_git

S_IFMT = 0o170000
TREE_MODE = 0o040000
GITLINK_MODE = 0o160000
ABSENT: tuple[int, bytes | None] = (0, None)
EMPTY_TREE = b"4b825dc642cb6eb9a060e54bf8d69288fbee4904"
KEEP_MESSAGE = "driftstone merge"  # in the `.keep` of a pack being moved in


def canon_mode(mode: int) -> int:
    if stat.S_ISREG(mode):
        return 0o100755 if mode & 0o100 else 0o100644
    if stat.S_ISLNK(mode):
        return 0o120000
    if stat.S_ISDIR(mode):
        return TREE_MODE
    return GITLINK_MODE


def _fmt(mode: int) -> int:
    return mode & S_IFMT


class MergeStore:
    """Reads from the repository's object store; writes go to memory until `persist`."""

    def __init__(self, base_store):
        self.base = base_store
        self.new: dict[bytes, ShaFile] = {}
        self._trees: dict[bytes, dict[bytes, tuple[int, bytes]]] = {}

    def __getitem__(self, oid: bytes) -> ShaFile:
        obj = self.new.get(oid)
        return obj if obj is not None else self.base[oid]

    def add(self, obj: ShaFile) -> bytes:
        if obj.id not in self.new and obj.id not in self.base:
            self.new[obj.id] = obj
        return obj.id

    def blob(self, oid: bytes | None) -> bytes:
        return self[oid].as_raw_string() if oid else b""

    def write_blob(self, data: bytes) -> bytes:
        return self.add(Blob.from_string(data))

    def entries(self, tree_oid: bytes) -> dict[bytes, tuple[int, bytes]]:
        cached = self._trees.get(tree_oid)
        if cached is None:
            cached = {item.path: (canon_mode(item.mode), item.sha) for item in self[tree_oid].iteritems()}
            self._trees[tree_oid] = cached
        return cached

    def write_tree(self, items: Iterable[tuple[bytes, tuple[int, bytes]]]) -> bytes:
        tree = Tree()
        for name, (mode, oid) in items:
            tree.add(name, mode, oid)
        return self.add(tree)

    def changed_paths(self, old_commit: bytes | None, new_commit: bytes) -> list[str]:
        """Paths whose entries differ between two commits (renames are a delete and an add), as `git diff-tree -r`
        lists them, read from memory and the repository alike."""
        old_tree = _commit(self, old_commit).tree if old_commit else None
        return [path for path, _, _ in self.tree_changes(old_tree, _commit(self, new_commit).tree)]

    def tree_changes(self, old: bytes | None, new: bytes | None, prefix: bytes = b""):
        """(path, (mode, oid) before, (mode, oid) after) of each file that differs between two trees (ABSENT's
        (None, None) where there was or is none)."""
        if old == new:
            return
        before, after = (self.entries(old) if old else {}), (self.entries(new) if new else {})
        for name in sorted(before.keys() | after.keys()):
            one, two = before.get(name, ABSENT), after.get(name, ABSENT)
            if one == two:
                continue
            one_dir, two_dir = one[0] == TREE_MODE, two[0] == TREE_MODE
            if one_dir or two_dir:
                yield from self.tree_changes(one[1] if one_dir else None, two[1] if two_dir else None,
                                             prefix + name + b"/")
            if (not one_dir and one[1] is not None) or (not two_dir and two[1] is not None):
                yield ((prefix + name).decode("utf-8", "surrogateescape"), ABSENT if one_dir else one,
                       ABSENT if two_dir else two)

    def persist(self, root: bytes) -> int:
        """Copy the new objects reachable from `root` (a tree or commit) into the repository; returns how many."""
        wanted = self._new_reachable(root)
        if wanted:
            self._add_all(wanted)
        return len(wanted)

    def oversized_blobs(self, root: bytes, limit: int) -> list[str]:
        """The new blobs reachable from `root` larger than `limit` bytes: what the size check would refuse once
        they were stored (and then stored they would stay)."""
        return [obj.id.decode() for obj in self._new_reachable(root)
                if isinstance(obj, Blob) and obj.raw_length() > limit]

    def _new_reachable(self, root: bytes) -> list[ShaFile]:
        wanted: list[ShaFile] = []
        stack = [root]
        seen: set[bytes] = set()
        while stack:
            oid = stack.pop()
            if oid in seen or oid not in self.new:
                continue
            seen.add(oid)
            obj = self.new[oid]
            wanted.append(obj)
            if isinstance(obj, Tree):
                stack.extend(item.sha for item in obj.iteritems() if item.mode != GITLINK_MODE)
            elif isinstance(obj, Commit):
                stack.append(obj.tree)
                stack.extend(obj.parents)  # earlier new commits (a rebase writes a chain)
        return wanted

    def _add_all(self, wanted: list[ShaFile]) -> None:
        """Write `wanted` as one pack through `git index-pack`, which names, indexes and fsyncs it (core.fsync)
        the way every other pack of the repository is written, so readers never meet it half done. dulwich's
        own pack writer moved the pack in before its index and listed the packs meanwhile: beside concurrent
        merges and a housekeeping repack it failed (PackFileDisappeared, a 500) and left its temporary pack.

        The pack is written kept (`--keep`), as receive-pack writes a pushed one: index-pack moves the `.pack` in
        before its `.idx`, and a `git repack -a -d` that lists the packs in between deletes that pack without
        having read it (2 of 1,500 packs lost beside a repack loop, 0 of 3,000 kept). Once the `.idx` is in, any
        repack reads the pack, so the `.keep` goes at once."""
        path = getattr(self.base, "path", None)
        if path is None:  # an in-memory store (tests)
            self.base.add_objects([(obj, None) for obj in reversed(wanted)])
            return
        pack = io.BytesIO()
        write_pack_objects(pack.write, [(obj, None) for obj in reversed(wanted)], self.base.object_format)
        written = run_git(Path(path).parent, ["index-pack", "--stdin", f"--keep={KEEP_MESSAGE}"],
                          input=pack.getvalue())
        pack_name = written.stdout.split()[-1].decode("ascii")
        try:
            os.unlink(os.path.join(path, "pack", f"pack-{pack_name}.keep"))
        except FileNotFoundError:  # an identical pack's writer removed it first
            pass
        self.base.close()  # the next read lists the packs again, this one included
        descriptor = os.open(os.path.join(path, "pack"), os.O_RDONLY)
        try:
            os.fsync(descriptor)  # the pack's name in its directory reaches the disk before any ref names it
        finally:
            os.close(descriptor)


# --- merge bases ---------------------------------------------------------------------------------------------

_P1, _P2, _STALE, _RESULT = 1, 2, 4, 8


def _commit(store: MergeStore, oid: bytes) -> Commit:
    obj = store[oid]
    if not isinstance(obj, Commit):
        raise KeyError(oid)
    return obj


def _paint_down_to_common(store: MergeStore, one: bytes, twos: list[bytes]) -> list[bytes]:
    flags: dict[bytes, int] = {}
    queued: dict[bytes, int] = {}
    queue: list[tuple[int, int, bytes]] = []
    counter = 0
    nonstale = 0

    def push(oid: bytes) -> None:
        nonlocal counter, nonstale
        counter += 1
        heapq.heappush(queue, (-_commit(store, oid).commit_time, counter, oid))
        queued[oid] = queued.get(oid, 0) + 1
        if not flags[oid] & _STALE:
            nonstale += 1

    def add_flags(oid: bytes, mark: int) -> None:
        nonlocal nonstale
        before = flags.get(oid, 0)
        flags[oid] = before | mark
        if mark & _STALE and not before & _STALE:
            nonstale -= queued.get(oid, 0)

    add_flags(one, _P1)
    push(one)
    for two in twos:
        add_flags(two, _P2)
        push(two)
    result: list[bytes] = []
    while nonstale > 0:
        _, _, oid = heapq.heappop(queue)
        queued[oid] -= 1
        if not flags[oid] & _STALE:
            nonstale -= 1
        mark = flags[oid] & (_P1 | _P2 | _STALE)
        if mark == (_P1 | _P2):
            if not flags[oid] & _RESULT:
                flags[oid] |= _RESULT
                result.append(oid)
            mark |= _STALE
        for parent in _commit(store, oid).parents:
            if (flags.get(parent, 0) & mark) == mark:
                continue
            add_flags(parent, mark)
            push(parent)
    return [oid for oid in result if not flags[oid] & _STALE]


def _is_ancestor_of_any(store: MergeStore, candidate: bytes, others: list[bytes]) -> bool:
    seen = set(others)
    stack = list(others)
    while stack:
        oid = stack.pop()
        for parent in _commit(store, oid).parents:
            if parent == candidate:
                return True
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return False


def merge_bases_in(store: MergeStore, one: bytes, two: bytes) -> list[bytes]:
    """git's get_merge_bases: best common ancestors, newest first."""
    if one == two:
        return [one]
    found = _paint_down_to_common(store, one, [two])
    if len(found) > 1:
        found = [c for c in found if not _is_ancestor_of_any(store, c, [o for o in found if o != c])]
    found.sort(key=lambda oid: -_commit(store, oid).commit_time)
    return found
