"""git's own object checks (what `receive.fsckObjects` runs on a push) for objects the server wrote itself."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable, Mapping

from .git_env import run_git
from .repo_store import REPO_CONFIG

_SEVERITIES = ",".join(f"{key.rsplit('.', 1)[1]}={value}" for key, value in REPO_CONFIG.items()
                       if key.startswith("receive.fsck."))


def fsck_problem(repo: Path, tips: Iterable[str], env: Mapping[str, str] | None = None) -> str | None:
    """git's first complaint about the commits and trees reachable from `tips` but from no ref, and about the
    `.gitmodules` blobs those trees name (git reads them from the repository); None when it has none."""
    tips = list(tips)
    if not tips:
        return None
    listed = run_git(repo, ["rev-list", "--objects", "--no-object-names", "--filter=blob:none", *tips, "--not",
                            "--all"], env=env).stdout
    if not listed.strip():
        return None
    with tempfile.TemporaryDirectory(prefix="driftstone-fsck-") as scratch:
        pack = Path(scratch) / "new.pack"
        pack.write_bytes(run_git(repo, ["pack-objects", "--stdout", "-q"], input=listed, env=env).stdout)
        checked = run_git(repo, ["index-pack", f"--strict={_SEVERITIES}", "-o", str(pack.with_suffix(".idx")),
                                 str(pack)], env=env, check=False)
    if checked.returncode == 0:
        return None
    errors = [line for line in checked.stderr.decode("utf-8", "replace").splitlines() if line.startswith("error: ")]
    return (errors[0] if errors else "git fsck refused the new objects").removeprefix("error: ")
