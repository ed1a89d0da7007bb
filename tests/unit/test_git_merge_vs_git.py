"""storage.git_merge against the real thing: `git merge-tree --write-tree` (git's merge-ort) on generated branch pairs.

Every case builds a base commit and two children (or a richer history: criss-cross, unrelated roots) with dulwich,
then compares, for the same two commits:
  * clean or not (merge-tree's exit status 0 / 1),
  * the conflicted paths (`--name-only`: the paths that would have index stages),
  * the merged tree id: for clean merges this is the result that gets committed; for conflicted ones git writes
    the tree with conflict markers, and it matches too.
The cases are the named categories of the issue (clean, content conflicts, add/add, delete/modify, renames, modes,
binaries, file/directory, directory renames, criss-cross, unrelated) plus three seeded random families (mixed
edits, repetitive-line text edits, rename-heavy trees). No category differs from git 2.39. Known, deliberate
differences outside this set (see storage/git_merge.py): .gitattributes merge drivers are not run (neither does
merge-tree in a bare repository), and on the inputs where git 2.39's merge-ort aborts on an internal assertion
(process_renames, a rename whose source is a directory on the other side) we return a result instead of dying.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from storage.git_merge import merge_commits

REG, EXE, LNK = 0o100644, 0o100755, 0o120000
Files = dict[str, "bytes | tuple[bytes, int]"]


@dataclass
class Case:
    name: str
    base: Files | None
    ours: Files
    theirs: Files
    history: str = "simple"  # simple | crisscross | unrelated
    extra: dict = field(default_factory=dict)


def lines(*items: str) -> bytes:
    return "".join(f"{item}\n" for item in items).encode()


NUMBERED = lines(*[f"line {i}" for i in range(1, 21)])


def edit(text: bytes, changes: dict[int, str | None], inserts: dict[int, list[str]] | None = None) -> bytes:
    """Replace (or delete with None) 0-based line numbers; insert lists of lines before a given index."""
    out = []
    src = text.decode().split("\n")[:-1] if text.endswith(b"\n") else text.decode().split("\n")
    for i, line in enumerate(src + [None]):
        for extra in (inserts or {}).get(i, []):
            out.append(extra)
        if line is None:
            break
        if i in changes:
            if changes[i] is not None:
                out.append(changes[i])
        else:
            out.append(line)
    return lines(*out)


def similar_but_edited(text: bytes, every: int = 7) -> bytes:
    src = text.decode().split("\n")[:-1]
    return lines(*[f"{line} (edited)" if i % every == 3 else line for i, line in enumerate(src)])


PROSE = lines(*[f"paragraph {i}: the quick brown fox jumps over the lazy dog number {i * 7}" for i in range(40)])
CODE = lines(*(["def f():", "    x = 1", "", "    return x", "}", ""] * 12))


def named_cases() -> list[Case]:
    b = {"a.txt": NUMBERED, "b.txt": lines("b1", "b2", "b3"), "dir/c.txt": lines("c1", "c2"), "doc.md": PROSE}
    cases = [
        Case("clean-different-files", b, {**b, "a.txt": edit(NUMBERED, {2: "ours"})},
             {**b, "b.txt": lines("b1", "theirs", "b3")}),
        Case("clean-same-file-far-apart", b, {**b, "a.txt": edit(NUMBERED, {1: "ours"})},
             {**b, "a.txt": edit(NUMBERED, {15: "theirs"})}),
        Case("clean-same-file-close", b, {**b, "a.txt": edit(NUMBERED, {4: "ours"})},
             {**b, "a.txt": edit(NUMBERED, {6: "theirs"})}),
        Case("conflict-adjacent-lines", b, {**b, "a.txt": edit(NUMBERED, {4: "ours"})},
             {**b, "a.txt": edit(NUMBERED, {5: "theirs"})}),
        Case("conflict-same-line", b, {**b, "a.txt": edit(NUMBERED, {4: "ours"})},
             {**b, "a.txt": edit(NUMBERED, {4: "theirs"})}),
        Case("clean-identical-change", b, {**b, "a.txt": edit(NUMBERED, {4: "same"})},
             {**b, "a.txt": edit(NUMBERED, {4: "same"}), "b.txt": lines("x")}),
        Case("clean-insert-and-append", b, {**b, "a.txt": edit(NUMBERED, {}, {0: ["top"]})},
             {**b, "a.txt": NUMBERED + b"bottom\n"}),
        Case("conflict-both-insert-same-place", b, {**b, "a.txt": edit(NUMBERED, {}, {10: ["o1", "o2"]})},
             {**b, "a.txt": edit(NUMBERED, {}, {10: ["t1"]})}),
        Case("zealous-refinement-identical-part", b,
             {**b, "a.txt": edit(NUMBERED, {4: "same", 5: "ours"})},
             {**b, "a.txt": edit(NUMBERED, {4: "same", 5: "theirs"})}),
        Case("add-add-identical", b, {**b, "new.txt": lines("n")}, {**b, "new.txt": lines("n")}),
        Case("add-add-different", b, {**b, "new.txt": lines("ours")}, {**b, "new.txt": lines("theirs")}),
        Case("add-add-one-empty", b, {**b, "new.txt": b""}, {**b, "new.txt": lines("theirs")}),
        Case("delete-modify", b, {k: v for k, v in b.items() if k != "b.txt"},
             {**b, "b.txt": lines("b1", "changed", "b3")}),
        Case("modify-delete", b, {**b, "b.txt": lines("b1", "changed", "b3")},
             {k: v for k, v in b.items() if k != "b.txt"}),
        Case("delete-unchanged", b, {k: v for k, v in b.items() if k != "b.txt"}, {**b, "a.txt": lines("t")}),
        Case("delete-delete", b, {k: v for k, v in b.items() if k != "b.txt"},
             {k: v for k, v in b.items() if k != "b.txt"}),
        Case("delete-whole-dir-vs-edit-other", b, {k: v for k, v in b.items() if not k.startswith("dir/")},
             {**b, "a.txt": edit(NUMBERED, {0: "t"})}),
        Case("rename-vs-modify", b, {**{k: v for k, v in b.items() if k != "doc.md"}, "docs/guide.md": PROSE},
             {**b, "doc.md": edit(PROSE, {3: "theirs edit"})}),
        Case("modify-vs-rename", b, {**b, "doc.md": edit(PROSE, {30: "ours edit"})},
             {**{k: v for k, v in b.items() if k != "doc.md"}, "guide.md": PROSE}),
        Case("rename-with-edit-vs-modify", b,
             {**{k: v for k, v in b.items() if k != "doc.md"}, "docs/doc.md": edit(PROSE, {0: "renamed+edited"})},
             {**b, "doc.md": edit(PROSE, {35: "theirs edit"})}),
        Case("rename-vs-conflicting-modify", b,
             {**{k: v for k, v in b.items() if k != "doc.md"}, "g.md": edit(PROSE, {5: "ours"})},
             {**b, "doc.md": edit(PROSE, {5: "theirs"})}),
        Case("rename-rename-same", b, {**{k: v for k, v in b.items() if k != "doc.md"}, "x.md": PROSE},
             {**{k: v for k, v in b.items() if k != "doc.md"}, "x.md": PROSE}),
        Case("rename-rename-different", b, {**{k: v for k, v in b.items() if k != "doc.md"}, "x.md": PROSE},
             {**{k: v for k, v in b.items() if k != "doc.md"}, "y.md": PROSE}),
        Case("rename-delete", b, {**{k: v for k, v in b.items() if k != "doc.md"}, "x.md": PROSE},
             {k: v for k, v in b.items() if k != "doc.md"}),
        Case("rename-add-collision", b, {**{k: v for k, v in b.items() if k != "doc.md"}, "x.md": PROSE},
             {**b, "x.md": lines("something else entirely")}),
        Case("rename-2to1", {**b, "other.md": CODE},
             {**{k: v for k, v in b.items() if k != "doc.md"}, "other.md": CODE, "x.md": PROSE},
             {**b, "x.md": CODE}),
        Case("rename-below-similarity", b,
             {**{k: v for k, v in b.items() if k != "doc.md"}, "x.md": similar_but_edited(PROSE, 2)},
             {**b, "doc.md": edit(PROSE, {1: "t"})}),
        Case("mode-change-vs-modify", b, {**b, "a.txt": (NUMBERED, EXE)}, {**b, "a.txt": edit(NUMBERED, {9: "t"})}),
        Case("mode-change-both-same", b, {**b, "a.txt": (NUMBERED, EXE)},
             {**b, "a.txt": (edit(NUMBERED, {9: "t"}), EXE)}),
        Case("binary-one-side", {**b, "img.bin": b"\0\1\2" * 100}, {**b, "img.bin": b"\0\1\3" * 100},
             {**b, "img.bin": b"\0\1\2" * 100, "a.txt": lines("t")}),
        Case("binary-both-sides", {**b, "img.bin": b"\0\1\2" * 100}, {**b, "img.bin": b"\0\1\3" * 100},
             {**b, "img.bin": b"\0\1\4" * 100}),
        Case("binary-same-change", {**b, "img.bin": b"\0\1\2" * 100}, {**b, "img.bin": b"\0\x09" * 100},
             {**b, "img.bin": b"\0\x09" * 100}),
        Case("symlink-vs-symlink", {**b, "link": (b"a.txt", LNK)}, {**b, "link": (b"b.txt", LNK)},
             {**b, "link": (b"doc.md", LNK)}),
        Case("file-vs-symlink-typechange", b, {**b, "b.txt": (b"a.txt", LNK)},
             {**b, "b.txt": lines("b1", "edited", "b3")}),
        Case("add-file-vs-add-dir", b, {**b, "x": lines("file")}, {**b, "x/inner.txt": lines("dir")}),
        Case("file-becomes-dir-vs-modify", b, {**{k: v for k, v in b.items() if k != "b.txt"},
                                              "b.txt/inside": lines("i")},
             {**b, "b.txt": lines("b1", "mod", "b3")}),
        Case("crlf-clean", {"w.txt": b"one\r\ntwo\r\nthree\r\nfour\r\nfive\r\nsix\r\n"},
             {"w.txt": b"ONE\r\ntwo\r\nthree\r\nfour\r\nfive\r\nsix\r\n"},
             {"w.txt": b"one\r\ntwo\r\nthree\r\nfour\r\nfive\r\nSIX\r\n"}),
        Case("no-trailing-newline", {"n.txt": b"a\nb\nc\nd\ne\nf"}, {"n.txt": b"A\nb\nc\nd\ne\nf"},
             {"n.txt": b"a\nb\nc\nd\ne\nF"}),
        Case("no-trailing-newline-conflict", {"n.txt": b"a\nb\nc"}, {"n.txt": b"a\nb\nC"}, {"n.txt": b"a\nb\nc\nd"}),
        Case("repeated-lines-alignment", {"c.py": CODE}, {"c.py": edit(CODE, {7: "    x = 2"})},
             {"c.py": edit(CODE, {}, {40: ["def g():", "    pass", ""]})}),
        Case("empty-file-edits", {"e.txt": b""}, {"e.txt": lines("ours")}, {"e.txt": b"", "z": lines("z")}),
        Case("dir-rename-vs-add-in-old-dir",
             {"src/a.py": CODE, "src/b.py": PROSE, "src/c.txt": NUMBERED, "top": lines("t")},
             {"lib/a.py": CODE, "lib/b.py": PROSE, "lib/c.txt": NUMBERED, "top": lines("t")},
             {"src/a.py": CODE, "src/b.py": PROSE, "src/c.txt": NUMBERED, "src/new.py": lines("new"),
              "top": lines("t")}),
        Case("dir-rename-vs-edit-inside",
             {"src/a.py": CODE, "src/b.py": PROSE, "top": lines("t")},
             {"lib/a.py": CODE, "lib/b.py": PROSE, "top": lines("t")},
             {"src/a.py": edit(CODE, {1: "    x = 42"}), "src/b.py": PROSE, "top": lines("t")}),
        Case("no-common-ancestor-disjoint", None, {"ours.txt": lines("o")}, {"theirs.txt": lines("t")},
             history="unrelated"),
        Case("no-common-ancestor-same-path", None, {"same.txt": lines("o")}, {"same.txt": lines("t")},
             history="unrelated"),
        Case("criss-cross-clean", {"f.txt": NUMBERED, "g.txt": PROSE}, {}, {}, history="crisscross",
             extra={"a1": {"f.txt": edit(NUMBERED, {0: "A"})}, "b1": {"g.txt": edit(PROSE, {0: "B"})},
                    "a2": {"f.txt": edit(NUMBERED, {10: "A2"})}, "b2": {"g.txt": edit(PROSE, {30: "B2"})}}),
        Case("criss-cross-conflicting-bases", {"f.txt": NUMBERED}, {}, {}, history="crisscross",
             extra={"a1": {"f.txt": edit(NUMBERED, {5: "A"})}, "b1": {"f.txt": edit(NUMBERED, {5: "B"})},
                    "a2": {"f.txt": edit(NUMBERED, {15: "A2"})}, "b2": {"g.txt": lines("B2")}}),
    ]
    return cases


WORDS = ["alpha", "beta", "gamma", "delta", "", "}", "{", "return x;", "epsilon", "zeta", "eta", "theta"]


def _random_text(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(WORDS) if rng.random() < 0.3 else f"{rng.choice(WORDS)} {rng.randrange(1000)}"
            for _ in range(n)]


def _mutate(rng: random.Random, src: list[str], edits: int) -> list[str]:
    out = list(src)
    for _ in range(edits):
        op = rng.random()
        pos = rng.randrange(len(out) + 1)
        if op < 0.4 and pos < len(out):
            out[pos] = f"{out[pos]} changed{rng.randrange(100)}"
        elif op < 0.7:
            out[pos:pos] = [f"inserted {rng.randrange(1000)}" for _ in range(rng.randint(1, 3))]
        elif pos < len(out):
            del out[pos:pos + rng.randint(1, 3)]
    return out


def random_cases(count: int, seed: int = 20240611) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for n in range(count):
        base: dict[str, bytes] = {}
        for i in range(rng.randint(2, 6)):
            directory = rng.choice(["", "src/", "src/util/", "docs/"])
            base[f"{directory}file{i}.txt"] = lines(*_random_text(rng, rng.randint(5, 40)))
        sides = []
        for _side in range(2):
            files = dict(base)
            for path in list(files):
                roll = rng.random()
                text = files[path].decode().split("\n")[:-1]
                if roll < 0.45:
                    files[path] = lines(*_mutate(rng, text, rng.randint(1, 3)))
                elif roll < 0.55:
                    del files[path]
                elif roll < 0.65:
                    new = path.replace("file", "moved") if rng.random() < 0.5 else "renamed/" + path.split("/")[-1]
                    files[new] = lines(*_mutate(rng, text, rng.randint(0, 1))) if text else files[path]
                    del files[path]
                elif roll < 0.7:
                    files[path] = (files[path], EXE)
            if rng.random() < 0.3:
                files[f"added{rng.randrange(3)}.txt"] = lines(*_random_text(rng, 4))
            sides.append(files)
        cases.append(Case(f"random-{n:02d}", base, sides[0], sides[1]))
    return cases


def random_text_cases(count: int, seed: int = 7) -> list[Case]:
    """One file, a tiny vocabulary (many identical lines: blank lines, braces), both sides editing it: this
    exercises the line alignment (histogram diff, its Myers fallback, change compaction) and conflict refinement."""
    rng = random.Random(seed)
    cases = []
    for n in range(count):
        vocab = ["a", "b", "c", "", "}", "{", "x = 1", "return", "end"][:rng.randint(2, 9)]
        size = rng.choice([0, 5, 30, 60, 400])
        base = [rng.choice(vocab) for _ in range(size)]

        def mutate(src: list[str]) -> list[str]:
            out = list(src)
            for _ in range(rng.randint(0, 4)):
                pos, op = rng.randrange(len(out) + 1), rng.random()
                if op < 0.35 and pos < len(out):
                    out[pos] = rng.choice(vocab + [f"NEW{rng.randrange(5)}"])
                elif op < 0.7:
                    out[pos:pos] = [rng.choice(vocab + ["INS"]) for _ in range(rng.randint(1, 4))]
                elif pos < len(out):
                    del out[pos:pos + rng.randint(1, 4)]
            return out

        newline = rng.random() < 0.8

        def encode(items: list[str], final_newline: bool = newline) -> bytes:
            return ("\n".join(items) + ("\n" if items and final_newline else "")).encode()

        cases.append(Case(f"text-{n:02d}", {"f.txt": encode(base)}, {"f.txt": encode(mutate(base))},
                          {"f.txt": encode(mutate(base), rng.random() < 0.9 or newline)}))
    return cases


def random_rename_cases(count: int, seed: int = 11) -> list[Case]:
    """Several directories; each side renames files (some edited on the way), moves whole directories, edits,
    deletes, changes modes and adds files: renames vs edits, rename/rename, rename/delete, directory renames."""
    rng = random.Random(seed)
    dirs = ["", "a/", "a/b/", "c/", "d/e/"]
    cases = []
    for n in range(count):
        base: dict[str, bytes] = {}
        for i in range(rng.randint(2, 10)):
            text = [f"{rng.choice(['foo', 'bar', 'baz', 'qux'])} {rng.randrange(50)}" for _ in range(rng.randint(1, 30))]
            base[f"{rng.choice(dirs)}f{i}.txt"] = lines(*text)
        sides = []
        for _side in range(2):
            files: dict = dict(base)
            move_dir = rng.random() < 0.25
            src_dir, dst_dir = rng.choice(["a/", "c/", "d/e/"]), rng.choice(["z/", "a/b/", "y/"])
            for path in list(files):
                data = files[path]
                if move_dir and path.startswith(src_dir):
                    del files[path]
                    files[dst_dir + path[len(src_dir):]] = data
                    continue
                text = data.decode().split("\n")[:-1]
                roll = rng.random()
                if roll < 0.3:
                    i = rng.randrange(len(text))
                    text[i] += " e"
                    files[path] = lines(*text)
                elif roll < 0.45:
                    del files[path]
                    target = rng.choice(dirs) + ("r_" if rng.random() < 0.5 else "") + path.split("/")[-1]
                    if rng.random() < 0.5:
                        i = rng.randrange(len(text))
                        text[i] += " r"
                        data = lines(*text)
                    files[target] = data
                elif roll < 0.52:
                    del files[path]
                elif roll < 0.55:
                    files[path] = (data, EXE)
            if rng.random() < 0.4:
                files[rng.choice(dirs) + f"new{rng.randrange(3)}.txt"] = lines(f"new {rng.randrange(3)}")
            sides.append(files)
        cases.append(Case(f"renames-{n:02d}", base, sides[0], sides[1]))
    return cases


CASES = named_cases() + random_cases(40) + random_text_cases(40) + random_rename_cases(40)


class Builder:
    def __init__(self, path: Path):
        subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True, env=_git_env())
        self.repo = Repo(str(path))
        self.when = 1_700_000_000

    def tree(self, files: Files) -> bytes:
        nested: dict = {}
        for path, value in files.items():
            data, mode = value if isinstance(value, tuple) else (value, REG)
            node = nested
            parts = path.split("/")
            for part in parts[:-1]:
                node = node.setdefault(part.encode(), {})
            blob = Blob.from_string(data)
            self.repo.object_store.add_object(blob)
            node[parts[-1].encode()] = (mode, blob.id)
        return self._write(nested)

    def _write(self, nested: dict) -> bytes:
        tree = Tree()
        for name, value in nested.items():
            if isinstance(value, dict):
                tree.add(name, 0o040000, self._write(value))
            else:
                tree.add(name, value[0], value[1])
        self.repo.object_store.add_object(tree)
        return tree.id

    def commit(self, files: Files, parents: list[bytes], message: str) -> bytes:
        commit = Commit()
        commit.tree = self.tree(files)
        commit.parents = parents
        commit.author = commit.committer = b"T <t@example.test>"
        self.when += 60
        commit.author_time = commit.commit_time = self.when
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = message.encode()
        self.repo.object_store.add_object(commit)
        return commit.id

    def build(self, case: Case) -> tuple[bytes, bytes]:
        if case.history == "unrelated":
            return self.commit(case.ours, [], "ours root"), self.commit(case.theirs, [], "theirs root")
        base = self.commit(case.base, [], "base")
        if case.history == "crisscross":
            x = case.extra
            a1_files = {**case.base, **x["a1"]}
            b1_files = {**case.base, **x["b1"]}
            a1 = self.commit(a1_files, [base], "a1")
            b1 = self.commit(b1_files, [base], "b1")
            a2 = self.commit({**a1_files, **x["b1"], **x["a2"]}, [a1, b1], "a2 merges b1")
            b2 = self.commit({**b1_files, **x["a1"], **x["b2"]}, [b1, a1], "b2 merges a1")
            return a2, b2
        return self.commit(case.ours, [base], "ours"), self.commit(case.theirs, [base], "theirs")


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent", "XDG_CONFIG_HOME": "/nonexistent"})
    return env


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    return Builder(tmp_path_factory.mktemp("merge-vs-git") / "repo.git")


def git_merge_tree(repo: Path, ours: str, theirs: str) -> tuple[str, bool, list[str]]:
    result = subprocess.run(["git", "-C", str(repo), "merge-tree", "--write-tree", "--name-only",
                             "--allow-unrelated-histories", ours, theirs], capture_output=True, env=_git_env())
    assert result.returncode in (0, 1), result.stderr.decode()
    output = result.stdout.decode().split("\n")
    paths = []
    for line in output[1:]:
        if not line:
            break
        paths.append(line)
    return output[0], result.returncode == 0, paths


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git CLI")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_merge_matches_git_merge_tree(builder, case):
    ours, theirs = builder.build(case)
    label1, label2 = f"{case.name}-ours", f"{case.name}-theirs"
    builder.repo.refs[f"refs/heads/{label1}".encode()] = ours
    builder.repo.refs[f"refs/heads/{label2}".encode()] = theirs
    git_tree, git_clean, git_conflicts = git_merge_tree(Path(builder.repo.path), label1, label2)

    result = merge_commits(builder.repo.object_store, ours.decode(), theirs.decode(), label1, label2)

    assert result.clean == git_clean, result.messages
    assert result.conflicts == git_conflicts
    assert result.tree == git_tree


def test_generator_covers_the_categories():
    names = {c.name for c in CASES}
    assert len(CASES) >= 160
    for needed in ("clean-different-files", "conflict-same-line", "add-add-different", "delete-modify",
                   "rename-vs-modify", "binary-both-sides", "criss-cross-clean", "no-common-ancestor-same-path"):
        assert needed in names


def test_dry_run_writes_nothing_until_persisted(builder):
    unique = lines(*[f"dry run line {i}" for i in range(12)])
    case = Case("dry-run", {"u.txt": unique}, {"u.txt": edit(unique, {0: "ours"})}, {"u.txt": edit(unique, {11: "t"})})
    ours, theirs = builder.build(case)
    store = builder.repo.object_store
    result = merge_commits(store, ours.decode(), theirs.decode())
    assert result.clean
    assert result.tree.encode() not in store
    result.persist()
    assert result.tree.encode() in store
