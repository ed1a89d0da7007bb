"""The one place that builds environments and argument lists for git subprocesses."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

GIT = "git"
QUARANTINE_PREFIX = "tmp_objdir-incoming-"  # receive-pack's quarantine for a push's objects, under objects/
_PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")


# What git may allocate in one piece while taking a push in (GIT_ALLOC_LIMIT): its object tables take at most
# ~64 bytes an object (index-pack's object_entry; ALLOC_GROW'n delta lists ~60), counted twice, plus room for
# the command list and the like
ALLOCATION_PER_OBJECT = 128
ALLOCATION_SLACK = 64 * 1024 * 1024
ALLOCATION_REFUSED = "attempting to allocate"  # how git dies when an allocation passes GIT_ALLOC_LIMIT


def allocation_limit(objects: int, max_object_size: int) -> int:
    """The largest single allocation a push of `objects` objects needs with objects of at most `max_object_size`
    bytes: git rebuilds a delta at the size the delta declares, so without a limit a 175-byte pack whose delta
    declared 256 MiB made git allocate and fill 256 MiB (and 1 GiB, 16 s, for a 332-byte one)."""
    return max(max_object_size, objects * ALLOCATION_PER_OBJECT) + ALLOCATION_SLACK


def clean_git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {name: os.environ[name] for name in _PASSED_THROUGH if name in os.environ}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "HOME": "",
            "XDG_CONFIG_HOME": "",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_PROTOCOL_FROM_USER": "0",
            "GIT_NO_REPLACE_OBJECTS": "1",
        }
    )
    if extra:
        env.update(extra)
    return env


def run_git(
    repo_path: Path,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    timeout: float | None = 300,
) -> subprocess.CompletedProcess:
    """Run `git -C repo args...` with the clean environment; user values must follow `--end-of-options`."""
    result = subprocess.run(
        [GIT, "-C", str(repo_path), *args],
        env=clean_git_env(env),
        input=input,
        capture_output=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise GitFailed(result.returncode, result.args, result.stdout, result.stderr)
    return result


class GitFailed(subprocess.CalledProcessError):
    """A failed git, with what it said: the log shows why, not only that."""

    def __str__(self) -> str:
        said = (self.stderr or b"")[-1000:].decode("utf-8", "replace").strip()
        return f"{super().__str__()} {said}" if said else super().__str__()
