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


def test_files_containing_takes_names_as_names_and_any_number_of_them(tmp_path):
    """A file named ':!x.txt' made every search holding its word a 500 (git read it as pathspec magic), and
    ':notes.txt' was silently left out; 25,000 long paths overflowed the command line (also a 500)."""
    repo = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    names = [":!x.txt", ":notes.txt", ":(exclude)y.txt", "plain.txt", "a dir/with space.txt"]
    names += [f"deep/{'d' * 200}/{i:05d}.txt" for i in range(12_000)]  # ~2.5 MB of paths
    content = b"a needle here\n"
    stream = [b"blob\nmark :1\ndata %d\n%s\n" % (len(content), content),
              b"blob\nmark :2\ndata 4\nhay\n\n",
              b"commit refs/heads/main\ncommitter A <a@x> 1700000000 +0000\ndata 2\nc\n"]
    stream += [b'M 100644 :1 "%s"\n' % name.encode() for name in names]
    stream += [b"M 100644 :2 hay.txt\n\n"]
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=b"".join(stream), check=True)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "main"], capture_output=True,
                          check=True).stdout.decode().strip()
    found = git_read.files_containing(repo, head, ["NEEDLE"], max_size=1024)
    assert set(found) == set(names)
    assert git_read.files_containing(repo, head, ["needle"], max_size=4) == {}  # over the size limit


def test_merge_base_says_none_for_unrelated_histories_and_what_git_said_for_a_bad_object(tmp_path):
    repo = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    stream = b"".join(b"commit refs/heads/%s\ncommitter A <a@x> 1700000000 +0000\ndata 2\n%s\n\n" % (name, name[:1])
                      for name in (b"one", b"two"))
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=stream, check=True)
    one, two = (subprocess.run(["git", "-C", str(repo), "rev-parse", name], capture_output=True,
                               check=True).stdout.decode().strip() for name in ("one", "two"))
    assert git_read.merge_base(repo, one, one) == one
    assert git_read.merge_base(repo, one, two) is None
    with pytest.raises(git_read.GitFailed, match="Not a valid commit name"):
        git_read.merge_base(repo, one, "1" * 40)


def test_newest_commits_lists_at_most_its_limit_newest_first_and_leaves_out_what_is_excluded(tmp_path):
    """The landed-stacks effect lists what a push brought to a branch: a rewrite onto a long unrelated history
    listed all of it (500,000 commits: 4.7 s and 96 MB in the worker)."""
    repo = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    stream = b"".join(b"commit refs/heads/main\ncommitter A <a@x> %d +0000\ndata %d\nc%d\n\n"
                      % (1700000000 + i, len(b"c%d\n" % i), i) for i in range(50))
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=stream, check=True)
    history = subprocess.run(["git", "-C", str(repo), "rev-list", "main"], capture_output=True,
                             check=True).stdout.decode().split()
    assert git_read.newest_commits(repo, history[0], limit=7) == history[:7]
    assert git_read.newest_commits(repo, history[0], exclude=history[5], limit=100) == history[:5]
    assert git_read.newest_commits(repo, history[0], exclude=history[0]) == []


def test_a_walk_past_the_refs_that_meets_a_ref_being_deleted_asks_again(tmp_path, monkeypatch):
    """`--all` reading a ref another writer deletes at that moment fails with "bad object refs/..." (a reset racing
    a delete answered 500 in the server's own object checks). The other writer is played here: a ref naming no
    object is there for git's first walk and gone before the second; both walks are real gits."""
    from storage import git_fsck

    repo = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    stream = b"commit refs/heads/main\ncommitter A <a@x> 1700000000 +0000\ndata 2\nc\n\n"
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=stream, check=True)
    tip = subprocess.run(["git", "-C", str(repo), "rev-parse", "main"], capture_output=True,
                         check=True).stdout.decode().strip()
    vanishing = repo / "refs" / "heads" / "vanishing"
    vanishing.write_text("1" * 40 + "\n")
    real, calls = git_read.run_git, []

    def deleted_after_the_first_walk(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(result.returncode)
        vanishing.unlink(missing_ok=True)
        return result

    monkeypatch.setattr(git_read, "run_git", deleted_after_the_first_walk)
    assert git_fsck.fsck_problem(repo, [tip]) is None
    assert calls[0] != 0 and calls[-1] == 0
