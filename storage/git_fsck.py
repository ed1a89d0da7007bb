"""git's own object checks (what `receive.fsckObjects` runs on a push) for objects the server wrote itself."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable, Mapping

from dulwich.pack import write_pack_objects

from .git_env import run_git
from .git_objects import open_repo


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
        with open_repo(repo) as git_repo, open(pack, "wb") as out:
            objects = [git_repo.object_store[oid] for oid in listed.split()]
            write_pack_objects(out.write, [(obj, None) for obj in objects], git_repo.object_store.object_format)
        # --fsck-objects, not --strict: the links are the repository's own (3 ms against 11); git 2.39 takes no
        # severities with it, so hasDot & co. stay warnings: the paths the server writes are checked before
        checked = run_git(repo, ["index-pack", "--fsck-objects", "-o", str(pack.with_suffix(".idx")), str(pack)],
                          env=env, check=False)
    if checked.returncode == 0:
        return None
    errors = [line for line in checked.stderr.decode("utf-8", "replace").splitlines() if line.startswith("error: ")]
    return (errors[0] if errors else "git fsck refused the new objects").removeprefix("error: ")
