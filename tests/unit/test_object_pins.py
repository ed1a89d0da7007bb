"""The objects a repository's rows name, read from a real database (SQLite here; the end-to-end prune test runs
on PostgreSQL too): every column that holds one, deleted workspaces and ref-change events only while recent, and
whatever else a column holds left out."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from storage.models import (Branch, CommitMeta, Event, Stack, StackReview, Upload, Workspace, WorkspaceFile)
from storage.object_pins import pinned_objects
from storage.settings import Settings

NOW = datetime.now(timezone.utc)
LONG_AGO = NOW - timedelta(days=400)
GRACE_START = NOW - timedelta(days=14)


def oid(n: int) -> str:
    return f"{n:040x}"


@pytest.fixture
def rows(tmp_path):
    from control.bootstrap import bootstrap
    from control.services.accounts import create_org
    from control.services.repos import create_repo

    context = bootstrap(Settings(data_dir=tmp_path))
    with context.db.session() as session:
        org = create_org(session, "pins")
        repo = create_repo(session, context.store, org.id, "r")
        other = create_repo(session, context.store, org.id, "other")
        repo_id, org_id, other_id = repo.id, org.id, other.id
    yield context.db, repo_id, org_id, other_id
    context.db.dispose()


def test_every_column_that_names_an_object_is_read(rows):
    db, repo_id, org_id, other_id = rows
    with db.session() as session:
        session.add_all([
            Workspace(id="ws1", repo_id=repo_id, name="w", base_commit=oid(1), current_commit=oid(2)),
            WorkspaceFile(id="wf1", workspace_id="ws1", path="a", blob_sha=oid(3)),
            WorkspaceFile(id="wf2", workspace_id="ws1", path="b", blob_sha=None),  # a delete marker
            Stack(id="st1", repo_id=repo_id, title="t", bookmark="b", base_branch="main", base_commit=oid(4),
                  head_commit=oid(5), commits=[oid(6), oid(5)], merged_sha=oid(7)),
            StackReview(id="sr1", stack_id="st1", state="approve", head_commit=oid(8)),
            Branch(id="br1", repo_id=repo_id, name="main", head_sha=oid(9), base_commit=oid(10)),
            Upload(id="up1", repo_id=repo_id, branch="main", identifier="i", commit_sha=oid(11), base_commit="0" * 40,
                   expires_at=NOW),
            Upload(id="up2", repo_id=repo_id, branch="gone", identifier="i", commit_sha=oid(12), expires_at=NOW,
                   retired_at=NOW),  # its branch was deleted: gone for every request
            CommitMeta(id="cm1", repo_id=repo_id, sha=oid(13), source="api"),
            Event(id="ev1", org_id=org_id, repo_id=repo_id, kind="refs.push",
                  payload={"refs": [{"ref": "refs/heads/main", "old": oid(14), "new": oid(15)}]}),
            Event(id="ev2", org_id=org_id, repo_id=repo_id, kind="refs.push", created_at=LONG_AGO,
                  payload={"refs": [{"ref": "refs/heads/x", "old": oid(16), "new": "0" * 40}]}),
            CommitMeta(id="cm2", repo_id=other_id, sha=oid(17), source="api"),  # another repository's
        ])
    with db.session() as session:
        found = pinned_objects(session, repo_id, GRACE_START)
    assert found == {oid(n) for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15)}


def test_deleted_workspaces_count_while_recent(rows):
    db, repo_id, _, _ = rows
    with db.session() as session:
        session.add_all([
            Workspace(id="old", repo_id=repo_id, name="o", current_commit=oid(1), status="deleted",
                      updated_at=LONG_AGO),
            WorkspaceFile(id="f1", workspace_id="old", path="a", blob_sha=oid(2)),
            Workspace(id="new", repo_id=repo_id, name="n", current_commit=oid(3), status="deleted"),
            WorkspaceFile(id="f2", workspace_id="new", path="a", blob_sha=oid(4)),
        ])
    with db.session() as session:
        session.execute(Workspace.__table__.update().where(Workspace.id == "old").values(updated_at=LONG_AGO))
    with db.session() as session:
        assert pinned_objects(session, repo_id, GRACE_START) == {oid(3), oid(4)}


@pytest.mark.parametrize("hostile", [
    "--all", "../../etc/passwd", "HEAD", "ABCDEF" * 6 + "ABCD", oid(1) + "\n", oid(1)[:39], "g" * 40, "0" * 64,
    12345, None, ["nested"], {"sha": oid(1)}])
def test_what_is_not_an_object_id_is_left_out(rows, hostile):
    """JSON columns hold whatever was written to them; no value but an id may reach git's input."""
    db, repo_id, org_id, _ = rows
    with db.session() as session:
        session.add_all([
            Stack(id="st", repo_id=repo_id, title="t", bookmark="b", base_branch="main", base_commit="0" * 40,
                  head_commit="HEAD", commits=[hostile]),
            Event(id="ev", org_id=org_id, repo_id=repo_id, kind="refs.api",
                  payload={"refs": [{"old": hostile, "new": hostile}, hostile]}),
            Event(id="ev2", org_id=org_id, repo_id=repo_id, kind="refs.api", payload={"refs": hostile}),
            Event(id="ev3", org_id=org_id, repo_id=repo_id, kind="refs.api", payload=[hostile]),
        ])
    with db.session() as session:
        assert pinned_objects(session, repo_id, GRACE_START) == set()
