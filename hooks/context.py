"""What a check or an effect needs to know about one ref change request."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from storage.db import Database
from storage.keys import Principal
from storage.push_scans import PushScans
from storage.settings import Settings


@dataclass(frozen=True)
class RepoRef:
    id: str
    org_id: str
    slug: str
    default_branch: str


@dataclass
class ChangeContext:
    db: Database
    settings: Settings
    repo: RepoRef
    repo_path: Path
    actor: Principal | None
    source: str = "push"  # push | upload | api | merge | workspace
    git_env: Mapping[str, str] = field(default_factory=dict)  # the push quarantine, when there is one
    push_options: tuple[str, ...] = ()
    workspace_id: str | None = None  # the workspace making the change: its own locks do not stop it
    stack_id: str | None = None  # the stack whose merge this is: a branch taking changes only through them takes it
    push_scans: PushScans | None = None  # what is read from a push's quarantine, possibly before the checks run
    atomic: bool = False  # a push that asked for all or nothing (git's `atomic` capability)
    # refs a push found already holding what it asked for (the same push sent again after it landed)
    found_in_place: frozenset[str] = frozenset()


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (U+009B starts a terminal's control sequence)


def printable(text: str) -> str:
    """`text` with its control characters written out (\\x1b), for a terminal and for line-based protocols."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


@dataclass(frozen=True)
class Rejection:
    """A check's refusal of one ref. Its reason reaches a pusher's terminal, and the hook reads it a line at a
    time: control characters (from a workspace's agent name, say) are shown escaped, never sent."""

    ref: str
    reason: str
    code: str = "forbidden"  # the domain error an API caller gets: forbidden | invalid | too_large | locked
    details: dict = field(default_factory=dict, compare=False)  # the API caller's error details besides the ref

    def __post_init__(self):
        object.__setattr__(self, "reason", printable(self.reason))
