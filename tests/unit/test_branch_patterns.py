"""Branch protection patterns as GitHub documents them (File.fnmatch with FNM_PATHNAME)."""
from __future__ import annotations

import pytest

from hooks.branch_patterns import branch_matches

CASES = [
    ("main", "main", True),
    ("main", "main2", False),
    ("release/*", "release/v1", True),
    ("release/*", "release/v1/hotfix", False),  # fnmatch's `*` crossed '/' and over-protected it
    ("release/**", "release/v1/hotfix", True),
    ("release/**/*", "release/v1/hotfix", True),
    ("**/main", "main", True),  # `**/` matches no directory too: the rule left a top-level main unprotected
    ("**/main", "team/a/main", True),
    ("**/main", "xmain", False),
    ("release/**/fix", "release/fix", True),
    ("*", "feature/x", False),
    ("**", "feature/x", True),
    ("*-stable", "2.1-stable", True),
    ("v?.?", "v1.2", True),
    ("v?.?", "v1/2", False),
    ("feature.x", "featureXx", False),  # '.' is literal
    ("[abc]*", "beta", True),
    ("[abc]*", "delta", False),
    ("[!abc]*", "delta", True),
    ("[a-c]x", "bx", True),
    ("a[/]b", "a/b", False),  # a class never matches '/'
    ("[]x]y", "]y", True),
    ("[z-a]", "[z-a]", True),  # no glob could mean it: the name itself
    ("[unclosed", "[unclosed", True),
    ("(a|b)+", "a", False),  # regex syntax is literal
]


@pytest.mark.parametrize("pattern, branch, expected", CASES)
def test_patterns_match_as_githubs(pattern, branch, expected):
    assert branch_matches(pattern, branch) is expected
