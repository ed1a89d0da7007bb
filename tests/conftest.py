"""Shared fixtures: one real server (gunicorn on 127.0.0.1) per xdist worker, a real database for it.

Set DRIFTSTONE_TEST_DATABASE_URL (an admin URL such as postgresql+psycopg://postgres@127.0.0.1:5432/test)
to run against PostgreSQL: each worker creates its own database and drops it afterwards.
Set DRIFTSTONE_TEST_REDIS_URL to run background jobs on Redis, under a namespace of the worker's own.
"""
from __future__ import annotations

import os
import shlex
import sys
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support import ROOT, Git, WebhookReceiver, start_server

# extension runs start the scripted agent of tests/agents; the operator passes AGENT_TEST_TOKEN on to it
AGENT_TOKEN = f"agent-token-{uuid.uuid4().hex}"
AGENT = {"DRIFTSTONE_EXTENSION_COMMAND": shlex.join([sys.executable, "-u", str(ROOT / "tests" / "agents" / "scripted_agent.py")]),
         "DRIFTSTONE_EXTENSION_ENV": "AGENT_TEST_TOKEN", "AGENT_TEST_TOKEN": AGENT_TOKEN}


_SHARED = []  # this worker's shared servers, whose log a failing test's report shows


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    item.stash[_LOG_START] = {path: path.stat().st_size for path in _shared_logs()}
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test's report carries what the shared servers logged during it: a 500 names only its request
    id, and the traceback under that id is in the server's log, which CI does not keep."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    starts = item.stash.get(_LOG_START, {})
    for path in _shared_logs():
        with open(path, "rb") as log:
            log.seek(starts.get(path, 0))
            logged = log.read()[-_LOG_TAIL:].decode(errors="replace")
        if logged.strip():
            report.sections.append((f"{path.parent.parent.name} {path.name}", logged))


def _shared_logs():
    """The server's log and, with rq, its worker's."""
    return [path for running in _SHARED for path in (running.log_path, running.data_dir / "worker.log")
            if path.exists()]


_LOG_START = pytest.StashKey[dict]()
_LOG_TAIL = 20_000


def _create_database(admin_url: str) -> tuple[str, callable]:
    name = f"ds_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    def drop():
        with admin.connect() as connection:
            connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
            ), {"n": name})
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()

    return url, drop


def _server(tmp_path_factory, name: str, extra: dict[str, str]):
    env = {**AGENT, **extra}
    drops = []
    admin_url = os.environ.get("DRIFTSTONE_TEST_DATABASE_URL")
    if admin_url:
        url, drop = _create_database(admin_url)
        env["DRIFTSTONE_DATABASE_URL"] = url
        # the suite's servers share one PostgreSQL (100 connections by default): at the production pool (10 kept
        # and 40 more while busy, per process) two servers' bursts at once met "too many clients already" (503s)
        env["DRIFTSTONE_DATABASE_POOL_SIZE"], env["DRIFTSTONE_DATABASE_MAX_OVERFLOW"] = "2", "10"
        drops.append(drop)
    redis_url = os.environ.get("DRIFTSTONE_TEST_REDIS_URL")
    if redis_url:
        env["DRIFTSTONE_REDIS_URL"] = redis_url
        env["DRIFTSTONE_REDIS_NAMESPACE"] = f"dstest-{uuid.uuid4().hex[:10]}"
    server = start_server(tmp_path_factory.mktemp(name) / "data", env)
    _SHARED.append(server)
    return server, drops


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The server most tests share. Every clone on it goes through the pack cache and keeps its pack (whose
    defaults skip small repositories, disks with less than 2 GiB free and a state's first clone), so every
    client's clones test it. It may read repositories over http on 127.0.0.1 (itself: verify-git-access)."""
    running, drops = _server(tmp_path_factory, "server", {"DRIFTSTONE_PACK_CACHE_MIN_REPOSITORY_SIZE": "0",
                                                          "DRIFTSTONE_PACK_CACHE_MIN_FREE": "0",
                                                          "DRIFTSTONE_PACK_CACHE_MIN_OCCURRENCES": "0",
                                                          "DRIFTSTONE_REMOTE_ALLOW_HTTP": "true",
                                                          "DRIFTSTONE_REMOTE_ALLOW_PRIVATE": "true"})
    yield running
    running.stop()
    running.context.db.dispose()
    for drop in drops:
        drop()


@pytest.fixture(scope="session")
def small_limits_server(tmp_path_factory):
    """A second server with tight limits: object and push sizes (the push's objects inflate to 24 MiB at most),
    housekeeping after 3 packs or 20 ref updates, 2 s for a request that sends nothing or for a request head, a
    body held to 4 s of waiting plus 1 s per 2,000 bytes, 1 s of waiting for a database lock (PostgreSQL), 3 s
    for an extension run's agent. Its
    pack cache keeps a state's pack from its second clone on, as by default, for repositories of any size."""
    running, drops = _server(tmp_path_factory, "limits", {
        "DRIFTSTONE_PACK_CACHE_MIN_REPOSITORY_SIZE": "0",
        "DRIFTSTONE_PACK_CACHE_MIN_FREE": "0",
        "DRIFTSTONE_MAX_OBJECT_SIZE": str(1024 * 1024),
        "DRIFTSTONE_MAX_PUSH_SIZE": str(8 * 1024 * 1024),
        "DRIFTSTONE_MAX_PUSH_INFLATED_SIZE": str(24 * 1024 * 1024),
        "DRIFTSTONE_HOUSEKEEPING_MAX_PACKS": "3",
        "DRIFTSTONE_HOUSEKEEPING_MAX_REF_UPDATES": "20",
        "DRIFTSTONE_REQUEST_IDLE_TIMEOUT": "2",
        "DRIFTSTONE_REQUEST_HEAD_TIMEOUT": "2",
        "DRIFTSTONE_REQUEST_BODY_GRACE": "4",
        "DRIFTSTONE_REQUEST_BODY_MIN_RATE": "2000",
        "DRIFTSTONE_DATABASE_LOCK_WAIT": "1",
        "DRIFTSTONE_EXTENSION_TIMEOUT": "3",
    })
    yield running
    running.stop()
    running.context.db.dispose()
    for drop in drops:
        drop()


@pytest.fixture(scope="module")
def pulling_server(tmp_path_factory):
    """A server that fetches from repositories over http on 127.0.0.1 (a test's own remote) and holds objects to
    1 MiB and what one fetch or push brings to 4 MiB: remote calls over the limits."""
    running, drops = _server(tmp_path_factory, "pulling", {
        "DRIFTSTONE_MAX_OBJECT_SIZE": str(1024 * 1024),
        "DRIFTSTONE_MAX_PUSH_SIZE": str(4 * 1024 * 1024),
        "DRIFTSTONE_REMOTE_ALLOW_HTTP": "true",
        "DRIFTSTONE_REMOTE_ALLOW_PRIVATE": "true",
    })
    yield running
    _SHARED.remove(running)
    running.stop()
    running.context.db.dispose()
    for drop in drops:
        drop()


@pytest.fixture
def tenant(server):
    return server.tenant()


@pytest.fixture
def git(tmp_path) -> Git:
    home = tmp_path / "home"
    home.mkdir()
    return Git(home=home)


@pytest.fixture
def receiver():
    made = WebhookReceiver()
    yield made
    made.close()
