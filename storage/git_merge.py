"""Three-way merges in-process on the object store, with git's merge-ort semantics (what `git merge`,
`git merge-tree --write-tree` and `git rebase` use since git 2.33).

No temporary clone, no worktree, no git subprocess. Objects a merge creates (merged blobs, trees, virtual merge
bases) go to an in-memory overlay first; `persist()` copies the ones reachable from a result into the repository,
so a dry run writes nothing at all.

What is covered, with git's rules:
  * merge bases in-process (paint-down-to-common + removal of redundant bases); no common ancestor merges
    against the empty tree; several bases (criss-cross) are merged recursively into a virtual base, like ort;
  * per-path resolution (one side changed, both changed identically, add/add, modify/delete, delete/delete);
  * line-level content merges via a port of git's xdiff merge (storage/merge_text.py), so clean results are
    byte-identical to git's; binary files conflict when both sides changed them; executable-bit changes merge
    like git (conflict only when both sides set different modes);
  * renames on each side (storage/merge_renames.py: exact, basename-guided, 50% similarity), so a rename on one
    side plus edits on the other merges cleanly at the new path; rename/delete, rename/rename (1to2, 2to1),
    rename/add collisions conflict;
  * directory renames in git's default "conflict" mode: a file added into a directory the other side renamed is
    placed in the new directory and reported as a conflict (CONFLICT (file location));
  * file/directory and distinct-type (file vs symlink vs submodule) conflicts, moving the file aside to
    `path~branch` like git; submodule (gitlink) changes on both sides conflict (the server has no submodule
    repositories to find a fast-forward in).
Not honoured, like `git merge-tree` on a bare repository: .gitattributes merge drivers, renormalisation.
"""
from __future__ import annotations

import heapq
import os
import stat
from dataclasses import dataclass, field
from typing import Iterable

from dulwich.objects import Blob, Commit, ShaFile, Tree

from .merge_renames import (NOT_RELEVANT, RELEVANT_CONTENT, RELEVANT_FOR_ANCESTOR, RELEVANT_FOR_SELF,
                            RELEVANT_LOCATION, Pair, Similarity, Spec, detect_renames)
from .merge_text import DEFAULT_MARKER_SIZE, MAX_XDIFF_SIZE, is_binary, merge_lines

S_IFMT = 0o170000
TREE_MODE = 0o040000
GITLINK_MODE = 0o160000
ABSENT: tuple[int, bytes | None] = (0, None)
EMPTY_TREE = b"4b825dc642cb6eb9a060e54bf8d69288fbee4904"


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

    def persist(self, root: bytes) -> int:
        """Copy the new objects reachable from `root` (a tree or commit) into the repository; returns how many."""
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
        if wanted:
            if hasattr(self.base, "fsync_object_files"):
                self.base.fsync_object_files = True  # pack and index reach the disk before any ref names them
            self.base.add_objects([(obj, None) for obj in reversed(wanted)])
            pack_dir = getattr(self.base, "pack_dir", None)
            if pack_dir:
                descriptor = os.open(pack_dir, os.O_RDONLY)
                try:
                    os.fsync(descriptor)
                finally:
                    os.close(descriptor)
        return len(wanted)


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


# --- per-path state (merge-ort's merged_info / conflict_info) --------------------------------------------------

class _Info:
    __slots__ = ("clean", "is_null", "result", "stages", "pathnames", "filemask", "dirmask", "match_mask",
                 "df_conflict", "path_conflict", "resolved")

    def __init__(self):
        self.clean = False
        self.is_null = False
        self.result: tuple[int, bytes | None] = ABSENT
        self.stages: list[tuple[int, bytes | None]] = [ABSENT, ABSENT, ABSENT]
        self.pathnames: list[bytes] = [b"", b"", b""]
        self.filemask = self.dirmask = self.match_mask = 0
        self.df_conflict = self.path_conflict = False
        self.resolved = False

    def copy(self) -> "_Info":
        other = _Info()
        for name in self.__slots__:
            value = getattr(self, name)
            setattr(other, name, list(value) if isinstance(value, list) else value)
        return other


def _dirname(path: bytes) -> bytes:
    return path.rsplit(b"/", 1)[0] if b"/" in path else b""


def _basename(path: bytes) -> bytes:
    return path.rsplit(b"/", 1)[-1]


@dataclass(frozen=True)
class ConflictMessage:
    kind: str
    path: str
    message: str


@dataclass(frozen=True)
class ConflictStage:
    path: str
    stage: int  # 1 base, 2 ours, 3 theirs (index stages)
    mode: int
    oid: str


@dataclass
class MergeResult:
    tree: str  # the merged tree; with conflict markers (like git merge-tree) when not clean
    clean: bool
    conflicts: list[str]  # every conflicted path, sorted (git merge-tree --name-only)
    stages: list[ConflictStage]
    messages: list[ConflictMessage]
    bases: list[str] = field(default_factory=list)
    store: MergeStore | None = field(default=None, repr=False)

    def persist(self) -> None:
        if self.store is not None:
            self.store.persist(self.tree.encode())


def _decode(path: bytes) -> str:
    return path.decode("utf-8", "surrogateescape")


# --- one non-recursive merge ----------------------------------------------------------------------------------

class _OrtMerge:
    def __init__(self, store: MergeStore, branch1: str, branch2: str, ancestor: str, call_depth: int):
        self.store = store
        self.branch1, self.branch2, self.ancestor = branch1, branch2, ancestor
        self.call_depth = call_depth
        self.paths: dict[bytes, _Info] = {}
        self.conflicted: dict[bytes, _Info] = {}
        self.messages: list[tuple[str, bytes, str]] = []
        self.pairs: dict[int, list[Pair]] = {1: [], 2: []}
        self.relevant_sources: dict[int, dict[bytes, int]] = {1: {}, 2: {}}
        self.dirs_removed: dict[int, dict[bytes, int]] = {1: {}, 2: {}}
        self.dir_rename_count: dict[int, dict[bytes, dict[bytes, int]]] = {1: {}, 2: {}}
        self.dir_renames: dict[int, dict[bytes, bytes]] = {1: {}, 2: {}}
        self.dir_rename_mask = 0
        self.similarity = Similarity(self.store.blob)
        # directories one side left as in the base: resolved without reading them unless renames need them
        self.possible_trivial: dict[int, dict[bytes, int]] = {1: {}, 2: {}}
        self.trivial_okay = {1: True, 2: True}

    def message(self, kind: str, path: bytes, text: str) -> None:
        self.messages.append((kind, path, text))

    # collect_merge_info -----------------------------------------------------------------------------------

    def collect(self, trees: list[bytes | None]) -> None:
        self._collect_dir(b"", trees)
        self._handle_deferred()

    def _handle_deferred(self) -> None:
        """handle_deferred_entries: a side that has rename sources to match needs every directory read (its
        additions are the candidate destinations); otherwise its deferred directories take that side's tree."""
        for side in (1, 2):
            okay = not self.relevant_sources[side]
            self.trivial_okay[side] = okay
            deferred, self.possible_trivial[side] = self.possible_trivial[side], {}
            for path, mask in deferred.items():
                ci = self.paths[path]
                if okay:
                    self._resolve_trivial(ci, side)
                    continue
                trees = [ci.stages[i][1] if ci.dirmask & (1 << i) else None for i in range(3)]
                ci.match_mask &= ci.filemask
                self.dir_rename_mask = mask
                self._collect_dir(path, trees)
            for path in self.possible_trivial[side]:
                self._resolve_trivial(self.paths[path], side)
            self.possible_trivial[side] = {}

    @staticmethod
    def _resolve_trivial(ci: _Info, side: int) -> None:
        ci.result = ci.stages[side]
        ci.is_null = ci.stages[side][1] is None
        ci.match_mask = 0
        ci.clean = True

    def _collect_dir(self, dirname: bytes, trees: list[bytes | None]) -> None:
        entries = [self.store.entries(t) if t else {} for t in trees]
        names = set(entries[0]) | set(entries[1]) | set(entries[2])
        rows = []
        for name in names:
            ns = [entries[i].get(name, ABSENT) for i in range(3)]
            mask = sum(1 << i for i in range(3) if ns[i][0])
            dirmask = sum(1 << i for i in range(3) if ns[i][0] == TREE_MODE)
            rows.append((name + b"/" if dirmask else name, name, ns, mask, dirmask))
        rows.sort()
        if self.dir_rename_mask in (2, 4):  # traverse_trees_wrapper: files added into a removed directory?
            for _key, _name, _ns, mask, dirmask in rows:
                filemask = mask & ~dirmask
                if filemask and filemask == self.dir_rename_mask:
                    self.dir_rename_mask = 7
        for _key, name, ns, mask, dirmask in rows:
            self._collect_entry(dirname, name, ns, mask, dirmask)

    def _resolved(self, path: bytes, version: tuple[int, bytes | None], is_null: bool) -> None:
        info = _Info()
        info.resolved = info.clean = True
        info.result = version
        info.is_null = is_null
        self.paths[path] = info

    def _collect_entry(self, dirname: bytes, name: bytes, ns, mask: int, dirmask: int) -> None:
        prev_mask = self.dir_rename_mask
        filemask = mask & ~dirmask
        base_null, side1_null, side2_null = not mask & 1, not mask & 2, not mask & 4
        side1_matches = not side1_null and not base_null and ns[0] == ns[1]
        side2_matches = not side2_null and not base_null and ns[0] == ns[2]
        sides_match = not side1_null and not side2_null and ns[1] == ns[2]
        df_conflict = filemask != 0 and dirmask != 0
        if side1_matches:
            match_mask = 7 if side2_matches else 3
        elif side2_matches:
            match_mask = 5
        elif sides_match:
            match_mask = 6
        else:
            match_mask = 0
        path = dirname + b"/" + name if dirname else name
        if side1_matches and side2_matches:
            return self._resolved(path, ns[0], base_null)
        if sides_match and filemask == 7:
            return self._resolved(path, ns[1], side1_null)
        if side1_matches and filemask == 7:
            return self._resolved(path, ns[2], side2_null)
        if side2_matches and filemask == 7:
            return self._resolved(path, ns[1], side1_null)
        self._collect_rename_info(ns, dirname, path, filemask, dirmask, match_mask)
        info = _Info()
        info.stages = list(ns)
        info.pathnames = [path, path, path]
        info.filemask, info.dirmask, info.df_conflict = filemask, dirmask, df_conflict
        info.match_mask = match_mask
        if dirmask:
            info.is_null = True
        self.paths[path] = info
        if dirmask:
            side = 2 if side1_matches else 1 if side2_matches else 0
            if filemask == 0 and dirmask in (2, 4):
                info.match_mask = 7 - dirmask
                side = dirmask // 2
            if self.dir_rename_mask != 7 and side and self.trivial_okay[side]:
                self.possible_trivial[side][path] = self.dir_rename_mask
                self.dir_rename_mask = prev_mask
                return
            info.match_mask &= filemask
            self._collect_dir(path, [ns[i][1] if dirmask & (1 << i) else None for i in range(3)])
            self.dir_rename_mask = prev_mask

    def _collect_rename_info(self, ns, dirname: bytes, fullname: bytes, filemask: int, dirmask: int,
                             match_mask: int) -> None:
        if self.dir_rename_mask != 7 and dirmask in (3, 5):
            self.dir_rename_mask = dirmask & ~1
        if dirmask in (1, 3, 5):
            sides = (7 - dirmask) // 2
            relevance = RELEVANT_FOR_ANCESTOR if self.dir_rename_mask == 7 else NOT_RELEVANT
            if sides & 1:
                self.dirs_removed[1][fullname] = relevance
            if sides & 2:
                self.dirs_removed[2][fullname] = relevance
        if self.dir_rename_mask == 7 and filemask in (2, 4):
            self.dirs_removed[3 - (filemask >> 1)][dirname] = RELEVANT_FOR_SELF
        if filemask in (0, 7):
            return
        for side in (1, 2):
            side_mask = 1 << side
            relevant_mask = match_mask & filemask
            if filemask & 1 and not filemask & side_mask:
                content = relevant_mask == 0
                location = self.dir_rename_mask == 7
                if content or location:
                    self.relevant_sources[side][fullname] = RELEVANT_CONTENT if content else RELEVANT_LOCATION
                self.pairs[side].append(Pair(Spec(fullname, ns[0][0], ns[0][1]), Spec(fullname)))
            if not filemask & 1 and filemask & side_mask:
                self.pairs[side].append(Pair(Spec(fullname), Spec(fullname, ns[side][0], ns[side][1])))

    # renames ----------------------------------------------------------------------------------------------

    def detect_and_process_renames(self) -> bool:
        possible = {side: bool(self.pairs[side]) and bool(self.relevant_sources[side]) for side in (1, 2)}
        if not (possible[1] or possible[2]):
            return True
        for side in (1, 2):
            if possible[side]:
                self.pairs[side] = detect_renames(self.pairs[side], self.similarity, self.relevant_sources[side],
                                                  self.dirs_removed[side], self.dir_rename_count[side])
            else:
                for p in self.pairs[side]:
                    p.status = "A" if not p.one.valid else "D"
        clean = True
        if not self.call_depth:
            for side in (1, 2):
                clean &= self._provisional_directory_renames(side)
            for source_dir in [d for d in self.dir_renames[1] if d in self.dir_renames[2]]:
                del self.dir_renames[1][source_dir]
                del self.dir_renames[2][source_dir]
        collisions = {side: self._collisions(self.dir_renames[3 - side], self.pairs[side]) for side in (1, 2)}
        combined: list[Pair] = []
        for side in (1, 2):
            clean &= self._collect_renames(combined, side, collisions, self.dir_renames[3 - side],
                                           self.dir_renames[side])
        combined.sort(key=lambda p: p.one.path)
        clean &= self._process_renames(combined)
        return clean

    def _provisional_directory_renames(self, side: int) -> bool:
        clean = True
        for source_dir, counts in self.dir_rename_count[side].items():
            best, max_count, bad_max = None, 0, 0
            for target_dir, count in counts.items():
                if count == max_count:
                    bad_max = max_count
                elif count > max_count:
                    max_count, best = count, target_dir
            if max_count == 0:
                continue
            if bad_max == max_count:
                self.message("directory rename split", source_dir,
                             f"CONFLICT (directory rename split): Unclear where to rename {_decode(source_dir)} to; "
                             "it was renamed to multiple other directories, with no destination getting a majority "
                             "of the files.")
                clean = False
            else:
                self.dir_renames[side][source_dir] = best
        return clean

    @staticmethod
    def _check_dir_renamed(path: bytes, dir_renames: dict[bytes, bytes]) -> tuple[bytes, bytes] | None:
        current = path
        while b"/" in current:
            current = current.rsplit(b"/", 1)[0]
            if current in dir_renames:
                return current, dir_renames[current]
        return None

    @staticmethod
    def _apply_dir_rename(rename: tuple[bytes, bytes], old_path: bytes) -> bytes:
        old_dir, new_dir = rename
        oldlen = len(old_dir) + (1 if not new_dir else 0)
        return new_dir + old_path[oldlen:]

    def _collisions(self, dir_renames: dict[bytes, bytes], pairs: list[Pair]) -> dict[bytes, dict]:
        collisions: dict[bytes, dict] = {}
        if not dir_renames:
            return collisions
        for pair in pairs:
            if pair.status not in ("A", "R"):
                continue
            rename = self._check_dir_renamed(pair.two.path, dir_renames)
            if rename is None:
                continue
            new_path = self._apply_dir_rename(rename, pair.two.path)
            entry = collisions.setdefault(new_path, {"sources": [], "reported": False})
            if pair.two.path not in entry["sources"]:
                entry["sources"].append(pair.two.path)
                entry["sources"].sort()
        return collisions

    def _path_in_way(self, path: bytes, side_mask: int) -> bool:
        info = self.paths.get(path)
        if info is None:
            return False
        return info.clean or bool(side_mask & (info.filemask | info.dirmask))

    def _check_for_directory_rename(self, path: bytes, side: int, dir_renames: dict[bytes, bytes],
                                    exclusions: dict[bytes, bytes], collisions: dict[int, dict]) -> tuple[bytes | None, bool]:
        if not dir_renames or path in collisions[3 - side]:
            return None, True
        rename = self._check_dir_renamed(path, dir_renames)
        if rename is None:
            return None, True
        if rename[1] in exclusions:
            return None, True
        new_path = self._apply_dir_rename(rename, path)
        info = collisions[side][new_path]
        sources = ", ".join(_decode(s) for s in info["sources"])
        if info["reported"]:
            return None, False
        if self._path_in_way(new_path, 1 << side):
            info["reported"] = True
            self.message("implicit dir rename", new_path,
                         f"CONFLICT (implicit dir rename): Existing file/dir at {_decode(new_path)} in the way of "
                         f"implicit directory rename(s) putting the following path(s) there: {sources}.")
            return None, False
        if len(info["sources"]) > 1:
            info["reported"] = True
            self.message("implicit dir rename", new_path,
                         f"CONFLICT (implicit dir rename): Cannot map more than one path to {_decode(new_path)}; "
                         f"implicit directory renames tried to put these paths there: {sources}")
            return None, False
        return new_path, True

    def _collect_renames(self, result: list[Pair], side: int, collisions, dir_renames_for_side, exclusions) -> bool:
        clean = True
        for pair in self.pairs[side]:
            if pair.status not in ("A", "R"):
                continue
            new_path, ok = self._check_for_directory_rename(pair.two.path, side, dir_renames_for_side, exclusions,
                                                            collisions)
            clean &= ok
            if pair.status != "R" and not new_path:
                continue
            if new_path:
                self._apply_directory_rename_modifications(pair, new_path)
            pair.score = side
            result.append(pair)
        return clean

    def _apply_directory_rename_modifications(self, pair: Pair, new_path: bytes) -> None:
        old_path = pair.two.path
        info = self.paths[old_path]
        missing = []
        current = new_path
        while b"/" in current:
            parent = current.rsplit(b"/", 1)[0]
            if parent in self.paths:
                break
            missing.append(parent)
            current = parent
        for directory in reversed(missing):
            dir_info = _Info()
            dir_info.dirmask = info.filemask
            self.paths[directory] = dir_info
        if info.dirmask == 0:
            del self.paths[old_path]
        else:
            new_info = info.copy()
            new_info.dirmask = 0
            new_info.stages[1] = ABSENT
            info.filemask = 0
            info.clean = True
            for i in range(3):
                if not info.dirmask & (1 << i):
                    info.stages[i] = ABSENT
            info = new_info
        with_new_path = self.branch1 if info.filemask == 2 else self.branch2
        with_dir_rename = self.branch2 if info.filemask == 2 else self.branch1
        existing = self.paths.get(new_path)
        if existing is None:
            self.paths[new_path] = info
        else:
            existing.filemask |= info.filemask
            if existing.dirmask:
                existing.df_conflict = True
            index = info.filemask >> 1
            existing.pathnames[index] = info.pathnames[index]
            existing.stages[index] = info.stages[index]
            info = existing
        info.path_conflict = True
        if pair.status == "A":
            text = (f"CONFLICT (file location): {_decode(old_path)} added in {with_new_path} inside a directory "
                    f"that was renamed in {with_dir_rename}, suggesting it should perhaps be moved to "
                    f"{_decode(new_path)}.")
        else:
            text = (f"CONFLICT (file location): {_decode(pair.one.path)} renamed to {_decode(old_path)} in "
                    f"{with_new_path}, inside a directory that was renamed in {with_dir_rename}, suggesting it "
                    f"should perhaps be moved to {_decode(new_path)}.")
        self.message("file location", new_path, text)
        pair.two.path = new_path

    def _process_renames(self, renames: list[Pair]) -> bool:
        clean_merge = True
        i = 0
        while i < len(renames):
            pair = renames[i]
            oldpath = pair.one.path
            newpath = pair.two.path
            oldinfo = self.paths.get(oldpath)
            newinfo = self.paths.get(newpath)
            if oldinfo is None or oldinfo.clean:
                i += 1
                continue
            if i + 1 < len(renames) and renames[i + 1].one.path == oldpath:
                other_new = renames[i + 1].two.path
                pathnames = [oldpath, newpath, other_new]
                base, side1, side2 = self.paths[oldpath], self.paths[newpath], self.paths[other_new]
                if newpath == other_new:
                    side1.stages[0] = base.stages[0]
                    side1.filemask |= 1
                    base.is_null = True
                    base.clean = True
                    i += 2
                    continue
                merged, clean = self._content_merge(oldpath, base.stages[0], side1.stages[1], side2.stages[2],
                                                    pathnames, 1 + 2 * self.call_depth)
                clean_merge = clean
                was_binary = not clean and merged == side1.stages[1]
                side1.stages[1] = merged
                if was_binary:
                    merged = side2.stages[2]
                side2.stages[2] = merged
                side1.path_conflict = side2.path_conflict = base.path_conflict = True
                self.message("rename/rename", oldpath,
                             f"CONFLICT (rename/rename): {_decode(oldpath)} renamed to {_decode(newpath)} in "
                             f"{self.branch1} and to {_decode(other_new)} in {self.branch2}.")
                i += 2
                continue
            target_index = pair.score
            other_source_index = 3 - target_index
            old_sidemask = 1 << other_source_index
            source_deleted = oldinfo.filemask == 1
            collision = bool(newinfo.filemask & old_sidemask)
            type_changed = (not source_deleted and stat.S_ISREG(oldinfo.stages[other_source_index][0])
                            != stat.S_ISREG(newinfo.stages[target_index][0]))
            if type_changed and collision:
                collision = False
            rename_branch = self.branch1 if target_index == 1 else self.branch2
            delete_branch = self.branch2 if target_index == 1 else self.branch1
            if collision and not source_deleted:
                pathnames = [oldpath, oldpath, oldpath]
                pathnames[target_index] = newpath
                infos = [self.paths[p] for p in pathnames]
                merged, clean = self._content_merge(oldpath, infos[0].stages[0], infos[1].stages[1],
                                                    infos[2].stages[2], pathnames, 1 + 2 * self.call_depth)
                newinfo.stages[target_index] = merged
                if not clean:
                    self.message("rename involved in collision", newpath,
                                 f"CONFLICT (rename involved in collision): rename of {_decode(oldpath)} -> "
                                 f"{_decode(newpath)} has content conflicts AND collides with another path; this "
                                 "may result in nested conflict markers.")
            elif collision and source_deleted:
                newinfo.path_conflict = True
                self.message("rename/delete", newpath,
                             f"CONFLICT (rename/delete): {_decode(oldpath)} renamed to {_decode(newpath)} in "
                             f"{rename_branch}, but deleted in {delete_branch}.")
            else:
                newinfo.stages[0] = oldinfo.stages[0]
                newinfo.filemask |= 1
                newinfo.pathnames[0] = oldpath
                if type_changed:
                    oldinfo.stages[0] = ABSENT
                    oldinfo.filemask &= 0x06
                elif source_deleted:
                    newinfo.path_conflict = True
                    self.message("rename/delete", newpath,
                                 f"CONFLICT (rename/delete): {_decode(oldpath)} renamed to {_decode(newpath)} in "
                                 f"{rename_branch}, but deleted in {delete_branch}.")
                else:
                    newinfo.stages[other_source_index] = oldinfo.stages[other_source_index]
                    newinfo.filemask |= 1 << other_source_index
                    newinfo.pathnames[other_source_index] = oldpath
            if not type_changed:
                oldinfo.is_null = True
                oldinfo.clean = True
            i += 1
        return clean_merge

    # content merges ---------------------------------------------------------------------------------------

    def _content_merge(self, path: bytes, o, a, b, pathnames: list[bytes], extra_marker_size: int):
        """handle_content_merge: ((mode, oid), clean) for same-type a and b."""
        clean = True
        if a[0] == b[0] or a[0] == o[0]:
            mode = b[0]
        else:
            mode = a[0]
            clean = b[0] == o[0]
        if a[1] == b[1] or a[1] == o[1]:
            oid = b[1]
        elif b[1] == o[1]:
            oid = a[1]
        elif stat.S_ISREG(a[0]):
            two_way = _fmt(o[0]) != _fmt(a[0])
            content, merge_clean = self._merge_3way(path, None if two_way else o[1], a[1], b[1], pathnames,
                                                    extra_marker_size)
            oid = self.store.write_blob(content)
            clean &= merge_clean
        elif a[0] == GITLINK_MODE:
            self.message("submodule", path, f"Failed to merge submodule {_decode(pathnames[0])} (not checked out)")
            clean = False
            oid = o[1] if self.call_depth else a[1]
            two_way = _fmt(o[0]) != _fmt(a[0])
            if self.call_depth and two_way:
                mode = o[0]
        else:  # symlinks
            clean = False
            if self.call_depth:
                mode, oid = o
            else:
                oid = a[1]
        return (mode, oid), clean

    def _merge_3way(self, path: bytes, o: bytes | None, a: bytes, b: bytes, pathnames: list[bytes],
                    extra_marker_size: int) -> tuple[bytes, bool]:
        if pathnames[0] == pathnames[1] == pathnames[2]:
            name1, name2 = self.branch1, self.branch2
        else:
            name1 = f"{self.branch1}:{_decode(pathnames[1])}"
            name2 = f"{self.branch2}:{_decode(pathnames[2])}"
        orig, src1, src2 = self.store.blob(o), self.store.blob(a), self.store.blob(b)
        if (max(len(orig), len(src1), len(src2)) > MAX_XDIFF_SIZE or is_binary(orig) or is_binary(src1)
                or is_binary(src2)):
            if self.call_depth:
                return orig, True
            self.message("binary", path, f"warning: Cannot merge binary files: {_decode(path)} ({name1} vs. {name2})")
            return src1, False
        merged = merge_lines(orig, src1, src2, name1, name2, DEFAULT_MARKER_SIZE + extra_marker_size)
        return merged.content, merged.conflicts == 0

    # process_entries --------------------------------------------------------------------------------------

    def _unique_path(self, path: bytes, branch: str) -> bytes:
        base = path + b"~" + branch.encode("utf-8", "surrogateescape").replace(b"/", b"_")
        candidate, suffix = base, 0
        while candidate in self.paths:
            candidate = base + b"_%d" % suffix
            suffix += 1
        return candidate

    def process_entries(self) -> bytes:
        if not self.paths:
            return self.store.add(Tree())
        plist = sorted(self.paths.items(), key=lambda item: item[0] + b"/")
        self._versions: list[tuple[bytes, tuple[int, bytes]]] = []
        self._offsets: list[tuple[bytes, int]] = []
        self._last_directory: bytes | None = None
        for path, info in reversed(plist):
            self._write_completed_directory(_dirname(path))
            if info.clean:
                self._record(path, info)
            else:
                self._process_entry(path, info)
        return self.store.write_tree(self._versions)

    def _record(self, path: bytes, info: _Info) -> None:
        if not info.is_null:
            self._versions.append((_basename(path), info.result))

    def _write_completed_directory(self, directory: bytes) -> None:
        last = self._last_directory
        if directory == last:
            return
        if last is None or directory.startswith(last):
            self._offsets.append((directory, len(self._versions)))
            self._last_directory = directory
            return
        dir_info = self.paths[last]
        offset = self._offsets[-1][1]
        if offset == len(self._versions):
            dir_info.is_null = True
        else:
            dir_info.is_null = False
            dir_info.result = (TREE_MODE, self.store.write_tree(self._versions[offset:]))
        self._offsets.pop()
        del self._versions[offset:]
        prev_dir = self._offsets[-1][0] if self._offsets else None
        if directory != prev_dir:
            self._offsets.append((directory, len(self._versions)))
        self._last_directory = directory

    def _process_entry(self, path: bytes, ci: _Info) -> None:
        df_file_index = 0
        if ci.dirmask:
            self._record(path, ci)
            if ci.filemask == 0:
                return
        if ci.df_conflict and ci.result[0] == 0:
            ci.df_conflict = False
            ci.clean = False
            ci.is_null = False
            ci.match_mask &= ~ci.dirmask
            ci.dirmask = 0
            for i in range(3):
                if not ci.filemask & (1 << i):
                    ci.stages[i] = ABSENT
        elif ci.df_conflict and ci.result[0] != 0:
            if ci.filemask == 1:
                ci.filemask = 0
                return
            new_ci = ci.copy()
            new_ci.match_mask &= ~new_ci.dirmask
            new_ci.dirmask = 0
            for i in range(3):
                if not new_ci.filemask & (1 << i):
                    new_ci.stages[i] = ABSENT
            df_file_index = 2 if ci.dirmask & 2 else 1
            branch = self.branch1 if df_file_index == 1 else self.branch2
            old_path = path
            path = self._unique_path(path, branch)
            self.paths[path] = new_ci
            self.message("file/directory", path,
                         f"CONFLICT (file/directory): directory in the way of {_decode(old_path)} from {branch}; "
                         f"moving it to {_decode(path)} instead.")
            ci.filemask = 0
            ci = new_ci
        if ci.match_mask:
            ci.clean = not ci.df_conflict and not ci.path_conflict
            if ci.match_mask == 6:
                ci.result = ci.stages[1]
            else:
                othermask = 7 & ~ci.match_mask
                side = 2 if othermask == 4 else 1
                ci.result = ci.stages[side]
                ci.is_null = not ci.result[0]
                if ci.is_null:
                    ci.clean = True
        elif ci.filemask >= 6 and _fmt(ci.stages[1][0]) != _fmt(ci.stages[2][0]):
            if self.call_depth:
                ci.clean = False
                ci.result = ci.stages[0]
                ci.is_null = ci.result[0] == 0
            else:
                path = self._distinct_types(path, ci)
        elif ci.filemask >= 6:
            merged, clean = self._content_merge(path, ci.stages[0], ci.stages[1], ci.stages[2], ci.pathnames,
                                                self.call_depth * 2)
            ci.clean = clean and not ci.df_conflict and not ci.path_conflict
            ci.result = merged
            ci.is_null = merged[0] == 0
            if clean and ci.df_conflict:
                ci.filemask = 1 << df_file_index
                ci.stages[df_file_index] = merged
            if not clean:
                reason = "content"
                if ci.filemask == 6:
                    reason = "add/add"
                if merged[0] == GITLINK_MODE:
                    reason = "submodule"
                self.message(reason, path, f"CONFLICT ({reason}): Merge conflict in {_decode(path)}")
        elif ci.filemask in (3, 5):
            side = 2 if ci.filemask == 5 else 1
            index = 0 if self.call_depth else side
            ci.result = ci.stages[index]
            ci.clean = False
            modify_branch = self.branch1 if side == 1 else self.branch2
            delete_branch = self.branch2 if side == 1 else self.branch1
            if not (ci.path_conflict and ci.stages[0][1] == ci.stages[side][1]):
                self.message("modify/delete", path,
                             f"CONFLICT (modify/delete): {_decode(path)} deleted in {delete_branch} and modified "
                             f"in {modify_branch}.  Version {modify_branch} of {_decode(path)} left in tree.")
        elif ci.filemask in (2, 4):
            side = 2 if ci.filemask == 4 else 1
            ci.result = ci.stages[side]
            ci.clean = not ci.df_conflict and not ci.path_conflict
        elif ci.filemask == 1:
            ci.is_null = True
            ci.result = ABSENT
            ci.clean = not ci.path_conflict
        if not ci.clean:
            self.conflicted[path] = ci
        self._record(path, ci)

    def _distinct_types(self, path: bytes, ci: _Info) -> bytes:
        o_mode, a_mode, b_mode = ci.stages[0][0], ci.stages[1][0], ci.stages[2][0]
        rename_a = rename_b = False
        if stat.S_ISREG(a_mode):
            rename_a = True
        elif stat.S_ISREG(b_mode):
            rename_b = True
        else:
            rename_a = rename_b = True
        a_path = self._unique_path(path, self.branch1) if rename_a else None
        b_path = self._unique_path(path, self.branch2) if rename_b else None
        self.message("distinct types", path,
                     f"CONFLICT (distinct types): {_decode(path)} had different types on each side; renamed "
                     f"{'both of them' if rename_a and rename_b else 'one of them'} so each can be recorded "
                     "somewhere.")
        ci.clean = False
        new_ci = ci.copy()
        new_ci.result = ci.stages[2]
        new_ci.stages[1] = ABSENT
        new_ci.filemask = 5
        if _fmt(b_mode) != _fmt(o_mode):
            new_ci.stages[0] = ABSENT
            new_ci.filemask = 4
        ci.result = ci.stages[1]
        ci.stages[2] = ABSENT
        ci.filemask = 3
        if _fmt(a_mode) != _fmt(o_mode):
            ci.stages[0] = ABSENT
            ci.filemask = 2
        if rename_a:
            self.paths[a_path] = ci
        if not rename_b:
            b_path = path
        self.paths[b_path] = new_ci
        if rename_a and rename_b:
            del self.paths[path]
        self.conflicted[b_path] = new_ci
        self._record(b_path, new_ci)
        return a_path if a_path else path

    # driver -----------------------------------------------------------------------------------------------

    def run(self, base_tree: bytes, tree1: bytes, tree2: bytes) -> tuple[bytes, bool]:
        self.collect([base_tree, tree1, tree2])
        clean = self.detect_and_process_renames()
        tree = self.process_entries()
        return tree, clean and not self.conflicted


def _run_nonrecursive(store: MergeStore, base_tree: bytes, tree1: bytes, tree2: bytes, branch1: str, branch2: str,
                      ancestor: str, call_depth: int) -> _OrtMerge:
    merge = _OrtMerge(store, branch1, branch2, ancestor, call_depth)
    merge.tree, merge.clean = merge.run(base_tree, tree1, tree2)
    return merge


def _virtual_commit(store: MergeStore, tree: bytes, parents: list[bytes]) -> bytes:
    commit = Commit()
    commit.tree = tree
    commit.parents = parents
    commit.author = commit.committer = b"virtual <virtual>"
    commit.author_time = commit.commit_time = 0
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"merged tree\n"
    return store.add(commit)


def _merge_recursive(store: MergeStore, bases: list[bytes] | None, h1: bytes, h2: bytes, branch1: str,
                     branch2: str, call_depth: int) -> _OrtMerge:
    if bases is None:
        bases = list(reversed(merge_bases_in(store, h1, h2)))
    bases = list(bases)
    if not bases:
        merged_base = _virtual_commit(store, store.add(Tree()), [])
        ancestor = "empty tree"
    else:
        merged_base = bases.pop(0)
        ancestor = "merged common ancestors" if bases else merged_base.decode()[:7]
    for following in bases:
        inner = _merge_recursive(store, None, merged_base, following, "Temporary merge branch 1",
                                 "Temporary merge branch 2", call_depth + 1)
        merged_base = _virtual_commit(store, inner.tree, [merged_base, following])
    return _run_nonrecursive(store, _commit(store, merged_base).tree, _commit(store, h1).tree,
                             _commit(store, h2).tree, branch1, branch2, ancestor, call_depth)


def _result(merge: _OrtMerge, store: MergeStore, bases: list[bytes]) -> MergeResult:
    stages = []
    for path, ci in merge.conflicted.items():
        for i in range(3):
            if ci.filemask & (1 << i):
                mode, oid = ci.stages[i]
                stages.append(ConflictStage(_decode(path), i + 1, mode, oid.decode() if oid else "0" * 40))
    stages.sort(key=lambda s: (s.path.encode("utf-8", "surrogateescape"), s.stage))
    conflicts = sorted({_decode(p) for p in merge.conflicted}, key=lambda p: p.encode("utf-8", "surrogateescape"))
    messages = [ConflictMessage(kind, _decode(path), text) for kind, path, text in merge.messages]
    return MergeResult(tree=merge.tree.decode(), clean=merge.clean, conflicts=conflicts, stages=stages,
                       messages=messages, bases=[b.decode() for b in bases], store=store)


def merge_commits(object_store, ours: str, theirs: str, branch1: str = "ours", branch2: str = "theirs",
                  merge_bases: list[str] | None = None) -> MergeResult:
    """Merge commit `theirs` into commit `ours` (git merge-tree --write-tree ours theirs, with ort's recursion
    over several merge bases, and the empty tree as the base of unrelated histories). `object_store` is a
    repository's object store (nothing is written to it until `persist`) or a MergeStore to share."""
    store = _store(object_store)
    one, two = ours.encode(), theirs.encode()
    bases = ([b.encode() for b in merge_bases] if merge_bases is not None else merge_bases_in(store, one, two))
    merge = _merge_recursive(store, list(reversed(bases)), one, two, branch1, branch2, 0)
    return _result(merge, store, bases)


def merge_trees(object_store, base_tree: str | None, ours_tree: str, theirs_tree: str, branch1: str = "ours",
                branch2: str = "theirs", ancestor: str = "base") -> MergeResult:
    """One non-recursive merge of three trees (what cherry-pick and rebase do: base = the picked commit's parent)."""
    store = _store(object_store)
    base = base_tree.encode() if base_tree else store.add(Tree())
    merge = _run_nonrecursive(store, base, ours_tree.encode(), theirs_tree.encode(), branch1, branch2, ancestor, 0)
    return _result(merge, store, [])


def _store(object_store) -> MergeStore:
    """A repository object store gets a fresh overlay; a MergeStore is shared (a sequence of merges, e.g. a
    rebase, sees the objects the earlier steps created)."""
    return object_store if isinstance(object_store, MergeStore) else MergeStore(object_store)


def merge_bases(object_store, one: str, two: str) -> list[str]:
    return [b.decode() for b in merge_bases_in(_store(object_store), one.encode(), two.encode())]


def is_ancestor(object_store, ancestor: str, descendant: str) -> bool:
    if ancestor == descendant:
        return True
    return merge_bases(object_store, ancestor, descendant) == [ancestor]
