"""git's own checks (what `receive.fsckObjects` runs on a push) of objects given whole: index-pack
`--fsck-objects` reads them from a scratch pack, so nothing is written into the repository's objects. The scratch
pack is in the repository's directory, hidden from extension agents as all the server's data is (in /tmp, another
organization's agent read the commits and trees being checked)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable, Mapping

from dulwich.pack import write_pack_objects

from .git_env import run_git

SCRATCH_PREFIX = "driftstone-fsck-"  # in the repository's directory; what a killed check left, housekeeping removes
# fsck findings old git and other implementations wrote into histories that cannot be rewritten, which git and this
# server read fine (Gitaly ignores them too): a push, a pull or a rebase bringing them is taken; every other finding
# refuses it. Not missingSpaceBeforeDate, which Gitaly ignores too: dulwich reads no date there (merges failed)
COSMETIC_FSCK_IDS = ("badTimezone", "zeroPaddedFilemode")


def cosmetic_fsck_ignored(scope: str) -> list[str]:
    """git's `-c` options ignoring them where `scope` (receive or fetch) checks objects."""
    return [arg for name in COSMETIC_FSCK_IDS for arg in ("-c", f"{scope}.fsck.{name}=ignore")]


def objects_problem(repo_path: Path, objects: Iterable, object_format, env: Mapping[str, str] | None = None
                    ) -> str | None:
    """git's first complaint about `objects` (dulwich objects), or None. The blobs a tree names `.gitmodules`
    are read from the repository when they are not among them."""
    with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=repo_path) as scratch:
        pack = Path(scratch) / "new.pack"
        with open(pack, "wb") as out:
            write_pack_objects(out.write, [(obj, None) for obj in objects], object_format)
        # --fsck-objects, not --strict: the links are the repository's own (3 ms against 11); git 2.39 takes no
        # severities with it, so hasDot & co. stay warnings: the paths the server writes are checked before
        problem = _index_pack_problem(repo_path, pack, ["--fsck-objects"], env)
        if problem is not None and _finding(problem) in COSMETIC_FSCK_IDS:
            # only --strict takes severities (and checks links too, in the repository or the quarantine): asked only
            # then
            ignored = ",".join(f"{name}=ignore" for name in COSMETIC_FSCK_IDS)
            problem = _index_pack_problem(repo_path, pack, [f"--strict={ignored}"], env)
    return problem


def _finding(problem: str) -> str | None:
    """The id of git's fsck message ("object <id>: badTimezone: invalid author/committer line ...")."""
    parts = problem.split(": ")
    return parts[1] if len(parts) > 2 else None


def _index_pack_problem(repo_path: Path, pack: Path, checks: list[str], env: Mapping[str, str] | None
                        ) -> str | None:
    index = pack.with_suffix(".idx")
    index.unlink(missing_ok=True)
    checked = run_git(repo_path, ["index-pack", *checks, "-o", str(index), str(pack)], env=env, check=False)
    if checked.returncode == 0:
        return None
    errors = [line for line in checked.stderr.decode("utf-8", "replace").splitlines() if line.startswith("error: ")]
    return (errors[0] if errors else "git fsck refused the new objects").removeprefix("error: ")
