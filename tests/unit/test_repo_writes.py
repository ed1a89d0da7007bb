"""Taking a repository's (or a workspace's) turn to write, in the real database of the shared test server (SQLite,
or PostgreSQL in CI's second run): a turn is no change, so it moves no `updated_at` (agirunner shows the repository's
as its workspace's; a stack merge that found a conflict and changed nothing moved it)."""
from __future__ import annotations

from storage.models import Repository, Workspace
from storage.ids import new_id
from storage.repo_writes import serialize_repository_writes, serialize_workspace_writes


def test_a_turn_to_write_changes_no_updated_at(server):
    tenant = server.tenant()
    slug = tenant.repo()
    db = server.context.db
    with db.session() as session:
        repo = session.query(Repository).filter_by(org_id=tenant.org_id, slug=slug).one()
        workspace = Workspace(id=new_id("ws"), repo_id=repo.id, name="turns")
        session.add(workspace)
        session.flush()
        repo_id, workspace_id = repo.id, workspace.id
    with db.session() as session:
        before = (session.get(Repository, repo_id).updated_at, session.get(Workspace, workspace_id).updated_at)
    with db.session() as session:
        serialize_workspace_writes(session, workspace_id)
        serialize_repository_writes(session, repo_id)
    with db.session() as session:
        after = (session.get(Repository, repo_id).updated_at, session.get(Workspace, workspace_id).updated_at)
    assert after == before
