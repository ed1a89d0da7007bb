"""A push whose effects find a table locked (a migration, VACUUM FULL) on PostgreSQL hears "ok" while the lock is
still held: its ref has moved, its effects give up waiting after DRIFTSTONE_DATABASE_LOCK_WAIT (1 s on this
server) and their retries, and the reconcile they ask for writes the branch row once the lock is gone. Before,
the push waited for "ok" as long as the lock was held (89 s of a 90 s lock in a failure-injection sweep).

PostgreSQL only: SQLite has no table locks of this kind (its writers wait on its busy timeout)."""
from __future__ import annotations

import os
import subprocess
import time

import pytest
from sqlalchemy import create_engine, text

from storage.models import Branch
from tests.support import client_env, repo_path

pytestmark = pytest.mark.skipif(not os.environ.get("DRIFTSTONE_TEST_DATABASE_URL"),
                                reason="table locks are PostgreSQL's")


def branch_head(server, repo_id: str, name: str) -> str | None:
    with server.context.db.session() as session:
        row = session.query(Branch).filter_by(repo_id=repo_id, name=name).one_or_none()
        return None if row is None else row.head_sha


def test_a_push_is_answered_while_a_table_its_effects_write_stays_locked(small_limits_server, git, tmp_path):
    server = small_limits_server
    tenant = server.tenant()
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "1\n"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    repo_id = repo_path(server, tenant, repo).name.removesuffix(".git")
    new = git.commit(work, {"a.txt": "2\n"}, "second")

    locker = create_engine(server.env["DRIFTSTONE_DATABASE_URL"])
    with locker.connect() as connection:
        transaction = connection.begin()
        connection.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
        try:
            push = subprocess.Popen(["git", "push", "-q", tenant.url(repo), "main"], cwd=work, env=client_env(git.home),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                _, stderr = push.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                push.kill()
                pytest.fail("the push was still waiting on the locked table after 90 s")
            assert push.returncode == 0, stderr
            assert git.out("ls-remote", tenant.url(repo), "refs/heads/main").split()[0] == new
        finally:
            transaction.rollback()
    locker.dispose()

    deadline = time.monotonic() + 60  # the reconcile's first retry comes 1 s after its first try
    while branch_head(server, repo_id, "main") != new and time.monotonic() < deadline:
        time.sleep(0.2)
    assert branch_head(server, repo_id, "main") == new
