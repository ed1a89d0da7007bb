"""merge-ort's rename phase: per-side rename detection, directory renames (git's default "conflict" mode) and
the rename cases (rename vs edit, rename/rename 1to1 and 1to2, rename/delete, rename/add and 2to1 collisions),
applied to the per-path merge state before the entries are resolved (storage/merge_ort.py)."""
from __future__ import annotations

import stat

from .merge_renames import Pair, detect_renames
from .merge_store import ABSENT


# --- per-path state (merge-ort's merged_info / conflict_info) --------------------------------------------------

class PathInfo:
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

    def copy(self) -> "PathInfo":
        other = PathInfo()
        for name in self.__slots__:
            value = getattr(self, name)
            setattr(other, name, list(value) if isinstance(value, list) else value)
        return other


def _dirname(path: bytes) -> bytes:
    return path.rsplit(b"/", 1)[0] if b"/" in path else b""


def _basename(path: bytes) -> bytes:
    return path.rsplit(b"/", 1)[-1]


def _decode(path: bytes) -> str:
    return path.decode("utf-8", "surrogateescape")


class RenamePhase:
    """Methods of OrtMerge (storage/merge_ort.py) that handle renames; they share its per-merge state."""

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
            dir_info = PathInfo()
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
