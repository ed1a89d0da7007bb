"""An API change holds one database connection at a time. Its checks took a second one while the request's own
session held the first: on PostgreSQL with DRIFTSTONE_DATABASE_POOL_SIZE=1 and no overflow every commit, branch
create and delete waited 30 s for it and answered 503 (a sweep with four workers), and with the default pool
enough such requests at once could each hold one connection and wait for another. Counted here with the pool's
checkout and checkin events, which SQLite's pool sends as PostgreSQL's does."""
from __future__ import annotations

import base64
import threading

import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool

from tests.support import commit_in, in_process_app


@pytest.fixture
def most_held():
    """The most connections the test's thread held at once (the test client runs each request on it)."""
    held, most = [0], [0]
    me = threading.get_ident()

    def checkout(*_):
        if threading.get_ident() == me:
            held[0] += 1
            most[0] = max(most[0], held[0])

    def checkin(*_):
        if threading.get_ident() == me:
            held[0] -= 1

    event.listen(Pool, "checkout", checkout)
    event.listen(Pool, "checkin", checkin)
    yield most
    event.remove(Pool, "checkout", checkout)
    event.remove(Pool, "checkin", checkin)


def test_api_changes_hold_one_connection_at_a_time(tmp_path, most_held):
    client, auth, path = in_process_app(tmp_path, "single", "admin", database_pool_size=1, database_max_overflow=0)
    key = base64.b64decode(auth["Authorization"].split()[1]).decode().split(":", 1)[1]
    bearer = {"Authorization": f"Bearer {key}"}
    head = commit_in(path, "main")
    content = base64.b64encode(b"one connection\n").decode()
    dojo = "/api/repos/single/r/workspaces"
    calls = [
        lambda: client.post("/v1/repos/r/commits", headers=bearer, json={
            "branch": "main", "message": "m", "expectedHeadSha": head,
            "operations": [{"action": "create", "path": "a.txt", "content": content}]}),
        lambda: client.post("/v1/repos/r/branches", headers=bearer, json={"name": "b"}),
        lambda: client.delete("/v1/repos/r/branches/b", headers=bearer),
    ]
    for call in calls:
        most_held[0] = 0
        answer = call()
        assert answer.status_code in (200, 201), answer.get_data(as_text=True)
        assert most_held[0] == 1
    workspace = client.post(dojo, headers=bearer, json={"name": "w"}).get_json()["workspace"]["id"]
    assert client.put(f"{dojo}/{workspace}/files/b.txt", headers=bearer, data=b"b\n").status_code == 200
    for step, body in (("commit", {"message": "m"}), ("submit", {"title": "t"})):
        most_held[0] = 0
        answer = client.post(f"{dojo}/{workspace}/{step}", headers=bearer, json=body)
        assert answer.status_code == 201 and most_held[0] == 1, (step, answer.get_data(as_text=True))
