"""Rename detection for merges, as git's diffcore-rename does it for merge-ort.

Exact renames first (same blob; a source with the same basename preferred), then basename-guided matches
(a unique basename among the remaining sources and destinations, or the directory a removed directory's
other files went to, at a similarity of at least 75%), then the inexact similarity matrix (at least 50%, the
four best candidates per destination, the best pairs taken first). Similarity is git's diffcore-delta score:
content cut into chunks at '\\n' or every 64 bytes, hashed, and the bytes the destination shares with the
source counted. Only sources that matter to the merge ("relevant sources") are matched inexactly; renames
into removed directories are also counted per directory for directory rename detection.
"""
from __future__ import annotations

import stat
from dataclasses import dataclass, field
from typing import Callable

MAX_SCORE = 60000
DEFAULT_RENAME_SCORE = 30000
MIN_BASENAME_SCORE = DEFAULT_RENAME_SCORE + int(0.5 * (MAX_SCORE - DEFAULT_RENAME_SCORE))
RENAME_LIMIT = 7000
NUM_CANDIDATE_PER_DST = 4
_HASHBASE = 107927
_MASK32 = 0xFFFFFFFF
EMPTY_BLOB = b"e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"

# dirs_removed values
NOT_RELEVANT, RELEVANT_FOR_ANCESTOR, RELEVANT_FOR_SELF = 0, 1, 2
# relevant_sources values
RELEVANT_NO_MORE, RELEVANT_CONTENT, RELEVANT_LOCATION = 0, 1, 2
UNKNOWN_DIR = b"/"


@dataclass
class Spec:
    path: bytes
    mode: int = 0
    oid: bytes | None = None  # None: this side of the pair is absent
    rename_used: int = 0

    @property
    def valid(self) -> bool:
        return self.oid is not None


@dataclass
class Pair:
    one: Spec
    two: Spec
    status: str = ""  # A, D or R once detection ran
    renamed: bool = False
    score: int = 0


def _hash_chars(data: bytes, is_text: bool) -> list[tuple[int, int]]:
    counts: dict[int, int] = {}
    n = accum1 = accum2 = 0
    size = len(data)
    for idx in range(size):
        c = data[idx]
        if is_text and c == 13 and idx + 1 < size and data[idx + 1] == 10:
            continue
        old_1 = accum1
        accum1 = (((accum1 << 7) & _MASK32) ^ (accum2 >> 25))
        accum2 = (((accum2 << 7) & _MASK32) ^ (old_1 >> 25))
        accum1 = (accum1 + c) & _MASK32
        n += 1
        if n < 64 and c != 10:
            continue
        hashval = ((accum1 + accum2 * 0x61) & _MASK32) % _HASHBASE
        counts[hashval] = counts.get(hashval, 0) + n
        n = accum1 = accum2 = 0
    # git 2.39 drops a final chunk that has neither a newline nor 64 bytes
    return sorted(counts.items())


def _src_copied(src: list[tuple[int, int]], dst: list[tuple[int, int]]) -> int:
    copied = 0
    d = 0
    for hashval, src_cnt in src:
        while d < len(dst) and dst[d][0] < hashval:
            d += 1
        dst_cnt = 0
        if d < len(dst) and dst[d][0] == hashval:
            dst_cnt = dst[d][1]
            d += 1
        copied += src_cnt if src_cnt < dst_cnt else dst_cnt
    return copied


class Similarity:
    """Blob contents and their chunk hashes, cached by object id."""

    def __init__(self, read_blob: Callable[[bytes], bytes]):
        self._read = read_blob
        self._sizes: dict[bytes, int] = {}
        self._hashes: dict[bytes, list[tuple[int, int]]] = {}

    def size(self, oid: bytes) -> int:
        size = self._sizes.get(oid)
        if size is None:
            size = self._sizes[oid] = len(self._read(oid))
        return size

    def _counts(self, oid: bytes) -> list[tuple[int, int]]:
        counts = self._hashes.get(oid)
        if counts is None:
            data = self._read(oid)
            counts = self._hashes[oid] = _hash_chars(data, b"\0" not in data[:8000])
        return counts

    def estimate(self, src: Spec, dst: Spec, minimum_score: int) -> int:
        if not stat.S_ISREG(src.mode) or not stat.S_ISREG(dst.mode):
            return 0
        src_size, dst_size = self.size(src.oid), self.size(dst.oid)
        max_size, base_size = max(src_size, dst_size), min(src_size, dst_size)
        if max_size * (MAX_SCORE - minimum_score) < (max_size - base_size) * MAX_SCORE:
            return 0
        if not dst_size:
            return 0
        return int(_src_copied(self._counts(src.oid), self._counts(dst.oid)) * float(MAX_SCORE) / max_size)


def _basename(path: bytes) -> bytes:
    return path.rsplit(b"/", 1)[-1]


def _dirname(path: bytes) -> bytes:
    return path.rsplit(b"/", 1)[0] if b"/" in path else b""


def _basename_same(src: bytes, dst: bytes) -> int:
    return int(_basename(src) == _basename(dst))


@dataclass
class _Dst:
    pair: Pair
    is_rename: bool = False


@dataclass
class _DirInfo:
    setup: bool = False
    dir_rename_count: dict[bytes, dict[bytes, int]] = field(default_factory=dict)
    relevant_source_dirs: dict[bytes, int] | None = None
    idx_map: dict[bytes, int] = field(default_factory=dict)
    dir_rename_guess: dict[bytes, bytes] = field(default_factory=dict)


def _increment(info: _DirInfo, old_dir: bytes, new_dir: bytes) -> None:
    counts = info.dir_rename_count.setdefault(old_dir, {})
    counts[new_dir] = counts.get(new_dir, 0) + 1


def _update_dir_rename_counts(info: _DirInfo, dirs_removed: dict[bytes, int] | None, oldname: bytes,
                              newname: bytes) -> None:
    if not info.setup:
        return
    old_dir, new_dir = oldname, newname
    first = True
    while True:
        old_parent, old_last = (old_dir.rsplit(b"/", 1) if b"/" in old_dir else (b"", old_dir))
        if info.relevant_source_dirs is not None and old_parent not in info.relevant_source_dirs:
            break
        new_parent, new_last = (new_dir.rsplit(b"/", 1) if b"/" in new_dir else (b"", new_dir))
        if not first and old_last != new_last:
            break
        flag = dirs_removed.get(old_parent, NOT_RELEVANT) if dirs_removed is not None else NOT_RELEVANT
        if flag == RELEVANT_FOR_SELF or first:
            _increment(info, old_parent, new_parent)
        first = False
        if flag == NOT_RELEVANT:
            break
        if not old_parent or not new_parent:
            break
        old_dir, new_dir = old_parent, new_parent


def _determinable(counts: dict[bytes, int]) -> bool:
    first = second = unknown = 0
    for target, count in counts.items():
        if target == UNKNOWN_DIR:
            unknown = count
        elif count >= first:
            second, first = first, count
        elif count >= second:
            second = count
    return first > second + unknown


def _score_key(entry):
    """Sort key for (score, name_score, dst, src) candidates: unused last, then higher score, then same name."""
    score, name_score, dst, _src = entry
    if dst < 0:
        return (1, 0, 0)
    return (0, -score, -name_score)


def _record_if_better(slots: list, candidate) -> None:
    worst = 0
    for i in range(1, NUM_CANDIDATE_PER_DST):
        if _score_key(slots[i]) > _score_key(slots[worst]):
            worst = i
    if _score_key(slots[worst]) > _score_key(candidate):
        slots[worst] = candidate


def detect_renames(pairs: list[Pair], similarity: Similarity, relevant_sources: dict[bytes, int],
                   dirs_removed: dict[bytes, int], dir_rename_count: dict[bytes, dict[bytes, int]]) -> list[Pair]:
    """diffcore_rename_extended for one side of a merge: returns the queue with renames paired up."""
    dsts: list[_Dst] = []
    srcs: list[Pair] = []
    for p in pairs:
        if not p.one.valid:
            if not p.two.valid or p.two.oid == EMPTY_BLOB:
                continue
            dsts.append(_Dst(p))
        elif p.one.oid == EMPTY_BLOB:
            continue
        elif not p.two.valid:
            srcs.append(p)
    info = _DirInfo()
    if dsts and srcs:
        _run_detection(dsts, srcs, similarity, relevant_sources, dirs_removed, info)
        if info.setup:
            for source_dir in list(info.dir_rename_count):
                counts = info.dir_rename_count[source_dir]
                if not dirs_removed.get(source_dir, NOT_RELEVANT):
                    del info.dir_rename_count[source_dir]
                    continue
                counts.pop(UNKNOWN_DIR, None)
            dir_rename_count.update(info.dir_rename_count)
    out = []
    for p in pairs:
        if p.one.valid and not p.two.valid:
            if p.one.rename_used:
                continue
        out.append(p)
    for p in out:
        if not p.one.valid:
            p.status = "A"
        elif not p.two.valid:
            p.status = "D"
        elif p.renamed:
            p.status = "R"
    return out


def _record_pair(dst: _Dst, src: Pair, score: int) -> None:
    src.one.rename_used += 1
    dst.is_rename = True
    dst.pair.one = src.one
    dst.pair.renamed = True
    dst.pair.score = score


def _run_detection(dsts: list[_Dst], srcs: list[Pair], similarity: Similarity, relevant_sources: dict[bytes, int],
                   dirs_removed: dict[bytes, int], info: _DirInfo) -> None:
    # exact renames
    by_oid: dict[bytes, list[Pair]] = {}
    for src in srcs:
        by_oid.setdefault(src.one.oid, []).append(src)
    rename_count = 0
    for dst in dsts:
        target = dst.pair.two
        best, best_score, tries = None, -1, 100
        for src in by_oid.get(target.oid, ()):
            source = src.one
            if (not stat.S_ISREG(source.mode) or not stat.S_ISREG(target.mode)) and source.mode != target.mode:
                continue
            if source.rename_used:
                continue
            score = 1 + _basename_same(source.path, target.path)
            if score > best_score:
                best, best_score = src, score
                if score == 2:
                    break
            tries -= 1
            if not tries:
                break
        if best is not None:
            _record_pair(dst, best, MAX_SCORE)
            rename_count += 1

    srcs = [s for s in srcs if not s.one.rename_used]

    # directory rename bookkeeping (initialize_dir_rename_info)
    info.setup = True
    info.relevant_source_dirs = dirs_removed
    for index, dst in enumerate(dsts):
        if not dst.is_rename:
            info.idx_map[dst.pair.two.path] = index
        else:
            _update_dir_rename_counts(info, dirs_removed, dst.pair.one.path, dst.pair.two.path)
    for old_dir, counts in info.dir_rename_count.items():
        best_dir, best_count = None, 0
        for target, count in counts.items():
            if count > best_count:
                best_dir, best_count = target, count
        info.dir_rename_guess[old_dir] = best_dir

    rename_count += _basename_matches(dsts, srcs, similarity, relevant_sources, dirs_removed, info)

    srcs = [s for s in srcs if not s.one.rename_used and s.one.path in relevant_sources]
    srcs = _handle_early_known_dir_renames(srcs, info, relevant_sources, dirs_removed)

    num_destinations = len(dsts) - rename_count
    if not num_destinations or not srcs:
        return
    if num_destinations * len(srcs) > RENAME_LIMIT * RENAME_LIMIT:
        return
    matrix = []
    for index, dst in enumerate(dsts):
        if dst.is_rename:
            continue
        slots = [(0, 0, -1, -1)] * NUM_CANDIDATE_PER_DST
        slots = list(slots)
        two = dst.pair.two
        for j, src in enumerate(srcs):
            score = similarity.estimate(src.one, two, DEFAULT_RENAME_SCORE)
            _record_if_better(slots, (score, _basename_same(src.one.path, two.path), index, j))
        matrix.extend(slots)
    matrix.sort(key=_score_key)
    for score, _name, d, s in matrix:
        if d < 0 or score < DEFAULT_RENAME_SCORE:
            break
        dst = dsts[d]
        if dst.is_rename or srcs[s].one.rename_used:
            continue
        _record_pair(dst, srcs[s], score)
        _update_dir_rename_counts(info, dirs_removed, srcs[s].one.path, dst.pair.two.path)


def _basename_matches(dsts: list[_Dst], srcs: list[Pair], similarity: Similarity, relevant_sources: dict[bytes, int],
                      dirs_removed: dict[bytes, int], info: _DirInfo) -> int:
    sources: dict[bytes, int] = {}
    dests: dict[bytes, int] = {}
    for i, src in enumerate(srcs):
        base = _basename(src.one.path)
        sources[base] = -1 if base in sources else i
    for i, dst in enumerate(dsts):
        if dst.is_rename:
            continue
        base = _basename(dst.pair.two.path)
        dests[base] = -1 if base in dests else i
    renames = 0
    for i, src in enumerate(srcs):
        filename = src.one.path
        if filename not in relevant_sources:
            continue
        base = _basename(filename)
        src_index = sources.get(base, -1)
        if base not in dests:
            continue
        dst_index = dests[base]
        if src_index == -1 or dst_index == -1:
            src_index = i
            dst_index = _idx_possible_rename(filename, info)
        if dst_index == -1:
            continue
        dst = dsts[dst_index]
        if dst.is_rename:
            continue
        one, two = srcs[src_index].one, dst.pair.two
        score = similarity.estimate(one, two, MIN_BASENAME_SCORE)
        if score < MIN_BASENAME_SCORE:
            continue
        _record_pair(dst, srcs[src_index], score)
        renames += 1
        _update_dir_rename_counts(info, dirs_removed, one.path, two.path)
    return renames


def _idx_possible_rename(filename: bytes, info: _DirInfo) -> int:
    if not info.setup:
        return -1
    new_dir = info.dir_rename_guess.get(_dirname(filename))
    if new_dir is None:
        return -1
    return info.idx_map.get(new_dir + b"/" + _basename(filename), -1)


def _handle_early_known_dir_renames(srcs: list[Pair], info: _DirInfo, relevant_sources: dict[bytes, int],
                                    dirs_removed: dict[bytes, int]) -> list[Pair]:
    for src in srcs:
        old_dir = _dirname(src.one.path)
        while old_dir and dirs_removed.get(old_dir, NOT_RELEVANT) != NOT_RELEVANT:
            _increment(info, old_dir, UNKNOWN_DIR)
            old_dir = _dirname(old_dir)
    for source_dir, counts in info.dir_rename_count.items():
        if dirs_removed.get(source_dir, NOT_RELEVANT) == RELEVANT_FOR_SELF and _determinable(counts):
            dirs_removed[source_dir] = RELEVANT_FOR_ANCESTOR
    kept = []
    for src in srcs:
        if relevant_sources.get(src.one.path) == RELEVANT_LOCATION:
            removable = True
            directory = _dirname(src.one.path)
            while True:
                res = dirs_removed.get(directory, NOT_RELEVANT)
                if res == NOT_RELEVANT:
                    break
                if res == RELEVANT_FOR_SELF:
                    removable = False
                    break
                directory = _dirname(directory)
            if removable:
                relevant_sources[src.one.path] = RELEVANT_NO_MORE
                continue
        kept.append(src)
    return kept
