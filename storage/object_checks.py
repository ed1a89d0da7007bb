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
        checked = run_git(repo_path, ["index-pack", "--fsck-objects", "-o", str(pack.with_suffix(".idx")),
                                      str(pack)], env=env, check=False)
    if checked.returncode == 0:
        return None
    errors = [line for line in checked.stderr.decode("utf-8", "replace").splitlines() if line.startswith("error: ")]
    return (errors[0] if errors else "git fsck refused the new objects").removeprefix("error: ")
