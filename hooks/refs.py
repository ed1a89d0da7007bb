"""Ref updates and ref-name rules (git check-ref-format, plus: nothing may start with '-', names are UTF-8,
branch names fit the 255 characters every API surface and the database give them)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

ZERO_SHA = "0" * 40
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
PUSHABLE_NAMESPACES = ("refs/heads/", "refs/tags/", "refs/notes/")
MAX_BRANCH_NAME = 255
MAX_COMPONENT_BYTES = 250  # a component is a file name on disk, plus ".lock" while it is written


def is_sha(value: str) -> bool:
    return bool(_SHA.match(value))


@dataclass(frozen=True)
class RefUpdate:
    old: str
    new: str
    ref: str

    @property
    def is_create(self) -> bool:
        """A new ref. Zero to zero is not one: git takes an all-zero new as a deletion whatever the old says."""
        return self.old == ZERO_SHA and self.new != ZERO_SHA

    @property
    def is_delete(self) -> bool:
        return self.new == ZERO_SHA

    @property
    def branch(self) -> str | None:
        return self.ref[len("refs/heads/"):] if self.ref.startswith("refs/heads/") else None


def ref_name_problem(ref: str) -> str | None:
    """Why `ref` is not an acceptable full ref name, or None when it is."""
    if not ref or len(ref) > 1024:
        return "invalid ref name"
    try:
        ref.encode("utf-8")  # names read from git arrive with undecodable bytes as lone surrogates
    except UnicodeEncodeError:
        return "invalid ref name: not UTF-8"
    if ref.startswith("refs/heads/") and len(ref) - len("refs/heads/") > MAX_BRANCH_NAME:
        return f"invalid ref name: branch names are at most {MAX_BRANCH_NAME} characters"
    if _FORBIDDEN.search(ref):
        return "invalid ref name: forbidden character"
    if ref.startswith("/") or ref.endswith("/") or "//" in ref or ".." in ref or "@{" in ref:
        return "invalid ref name"
    if ref.endswith(".") or ref == "@":
        return "invalid ref name"
    components = ref.split("/")
    if len(components) < 2:
        return "invalid ref name: must contain a slash"
    if ref == "refs/heads/HEAD":
        return "invalid ref name: HEAD is not a branch name"
    for component in components:
        if component.startswith(".") or component.endswith(".lock"):
            return "invalid ref name"
        if len(component.encode("utf-8")) > MAX_COMPONENT_BYTES:
            return f"invalid ref name: a component may be at most {MAX_COMPONENT_BYTES} bytes"
        if component.startswith("-"):
            return "invalid ref name: a component may not start with '-'"
    return None


def new_branch_problem(ref: str) -> str | None:
    """Why a branch may not be created under this name although git takes it: every clone of a repository with a
    branch `HEAD/x` fails (git cannot make refs/remotes/origin/HEAD beside refs/remotes/origin/HEAD/x), `@` is
    git's name for HEAD, and a branch `refs/heads/x` reads as another ref. Existing ones may still be deleted."""
    name = ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else None
    if name is None:
        return None
    if name == "@" or name.split("/", 1)[0] == "HEAD":
        return "invalid branch name: HEAD and @ name the current branch in git (a branch HEAD/... breaks every clone)"
    if name.startswith("refs/"):
        return "invalid branch name: a branch may not start with refs/ (it would read as another ref)"
    if _FULL_SHA.fullmatch(name):
        return "invalid branch name: 40 or 64 hex digits read as a commit id (GitHub refuses them too)"
    return None


_FULL_SHA = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")


def branch_name_problem(name: str) -> str | None:
    return ref_name_problem("refs/heads/" + name) if name else "invalid branch name"


NOT_PUSHABLE = "only refs/heads/, refs/tags/ and refs/notes/ may be pushed"
# the server's own refs (workspace heads, housekeeping's pins): hidden from fetchers too, so that a mirror clone does
# not take them and its mirror push back is not refused them; their commits are still fetched by id
SERVER_REFS = "refs/driftstone/"
# receive-pack's hideRefs for them: not advertised to pushers (a mirror push would try to delete the server's own
# refs/driftstone/), and a push to one is refused by git for that ref alone, the rest of the push going ahead
RECEIVE_HIDE_REFS = ("refs/", *(f"!{namespace}" for namespace in PUSHABLE_NAMESPACES))


def pushable_ref_problem(ref: str) -> str | None:
    problem = ref_name_problem(ref)
    if problem:
        return problem
    if not ref.startswith(PUSHABLE_NAMESPACES):
        return NOT_PUSHABLE
    return None


def hidden_ref_reasons(updates: Iterable[RefUpdate]) -> dict[str, str]:
    """git refuses a push to a ref under RECEIVE_HIDE_REFS as "deny updating a hidden ref"; this is why, in words
    the pusher can act on."""
    return {update.ref: NOT_PUSHABLE for update in updates if pushable_ref_problem(update.ref) == NOT_PUSHABLE}
