"""One non-recursive merge of three trees with git's merge-ort rules: collect the paths that differ (skipping
directories only one side touched unless renames need them), run the rename phase, then resolve every path and
write the merged trees bottom-up (conflicted paths get git's conflict markers or are moved aside to path~branch)."""
from __future__ import annotations

import stat

from dulwich.objects import Tree

from .merge_ort_renames import PathInfo, RenamePhase, _basename, _decode, _dirname
from .merge_renames import (NOT_RELEVANT, RELEVANT_CONTENT, RELEVANT_FOR_ANCESTOR, RELEVANT_FOR_SELF,
                            RELEVANT_LOCATION, Pair, Similarity, Spec)
from .merge_store import ABSENT, GITLINK_MODE, TREE_MODE, MergeStore, _fmt
from .merge_text import DEFAULT_MARKER_SIZE, MAX_XDIFF_SIZE, is_binary, merge_lines


class OrtMerge(RenamePhase):
    def __init__(self, store: MergeStore, branch1: str, branch2: str, ancestor: str, call_depth: int):
        self.store = store
        self.branch1, self.branch2, self.ancestor = branch1, branch2, ancestor
        self.call_depth = call_depth
        self.paths: dict[bytes, PathInfo] = {}
        self.conflicted: dict[bytes, PathInfo] = {}
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
    def _resolve_trivial(ci: PathInfo, side: int) -> None:
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
        info = PathInfo()
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
        info = PathInfo()
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

    def _record(self, path: bytes, info: PathInfo) -> None:
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

    def _process_entry(self, path: bytes, ci: PathInfo) -> None:
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

    def _distinct_types(self, path: bytes, ci: PathInfo) -> bytes:
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
