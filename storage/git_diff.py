"""The diff between two commits, as seed 003 ("Branch status and diff") shapes it, computed on dulwich.

    {"base_commit", "head_commit", "truncated",
     "files": [{"path", "old_path", "status", "insertions", "deletions", "binary", "old_mode", "new_mode",
                "truncated", "hunks": [{"old_start", "old_lines", "new_start", "new_lines",
                                        "lines": [{"type": "context" | "add" | "remove", "content"}]}]}]}

Like `git diff <base> <head>` with git's defaults: renames found among deleted and added files (50% similar,
exact matches first; not with a `file` filter, where git's pathspec also comes first), a file is binary when
either side has a NUL in its first 8000 bytes (binary files: counts 0, no hunks), line counts and hunks come
from `line_diff` (git's algorithm, 3 lines of context). A line's `content` has no line terminator; the last
line of a file that does not end in a newline carries `"no_newline": true` (git's "\\ No newline at end of
file"). A submodule reads as git shows it: one line "Subproject commit <sha>".

Bounded: at most `max_files` files (the rest are cut, `truncated`), at most `max_lines` hunk lines over all
files (a file past the budget keeps its counts but gets no hunks and `truncated: true`), and sides larger than
`max_blob_bytes` are not line-diffed (counts 0, no hunks, `truncated: true`).
"""
from __future__ import annotations

import posixpath
from collections import Counter
from dataclasses import dataclass

from dulwich.diff_tree import (CHANGE_ADD, CHANGE_COPY, CHANGE_DELETE, CHANGE_MODIFY, CHANGE_RENAME, RenameDetector,
                               TreeChange, tree_changes)
from dulwich.objects import Commit, TreeEntry
from dulwich.repo import Repo

from . import line_diff

GITLINK_MODE = 0o160000
BINARY_SNIFF_BYTES = 8000  # git's buffer_is_binary looks this far
RENAME_LIMIT = 1000  # git's diff.renameLimit: no content matching past limit^2 candidate pairs
STATUS = {CHANGE_ADD: "added", CHANGE_MODIFY: "modified", CHANGE_DELETE: "deleted", CHANGE_RENAME: "renamed",
          CHANGE_COPY: "copied"}


@dataclass(frozen=True)
class DiffLimits:
    max_files: int = 300
    max_lines: int = 20_000
    max_blob_bytes: int = 8 * 1024 * 1024


class _GitRenames(RenameDetector):
    """dulwich's rename detection steered to pick the pairs `git diff -M` picks.

    Only deleted files are rename sources (dulwich also offers modified ones, as copies). After exact renames,
    git first pairs a deleted and an added file that share a basename found nowhere else among them (when
    similar enough), then takes the best scores, a shared basename winning a tie.
    """

    def _add_change(self, change: TreeChange) -> None:
        if change.type == CHANGE_MODIFY:
            self._changes.append(change)
        else:
            super()._add_change(change)

    def _find_content_rename_candidates(self) -> None:
        super()._find_content_rename_candidates()
        sources = Counter(posixpath.basename(d.old.path) for d in self._deletes)
        targets = Counter(posixpath.basename(a.new.path) for a in self._adds)
        ranked = []
        for key, change in self._candidates:
            name = posixpath.basename(change.old.path)
            if name == posixpath.basename(change.new.path):
                key -= 1000 if sources[name] == 1 and targets[name] == 1 else 0.5
            ranked.append((key, change))
        self._candidates = ranked

    def _choose_content_renames(self) -> None:
        self._candidates.sort(key=lambda candidate: candidate[0])
        sources, targets = set(), set()
        for _, change in self._candidates:
            if change.old.path in sources or change.new.path in targets:
                continue  # a source is renamed once; git -M makes no copies
            sources.add(change.old.path)
            targets.add(change.new.path)
            self._changes.append(change)
        self._prune(targets, sources)


def _tree_of(repo: Repo, commit_sha: str | None) -> bytes | None:
    if commit_sha is None:
        return None
    commit = repo.object_store[commit_sha.encode()]
    if not isinstance(commit, Commit):
        raise KeyError(commit_sha)
    return commit.tree


def changed_files(repo: Repo, base_tree: bytes | None, head_tree: bytes | None,
                  path: str | None = None) -> list[TreeChange]:
    """File-level changes in git's order; renames detected unless restricted to `path` (a file or directory)."""
    if path is not None:
        changes = list(tree_changes(repo.object_store, base_tree, head_tree,
                                    paths=[path.strip("/").encode("utf-8", "surrogateescape")]))
    elif base_tree is None or head_tree is None:
        changes = list(tree_changes(repo.object_store, base_tree, head_tree))
    else:
        detector = _GitRenames(repo.object_store, rename_threshold=49, max_files=RENAME_LIMIT)
        changes = list(detector.changes_with_renames(base_tree, head_tree))
    result = []
    for change in changes:
        if change.type == CHANGE_COPY:  # an extra exact copy of a renamed file: git -M calls it added
            change = TreeChange(CHANGE_ADD, None, change.new)
        if change.type in STATUS:
            result.append(change)
    result.sort(key=lambda c: ((c.new or c.old).path, c.new is not None))  # a type change: deletion first
    return result


def _content(repo: Repo, entry: TreeEntry | None) -> bytes:
    if entry is None:
        return b""
    if entry.mode == GITLINK_MODE:
        return b"Subproject commit " + entry.sha + b"\n"
    return repo.object_store[entry.sha].as_raw_string()


def is_binary(data: bytes) -> bool:
    return b"\0" in data[:BINARY_SNIFF_BYTES]


def _mode(entry: TreeEntry | None) -> str | None:
    return f"{entry.mode:06o}" if entry is not None else None


def _lines_out(hunk: line_diff.Hunk) -> list[dict]:
    lines = []
    for kind, raw in hunk.lines:
        line = {"type": kind, "content": raw[:-1].decode("utf-8", "replace") if raw.endswith(b"\n")
                else raw.decode("utf-8", "replace")}
        if not raw.endswith(b"\n"):
            line["no_newline"] = True
        lines.append(line)
    return lines


def file_diff(repo: Repo, change: TreeChange, full: bool, line_budget: int | None,
              limits: DiffLimits) -> dict:
    """One file's entry; `line_budget` is how many hunk lines it may still add (None: unlimited)."""
    old, new = change.old, change.new
    entry = {
        "path": (new or old).path.decode("utf-8", "replace"),
        "old_path": old.path.decode("utf-8", "replace") if change.type in (CHANGE_RENAME, CHANGE_COPY) else None,
        "status": STATUS[change.type],
        "insertions": 0,
        "deletions": 0,
        "binary": False,
        "old_mode": _mode(old),
        "new_mode": _mode(new),
        "truncated": False,
        "hunks": [],
    }
    if old is not None and new is not None and old.sha == new.sha:
        return entry  # a rename without edits, or a mode change only
    old_data, new_data = _content(repo, old), _content(repo, new)
    if is_binary(old_data) or is_binary(new_data):
        entry["binary"] = True
        return entry
    if max(len(old_data), len(new_data)) > limits.max_blob_bytes:
        entry["truncated"] = True
        return entry
    old_lines, new_lines = line_diff.split_lines(old_data), line_diff.split_lines(new_data)
    changes = line_diff.diff(old_lines, new_lines)
    entry["insertions"] = sum(c.new_count for c in changes)
    entry["deletions"] = sum(c.old_count for c in changes)
    if full and changes:
        hunks = line_diff.hunks(old_lines, new_lines, changes)
        if line_budget is not None and sum(len(h.lines) for h in hunks) > line_budget:
            entry["truncated"] = True
        else:
            entry["hunks"] = [{"old_start": h.old_start, "old_lines": h.old_lines, "new_start": h.new_start,
                               "new_lines": h.new_lines, "lines": _lines_out(h)} for h in hunks]
    return entry


def diff_commits(repo: Repo, base_sha: str | None, head_sha: str, *, full: bool = True, path: str | None = None,
                 limits: DiffLimits = DiffLimits()) -> dict:
    """`git diff base head` (base None: from the empty tree) as the seed-003 object; `full` adds hunks."""
    changes = changed_files(repo, _tree_of(repo, base_sha), _tree_of(repo, head_sha), path)
    truncated = len(changes) > limits.max_files
    budget = limits.max_lines
    files = []
    for change in changes[:limits.max_files]:
        entry = file_diff(repo, change, full, budget, limits)
        budget -= sum(len(h["lines"]) for h in entry["hunks"])
        truncated = truncated or entry["truncated"]
        files.append(entry)
    return {"base_commit": base_sha, "head_commit": head_sha, "files": files, "truncated": truncated}
