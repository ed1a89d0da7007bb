"""git's probe request (a lone flush packet, sent before a body too large to resend) is answered without git.

In-process (werkzeug's test client on the real application, SQLite, a real repository): the point is that no
git process starts, which only a spy on `GitProcess` can see; the e2e suite covers the same pushes over HTTP.
"""
from __future__ import annotations

import base64

import pytest
from werkzeug.test import Client

from server import app as git_app
from storage.settings import Settings


@pytest.fixture
def served(tmp_path, monkeypatch):
    import wsgi
    from control.bootstrap import bootstrap
    from control.services.accounts import create_key, create_org
    from control.services.repos import create_repo

    settings = Settings(data_dir=tmp_path)
    context = bootstrap(settings)
    with context.db.session() as session:
        org = create_org(session, "probe")
        secret = create_key(session, org.id, "k", "agent").secret
        create_repo(session, context.store, org.id, "r")
    started = []
    real = git_app.GitProcess

    def spy(*args, **kwargs):
        started.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(git_app, "GitProcess", spy)
    auth = {"Authorization": "Basic " + base64.b64encode(f"x:{secret}".encode()).decode()}
    return Client(wsgi.create_application(settings)), auth, started


@pytest.mark.parametrize("service", ["git-upload-pack", "git-receive-pack"])
def test_a_probe_is_answered_empty_without_starting_git(served, service):
    client, auth, started = served
    response = client.post(f"/probe/r.git/{service}", data=b"0000",
                           headers={**auth, "Content-Type": f"application/x-{service}-request"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == f"application/x-{service}-result"
    assert response.get_data() == b""
    assert started == []


def test_a_request_that_is_more_than_a_flush_still_reaches_git(served):
    client, auth, started = served
    response = client.post("/probe/r.git/git-upload-pack", data=b"0014command=ls-refs\n0000",
                           headers={**auth, "Content-Type": "application/x-git-upload-pack-request",
                                    "Git-Protocol": "version=2"})
    assert response.status_code == 200
    assert started and started[0][0] == "upload-pack"


def test_a_probe_still_needs_a_key_that_may_push(served):
    client, _, started = served
    response = client.post("/probe/r.git/git-receive-pack", data=b"0000",
                           headers={"Content-Type": "application/x-git-receive-pack-request"})
    assert response.status_code == 401
    assert started == []
