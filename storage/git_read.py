"""Read-only questions to a repository answered by C git (works inside a push quarantine via `env`)."""
from __future__ import annotations

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
