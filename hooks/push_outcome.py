"""What a push did to its refs, read from git's report and the repository (git is the source of truth)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from storage import git_refs

from .refs import RefUpdate

# receive-pack's words for a ref whose compare-and-swap found another value than the one the pusher named (git
# 2.39's, and those of gits that batch ref updates); an --atomic push says the last of every ref
SWAP_FAILED = ("failed to update ref", "failed to lock", "incorrect old value provided", "reference already exists",
               "atomic transaction failed")


def now_in_place(repo_path: Path, updates: Sequence[RefUpdate]) -> list[RefUpdate]:
    """The updates whose ref holds what they asked for (nothing, for a delete)."""
    values = git_refs.read_refs(repo_path, [update.ref for update in updates])
    return [u for u in updates if (values[u.ref] is None if u.is_delete else values[u.ref] == u.new)]


def found_in_place(repo_path: Path, updates: Sequence[RefUpdate], outcome: dict[str, str | None],
                   atomic: bool) -> list[RefUpdate]:
    """Refs whose swap failed because they already hold what this push asked for: libcurl sends a POST again
    when the first one's server died without an answer (a killed worker), after that push had landed. The
    pusher is told "ok", and what the lost request did not record is recorded. Deletes are left as git answered:
    a missing ref may since have become a record-only branch (a row that a delete's effects would remove). An
    atomic push landed only if every one of its refs holds what it asked for."""
    landed = now_in_place(repo_path, [update for update in updates
                                      if outcome.get(update.ref) in SWAP_FAILED and not update.is_delete])
    return landed if not atomic or len(landed) == len(updates) else []
