"""Repositories whose branch rows may be behind their refs, marked by a file in the repository's directory: the ask
for their reconcile outlives a queue that loses its jobs (Redis restarted without its data, a failover), and the
database, which was away when the rows could not be written, is not where it can be kept."""
from __future__ import annotations

from pathlib import Path

MARK = "driftstone-reconcile-asked"


def mark(repo_path: Path) -> None:
    (repo_path / MARK).touch()


def mark_time(repo_path: Path) -> int | None:
    try:
        return (repo_path / MARK).stat().st_mtime_ns
    except FileNotFoundError:
        return None


def unmark_if_unchanged(repo_path: Path, seen: int | None) -> None:
    """Remove the mark a reconcile found before it read the refs; one renewed since asks for another."""
    if seen is not None and mark_time(repo_path) == seen:
        (repo_path / MARK).unlink(missing_ok=True)


def marked_repositories(repos_root: Path) -> list[str]:
    """The ids of the marked repositories under a repository store's root (`<fan-out>/<id>.git`)."""
    return sorted(mark_path.parent.name[:-len(".git")] for mark_path in repos_root.glob(f"*/*.git/{MARK}"))
