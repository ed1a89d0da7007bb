"""storage.git_diff / storage.line_diff against the real `git diff` on generated commits: statuses, renames,
--numstat counts, hunk headers and hunk lines must all be git's."""
from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import pytest
from dulwich.repo import Repo

from storage.git_diff import DiffLimits, diff_commits
from storage.line_diff import diff, hunks, split_lines

GIT_DIFF = ("-c", "diff.renames=true", "-c", "diff.algorithm=myers", "-c", "diff.indentHeuristic=true",
            "-c", "core.quotepath=false", "diff", "--no-color", "--no-ext-diff")
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class Work:
    """A work tree whose commits are made by the git CLI."""

    def __init__(self, git, path: Path):
        self.git, self.path = git, path
        git("init", "-q", "-b", "main", str(path))

    def commit(self, files: dict, message: str = "change") -> str:
        """files: path -> bytes | str | ("x", content) executable | ("link", target) | None (delete)."""
        for name, content in files.items():
            target = self.path / name
            if content is None:
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                elif target.exists() or target.is_symlink():
                    target.unlink()
                continue
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() or target.is_symlink():
                target.unlink()
            if isinstance(content, tuple) and content[0] == "link":
                os.symlink(content[1], target)
                continue
            executable = isinstance(content, tuple) and content[0] == "x"
            data = content[1] if executable else content
            target.write_bytes(data.encode() if isinstance(data, str) else data)
            os.chmod(target, 0o755 if executable else 0o644)
        self.git("add", "-A", cwd=self.path)
        self.git("commit", "-q", "--allow-empty", "-m", message, cwd=self.path)
        return self.git.out("rev-parse", "HEAD", cwd=self.path)

    def ours(self, base: str | None, head: str, **kwargs) -> dict:
        with Repo(str(self.path)) as repo:
            return diff_commits(repo, base, head, **kwargs)

    def theirs(self, base: str, head: str, *paths: str) -> dict:
        """What git says, per file: status, old path, numstat counts (None for binary), hunk headers and lines."""
        spec = ["--", *paths] if paths else []
        status = self.git(*GIT_DIFF, "--name-status", "-z", base, head, *spec, cwd=self.path).stdout.decode()
        fields = status.split("\0")[:-1]
        files: dict[str, dict] = {}
        order = []
        i = 0
        while i < len(fields):
            code = fields[i]
            if code[0] in "RC":
                old, new = fields[i + 1], fields[i + 2]
                i += 3
            else:
                old = new = fields[i + 1]
                i += 2
            kind = {"A": "added", "M": "modified", "D": "deleted", "R": "renamed", "C": "copied", "T": "typechange"}
            files[new] = {"status": kind[code[0]], "old_path": old if code[0] in "RC" else None}
            order.append(new)
        numstat = self.git(*GIT_DIFF, "--numstat", "-z", base, head, *spec, cwd=self.path).stdout.decode()
        records = numstat.split("\0")
        i = 0
        while i < len(records) - 1:
            counts = records[i]
            added, deleted, path = counts.split("\t", 2)
            if path == "":  # a rename: old and new path follow
                path = records[i + 2]
                i += 3
            else:
                i += 1
            files[path].setdefault("counts", []).append(
                None if added == "-" else (int(added), int(deleted)))
        patch = self.git(*GIT_DIFF, "-U3", base, head, *spec, cwd=self.path).stdout.decode("utf-8", "replace")
        sections = []
        for line in patch.split("\n"):
            if line.startswith("diff --git "):
                sections.append({"hunks": [], "binary": False})
            elif line.startswith("Binary files "):
                sections[-1]["binary"] = True
            elif match := _HUNK.match(line):
                sections[-1]["hunks"].append({"header": (int(match[1]), int(match[2] or 1), int(match[3]),
                                                         int(match[4] or 1)), "lines": []})
            elif sections and sections[-1]["hunks"] and line[:1] in (" ", "+", "-", "\\"):
                sections[-1]["hunks"][-1]["lines"].append(line)
        return {"order": order, "files": files, "sections": sections}


def rendered(hunk: dict) -> list[str]:
    lines = []
    for line in hunk["lines"]:
        lines.append({"context": " ", "add": "+", "remove": "-"}[line["type"]] + line["content"])
        if line.get("no_newline"):
            lines.append("\\ No newline at end of file")
    return lines


def assert_same_as_git(work: Work, base: str, head: str, *paths: str, limits: DiffLimits = DiffLimits()) -> dict:
    ours = work.ours(base, head, path=paths[0] if paths else None, limits=limits)
    theirs = work.theirs(base, head, *paths)
    assert ours["base_commit"] == base and ours["head_commit"] == head and ours["truncated"] is False
    # git lists a type change (file <-> symlink) once; it is a deletion and an addition of the same path
    ours_paths = list(dict.fromkeys(f["path"] for f in ours["files"]))
    assert ours_paths == theirs["order"]
    sections = iter(theirs["sections"])
    for path in ours_paths:
        entries = [f for f in ours["files"] if f["path"] == path]
        expected = theirs["files"][path]
        if expected["status"] == "typechange":
            assert [e["status"] for e in entries] == ["deleted", "added"]
        else:
            assert len(entries) == 1 and entries[0]["status"] == expected["status"], (path, entries, expected)
            assert entries[0]["old_path"] == expected["old_path"]
        counts = [None if e["binary"] else (e["insertions"], e["deletions"]) for e in entries]
        if expected["status"] == "typechange":
            assert sum(c[0] for c in counts) == sum(c[0] for c in expected["counts"])
            assert sum(c[1] for c in counts) == sum(c[1] for c in expected["counts"])
        else:
            assert counts == expected["counts"], path
        for entry in entries:
            section = next(sections)
            assert entry["binary"] == section["binary"], path
            assert [(h["old_start"], h["old_lines"], h["new_start"], h["new_lines"]) for h in entry["hunks"]] == \
                [h["header"] for h in section["hunks"]], path
            assert [rendered(h) for h in entry["hunks"]] == [h["lines"] for h in section["hunks"]], path
    return ours


@pytest.fixture
def work(git, tmp_path) -> Work:
    return Work(git, tmp_path / "w")


def _source(rnd: random.Random, n: int) -> list[str]:
    vocab = ["", "{", "}", "    return x", "    pass", "\tif (a) {", "\t\tb();", "\t}", "def f():", "class A:",
             "# comment", "import os", "x = 1", "    y = 2", "        z = 3"]
    return [rnd.choice(vocab) if rnd.random() < 0.6 else f"line {rnd.randint(0, n)}" for _ in range(n)]


def _edit(rnd: random.Random, lines: list[str], edits: int) -> list[str]:
    lines = list(lines)
    for _ in range(edits):
        op = rnd.random()
        if op < 0.35 and lines:
            del lines[rnd.randrange(len(lines))]
        elif op < 0.7:
            lines.insert(rnd.randint(0, len(lines)), rnd.choice(["", "}", "    new()", f"new {rnd.random():.3f}"]))
        elif lines:
            lines[rnd.randrange(len(lines))] = f"changed {rnd.randint(0, 9)}"
    return lines


# every modified file through the Python line diff, or through git's own (the hunks read back from its patch)
LINE_DIFFS = {"python": DiffLimits(max_file_diff_lines=10 ** 9, max_diff_lines=10 ** 9),
              "git": DiffLimits(max_file_diff_lines=0)}


@pytest.mark.parametrize("line_diff", LINE_DIFFS)
@pytest.mark.parametrize("seed", range(6))
def test_generated_edits_match_git(work, seed, line_diff):
    rnd = random.Random(seed)
    base_files, head_files = {}, {}
    for i in range(12):
        lines = _source(rnd, rnd.choice([0, 1, 5, 40, 300]))
        eol = "\n" if rnd.random() < 0.8 else ""
        base_files[f"src/f{i}.txt"] = "\n".join(lines) + (eol if lines else "")
        edited = _edit(rnd, lines, rnd.choice([1, 3, 10, 60]))
        eol = "\n" if rnd.random() < 0.8 else ""
        head_files[f"src/f{i}.txt"] = "\n".join(edited) + (eol if edited else "")
    base = work.commit(base_files)
    head = work.commit(head_files)
    assert_same_as_git(work, base, head, limits=LINE_DIFFS[line_diff])


@pytest.mark.parametrize("line_diff", LINE_DIFFS)
def test_trailing_newlines_empty_files_and_modes(work, line_diff):
    base = work.commit({
        "noeol.txt": "a\nb\nc", "addeol.txt": "a\nb\nc", "dropeol.txt": "a\nb\nc\n", "append.txt": "x\ny",
        "empty-to-text.txt": "", "text-to-empty.txt": "one\ntwo\n", "empty-deleted.txt": "", "mode.sh": "echo\n",
        "mode-and-edit.sh": "a\nb\n", "crlf.txt": "a\r\nb\r\nc\r\n", "unicode.txt": "héllo\nwörld\n",
        "only-newline.txt": "\n", "blank-lines.txt": "\n\n\n\nx\n\n\n",
    })
    head = work.commit({
        "noeol.txt": "a\nB\nc", "addeol.txt": "a\nb\nc\n", "dropeol.txt": "a\nb\nc", "append.txt": "x\ny\nz\n",
        "empty-to-text.txt": "now text\n", "text-to-empty.txt": "", "empty-deleted.txt": None,
        "empty-added.txt": "", "mode.sh": ("x", "echo\n"), "mode-and-edit.sh": ("x", "a\nB\n"),
        "crlf.txt": "a\r\nB\r\nc\r\n", "unicode.txt": "héllo\nwørld\n", "only-newline.txt": "\n\n",
        "blank-lines.txt": "\n\n\nx\n\n\n\n\n",
    })
    ours = assert_same_as_git(work, base, head, limits=LINE_DIFFS[line_diff])
    by_path = {f["path"]: f for f in ours["files"]}
    assert by_path["mode.sh"]["old_mode"] == "100644" and by_path["mode.sh"]["new_mode"] == "100755"
    assert by_path["mode.sh"]["hunks"] == [] and by_path["mode.sh"]["status"] == "modified"
    # like git, an empty file that disappears and another that appears are an exact rename
    assert by_path["empty-added.txt"]["status"] == "renamed" and by_path["empty-added.txt"]["hunks"] == []
    assert by_path["empty-added.txt"]["old_path"] == "empty-deleted.txt"
    dropped = by_path["dropeol.txt"]["hunks"][0]["lines"]
    assert dropped[-2] == {"type": "remove", "content": "c"}
    assert dropped[-1] == {"type": "add", "content": "c", "no_newline": True}
    assert by_path["unicode.txt"]["hunks"][0]["lines"][-1] == {"type": "add", "content": "wørld"}


def test_binary_files(work):
    blob = bytes(range(256)) * 40
    base = work.commit({"img.bin": blob, "late-nul.txt": "x" * 9000 + "\n", "text.txt": "plain\n"})
    head = work.commit({"img.bin": blob[::-1], "late-nul.txt": "x" * 9000 + "\0\n", "text.txt": "pl\0ain\n",
                        "new.bin": b"\0\1\2"})
    ours = assert_same_as_git(work, base, head)
    by_path = {f["path"]: f for f in ours["files"]}
    assert by_path["img.bin"]["binary"] is True and by_path["img.bin"]["hunks"] == []
    assert by_path["late-nul.txt"]["binary"] is False  # the NUL is past git's first 8000 bytes
    assert by_path["text.txt"]["binary"] is True and by_path["new.bin"]["status"] == "added"


def test_renames_like_git(work):
    body = "".join(f"line {i} of a file that is long enough to be compared\n" for i in range(40))
    base = work.commit({"old/exact.txt": body + "exact\n", "old/edited.txt": body + "edited\n",
                        "old/rewritten.txt": body + "rewritten\n", "keep.txt": body + "keep\n",
                        "modified-source.txt": body + "m\n"})
    head = work.commit({
        "old/exact.txt": None, "new/exact.txt": body + "exact\n",
        "old/edited.txt": None, "new/edited.txt": body.replace("line 3 ", "LINE 3 ") + "edited more\n",
        "old/rewritten.txt": None, "new/rewritten.txt": "entirely\ndifferent\n",
        "modified-source.txt": body + "m2\n", "copy-of-modified.txt": body + "m\n",
    })
    ours = assert_same_as_git(work, base, head)
    by_path = {f["path"]: f for f in ours["files"]}
    assert by_path["new/exact.txt"]["status"] == "renamed" and by_path["new/exact.txt"]["old_path"] == "old/exact.txt"
    assert by_path["new/exact.txt"]["hunks"] == [] and by_path["new/exact.txt"]["insertions"] == 0
    assert by_path["new/edited.txt"]["status"] == "renamed"
    assert by_path["new/rewritten.txt"]["status"] == "added"  # same basename, but not similar enough
    # old/rewritten.txt is nearly the new copy-of-modified.txt; old/edited.txt went to its namesake first
    assert by_path["copy-of-modified.txt"]["old_path"] == "old/rewritten.txt"
    later = work.commit({"modified-source.txt": body + "m3\n", "another-copy.txt": body + "m2\n"})
    again = {f["path"]: f for f in assert_same_as_git(work, head, later)["files"]}
    assert again["another-copy.txt"]["status"] == "added"  # git -M reports no copies of modified files


def test_type_changes_symlinks_and_directories(work):
    base = work.commit({"link": "was a file\n", "swap": "file\n", "target.txt": "t\n", "dir/inner.txt": "in\n"})
    head = work.commit({"link": ("link", "target.txt"), "swap": None, "swap/now-dir.txt": "d\n",
                        "dir": "now a file\n", "newlink": ("link", "nowhere")})
    ours = assert_same_as_git(work, base, head)
    link = [f for f in ours["files"] if f["path"] == "newlink"][0]
    assert link["new_mode"] == "120000"
    assert link["hunks"][0]["lines"] == [{"type": "add", "content": "nowhere", "no_newline": True}]


def test_file_filter_and_root_commit(work):
    base = work.commit({"a.txt": "a\n", "dir/b.txt": "b\n", "dir/sub/c.txt": "c\n", "moved.txt": "m\n" * 20})
    head = work.commit({"a.txt": "A\n", "dir/b.txt": "B\n", "dir/sub/c.txt": "C\n", "moved.txt": None,
                        "dir/moved.txt": "m\n" * 20})
    only = assert_same_as_git(work, base, head, "dir/b.txt")
    assert [f["path"] for f in only["files"]] == ["dir/b.txt"]
    under = assert_same_as_git(work, base, head, "dir")
    assert [(f["path"], f["status"]) for f in under["files"]] == [
        ("dir/b.txt", "modified"), ("dir/moved.txt", "added"), ("dir/sub/c.txt", "modified")]
    assert work.ours(base, head, path="nothing/here")["files"] == []
    root = work.ours(None, base)
    assert root["base_commit"] is None and {f["status"] for f in root["files"]} == {"added"}
    assert sum(f["insertions"] for f in root["files"]) == 23


def test_summary_has_counts_but_no_hunks(work):
    base = work.commit({"a.txt": "1\n2\n3\n"})
    head = work.commit({"a.txt": "1\ntwo\n3\nfour\n"})
    summary = work.ours(base, head, full=False)
    assert summary["files"][0]["insertions"] == 2 and summary["files"][0]["deletions"] == 1
    assert summary["files"][0]["hunks"] == []


def test_output_is_bounded(work):
    base = work.commit({f"f{i:02}.txt": "".join(f"{j}\n" for j in range(100)) for i in range(10)})
    head = work.commit({f"f{i:02}.txt": "".join(f"{j}!\n" for j in range(100)) for i in range(10)})
    few = work.ours(base, head, limits=DiffLimits(max_files=4))
    assert few["truncated"] is True and [f["path"] for f in few["files"]] == [f"f{i:02}.txt" for i in range(4)]
    short = work.ours(base, head, limits=DiffLimits(max_lines=450))
    assert short["truncated"] is True
    assert [bool(f["hunks"]) for f in short["files"]] == [True, True] + [False] * 8
    assert all(f["insertions"] == 100 and f["deletions"] == 100 for f in short["files"])
    assert [f["truncated"] for f in short["files"]] == [False, False] + [True] * 8
    small = work.ours(base, head, limits=DiffLimits(max_blob_bytes=100))
    assert small["truncated"] is True and all(f["truncated"] and not f["hunks"] for f in small["files"])


@pytest.mark.parametrize("seed", range(4))
def test_line_diff_with_xdiff_heuristics_matches_git(git, tmp_path, seed):
    """Large files with many edits and many repeated lines: the cases where git's diff is not minimal."""
    rnd = random.Random(1000 + seed)
    n = rnd.choice([1500, 4000])
    vocabulary = rnd.choice([5, 50, 100000])
    old = [f"line {rnd.randint(0, vocabulary)}" for _ in range(n)]
    new = list(old)
    for _ in range(rnd.choice([600, 2500])):
        op = rnd.random()
        if op < 0.4:
            del new[rnd.randrange(len(new))]
        elif op < 0.8:
            new.insert(rnd.randint(0, len(new)), f"line {rnd.randint(0, vocabulary * 2)}")
        else:
            new[rnd.randrange(len(new))] = f"x {rnd.randint(0, 10)}"
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("\n".join(old) + "\n")
    b.write_text("\n".join(new) + "\n")
    result = git("diff", "--no-index", "--no-color", "-U3", str(a), str(b), check=False)
    expected = [tuple(int(g or 1) for g in m.groups()) for line in result.stdout.decode().split("\n")
                if (m := _HUNK.match(line))]
    old_lines, new_lines = split_lines(a.read_bytes()), split_lines(b.read_bytes())
    changes = diff(old_lines, new_lines)
    got = [(h.old_start, h.old_lines, h.new_start, h.new_lines) for h in hunks(old_lines, new_lines, changes)]
    assert got == expected
    numstat = git("diff", "--no-index", "--numstat", str(a), str(b), check=False).stdout.decode().split("\t")
    assert (sum(c.new_count for c in changes), sum(c.old_count for c in changes)) == (int(numstat[0]), int(numstat[1]))


def test_hundreds_of_renamed_looking_files_are_paired_as_git_pairs_them(work):
    """Rename detection is git's own: the pure-Python one took 48 s on 300 deleted and 300 added files."""
    rnd = random.Random(7)
    base_files = {f"old/{i}.txt": "\n".join(_source(rnd, 40)) + "\n" for i in range(140)}
    base = work.commit(base_files)
    head_files = {name: None for name in base_files}
    head_files.update({f"new/{i}.txt": "\n".join(_source(rnd, 40)) + "\n" for i in range(140)})
    head_files.update({f"moved/{i}.txt": base_files[f"old/{i}.txt"] + "more\n" for i in range(0, 140, 10)})
    head = work.commit(head_files)
    ours = assert_same_as_git(work, base, head)
    assert sum(f["status"] == "renamed" for f in ours["files"]) >= 14


def test_a_file_past_the_python_line_diff_gets_gits_own_hunks(work):
    """Past the Python line diff's budgets (per file, per request) git diffs the file: its hunks, not a truncated
    entry with counts alone, as before (and 1.4 s of Python for 20,000 lines against git's 49 ms)."""
    rnd = random.Random(3)
    lines = _source(rnd, 400)
    huge = _source(rnd, 30_000)
    base = work.commit({"big.txt": "\n".join(lines) + "\n", "small.txt": "a\n", "huge.txt": "\n".join(huge)})
    head = work.commit({"big.txt": "\n".join(_edit(rnd, lines, 40)) + "\n", "small.txt": "b\n",
                        "huge.txt": "\n".join(_edit(rnd, huge, 3_000))})
    python = work.ours(base, head, limits=LINE_DIFFS["python"])
    for limits in (DiffLimits(), DiffLimits(max_file_diff_lines=500), DiffLimits(max_diff_lines=500)):
        ours = assert_same_as_git(work, base, head, limits=limits)
        assert ours == python
        assert all(f["hunks"] and not f["truncated"] for f in ours["files"])
    assert work.ours(base, head, full=False, limits=DiffLimits(max_file_diff_lines=0))["files"] == \
        [{**f, "hunks": []} for f in python["files"]]


def test_long_lines_are_bounded_in_bytes_not_only_in_lines(work):
    """Lines count as lines whatever their length: 20 files of one 7 MB line, each with a character changed,
    made a 294 MB answer and a 956 MB worker."""
    base = work.commit({f"f{i}.txt": "x" * 400_000 + "\n" for i in range(4)})
    head = work.commit({f"f{i}.txt": "x" * 399_999 + "y\n" for i in range(4)})
    capped = work.ours(base, head, limits=DiffLimits(max_hunk_bytes=2_000_000))
    assert [bool(f["hunks"]) for f in capped["files"]] == [True, True, False, False]
    assert capped["truncated"] is True and all(f["insertions"] == f["deletions"] == 1 for f in capped["files"])
    per_file = work.ours(base, head, limits=DiffLimits(max_file_hunk_bytes=500_000))
    assert not any(f["hunks"] for f in per_file["files"]) and all(f["truncated"] for f in per_file["files"])


def test_a_side_too_large_for_the_line_diff_still_gets_gits_counts(work):
    """It answered 0 and 0 (git: 142858 and 142858), though the README promised git's counts."""
    base = work.commit({"big.txt": "".join(f"{i}\n" for i in range(300)), "gone.txt": "a\nb\nc\nd\ne\nf"})
    head = work.commit({"big.txt": "".join(f"{i}!\n" for i in range(300)), "new.txt": "1\n2\n3\n4\n5\n6",
                        "gone.txt": None})
    theirs = work.theirs(base, head)["files"]
    files = {f["path"]: f for f in work.ours(base, head, limits=DiffLimits(max_blob_bytes=10))["files"]}
    assert all(f["truncated"] and not f["hunks"] for f in files.values())
    assert {p: [(f["insertions"], f["deletions"])] for p, f in files.items()} == \
        {p: f["counts"] for p, f in theirs.items()}


def test_the_byte_budget_counts_a_line_as_json_writes_it(work):
    """Control characters and non-ASCII bytes become six-character escapes: ten files of ~900 KB of \\x01 lines
    passed a 1 MiB-a-file budget counted in raw bytes and made a 48.8 MB answer."""
    import json

    base = work.commit({"ctl.txt": "\x01" * 300_000 + "\n", "text.txt": "a\tb\n"})
    head = work.commit({"ctl.txt": "\x01" * 299_999 + "\x02\n", "text.txt": "a\tc\n"})
    files = {f["path"]: f for f in work.ours(base, head)["files"]}
    assert files["ctl.txt"]["truncated"] is True and not files["ctl.txt"]["hunks"]
    assert files["text.txt"]["hunks"] and files["text.txt"]["truncated"] is False
    answer = json.dumps(work.ours(base, head, limits=DiffLimits(max_file_hunk_bytes=10 ** 9))["files"][0]["hunks"])
    assert len(answer) > 3_000_000  # what it would have been
