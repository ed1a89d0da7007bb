"""What a lock pattern covers, and when two patterns may cover one path."""
import pytest

from hooks.locks import covers, overlap


@pytest.mark.parametrize("pattern, path", [
    ("src/auth", "src/auth/session/token.ts"),
    ("src/auth/*", "src/auth/session/token.ts"),
    ("src/a?th", "src/auth/x.ts"),  # a wildcard naming a directory covers what is in it, like a literal one
    ("s*c/auth", "src/auth/x.ts"),
    ("src/[a]uth", "src/auth/x.ts"),
    ("src/*/auth", "src/lib/auth/y.ts"),
    ("*.ts", "src/app.ts"),
    ("README.md", "README.md"),
])
def test_covers(pattern, path):
    assert covers(pattern, path)


@pytest.mark.parametrize("pattern, path", [
    ("src/auth", "src/authz/x.ts"), ("src/a?th", "src/authz/x.ts"), ("lib", "src/lib/x.ts"), ("src/*.ts", "src/x.js"),
])
def test_does_not_cover(pattern, path):
    assert not covers(pattern, path)


@pytest.mark.parametrize("first, second", [
    ("src/auth", "src/au*/x.ts"),  # both cover src/auth/x.ts
    ("src/auth", "*/auth/x.ts"),
    ("src", "*c/auth"),
    ("src/auth", "src"),
    ("src/*", "src/auth/x.ts"),
    ("*", "anything"),
    ("src/a*", "src/*b"),
])
def test_overlap_both_ways(first, second):
    assert overlap(first, second) and overlap(second, first)


@pytest.mark.parametrize("first, second", [
    ("src/auth", "src/authz"), ("lib", "src/*"), ("docs/*.md", "src/*.ts"), ("a/b", "a/c"),
])
def test_no_overlap(first, second):
    assert not overlap(first, second) and not overlap(second, first)
