"""The diff between two commits, as seed 003 ("Branch status and diff") shapes it, computed on dulwich.

    {"base_commit", "head_commit", "truncated",
     "files": [{"path", "old_path", "status", "insertions", "deletions", "binary", "old_mode", "new_mode",
                "truncated", "hunks": [{"old_start", "old_lines", "new_start", "new_lines",
                                        "lines": [{"type": "context" | "add" | "remove", "content"}]}]}]}

Like `git diff <base> <head>` with git's defaults: the changed files and their renames are git's own (`git
diff-tree -M`; no renames with a `file` filter, where git's pathspec also comes first), a file is binary when
either side has a NUL in its first 8000 bytes (binary files: counts 0, no hunks), line counts and hunks come
from `line_diff` (git's algorithm, 3 lines of context; for files too big for it to be quick, from git's own diff
of the two blobs, which gives the same answer in C). A line's `content` has no line terminator; the last
line of a file that does not end in a newline carries `"no_newline": true` (git's "\\ No newline at end of
file"). A submodule reads as git shows it: one line "Subproject commit <sha>".

Bounded: at most `max_files` files (the rest are cut, `truncated`); at most `max_lines` hunk lines and
`max_hunk_bytes` of them over all files, `max_file_hunk_bytes` in one file (a file past a budget keeps its counts
but gets no hunks and `truncated: true`: a few lines of megabytes each made a 294 MB answer); sides larger than
`max_blob_bytes` are not line-diffed: git's counts, no hunks, `truncated: true`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dulwich.diff_tree import CHANGE_ADD, CHANGE_COPY, CHANGE_DELETE, CHANGE_MODIFY, CHANGE_RENAME, TreeChange
from dulwich.objects import Commit, TreeEntry
from dulwich.repo import Repo

from . import line_diff
from .git_env import run_git
from .merge_store import EMPTY_TREE

GITLINK_MODE = 0o160000
BINARY_SNIFF_BYTES = 8000  # git's buffer_is_binary looks this far
STATUS = {CHANGE_ADD: "added", CHANGE_MODIFY: "modified", CHANGE_DELETE: "deleted", CHANGE_RENAME: "renamed",
          CHANGE_COPY: "copied"}
_KINDS = {b"A": CHANGE_ADD, b"M": CHANGE_MODIFY, b"D": CHANGE_DELETE, b"R": CHANGE_RENAME, b"C": CHANGE_COPY}


@dataclass(frozen=True)
class DiffLimits:
    max_files: int = 300
    max_lines: int = 20_000
    max_blob_bytes: int = 8 * 1024 * 1024
    # lines (both sides) the pure-Python line diff takes on, per file and per request: past them a file is diffed
    # by git (a process, ~5 ms, then C speed). Python's costs as much as git's start at ~500 lines; 20,000 lines with
    # 4,000 edits took it 1.4 s against git's 49 ms
    max_file_diff_lines: int = 600
    max_diff_lines: int = 20_000
    # bytes of hunk lines in one file and in the answer as JSON writes them (GitHub: ~1 MB a file)
    max_file_hunk_bytes: int = 1024 * 1024
    max_hunk_bytes: int = 8 * 1024 * 1024


def _tree_of(repo: Repo, commit_sha: str | None) -> bytes | None:
    if commit_sha is None:
        return None
    commit = repo.object_store[commit_sha.encode()]
    if not isinstance(commit, Commit):
        raise KeyError(commit_sha)
    return commit.tree


def changed_files(repo: Repo, base_tree: bytes | None, head_tree: bytes | None,
                  path: str | None = None) -> list[TreeChange]:
    """File-level changes as `git diff-tree -r -M` finds them (git's rename detection, in C: a pure-Python one
    took minutes for a few hundred renamed-looking files), none detected when restricted to `path` (a file or
    directory); a type change reads as a deletion and an addition, as git's patch shows it."""
    args = ["diff-tree", "-r", "-z", "--raw", "--no-abbrev"]
    if path is None and base_tree is not None and head_tree is not None:
        args.append("-M")
    args += [(base_tree or EMPTY_TREE).decode(), (head_tree or EMPTY_TREE).decode()]
    if path is not None:
        args += ["--", path.strip("/")]
    raw = run_git(Path(repo.path), args, env={"GIT_LITERAL_PATHSPECS": "1"}).stdout
    result = []
    fields = raw.split(b"\0")
    at = 0
    while at < len(fields) - 1:
        old_mode, new_mode, old_sha, new_sha, status = fields[at][1:].split(b" ")
        paths = fields[at + 1:at + (3 if status[:1] in b"RC" else 2)]
        at += 1 + len(paths)
        old = TreeEntry(paths[0], int(old_mode, 8), old_sha) if status[:1] != b"A" else None
        new = TreeEntry(paths[-1], int(new_mode, 8), new_sha) if status[:1] != b"D" else None
        if status[:1] == b"T":
            result += [TreeChange(CHANGE_DELETE, old, None), TreeChange(CHANGE_ADD, None, new)]
        else:
            result.append(TreeChange(_KINDS[status[:1]], old, new))
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


@dataclass
class _Budget:
    """What a request may still spend: hunk lines and their bytes in its answer, lines its line diffs take on."""
    hunk_lines: int
    diff_lines: int
    hunk_bytes: int


def file_diff(repo: Repo, change: TreeChange, full: bool, limits: DiffLimits, budget: _Budget) -> dict:
    """One file's entry, spending from the request's `budget`."""
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
        entry["insertions"], entry["deletions"] = _counts_without_line_diff(repo, old, new, old_data, new_data)
        entry["truncated"] = True
        return entry
    old_lines, new_lines = line_diff.split_lines(old_data), line_diff.split_lines(new_data)
    hunks: list[line_diff.Hunk] = []
    size = len(old_lines) + len(new_lines)
    both_blobs = old is not None and new is not None and GITLINK_MODE not in (old.mode, new.mode)
    if both_blobs and (size > limits.max_file_diff_lines or size > budget.diff_lines):
        if full:
            hunks = _git_hunks(repo, old.sha, new.sha)
            entry["insertions"], entry["deletions"] = _hunk_counts(hunks)
        else:
            entry["insertions"], entry["deletions"] = _git_counts(repo, old.sha, new.sha)
    else:
        if old is not None and new is not None:  # an addition or deletion costs the line diff nothing
            budget.diff_lines -= size
        changes = line_diff.diff(old_lines, new_lines)
        entry["insertions"] = sum(c.new_count for c in changes)
        entry["deletions"] = sum(c.old_count for c in changes)
        hunks = line_diff.hunks(old_lines, new_lines, changes) if full and changes else []
    if hunks:
        lines = sum(len(h.lines) for h in hunks)
        size = sum(_json_size(raw) for h in hunks for _, raw in h.lines)
        if lines > budget.hunk_lines or size > min(limits.max_file_hunk_bytes, budget.hunk_bytes):
            entry["truncated"] = True
        else:
            budget.hunk_lines -= lines
            budget.hunk_bytes -= size
            entry["hunks"] = [{"old_start": h.old_start, "old_lines": h.old_lines, "new_start": h.new_start,
                               "new_lines": h.new_lines, "lines": _lines_out(h)} for h in hunks]
    return entry


_TWO_IN_JSON = b'"\\\t\n\r\b\f'
_SIX_IN_JSON = bytes(c for c in range(0x20) if c not in _TWO_IN_JSON) + bytes(range(0x80, 0x100))


def _json_size(raw: bytes) -> int:
    """At most what the line takes in the answer: JSON writes a control character, and each byte of a
    non-ASCII one (or U+FFFD for one not UTF-8), as a six-character escape; a quote, a backslash, a tab as two."""
    six = len(raw) - len(raw.translate(None, _SIX_IN_JSON))
    two = len(raw) - len(raw.translate(None, _TWO_IN_JSON))
    return len(raw) + 5 * six + two


def _counts_without_line_diff(repo: Repo, old: TreeEntry | None, new: TreeEntry | None, old_data: bytes,
                              new_data: bytes) -> tuple[int, int]:
    if old is not None and new is not None:
        return _git_counts(repo, old.sha, new.sha)
    return _line_count(new_data), _line_count(old_data)


def _line_count(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


_GIT_LINE_DIFF = ("diff", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames", "--diff-algorithm=myers",
                  "--indent-heuristic", "-U3", "--inter-hunk-context=0")
_HUNK_HEADER = re.compile(rb"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_KIND = {b" ": "context", b"-": "remove", b"+": "add"}


def _git_hunks(repo: Repo, old_sha: bytes, new_sha: bytes) -> list[line_diff.Hunk]:
    """The hunks of one text file's change as git's own diff makes them: the patch read back, line by line."""
    patch = run_git(Path(repo.path), [*_GIT_LINE_DIFF, old_sha.decode(), new_sha.decode()]).stdout.split(b"\n")
    hunks: list[line_diff.Hunk] = []
    at = next((i for i, line in enumerate(patch) if line.startswith(b"@@ ")), len(patch))
    while at < len(patch) and (header := _HUNK_HEADER.match(patch[at])):
        old_start, new_start = int(header[1]), int(header[3])
        old_left = old_count = int(header[2] or 1)
        new_left = new_count = int(header[4] or 1)
        lines: list[tuple[str, bytes]] = []
        at += 1
        while old_left or new_left:
            line = patch[at]
            kind = _KIND[line[:1]]
            lines.append((kind, line[1:] + b"\n"))
            old_left -= kind != "add"
            new_left -= kind != "remove"
            at += 1
            if patch[at].startswith(b"\\"):  # "\ No newline at end of file": the line before has none
                lines[-1] = (kind, line[1:])
                at += 1
        hunks.append(line_diff.Hunk(old_start, old_count, new_start, new_count, lines))
    return hunks


def _hunk_counts(hunks: list[line_diff.Hunk]) -> tuple[int, int]:
    kinds = [kind for hunk in hunks for kind, _ in hunk.lines]
    return kinds.count("add"), kinds.count("remove")


def _git_counts(repo: Repo, old_sha: bytes, new_sha: bytes) -> tuple[int, int]:
    """(insertions, deletions) of one text file's change, counted by git."""
    out = run_git(Path(repo.path), ["diff", "--numstat", "--no-renames", "--no-ext-diff", "--no-textconv",
                                    old_sha.decode(), new_sha.decode()]).stdout
    added, deleted = out.split(b"\t")[:2]
    return int(added), int(deleted)


def diff_commits(repo: Repo, base_sha: str | None, head_sha: str, *, full: bool = True, path: str | None = None,
                 limits: DiffLimits = DiffLimits()) -> dict:
    """`git diff base head` (base None: from the empty tree) as the seed-003 object; `full` adds hunks."""
    changes = changed_files(repo, _tree_of(repo, base_sha), _tree_of(repo, head_sha), path)
    truncated = len(changes) > limits.max_files
    budget = _Budget(hunk_lines=limits.max_lines, diff_lines=limits.max_diff_lines, hunk_bytes=limits.max_hunk_bytes)
    files = []
    for change in changes[:limits.max_files]:
        entry = file_diff(repo, change, full, limits, budget)
        truncated = truncated or entry["truncated"]
        files.append(entry)
    return {"base_commit": base_sha, "head_commit": head_sha, "files": files, "truncated": truncated}
