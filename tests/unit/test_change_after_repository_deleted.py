"""An API change to a repository deleted after its request found it: refused, nothing moved. A real repository and
database."""
from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from control.services.repos import delete_repo
from hooks.pipeline import apply_ref_change
from hooks.refs import RefUpdate
from storage.errors import NotFound
from storage.models import Repository
from storage.models.base import utcnow
from tests.unit.test_effects_follow_refs import change_context, commits, git


def test_an_api_change_to_a_repository_deleted_after_its_request_found_it_is_refused(tmp_path, monkeypatch):
    """A commit racing the repository's delete got 201 after the delete's 200, its ref moved in a repository
    about to be purged (an API sweep): a deletion committed meanwhile is a 404, and the ref stays. (The purge the
    delete asks for is not queued here, so that the repository is still there to be looked at.)"""
    monkeypatch.setattr("control.services.repos.jobs.defer", lambda *args, **kwargs: None)
    with change_context(tmp_path) as (ctx, path):
        (base,) = commits(path, 1)
        with pytest.raises(NotFound), ctx.db.session() as session:  # the request fails: its session rolls back
            assert session.scalar(select(Repository.deleted_at).where(Repository.id == ctx.repo.id)) is None
            with ctx.db.session() as other:
                delete_repo(other, other.get(Repository, ctx.repo.id), utcnow())
            apply_ref_change(replace(ctx, source="api"), RefUpdate(old="0" * 40, new=base, ref="refs/heads/main"),
                             session=session)
        assert git(path, "for-each-ref") == ""


def test_an_api_change_whose_repository_was_purged_while_it_was_checked_is_a_404(tmp_path, monkeypatch):
    """The purge removed the directory while the change's checks ran git in it: git's failure read as a refusal of
    the change's objects, a 422 "git fsck refused the new objects" where the others racing the delete got 404 (34
    of 600 in a race sweep). A moved-aside directory stands for the purge's removal, which comes at any moment."""
    from storage import git_fsck

    with change_context(tmp_path) as (ctx, path):
        (base,) = commits(path, 1)
        real = git_fsck.fsck_problem

        def purged_meanwhile(*args, **kwargs):
            path.rename(path.with_name(path.name + ".purging"))
            return real(*args, **kwargs)

        monkeypatch.setattr(git_fsck, "fsck_problem", purged_meanwhile)
        with pytest.raises(NotFound), ctx.db.session() as session:
            apply_ref_change(replace(ctx, source="api"), RefUpdate(old="0" * 40, new=base, ref="refs/heads/main"),
                             session=session)
