"""Read-only questions to a repository answered by C git (works inside a push quarantine via `env`)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping

from .git_env import GitFailed, run_git
from .git_prune import EXCLUDE_PINS


def is_ancestor(repo: Path, ancestor: str, descendant: str, env: Mapping[str, str] | None = None) -> bool:
    result = run_git(repo, ["merge-base", "--is-ancestor", "--end-of-options", ancestor, descendant],
                     env=env, check=False)
    if result.returncode not in (0, 1):
        raise RuntimeError("git merge-base failed")
    return result.returncode == 0


def merge_base(repo: Path, one: str, two: str, env: Mapping[str, str] | None = None) -> str | None:
    """The best common ancestor of two commits, None when they share no history."""
    result = run_git(repo, ["merge-base", "--end-of-options", one, two], env=env, check=False)
    if result.returncode not in (0, 1):  # 1: no common ancestor
        raise GitFailed(result.returncode, result.args, result.stdout, result.stderr)
    return result.stdout.decode().strip() or None


REF_RACE_TRIES = 3


def oversized_blobs(repo: Path, tips: Iterable[str], limit: int, env: Mapping[str, str] | None = None) -> list[str]:
    """Blobs reachable from `tips` but from no existing ref whose inflated size exceeds `limit` bytes."""
    tips = list(tips)
    if not tips:
        return []
    listed = walk_past_refs(repo, ["--objects", "--no-object-names", f"--filter=blob:limit={limit + 1}",
                                   "--filter-print-omitted", *tips], env=env)
    return [line[1:] for line in listed.decode().splitlines() if line.startswith("~")]


def walk_past_refs(repo: Path, args: list[str], env: Mapping[str, str] | None = None) -> bytes:
    """`git rev-list ARGS --not <every ref but the pins>`'s output."""
    args = ["rev-list", *args, "--not", EXCLUDE_PINS, "--all"]
    for _ in range(REF_RACE_TRIES):
        result = run_git(repo, args, env=env, check=False)
        if result.returncode == 0:
            return result.stdout
        if b"bad object refs/" not in result.stderr:
            break
        # `--all` read a ref another writer was moving or deleting at that moment (a reset racing a delete
        # answered 500 once in ~8 rounds): the refs settle, the walk is asked again
    raise GitFailed(result.returncode, result.args, result.stdout, result.stderr)


def incomplete(repo: Path, tip: str) -> bool:
    """Whether something reachable from `tip` but from no ref is missing (or `tip` itself)."""
    result = run_git(repo, ["rev-list", "--objects", "--no-object-names", "--missing=print", tip, "--not",
                            EXCLUDE_PINS, "--all"], check=False)
    return result.returncode != 0 or any(line.startswith(b"?") for line in result.stdout.splitlines())


def branch_heads(repo: Path) -> dict[str, str]:
    result = run_git(repo, ["for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/"])
    heads = {}
    for line in result.stdout.decode("utf-8", "surrogateescape").split("\n"):  # not splitlines: U+2028 may be in a name
        sha, _, ref = line.partition(" ")
        if ref:
            heads[ref[len("refs/heads/"):]] = sha
    return heads


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    authored_at: str
    committer_name: str
    committer_email: str
    committed_at: str
    message: str


_LOG_FORMAT = "%H%x00%P%x00%an%x00%ae%x00%aI%x00%at%x00%cn%x00%ce%x00%cI%x00%ct%x00%B%x00%x1e"
_ISO_OFFSET = re.compile(r".*(?:[+-](?:0\d|1[0-4]):[0-5]\d|Z)")


def _parse_log(output: bytes) -> list[CommitInfo]:
    commits = []
    for record in output.decode("utf-8", "replace").split("\x00\x1e"):
        record = record.lstrip("\n")
        if not record:
            continue
        fields = record.split("\x00")
        if len(fields) < 11:
            continue
        sha, parents, an, ae, ad, at, cn, ce, cd, ct, message = fields[:11]
        commits.append(CommitInfo(sha, tuple(parents.split()), an, ae, _iso(ad, at), cn, ce, _iso(cd, ct), message))
    return commits


def _iso(written: str, epoch: str) -> str:
    """git's strict ISO 8601 date, or the moment in UTC where the commit's time zone is none there is (+25000, as
    old histories hold: git writes '+250:00', which no ISO parser reads)."""
    if _ISO_OFFSET.fullmatch(written) or not epoch.isdigit():
        return written
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(repo: Path, tip: str, skip: int, limit: int) -> list[CommitInfo]:
    """Commits reachable from `tip` (a full sha), newest first."""
    result = run_git(repo, ["log", f"--format={_LOG_FORMAT}", f"--skip={skip}", f"--max-count={limit}",
                            "--end-of-options", tip, "--"])
    return _parse_log(result.stdout)


class AmbiguousSha(LookupError):
    """A short sha that names more than one object."""


def commit_info(repo: Path, sha: str) -> CommitInfo | None:
    result = run_git(repo, ["log", f"--format={_LOG_FORMAT}", "--no-walk", "--end-of-options", f"{sha}^{{commit}}",
                            "--"], check=False)
    if result.returncode != 0 and b"is ambiguous" in result.stderr:
        raise AmbiguousSha(sha)
    commits = _parse_log(result.stdout) if result.returncode == 0 else []
    return commits[0] if commits else None


def resolve_ref(repo: Path, ref: str, env: Mapping[str, str] | None = None) -> str | None:
    result = run_git(repo, ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
                     env=env, check=False)
    return result.stdout.decode().strip() or None


EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def changed_paths(repo: Path, base: str | None, head: str, env: Mapping[str, str] | None = None,
                  directories: bool = False) -> list[str]:
    """Paths that differ between `base` (None: nothing) and `head`, renames split into delete + add; with
    `directories`, also the directories on the way (an empty one has no other path to show its name)."""
    result = run_git(repo, ["diff-tree", "-r", *(["-t"] if directories else []), "-z", "--no-renames",
                            "--name-only", "--end-of-options", base or EMPTY_TREE, head], env=env)
    return [p for p in result.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def peeled_type(repo: Path, sha: str, env: Mapping[str, str] | None = None) -> str | None:
    """The type of what `sha` names once tags are peeled (commit, tree, blob), None if git cannot tell."""
    result = run_git(repo, ["cat-file", "-t", "--end-of-options", f"{sha}^{{}}"], env=env, check=False)
    return result.stdout.decode().strip() if result.returncode == 0 else None


def is_full_sha(value: str) -> bool:
    return len(value) in (40, 64) and all(c in "0123456789abcdef" for c in value)


def files_containing(repo: Path, commit: str, fragments: list[str], max_size: int) -> dict[str, str]:
    """{path: blob sha} of the text files at `commit`, up to `max_size` bytes, holding any of the fixed strings
    `fragments` (ignoring case)."""
    if not is_full_sha(commit):  # git 2.39's grep takes no --end-of-options: only a sha may stand there
        raise ValueError("grep needs a full commit sha")
    patterns = [arg for fragment in fragments for arg in ("-e", fragment)]
    listed = run_git(repo, ["grep", "-l", "-I", "-F", "-i", "--null", "--full-name", *patterns, commit, "--"],
                     check=False)
    prefix = f"{commit}:".encode()
    matched = {raw[len(prefix):] for raw in listed.stdout.split(b"\0") if raw}
    if not matched:
        return {}
    # the whole tree once, not the paths as arguments: they would be pathspecs (':!x' is magic to git) and
    # thousands of them overflow the command line
    entries = run_git(repo, ["ls-tree", "-r", "-z", "-l", "--full-tree", commit]).stdout
    found = {}
    for entry in entries.split(b"\0"):
        info, _, name = entry.partition(b"\t")
        fields = info.split()
        if name in matched and len(fields) == 4 and fields[1] == b"blob" and fields[3].isdigit() \
                and int(fields[3]) <= max_size:
            found[name.decode("utf-8", "surrogateescape")] = fields[2].decode()
    return found


def commits_between(repo: Path, base: str | None, head: str, env: Mapping[str, str] | None = None) -> list[str]:
    """Commits reachable from `head` but not from `base`, oldest first."""
    args = ["rev-list", "--reverse", "--end-of-options", head]
    if base:
        args.append(f"^{base}")
    return run_git(repo, [*args, "--"], env=env).stdout.decode().split()


def newest_commits(repo: Path, tip: str, exclude: str | None = None, limit: int = 10_000) -> list[str]:
    """Up to `limit` commits reachable from `tip` (and not from `exclude`), newest first."""
    args = ["rev-list", f"--max-count={limit}", "--end-of-options", tip]
    if exclude:
        args.append(f"^{exclude}")
    return run_git(repo, [*args, "--"]).stdout.decode().split()


def object_sizes(repo: Path, shas: Iterable[str], env: Mapping[str, str] | None = None) -> dict[str, int]:
    """Inflated sizes in bytes of the given objects (one `git cat-file --batch-check`); missing ones are left out."""
    wanted = [sha for sha in dict.fromkeys(shas) if is_full_sha(sha)]
    if not wanted:
        return {}
    result = run_git(repo, ["cat-file", "--batch-check=%(objectname) %(objectsize)"],
                     input=("\n".join(wanted) + "\n").encode(), env=env)
    sizes = {}
    for line in result.stdout.decode().splitlines():
        sha, _, size = line.partition(" ")
        if size.isdigit():
            sizes[sha] = int(size)
    return sizes


def ahead_behind(repo: Path, base: str, head: str, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(commits on `head` not on `base`, commits on `base` not on `head`), as `git rev-list --left-right --count`."""
    result = run_git(repo, ["rev-list", "--left-right", "--count", "--end-of-options", f"{head}...{base}", "--"],
                     env=env)
    ahead, behind = result.stdout.decode().split()
    return int(ahead), int(behind)


def tree_bytes(repo: Path, commit: str) -> int:
    """What the files of `commit` take written out: the sum of its blobs' sizes (submodules count nothing)."""
    result = run_git(repo, ["ls-tree", "-r", "-l", "-z", "--full-tree", "--end-of-options", commit])
    total = 0
    for entry in result.stdout.split(b"\0"):
        fields = entry.split(b"\t", 1)[0].split()
        if len(fields) == 4 and fields[1] == b"blob":
            total += int(fields[3])
    return total


def merge_conflicts(repo: Path, one: str, two: str, env: Mapping[str, str] | None = None) -> list[str]:
    """The paths `git merge-tree --write-tree` leaves in conflict merging two commits ([] when it merges cleanly);
    the tree it writes lands in env's object directory (a quarantine) or the repository."""
    result = run_git(repo, ["merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", one, two],
                     env=env, check=False)
    if result.returncode not in (0, 1):
        raise GitFailed(result.returncode, result.args, result.stdout, result.stderr)
    fields = [field for field in result.stdout.split(b"\0") if field]
    return sorted({path.decode("utf-8", "surrogateescape") for path in fields[1:]}) if result.returncode else []
