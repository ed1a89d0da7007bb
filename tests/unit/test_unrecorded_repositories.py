"""A repository create killed between `git init` and its transaction's commit left a directory that no row names,
for good (a kill sweep against PostgreSQL and rq). The kill is played by making the directory the way the create
does (`RepoStore.create`) without the row; the database, the directories and git are real."""
from __future__ import annotations

import os
import time

from control import jobs as job_functions
from storage.ids import new_id
from storage.repo_store import RepoStore
from tests.unit.test_effects_follow_refs import change_context, commits, git


def _aged(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_an_empty_unrecorded_repository_goes_an_hour_after_and_nothing_else_does(tmp_path, caplog):
    with change_context(tmp_path) as (ctx, recorded_path):
        store = RepoStore(recorded_path.parent.parent)
        left_by_a_kill = store.create(new_id("repo"))
        just_made = store.create(new_id("repo"))
        with_history = store.create(new_id("repo"))
        (head,) = commits(with_history, 1)
        git(with_history, "update-ref", "refs/heads/main", head)
        for path in (left_by_a_kill, with_history, recorded_path):
            _aged(path, 2 * job_functions.UNRECORDED_REPOSITORY_SECONDS)

        job_functions.finish_interrupted_work()

        assert not left_by_a_kill.exists()
        assert just_made.is_dir()  # its create may still be committing
        assert with_history.is_dir() and "holds refs or objects" in caplog.text
        assert (recorded_path / "HEAD").is_file()


def test_holds_nothing_sees_any_ref_or_object(tmp_path):
    store = RepoStore(tmp_path)
    repo_id = new_id("repo")
    path = store.create(repo_id)
    assert store.holds_nothing(repo_id)
    blob = git(path, "hash-object", "-w", "--stdin", input="x")
    assert not store.holds_nothing(repo_id)
    os.remove(path / "objects" / blob[:2] / blob[2:])
    os.rmdir(path / "objects" / blob[:2])
    assert store.holds_nothing(repo_id)
    git(path, "hash-object", "-w", "--stdin", input="x")
    git(path, "pack-objects", "-q", str(path / "objects" / "pack" / "pack"), input=blob + "\n")
    os.remove(path / "objects" / blob[:2] / blob[2:])
    os.rmdir(path / "objects" / blob[:2])
    assert not store.holds_nothing(repo_id)  # in a pack
    for packed in (path / "objects" / "pack").iterdir():
        packed.unlink()
    (path / "packed-refs").write_text(f"{blob} refs/tags/x\n")
    assert not store.holds_nothing(repo_id)
    (path / "packed-refs").unlink()
    (path / "refs" / "heads" / "x").write_text(blob + "\n")
    assert not store.holds_nothing(repo_id)
