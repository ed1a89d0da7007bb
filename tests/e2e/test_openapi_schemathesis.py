"""The live server against its own /openapi.json: schemathesis generates requests (valid and invalid) for every
documented operation and checks that none answers 5xx and every response matches what the document says
(status code documented, content type, body schema).

One pytest item per operation (so xdist spreads them over its workers), each at most 25 generated cases plus
schemathesis's coverage cases, positive and negative. Requests go to the worker's real gunicorn server with a
real admin key of an organization whose repository has commits and branches; generated path parameters are
mapped, some of the time, onto names that exist (otherwise nearly every case would stop at 404).

The document is built in-process from the declared routes, at collection time, and a test below checks that the
live /openapi.json is exactly that document. (schemathesis.pytest.from_fixture, which would load it from the live
server lazily, fails on pytest 9.2: it sets `Function._nodeid`, which pytest no longer has.)
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.config import CoveragePhaseConfig, OperationConfig, PhasesConfig
from schemathesis.filters import FilterSet

from tests.support import Git

KEY = re.compile(r"dk-[A-Za-z0-9_-]{20,}")


@pytest.fixture(scope="module")
def live(server, tmp_path_factory):
    """A tenant with one repository holding two commits on main and a few branches (one per worker and module:
    the cases of every operation share it, so a deleted branch or a new key stays visible to later operations)."""
    tmp_path = tmp_path_factory.mktemp("fuzz")
    tenant = server.tenant()
    repo = tenant.repo("fuzz-target")
    home = tmp_path / "home"
    home.mkdir()
    git = Git(home=home)
    work = git.new_worktree(tmp_path / "w", {"README.md": "hello\n"})
    head = git.commit(work, {"src/a.txt": "a\n"}, "second\n\nGoal: exercise the commit API\nConfidence: 0.9")
    for name in ("feature/x", "topic", "keep"):
        git("branch", name, cwd=work)
    git("push", "-q", tenant.url(repo), "main", "feature/x", "topic", "keep", cwd=work)
    return {"tenant": tenant, "repo": repo, "head": head, "branches": ["main", "feature/x", "topic", "keep"]}


from control.api.app import create_app  # noqa: E402
from control.api.openapi import build_openapi  # noqa: E402

create_app(None)  # imports every surface's blueprints, which declares their routes

REAL: dict = {}  # names that exist in the live tenant, filled in by the `live` fixture before generation
schema = schemathesis.openapi.from_dict(build_openapi())
# A request the server refuses as too large (413: body over the JSON cap, 414: request line over gunicorn's limit)
# is a documented refusal, whether or not its data fit the schema.
for check in (schema.config.checks.negative_data_rejection, schema.config.checks.positive_data_acceptance):
    check.expected_statuses = [*check.expected_statuses, "413", "414"]
# The server refuses NUL in every string (PostgreSQL text cannot hold it), which the document cannot say per field.
schema.config.generation.allow_x00 = False
# The coverage phase enumerates boundary cases at collection time, in every xdist worker: for the multi-file commit
# body (an array of one-of operations) that alone took 7 of 12 s; its fuzzed cases still run.
_commit_body = FilterSet()
_commit_body.include(name="POST /v1/repos/{repo}/commits")
schema.config.operations.operations.append(OperationConfig(
    filter_set=_commit_body, phases=PhasesConfig(coverage=CoveragePhaseConfig(enabled=False))))


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    # Map generated path parameters, some of the time, onto the repository, branches and commits that exist.
    # Never aim a DELETE at the shared repository (every later case would stop at 404); branches may go.
    deletes_repo = context.operation.method.upper() == "DELETE" and "branch" not in (path_parameters or {})
    if not REAL or not path_parameters or deletes_repo:
        return st.just(path_parameters)
    choices = {}
    for name, value in path_parameters.items():
        options = REAL.get(name)
        choices[name] = st.sampled_from([value, *options]) if options else st.just(value)
    return st.fixed_dictionaries(choices)


def future_expiry(case) -> None:
    """A key's expiry must lie in the future, which a JSON Schema cannot say: move valid past dates a year ahead.
    (Done on the case itself, not in a generation hook, because the coverage phase bypasses those.)"""
    body = case.body
    if case.operation.label != "POST /v1/keys" or not isinstance(body, dict):
        return
    if not isinstance(body.get("expiresAt"), str):
        return
    try:
        when = datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00"))
    except ValueError:
        return
    if when.tzinfo is not None and when <= datetime.now(timezone.utc):
        case.body = {**body, "expiresAt": (datetime.now(timezone.utc) + timedelta(days=365)).isoformat()}


def distinct_upload_names(case) -> None:
    """An upload's files must have distinct names, which a JSON Schema cannot say (uniqueItems compares whole
    objects): a valid list naming one file twice gets the repeats renamed."""
    body = case.body
    if case.operation.label != "POST /v1/repos/{repo}/uploads" or not isinstance(body, dict):
        return
    files = body.get("files")
    if not isinstance(files, list) or not all(isinstance(f, dict) and isinstance(f.get("name"), str) for f in files):
        return
    names = [item["name"] for item in files]
    if len(set(names)) < len(names):
        case.body = {**body, "files": [{**item, "name": f"file-{index}.txt"} for index, item in enumerate(files)]}


WEBHOOK_URL = re.compile(r"(POST|PATCH) /v1/repos/\{repo\}/webhooks")


def reachable_webhook_url(case, server_url: str) -> None:
    """A webhook's URL must name a host that resolves (to an address the server may send to), which a JSON Schema
    cannot say: a schema-valid URL becomes one that does (this server's, allowed here); invalid ones stay."""
    body = case.body
    if not WEBHOOK_URL.match(case.operation.label) or not isinstance(body, dict):
        return
    if isinstance(body.get("url"), str) and re.match(r"^https?://", body["url"]):
        case.body = {**body, "url": f"{server_url}/v1/health"}


REMOTE = re.compile(r"PUT /v1/repos/\{repo\}/remotes/\{name\}")


def usable_remote(case) -> None:
    """A remote's URL must have a host and no credentials, and `origin` is the workspace's (rules a JSON Schema
    cannot say): a schema-valid URL becomes a plain one and `origin` another name; invalid ones stay."""
    if not REMOTE.match(case.operation.label) or not isinstance(case.body, dict):
        return
    if isinstance(case.body.get("url"), str) and re.match(r"^(?:https?|ssh|git)://", case.body["url"]):
        case.body = {**case.body, "url": "https://example.com/acme/widgets.git"}
    if str((case.path_parameters or {}).get("name", "")).lower() == "origin":
        case.path_parameters = {**case.path_parameters, "name": "upstream"}


@pytest.fixture
def target(server, live):
    REAL.clear()
    REAL.update({"repo": [live["repo"]], "branch": live["branches"], "sha": [live["head"], live["head"][:12]]})
    yield {"base_url": server.url, "headers": {"Authorization": f"Bearer {live['tenant'].keys['admin']}"},
           "server_url": server.url}
    REAL.clear()


@schema.parametrize()
@settings(max_examples=25, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_the_document(case, target):
    future_expiry(case)
    reachable_webhook_url(case, target["server_url"])
    usable_remote(case)
    distinct_upload_names(case)
    response = case.call_and_validate(base_url=target["base_url"], headers=target["headers"], timeout=30)
    where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, where
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), where
    assert "Traceback" not in response.text and "<html" not in response.text.lower(), where
    if case.operation.label != "POST /v1/keys":  # the one response that shows a secret, once
        assert not KEY.search(response.text), where


def test_live_document_is_the_declared_one(server):
    assert requests.get(f"{server.url}/openapi.json", timeout=10).json() == build_openapi()


def test_document_covers_every_flask_route(server):
    document = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    documented = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}
    app = create_app(server.context)
    routed = set()
    for rule in app.url_map.iter_rules():  # smart HTTP (/{org}/{repo}.git/...) is a WSGI layer, not a Flask route
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routed.add((method, path))
    assert routed - documented == set(), "routes missing from /openapi.json"
    assert documented - routed == set(), "documented operations without a route"
    assert ("GET", "/openapi.json") in documented
