"""The patterns the contents API documents are the rules its server applies (paths: hooks.paths.path_problem;
content: base64 as the server decodes it), apart from the documented byte-versus-character length limits."""
from __future__ import annotations

import base64
import binascii
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from control.api.driftstone.contents import BASE64_PATTERN, PATH_PATTERN
from hooks.paths import path_problem

TRICKY = ["a", "b", "/", ".", " ", ":", "::", "~", "1", "9", "\\", "\0", "\t", "\x7f", "\x85", "é", "..", ".git",
          "git", "GIT", "Git", "git~1", "\u200c", "\u200d", "\u202e", "\ufeff", "\uff0e", "\uff47", "\u2170",
          "\U0001d420", "\u2460", "\u00b2", "\u0663", "\uff5e", ":$DATA", "x" * 70, "\u00a0", "\u2024", "\u2026",
          "\u3000", "\uff1a", "\u2a74"]
paths = (st.lists(st.sampled_from(TRICKY), min_size=1, max_size=12).map("".join)
         | st.text(max_size=40) | st.text(alphabet="ab/. :~\\", max_size=30))


def documented(path: str) -> bool:
    return len(path) <= 1024 and re.search(PATH_PATTERN, path) is not None


def within_byte_limits_iff_char_limits(path: str) -> bool:
    """Where counting bytes and counting characters agree about the 1024 / 255 limits."""
    def fits(text: str, limit: int) -> bool:
        return len(text) <= limit
    return fits(path, 1024) == fits(path.encode(), 1024) and all(
        fits(part, 255) == fits(part.encode(), 255) for part in path.split("/"))


@settings(max_examples=3000, deadline=None, database=None)
@given(paths)
def test_path_pattern_is_the_server_rule(path):
    if within_byte_limits_iff_char_limits(path):
        assert documented(path) == (path_problem(path) is None), (path, path_problem(path))


def test_path_pattern_examples():
    for good in ["a", "src/app.py", "a b/c.d", "dir/.gitignore", "x.git", ".github/workflows/ci.yml",
                 "git~x", ".gitx", "a/..b", "é/ü", "x" * 255, "/".join(["d"] * 64), "git~", ".g.it"]:
        assert documented(good) and path_problem(good) is None, good
    for bad in [".git", "a/.GIT/b", ".git.", ".git ", ".git::$DATA", "git~1", "GIT~10/x", "\u200c.git",
                "\uff0e\uff47\uff49\uff54", ".\U0001d420it", "git~\u2460", "git\uff5e1", "../a", "a/./b", "/a",
                "a/", "a//b", "a\\b", "a\0b", "a::b", "x" * 256, "/".join(["d"] * 65), "", " ", ". .", "a/ "]:
        assert not documented(bad) and path_problem(bad) is not None, bad


@settings(max_examples=2000, deadline=None, database=None)
@given(st.text(alphabet="AZaz09+/=-_ \n", max_size=12)
       | st.binary(max_size=20).map(lambda data: base64.b64encode(data).decode()))
def test_what_the_base64_pattern_accepts_decodes(text):
    """The server checks the pattern itself before decoding; whatever passes must decode."""
    if re.search(BASE64_PATTERN, text):
        try:
            base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise AssertionError(text) from None
    if re.fullmatch(r"[A-Za-z0-9+/]*", text) and len(text) % 4 == 0:
        assert re.search(BASE64_PATTERN, text), text
