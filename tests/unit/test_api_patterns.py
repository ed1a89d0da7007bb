"""The patterns /openapi.json documents for names are the rules the server applies, no looser and no stricter."""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from control.api.driftstone.common import BRANCH_NAME_PATTERN, REPO_NAME_PATTERN
from control.services.naming import checked_slug
from control.services.repos import repo_slug
from hooks.refs import branch_name_problem
from storage.errors import Invalid

TRICKY = list("ab.-_/@{}lock~^:?*[\\ \t\x7f\x00é\u212aİ") + [".git", ".lock", "..", "@{", "//"]
names = st.lists(st.sampled_from(TRICKY), max_size=10).map("".join) | st.text(max_size=12)


@settings(max_examples=800, deadline=None, database=None)
@given(names)
def test_branch_pattern_is_the_server_rule(name):
    documented = re.fullmatch(BRANCH_NAME_PATTERN, name) is not None
    assert documented == (branch_name_problem(name) is None), name


@settings(max_examples=800, deadline=None, database=None)
@given(names)
def test_repo_name_pattern_is_exactly_the_names_with_a_slug(name):
    documented = re.search(REPO_NAME_PATTERN, name) is not None
    try:
        checked_slug(repo_slug(name), "repository")
        valid = True
    except Invalid:
        valid = False
    assert documented == valid, (name, repo_slug(name))


def test_repo_slugs():
    assert repo_slug("Hello World") == "hello-world"
    assert repo_slug("My Repo.git") == "my-repo"
    assert repo_slug("a..b") == "a.b"
    assert repo_slug("x/../../y") == "x-y" and repo_slug("a_-_b") == "a-b" and repo_slug("a__b") == "a__b"
    assert repo_slug("--x.lock_") == "x"
    assert repo_slug("v1.2") == "v1.2"
    assert repo_slug("\u212a") == ""  # the Kelvin sign is not a 'k'


def test_branch_pattern_edge_names():
    for name in ("HEAD", "a/" * 127 + "bc", "a/HEAD/b", "HEADS", "a/" * 127 + "b"):  # 256 and 255 characters
        documented = re.fullmatch(BRANCH_NAME_PATTERN, name) is not None
        assert documented == (branch_name_problem(name) is None), name
