"""hooks.paths: user-given relative paths thrown at the rules that keep `.git`, traversal and odd bytes out."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hooks.paths import MAX_COMPONENT_BYTES, MAX_DEPTH, MAX_PATH_BYTES, is_dotgit_alias, path_problem

ACCEPTED = [
    "README.md", ".gitignore", ".gitattributes", ".gitmodules", ".github/workflows/ci.yml", "src/app.py",
    "a/b/c/d.txt", "git", "gitx", ".gitx", "x.git", "foo.git/bar", "..a", "a..b", "a.", "-dash", "~tilde",
    "a b/c d.txt", "notes: 2026.md", "100%#?.md", "日本語/ファイル.txt", "emoji-👍.txt", "zwj\u200dinside",
    "e\u0301.txt", "x" * MAX_COMPONENT_BYTES, "/".join(["d"] * MAX_DEPTH), "git~x", "agit~1", "git~",
]

REFUSED = [
    "", "/", "/etc/passwd", "//server/share", "a//b", "a/", "./a", "a/./b", "..", "../x", "a/../../x", "a/..",
    "...", "a/. /b", " ", ". .", "a\\b", "..\\x", "C:\\x",
    ".git", ".git/config", ".GIT/config", ".Git", "a/.gIt/hooks/pre-commit", ".git.", ".git..", ".git ", ".git. . ",
    "git~1", "GIT~1/config", "git~2", "Git~10/x", "git~1.", ".git:", ".git:stream", ".git::$INDEX_ALLOCATION",
    "git~1::$INDEX_ALLOCATION/x", "a::$DATA", "x::y",
    ".g\u200cit", ".gi\u200dt", "\u200e.git", ".git\u200f", "\u202a.git", ".g\u202eit", "\u206a.git", ".git\ufeff",
    "\uff0egit", ".\uff47it", "．ＧＩＴ", ".G\u200cI\u200dT.", ".git\u00a0", ".git\u2024/x", ".git\uff1astream",
    "a\x00b", "\x00", "a\nb", "a\rb", "tab\tname", "bell\x07", "del\x7f", "c1\x85", "esc\x1b[31m",
    "x" * (MAX_PATH_BYTES + 1), "é" * (MAX_PATH_BYTES // 2 + 1), "y" * (MAX_COMPONENT_BYTES + 1),
    "é" * (MAX_COMPONENT_BYTES // 2 + 1), "/".join(["d"] * (MAX_DEPTH + 1)), "lone\ud800surrogate",
]


@pytest.mark.parametrize("path", ACCEPTED, ids=[repr(p)[:40] for p in ACCEPTED])
def test_ordinary_paths_are_accepted(path):
    assert path_problem(path) is None


@pytest.mark.parametrize("path", REFUSED, ids=[repr(p)[:40] for p in REFUSED])
def test_hostile_paths_are_refused(path):
    assert path_problem(path) is not None


@pytest.mark.parametrize("path", [".git", "a/.git", ".git/x", "a/GIT~1/b"])
def test_the_reason_names_git(path):
    assert ".git" in path_problem(path)


def test_dotgit_aliases():
    assert is_dotgit_alias(".GiT. ")
    assert is_dotgit_alias("git~1:$DATA")
    assert not is_dotgit_alias(".github")
    assert not is_dotgit_alias("git")


def test_non_strings_are_refused():
    assert path_problem(None) is not None  # type: ignore[arg-type]
    assert path_problem(b".git") is not None  # type: ignore[arg-type]


_TRICKY = st.lists(st.sampled_from(list("aAgGiItT.-_~ :\\/\x00\x1f\x7f\u200c\uff0e\u00e9") + ["git", ".git", "~1"]),
                   max_size=20).map("".join)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(_TRICKY, st.text(max_size=60), st.from_regex(r"[a-z.]{1,260}(/[a-z.~]{1,5}){0,70}", fullmatch=True)))
def test_the_fast_path_accepts_only_what_every_rule_accepts(path):
    """hooks.paths decides most paths with one regular expression; a path it lets through must be one the rules
    one by one let through too (the reverse need not hold: 'a b' is checked the slow way and accepted)."""
    from hooks.paths import _PLAIN_PATH, _problem

    if len(path) <= MAX_PATH_BYTES and _PLAIN_PATH.fullmatch(path):
        assert _problem(path) is None
    assert (path_problem(path) is None) == (_problem(path) is None)
