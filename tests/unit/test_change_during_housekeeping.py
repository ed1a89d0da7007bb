"""An API change that reuses a stored object while housekeeping runs: the repack may have judged that object
unreachable and dropped it after the change found it stored. Its ref must not then move onto an incomplete
history: the change is refused (409) and a retry stores the object again. A real repository and database."""
from __future__ import annotations

from dataclasses import replace

import pytest

from hooks.pipeline import apply_ref_change
from hooks.refs import RefUpdate
from storage.errors import Conflict
from storage.git_prune import HOLD_DIR
from tests.unit.test_effects_follow_refs import change_context, commits, git


@pytest.fixture
def repo(tmp_path):
    with change_context(tmp_path) as (ctx, path):
        yield replace(ctx, source="api"), path


def commit_of_a_dropped_tree(path, parent: str) -> str:
    """A commit whose tree is gone: what the change wrote on top of a tree the repack removed."""
    body = f"tree {'1' * 40}\nparent {parent}\nauthor a <a@b> 1 +0000\ncommitter a <a@b> 1 +0000\n\nm\n"
    return git(path, "hash-object", "-t", "commit", "--literally", "-w", "--stdin", input=body)


def test_a_change_onto_a_missing_object_while_housekeeping_runs_is_refused(repo):
    ctx, path = repo
    (base,) = commits(path, 1)
    git(path, "update-ref", "refs/heads/main", base)
    broken = commit_of_a_dropped_tree(path, base)
    (path / HOLD_DIR).mkdir()  # a run is between its set-aside and its check

    with pytest.raises(Conflict):
        apply_ref_change(ctx, RefUpdate(old=base, new=broken, ref="refs/heads/main"))
    assert git(path, "rev-parse", "refs/heads/main") == base

    (good,) = commits(path, 1)
    apply_ref_change(ctx, RefUpdate(old=base, new=good, ref="refs/heads/main"))
    assert git(path, "rev-parse", "refs/heads/main") == good
