"""storage.git_read against repositories made by git itself."""
from __future__ import annotations

import subprocess

import pytest

from storage import git_read


def test_a_short_sha_naming_several_commits_is_ambiguous_not_missing(tmp_path):
    """It read as "commit not found" (404) for a commit that exists, with a sibling sharing its prefix."""
    repo = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    stream = b"".join(b"commit refs/heads/main\ncommitter A <a@x> 1700000000 +0000\ndata %d\nc%d\n\n"
                      % (len(b"c%d\n" % i), i) for i in range(2000))
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=stream, check=True)
    shas = subprocess.run(["git", "-C", str(repo), "rev-list", "--all"], capture_output=True,
                          check=True).stdout.decode().split()
    by_prefix: dict[str, list[str]] = {}
    for sha in shas:
        by_prefix.setdefault(sha[:4], []).append(sha)
    shared = next(prefix for prefix, named in by_prefix.items() if len(named) > 1)
    with pytest.raises(git_read.AmbiguousSha):
        git_read.commit_info(repo, shared)
    assert git_read.commit_info(repo, by_prefix[shared][0]).sha == by_prefix[shared][0]
    assert git_read.commit_info(repo, "0" * 40) is None
