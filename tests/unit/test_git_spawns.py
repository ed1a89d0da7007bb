"""Requests answered without starting git: the client's probe (a lone flush packet, sent before a body too large
to resend), and protocol v2's capability advertisement after its first time for a repository's configuration.

In-process (werkzeug's test client on the real application, SQLite, a real repository): the point is which
requests start a git process, which only spies on the two ways the app starts one can see; the e2e suite
drives the same requests with git over HTTP.
"""
from __future__ import annotations

import base64
import os
import subprocess

import pytest
from werkzeug.test import Client

from server import app as git_app
from server import capabilities
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
        repo = create_repo(session, context.store, org.id, "r")
    started = []
    real_process, real_run = git_app.GitProcess, capabilities.run_git

    def spy_process(*args, **kwargs):
        started.append(args[1])
        return real_process(*args, **kwargs)

    def spy_run(repo_path, args, **kwargs):
        started.append(args)
        return real_run(repo_path, args, **kwargs)

    monkeypatch.setattr(git_app, "GitProcess", spy_process)
    monkeypatch.setattr(capabilities, "run_git", spy_run)
    auth = {"Authorization": "Basic " + base64.b64encode(f"x:{secret}".encode()).decode()}
    client = Client(wsgi.create_application(settings))
    client.repo_path = context.store.path_for(repo.id)
    return client, auth, started


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
    assert started and "upload-pack" in started[0]


def test_a_probe_still_needs_a_key_that_may_push(served):
    client, _, started = served
    response = client.post("/probe/r.git/git-receive-pack", data=b"0000",
                           headers={"Content-Type": "application/x-git-receive-pack-request"})
    assert response.status_code == 401
    assert started == []


def _v2_capabilities(client, auth) -> bytes:
    response = client.get("/probe/r.git/info/refs?service=git-upload-pack",
                          headers={**auth, "Git-Protocol": "version=2"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-git-upload-pack-advertisement"
    return response.get_data()


def test_v2_capabilities_are_git_s_own_and_asked_for_once_per_configuration(served):
    client, auth, started = served
    first = _v2_capabilities(client, auth)
    own = subprocess.run(["git", "upload-pack", "--stateless-rpc", "--advertise-refs", str(client.repo_path)],
                         env={**os.environ, "GIT_PROTOCOL": "version=2", "GIT_CONFIG_NOSYSTEM": "1",
                              "GIT_CONFIG_GLOBAL": os.devnull}, capture_output=True, check=True).stdout
    assert first == own and first.startswith(b"000eversion 2\n")
    assert _v2_capabilities(client, auth) == first
    assert len(started) == 1
    subprocess.run(["git", "-C", str(client.repo_path), "config", "uploadpack.allowRefInWant", "true"], check=True)
    changed = _v2_capabilities(client, auth)
    assert b"ref-in-want" in changed and b"ref-in-want" not in first
    assert len(started) == 2


def test_v0_advertisements_still_come_from_git_every_time(served):
    client, auth, started = served
    for _ in range(2):
        response = client.get("/probe/r.git/info/refs?service=git-upload-pack", headers=auth)
        assert response.status_code == 200 and response.get_data().startswith(b"001e# service=git-upload-pack\n")
    assert len(started) == 2
