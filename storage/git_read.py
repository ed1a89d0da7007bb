"""Read-only questions to a repository answered by C git (works inside a push quarantine via `env`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from .git_env import run_git


def is_ancestor(repo: Path, ancestor: str, descendant: str, env: Mapping[str, str] | None = None) -> bool:
    result = run_git(repo, ["merge-base", "--is-ancestor", "--end-of-options", ancestor, descendant],
                     env=env, check=False)
    if result.returncode not in (0, 1):
        raise RuntimeError("git merge-base failed")
    return result.returncode == 0


def oversized_blobs(repo: Path, tips: Iterable[str], limit: int, env: Mapping[str, str] | None = None) -> list[str]:
    """Blobs reachable from `tips` but from no existing ref whose inflated size exceeds `limit` bytes."""
    tips = list(tips)
    if not tips:
        return []
    result = run_git(
        repo,
        ["rev-list", "--objects", "--no-object-names", f"--filter=blob:limit={limit + 1}",
         "--filter-print-omitted", *tips, "--not", "--all"],
        env=env,
    )
    return [line[1:] for line in result.stdout.decode().splitlines() if line.startswith("~")]


def branch_heads(repo: Path) -> dict[str, str]:
    result = run_git(repo, ["for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/"])
    heads = {}
    for line in result.stdout.decode("utf-8", "surrogateescape").splitlines():
        sha, _, ref = line.partition(" ")
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


_LOG_FORMAT = "%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B%x00%x1e"


def _parse_log(output: bytes) -> list[CommitInfo]:
    commits = []
    for record in output.decode("utf-8", "replace").split("\x00\x1e"):
        record = record.lstrip("\n")
        if not record:
            continue
        fields = record.split("\x00")
        if len(fields) < 9:
            continue
        sha, parents, an, ae, ad, cn, ce, cd, message = fields[:9]
        commits.append(CommitInfo(sha, tuple(parents.split()), an, ae, ad, cn, ce, cd, message))
    return commits


def log(repo: Path, tip: str, skip: int, limit: int) -> list[CommitInfo]:
    """Commits reachable from `tip` (a full sha), newest first."""
    result = run_git(repo, ["log", f"--format={_LOG_FORMAT}", f"--skip={skip}", f"--max-count={limit}",
                            "--end-of-options", tip, "--"])
    return _parse_log(result.stdout)


def commit_info(repo: Path, sha: str) -> CommitInfo | None:
    result = run_git(repo, ["log", f"--format={_LOG_FORMAT}", "--no-walk", "--end-of-options", f"{sha}^{{commit}}",
                            "--"], check=False)
    commits = _parse_log(result.stdout) if result.returncode == 0 else []
    return commits[0] if commits else None
