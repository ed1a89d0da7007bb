"""Hostile input on the /v1 control API of a real server: other orgs, dead keys, wrong scopes, broken bodies,
wrong media types and methods, traversal in names, oversized bodies. Every answer is the JSON envelope with a
4xx status: never an HTML page, never a traceback, never a key."""
from __future__ import annotations

import base64
import json
import re
import socket

import pytest
import requests

from tests.support import Git, raw_request

KEY_PATTERN = re.compile(r"(?<![A-Za-z0-9])dk-[A-Za-z0-9_-]{20,}")


def call(server, method, path, key=None, body=None, headers=None, data=None, timeout=30):
    sent = dict(headers or {})
    if key is not None:
        sent.setdefault("Authorization", f"Bearer {key}")
    if body is not None:
        sent.setdefault("Content-Type", "application/json")
        data = json.dumps(body)
    return requests.request(method, server.url + path, headers=sent, data=data, timeout=timeout)


def refused(response, status: int, code: str | None = None) -> dict:
    """A 4xx in the Driftstone error envelope, JSON, no traceback, no HTML, no key."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers["Content-Type"]
    text = response.text
    assert "Traceback" not in text and "<html" not in text.lower() and "File \"/" not in text
    assert not KEY_PATTERN.search(text), text
    body = response.json()
    assert body["success"] is False and isinstance(body["error"], str) and isinstance(body["details"], dict)
    if code is not None:
        assert body["code"] == code, body
    return body


@pytest.fixture(scope="module")
def site(server, tmp_path_factory):
    """One tenant per module whose repository has main and topic; the tests below must leave it as it is."""
    tenant = server.tenant()
    repo = tenant.repo()
    home = tmp_path_factory.mktemp("hostile")
    git = Git(home=home)
    work = git.new_worktree(home / "w", {"a.txt": "a"})
    git("branch", "topic", cwd=work)
    git("push", "-q", tenant.url(repo), "main", "topic", cwd=work)
    return tenant, repo, git.out("rev-parse", "HEAD", cwd=work)


@pytest.fixture
def pushed(site):
    return site[1], site[2]


def test_another_orgs_repository_is_not_found(server, site, pushed):
    tenant = site[0]
    repo, head = pushed
    intruder = server.tenant()
    for scope in ("admin", "agent", "read"):
        key = intruder.keys[scope]
        for method, path, body in [
            ("GET", f"/v1/repos/{repo}", None),
            ("GET", f"/v1/repos/{repo}/branches", None),
            ("GET", f"/v1/repos/{repo}/branches/topic", None),
            ("GET", f"/v1/repos/{repo}/commits", None),
            ("GET", f"/v1/repos/{repo}/commits/{head}", None),
        ]:
            theirs = refused(call(server, method, path, key, body), 404, "not_found")
            assert tenant.org not in json.dumps(theirs)
    admin = intruder.keys["admin"]
    refused(call(server, "POST", f"/v1/repos/{repo}/branches", admin, {"name": "mine"}), 404, "not_found")
    refused(call(server, "DELETE", f"/v1/repos/{repo}/branches/topic", admin), 404, "not_found")
    refused(call(server, "DELETE", f"/v1/repos/{repo}", admin), 404, "not_found")
    # the same answer as a repository that does not exist at all
    missing = call(server, "GET", "/v1/repos/no-such-repo-here", admin).json()
    theirs = call(server, "GET", f"/v1/repos/{repo}", admin).json()
    assert missing["code"] == theirs["code"] and missing["error"].replace("no-such-repo-here", repo) == theirs["error"]
    # nothing of the victim's leaks into the intruder's listings, and the repository is intact
    assert call(server, "GET", "/v1/repos", admin).json()["data"] == []
    assert repo not in call(server, "GET", "/v1/keys", admin).text
    names = [b["name"] for b in call(server, "GET", f"/v1/repos/{repo}/branches", tenant.keys["read"]).json()["data"]]
    assert names == ["main", "topic"]


def test_another_orgs_key_cannot_be_revoked(server, tenant):
    victim = call(server, "POST", "/v1/keys", tenant.keys["admin"], {"name": "victim", "scope": "read"}).json()["data"]
    intruder = server.tenant()
    refused(call(server, "DELETE", f"/v1/keys/{victim['id']}", intruder.keys["admin"]), 404, "not_found")
    assert call(server, "GET", "/v1/repos", victim["key"]).status_code == 200


def test_missing_malformed_revoked_and_expired_keys_are_401(server, tenant):
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer "},
                    {"Authorization": "Basic Zm9vOmJhcg=="},
                    {"Authorization": "Bearer dk-" + "A" * 43}, {"Authorization": "Bearer not-a-key"},
                    {"Authorization": "Bearer " + "dk-" + "x" * 5000}, {"Authorization": "bearer\tdk-x"}):
        body = refused(call(server, "GET", "/v1/repos", headers=headers), 401, "unauthenticated")
        assert "dk-" not in json.dumps(body)
    issued = call(server, "POST", "/v1/keys", tenant.keys["admin"], {"name": "short-lived", "scope": "admin"}).json()
    secret, key_id = issued["data"]["key"], issued["data"]["id"]
    assert call(server, "GET", "/v1/repos", secret).status_code == 200
    assert call(server, "DELETE", f"/v1/keys/{key_id}", tenant.keys["admin"]).status_code == 200
    for method, path, body in [("GET", "/v1/repos", None), ("POST", "/v1/repos", {"name": "x"}),
                               ("GET", "/v1/keys", None), ("POST", "/v1/keys", {"name": "y", "scope": "admin"}),
                               ("DELETE", f"/v1/keys/{key_id}", None)]:
        response = refused(call(server, method, path, secret, body), 401, "unauthenticated")
        assert secret not in json.dumps(response)
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import update

    from storage.models import ApiKey

    soon = call(server, "POST", "/v1/keys", tenant.keys["admin"], {
        "name": "expiring", "scope": "read",
        "expiresAt": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()}).json()["data"]
    assert call(server, "GET", "/v1/repos", soon["key"]).status_code == 200
    with server.context.db.session() as session:
        session.execute(update(ApiKey).where(ApiKey.id == soon["id"]).values(
            expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    refused(call(server, "GET", "/v1/repos", soon["key"]), 401, "unauthenticated")


def test_the_key_is_checked_before_anything_about_the_url(server, tenant):
    """A URL with NUL or bytes that are not UTF-8, or a raw body sent gzip-encoded, got 404, 422 or 415 before
    the key was looked at: a caller without a key learns nothing but that it needs one, and a read key sending
    a write learns that it may not."""
    repo = tenant.repo()
    for path in ("/v1/repos/al%00pha", "/v1/repos/%ff"):
        refused(call(server, "GET", path), 401, "unauthenticated")
    write = f"/api/repos/{tenant.org}/{repo}/workspaces/ws_x/files/a.txt"  # dojo's envelope
    response = call(server, "PUT", write, headers={"Content-Encoding": "gzip"}, data=b"x")
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated", response.text
    response = call(server, "PUT", write, tenant.keys["read"], headers={"Content-Encoding": "gzip"}, data=b"x")
    assert response.status_code == 403 and response.json()["code"] == "forbidden", response.text
    refused(call(server, "GET", "/v1/repos/%ff", tenant.keys["read"]), 422)


def test_401_carries_a_bearer_challenge(server):
    response = call(server, "GET", "/v1/repos")
    refused(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


@pytest.mark.parametrize("scope,method,path,body", [
    ("read", "POST", "/v1/repos", {"name": "nope"}),
    ("read", "POST", "/v1/repos/{repo}/branches", {"name": "nope"}),
    ("read", "DELETE", "/v1/repos/{repo}/branches/topic", None),
    ("read", "DELETE", "/v1/repos/{repo}", None),
    ("read", "POST", "/v1/keys", {"name": "nope", "scope": "read"}),
    ("read", "GET", "/v1/keys", None),
    ("agent", "POST", "/v1/repos", {"name": "nope"}),
    ("agent", "DELETE", "/v1/repos/{repo}", None),
    ("agent", "POST", "/v1/keys", {"name": "nope", "scope": "agent"}),
    ("agent", "POST", "/v1/keys", {"name": "escalate", "scope": "admin"}),
    ("agent", "GET", "/v1/keys", None),
    ("agent", "DELETE", "/v1/keys/key_whatever", None),
])
def test_scope_violations_are_403_and_change_nothing(server, site, pushed, scope, method, path, body):
    tenant = site[0]
    repo, head = pushed
    before = call(server, "GET", f"/v1/repos/{repo}/branches", tenant.keys["read"]).json()["data"]
    refused(call(server, method, path.format(repo=repo), tenant.keys[scope], body), 403, "forbidden")
    assert call(server, "GET", f"/v1/repos/{repo}/branches", tenant.keys["read"]).json()["data"] == before
    assert call(server, "GET", "/v1/repos/nope", tenant.keys["admin"]).status_code == 404
    assert call(server, "GET", f"/v1/repos/{repo}", tenant.keys["admin"]).status_code == 200


def test_read_key_may_read(server, site, pushed):
    tenant = site[0]
    repo, head = pushed
    key = tenant.keys["read"]
    for path in (f"/v1/repos/{repo}", f"/v1/repos/{repo}/branches", f"/v1/repos/{repo}/branches/topic",
                 f"/v1/repos/{repo}/commits", f"/v1/repos/{repo}/commits/{head}", "/v1/repos"):
        assert call(server, "GET", path, key).status_code == 200, path


@pytest.mark.parametrize("raw", [b"{", b"{'name': 'x'}", b'{"name": "x",}', b"\xff\xfe{}", b'{"name": NaN}',
                                 b'{"name": "\\ud800"}', b"[" * 100000, b'{"name": "x"} trailing', b"null x"])
def test_malformed_json_is_400_invalid_json(server, tenant, raw):
    response = call(server, "POST", "/v1/repos", tenant.keys["admin"], data=raw,
                    headers={"Content-Type": "application/json"})
    refused(response, 400, "invalid_json")


def test_a_key_given_twice_in_a_body_is_refused_not_resolved_to_the_last(server, site, pushed):
    """{"dry_run": true, "dry_run": false} ran a real merge: JSON parsers keep the last of a repeated key."""
    tenant = site[0]
    repo, head = pushed
    for raw in (b'{"source": "topic", "dry_run": true, "dry_run": false}', b'{"a": {"b": 1, "b": 2}}'):
        body = refused(call(server, "POST", f"/v1/repos/{repo}/merges", tenant.keys["agent"], data=raw,
                            headers={"Content-Type": "application/json"}), 400, "invalid_json")
        assert "more than once" in body["error"]
    listed = call(server, "GET", f"/v1/repos/{repo}/branches", tenant.keys["read"]).json()["data"]
    assert {b["name"]: b["headCommit"] for b in listed}["main"] == head


def test_a_query_parameter_given_twice_is_refused_not_resolved_to_the_first(server, site, pushed):
    tenant = site[0]
    repo, _ = pushed
    body = refused(call(server, "GET", f"/v1/repos/{repo}/diff?base=main&head=main&head=topic", tenant.keys["read"]),
                   422)
    assert body["details"]["fields"] == [{"loc": "head", "msg": "given more than once"}]


@pytest.mark.parametrize("body,field", [
    ([], "body"), ("x", "body"), (None, "body"), ({}, "name"), ({"name": 5}, "name"), ({"name": ["x"]}, "name"),
    ({"name": "x", "extra": 1}, "extra"), ({"name": "x" * 101}, "name"), ({"name": "!!!"}, "name"),
])
def test_wrong_shapes_are_422_with_field_details(server, tenant, body, field):
    response = call(server, "POST", "/v1/repos", tenant.keys["admin"], data=json.dumps(body),
                    headers={"Content-Type": "application/json"})
    details = refused(response, 422, "invalid")["details"]
    assert any(f["loc"] == field or f["loc"].startswith(field) for f in details["fields"]), details


def test_strict_json_types(server, site, pushed):
    tenant = site[0]
    repo, _ = pushed
    key = tenant.keys["admin"]
    refused(call(server, "POST", f"/v1/repos/{repo}/branches", key, {"name": "b1", "recordOnly": "true"}), 422)
    refused(call(server, "POST", f"/v1/repos/{repo}/branches", key, {"name": "b2", "recordOnly": 1}), 422)
    refused(call(server, "POST", "/v1/keys", key, {"name": "k", "scope": "read", "expiresAt": 4102444800}), 422)
    ok = call(server, "POST", "/v1/keys", key, {"name": "k", "scope": "read", "expiresAt": "2100-01-01T00:00:00Z"})
    assert ok.status_code == 201


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data; boundary=x",
                                          "application/x-www-form-urlencoded", "application/octet-stream"])
def test_wrong_content_type_is_415(server, tenant, content_type):
    data = b"name=x" if "urlencoded" in content_type else b"<name>x</name>"
    response = call(server, "POST", "/v1/repos", tenant.keys["admin"], data=data,
                    headers={"Content-Type": content_type})
    refused(response, 415, "unsupported_media_type")
    assert call(server, "GET", "/v1/repos/x", tenant.keys["admin"]).status_code == 404  # nothing was created


def test_json_with_charset_and_vendor_type_is_accepted(server, tenant):
    for content_type in ("application/json; charset=utf-8", "application/vnd.driftstone+json"):
        name = f"ok-{content_type.split(';')[0].replace('/', '-').replace('+', '-')}"
        response = call(server, "POST", "/v1/repos", tenant.keys["admin"], data=json.dumps({"name": name}),
                        headers={"Content-Type": content_type})
        assert response.status_code == 201, response.text


@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/nothing"), ("GET", "/v1/repos/x/nothing"), ("POST", "/v1"), ("GET", "/v2/repos"),
    ("GET", "/v1/repos/x/branches/"), ("GET", "/v1/keys/x/y"),
])
def test_unknown_routes_are_404_in_the_envelope(server, tenant, method, path):
    refused(call(server, method, path, tenant.keys["admin"]), 404, "not_found")


@pytest.mark.parametrize("method,path", [
    ("PUT", "/v1/repos"), ("PATCH", "/v1/repos/x"), ("DELETE", "/v1/repos"), ("PUT", "/v1/keys"),
    ("POST", "/v1/repos/x"), ("OPTIONS", "/v1/repos"), ("OPTIONS", "/healthz"), ("POST", "/openapi.json"),
    ("TRACE", "/v1/repos"), ("DELETE", "/healthz"),
])
def test_wrong_methods_are_405_in_the_envelope_with_allow(server, tenant, method, path):
    response = call(server, method, path, tenant.keys["admin"])
    refused(response, 405, "method_not_allowed")
    assert response.headers["Allow"]
    assert method not in {m.strip() for m in response.headers["Allow"].split(",")}


@pytest.mark.parametrize("segment", ["..", "%2e%2e", "..%2F..%2Fetc", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", ".git",
                                     "x%00y", "x%0ay", "%2fetc", "..%5c..%5cwindows", "~root", "x.git", "x%20y",
                                     "A" * 300])
def test_traversal_in_repo_names_is_not_found(server, site, pushed, segment):
    tenant = site[0]
    key = tenant.keys["admin"]
    for suffix in ("", "/branches", "/commits", "/branches/main"):
        response = requests.get(f"{server.url}/v1/repos/{segment}{suffix}", headers={"Authorization": f"Bearer {key}"},
                                timeout=30)
        assert response.status_code in (404, 422), (segment, suffix, response.status_code)
        refused(response, response.status_code)
        assert "root:" not in response.text and "[core]" not in response.text


@pytest.mark.parametrize("name", ["..%2F..%2Fconfig", "..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd", "../../config",
                                  "..", "%2e%2e%2fHEAD", "main%00", "main%2F..%2Ftopic", ".git%2Fconfig",
                                  "refs%2Fheads%2Fmain", "..%5cconfig", "-delete", "main.lock", "a%0ab"])
def test_traversal_in_branch_names_leaks_nothing(server, site, pushed, name):
    tenant = site[0]
    repo, head = pushed
    key = tenant.keys["admin"]
    for method in ("GET", "DELETE"):
        response = requests.request(method, f"{server.url}/v1/repos/{repo}/branches/{name}",
                                    headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert response.status_code in (404, 405, 422), (method, name, response.status_code, response.text)
        refused(response, response.status_code)
        assert "[core]" not in response.text and "root:" not in response.text and "ref:" not in response.text
    listed = call(server, "GET", f"/v1/repos/{repo}/commits?branch={name}", key)
    if name == "refs%2Fheads%2Fmain":  # a full ref name is a revision the API reads: main's history
        assert listed.status_code == 200 and listed.json()["data"][0]["sha"] == head, listed.text
    else:
        assert listed.status_code in (404, 422), listed.text
        refused(listed, listed.status_code)
    names = [b["name"] for b in call(server, "GET", f"/v1/repos/{repo}/branches", key).json()["data"]]
    assert names == ["main", "topic"]


@pytest.mark.parametrize("name", ["../x", "../../config", "x/../../y", "/abs", "a//b", ".hidden", "x.lock", "-x",
                                  "x\x00y", "x y", "x~1", "x:y", "a\\b", "@{-1}", "x/", "HEAD.", "é/../x"])
def test_hostile_branch_names_on_create_are_422(server, site, pushed, name):
    tenant = site[0]
    repo, head = pushed
    response = call(server, "POST", f"/v1/repos/{repo}/branches", tenant.keys["agent"], {"name": name})
    refused(response, 422, "invalid")
    names = [b["name"] for b in call(server, "GET", f"/v1/repos/{repo}/branches", tenant.keys["read"]).json()["data"]]
    assert names == ["main", "topic"]


@pytest.mark.parametrize("source", ["../../config", "refs/heads/../../config", "HEAD~1", "main~1", "main^", "@",
                                    "..", "--upload-pack=touch /tmp/pwned", "-x", "topic:main", "a" * 255])
def test_hostile_branch_sources_are_not_found(server, site, pushed, source):
    tenant = site[0]
    repo, head = pushed
    response = call(server, "POST", f"/v1/repos/{repo}/branches", tenant.keys["agent"], {"name": "new", "from": source})
    assert response.status_code in (404, 422), response.text
    refused(response, response.status_code)
    assert call(server, "GET", f"/v1/repos/{repo}/branches/new", tenant.keys["read"]).status_code == 404


@pytest.mark.parametrize("spelling", ["%E2%84%AAx", "%E2%84%AAX"])  # U+212A KELVIN SIGN, which str.lower() makes 'k'
def test_a_lookalike_letter_never_reaches_another_repository(server, spelling):
    """`/v1/repos/\u212ax` read, and deleted, the repository `kx`: slugs fold ASCII letters only."""
    tenant = server.tenant(prefix="kelvin")
    key = tenant.keys["admin"]
    assert call(server, "POST", "/v1/repos", key, {"name": "kx"}).status_code == 201
    for method, suffix in (("GET", ""), ("GET", "/branches"), ("DELETE", "")):
        refused(call(server, method, f"/v1/repos/{spelling}{suffix}", key), 404, "not_found")
    dojo = requests.get(f"{server.url}/api/repos/{tenant.org}/{spelling}/workspaces",
                        headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert dojo.status_code == 404, dojo.text
    owner = tenant.org.replace("k", "%E2%84%AA", 1)
    assert requests.get(f"{server.url}/api/repos/{owner}/kx/workspaces", headers={"Authorization": f"Bearer {key}"},
                        timeout=30).status_code == 404
    assert requests.get(f"{server.url}/api/repos/{tenant.org}/kx/workspaces", headers={"Authorization": f"Bearer {key}"},
                        timeout=30).status_code == 200
    assert call(server, "GET", "/v1/repos/KX", key).status_code == 200  # ASCII case still folds


def test_an_empty_source_is_refused_not_read_as_omitted(server, site, pushed):
    """`"from": ""` made a branch from the default head, and `"base_commit": ""` a workspace on it, as if the
    field had not been sent."""
    tenant = site[0]
    repo, _ = pushed
    refused(call(server, "POST", f"/v1/repos/{repo}/branches", tenant.keys["agent"], {"name": "nb", "from": ""}),
            422, "invalid")
    assert call(server, "GET", f"/v1/repos/{repo}/branches/nb", tenant.keys["read"]).status_code == 404
    made = requests.post(f"{server.url}/api/repos/{tenant.org}/{repo}/workspaces", json={"name": "e", "base_commit": ""},
                         headers={"Authorization": f"Bearer {tenant.keys['agent']}"}, timeout=30)
    assert made.status_code == 400 and made.json()["details"]["fields"][0]["loc"] == "base_commit", made.text


def test_hostile_repo_names_make_safe_slugs(server, tenant):
    key = tenant.keys["admin"]
    for name, slug in [("../../etc", "etc"), ("..", None), ("x/../../y", "x-y"), (".git", "git"),
                       ("evil.git", "evil"), ("a\x00b", None), ("   ", None), ("v1", "v1")]:
        response = call(server, "POST", "/v1/repos", key, {"name": name})
        if slug is None:
            refused(response, 422, "invalid")
            continue
        assert response.status_code == 201, (name, response.text)
        data = response.json()["data"]
        assert data["slug"] == slug and data["cloneUrl"].endswith(f"/{tenant.org}/{slug}.git")
        path = server.context.store.path_for(data["id"])
        assert server.context.store.root in path.parents


def test_oversized_json_body_is_413(server, tenant):
    huge = json.dumps({"name": "x", "description": "y" * (16 * 1024 * 1024)})
    response = call(server, "POST", "/v1/repos", tenant.keys["admin"], data=huge,
                    headers={"Content-Type": "application/json"}, timeout=60)
    refused(response, 413, "too_large")
    assert call(server, "GET", "/v1/repos/x", tenant.keys["admin"]).status_code == 404


def test_oversized_chunked_json_body_is_413(server, tenant):
    def chunks():
        yield b'{"name": "x", "description": "'
        for _ in range(17):
            yield b"y" * (1024 * 1024)
        yield b'"}'

    response = requests.post(server.url + "/v1/repos", data=chunks(), timeout=60,
                             headers={"Authorization": f"Bearer {tenant.keys['admin']}",
                                      "Content-Type": "application/json"})
    refused(response, 413, "too_large")


def test_big_headers_and_urls_answer_json(server, tenant):
    long_url = requests.get(server.url + "/v1/repos/" + "a" * 20000, timeout=30,
                            headers={"Authorization": f"Bearer {tenant.keys['admin']}"})
    assert long_url.status_code in (400, 404, 414) and long_url.headers["Content-Type"].startswith("application/json")
    assert "<html" not in long_url.text.lower()
    big_header = requests.get(server.url + "/v1/repos", timeout=30,
                              headers={"Authorization": f"Bearer {tenant.keys['admin']}", "X-Big": "b" * 20000})
    assert big_header.status_code in (400, 431) and "<html" not in big_header.text.lower()


def test_garbage_request_line_answers_json(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head
    assert json.loads(body)["success"] is False


def test_query_parameters_are_validated(server, site, pushed):
    tenant = site[0]
    repo, _ = pushed
    key = tenant.keys["read"]
    for query in ("page=0", "page=-1", "page=abc", "perPage=100000", "perPage=0", "page=1e9", "nope=1",
                  "page=99999999999999999999999"):
        refused(call(server, "GET", f"/v1/repos?{query}", key), 422, "invalid")
    refused(call(server, "GET", f"/v1/repos/{repo}/commits?branch=", key), 422, "invalid")


def test_a_query_string_that_is_not_utf8_is_refused(server, site, pushed):
    """werkzeug keeps an escape that is not UTF-8 as its text, so `?path=%FF` named the folder `?path=%25FF`
    names, and `?branch=%FF` looked for a branch `%FF`; as in paths, such bytes are refused."""
    tenant = site[0]
    repo, _ = pushed
    key = tenant.keys["read"]
    for value in ("%FF", "%ED%A0%80", "a%C3", "%C0%AF"):
        refused(call(server, "GET", f"/v1/repos/{repo}/commits?branch={value}", key), 422, "invalid")
    ws = requests.post(f"{server.url}/api/repos/{tenant.org}/{repo}/workspaces", json={"name": "q"},
                       headers={"Authorization": f"Bearer {tenant.keys['agent']}"}, timeout=30).json()["workspace"]
    tree = requests.get(f"{server.url}/api/repos/{tenant.org}/{repo}/workspaces/{ws['id']}/tree?path=%FF",
                        headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert tree.status_code == 400 and "UTF-8" in tree.json()["error"], tree.text
    assert call(server, "GET", f"/v1/repos/{repo}/commits?branch=%EF%BF%BD", key).status_code == 404  # a real U+FFFD
    listed = call(server, "GET", f"/v1/repos/{repo}/commits?branch=main", key)
    assert listed.status_code == 200, listed.text


def test_no_key_ever_appears_in_responses(server, site, pushed):
    tenant = site[0]
    repo, head = pushed
    admin = tenant.keys["admin"]
    issued = call(server, "POST", "/v1/keys", admin, {"name": "once", "scope": "agent", "repos": [repo]})
    assert issued.status_code == 201 and issued.json()["data"]["key"].startswith("dk-")  # shown once, at creation
    secrets = [*tenant.keys.values(), issued.json()["data"]["key"]]
    listing = call(server, "GET", "/v1/keys", admin)
    assert listing.status_code == 200
    for key in listing.json()["data"]:
        assert "key" not in key and set(key) >= {"id", "name", "scope", "prefix"}
        assert len(key["prefix"]) <= 10
    for response in (listing, call(server, "GET", "/v1/repos", admin), call(server, "GET", f"/v1/repos/{repo}", admin),
                     call(server, "GET", f"/v1/repos/{repo}/branches", admin),
                     call(server, "GET", f"/v1/repos/{repo}/commits", admin),
                     call(server, "GET", "/v1/repos", secrets[0][:-1] + "x"), call(server, "GET", "/openapi.json")):
        for secret in secrets:
            assert secret not in response.text
        assert not KEY_PATTERN.search(response.text)
    log = server.log_text()
    for secret in secrets:
        assert secret not in log


def test_a_key_sent_as_a_name_or_value_is_not_echoed_in_the_error(server, site, pushed):
    """Error messages quote what the client sent: a key pasted into a branch name, a source, an owner, a field
    name or a query parameter came back verbatim (only the unknown-route 404 blanked it)."""
    tenant = site[0]
    repo, _ = pushed
    admin, agent = tenant.keys["admin"], tenant.keys["agent"]
    answers = [
        call(server, "DELETE", f"/v1/repos/{repo}/branches/{agent}", admin),
        call(server, "GET", f"/v1/repos/{repo}/branches/{agent}", admin),
        call(server, "POST", f"/v1/repos/{repo}/branches", admin, {"name": "x", "from": agent}),
        call(server, "POST", f"/v1/repos/{repo}/branches", admin, {"name": f"{agent}..x"}),
        call(server, "POST", f"/v1/repos/{repo}/branches", admin, {"name": "x", agent: 1}),
        call(server, "GET", f"/v1/repos/{repo}/commits?branch={agent}", admin),
        call(server, "GET", f"/v1/repos?{agent}=1", admin),
        call(server, "POST", f"/v1/repos/{repo}/uploads/{agent}/complete", admin),
        requests.get(f"{server.url}/api/repos/{agent}/{repo}/workspaces", headers={"Authorization": f"Bearer {admin}"},
                     timeout=30),
        requests.post(f"{server.url}/api/repos/{tenant.org}/{repo}/workspaces", json={"name": "x", "base_commit": agent},
                      headers={"Authorization": f"Bearer {admin}"}, timeout=30),
    ]
    refused_without(answers, agent)
    assert all(not KEY_PATTERN.search(answer.text) for answer in answers)


def refused_without(answers, secret: str) -> None:
    """Every answer a client error that does not quote `secret`."""
    for answer in answers:
        assert 400 <= answer.status_code < 500, (answer.request.url, answer.status_code, answer.text)
        assert secret not in answer.text, answer.text


def test_a_key_glued_to_a_name_is_not_echoed_in_the_error_or_the_log(server, site, pushed):
    """A key glued to what comes before it (`xdk-...` in a path) is not a word of its own, and a path's 404 and
    the access log quoted it whole (an API sweep)."""
    tenant = site[0]
    repo, _ = pushed
    admin, agent = tenant.keys["admin"], tenant.keys["agent"]
    answers = [
        call(server, "GET", f"/v1/repos/{repo}/contents/x{agent}", admin),
        call(server, "GET", f"/v1/repos/{repo}/branches/feature{agent}", admin),
        call(server, "POST", f"/v1/repos/{repo}/branches", admin, {"name": "x", "from": f"main{agent}"}),
    ]
    refused_without(answers, agent[3:])
    assert agent[3:] not in server.log_text()


def test_names_that_merely_look_like_keys_are_quoted_whole(server, site, pushed):
    """The blanking of keys in error answers took `sdk-update` for a key (`sdk-[redacted]`), also in `details`,
    which clients read as data; and a git URL's unknown service quoted a key whole."""
    tenant = site[0]
    repo, _ = pushed
    agent = tenant.keys["agent"]
    for name in ("sdk-update", "jdk-17-upgrade-for-the-whole-build", "fix-authorization-bug",
                 "feature/awsdk-integration-tests-for-the-new-storage-layer-v2",  # glued, a secret's length
                 "jdk-17-upgrade-and-migrate-build-to-gradle-kotlin-dsl-everywhere"):
        assert call(server, "POST", f"/v1/repos/{repo}/branches", agent, {"name": name}).status_code == 201
        again = refused(call(server, "POST", f"/v1/repos/{repo}/branches", agent, {"name": name}), 409, "conflict")
        assert again["details"]["branch"] == name and name in again["error"], again
        assert call(server, "DELETE", f"/v1/repos/{repo}/branches/{name}", agent).status_code == 200
    service = requests.get(f"{server.url}/{tenant.org}/{repo}.git/info/refs", params={"service": agent},
                           headers={"Authorization": f"Bearer {agent}"}, timeout=30)
    assert service.status_code == 403 and agent not in service.text and "dk-[redacted]" in service.text


def test_a_body_cut_short_is_refused_and_stores_nothing(server, tenant, git, tmp_path):
    """gunicorn ends a body quietly when the client goes away; a cut-off write must not be stored as whole."""
    key = tenant.keys["admin"]
    body = b'{"name": "cut-short"}'
    answer = raw_request(server, f"POST /v1/repos HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {key}\r\n"
                                 f"Content-Type: application/json\r\nContent-Length: {len(body) + 50}\r\n\r\n", body)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert call(server, "GET", "/v1/repos/cut-short", key).status_code == 404

    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"README.md": "hi\n"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    base = f"/api/repos/{tenant.org}/{repo}"
    ws = call(server, "POST", base + "/workspaces", key, {"name": "cut", "agent_name": "a"}).json()["workspace"]["id"]
    assert call(server, "PUT", f"{base}/workspaces/{ws}/files/keep.txt", key, data=b"IMPORTANT\n").status_code == 200
    answer = raw_request(server, f"PUT {base}/workspaces/{ws}/files/keep.txt HTTP/1.1\r\nHost: h\r\n"
                                 f"Authorization: Bearer {key}\r\nContent-Length: 1000\r\n\r\n", b"partial")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    stored = call(server, "GET", f"{base}/workspaces/{ws}/files/keep.txt", key).json()
    assert base64.b64decode(stored["content"]) == b"IMPORTANT\n"


def test_a_broken_chunked_body_is_a_400(server, tenant):
    answer = raw_request(server, f"POST /v1/repos HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {tenant.keys['admin']}"
                                 "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                         b"ZZ\r\n{}\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b"Traceback" not in answer


@pytest.mark.parametrize("method,path", [("GET", "/v1//repos"), ("GET", "/v1/repos/%2F/locks"),
                                         ("GET", "/v1/repos/HEAD"), ("GET", "/v1/repos/info/refs"),
                                         ("DELETE", "/v1/keys/HEAD")])
def test_odd_api_paths_answer_in_the_api_envelope(server, tenant, method, path):
    """Merged slashes used to get Werkzeug's HTML redirect page, and paths ending like a git URL (HEAD,
    info/refs) were answered by the git router in text/plain."""
    answer = call(server, method, path, tenant.keys["admin"], headers={"Accept": "application/json"})
    assert answer.status_code in (400, 404), answer.text[:200]
    refused(answer, answer.status_code)


def test_deeply_nested_json_is_a_400(server, tenant):
    body = "[" * 1000 + '"\\u0000"' + "]" * 1000
    answer = call(server, "POST", "/v1/repos", tenant.keys["admin"], data=body,
                  headers={"Content-Type": "application/json"})
    refused(answer, 400)


def test_hostile_path_filters_are_refused_like_paths(server, tenant, git, tmp_path):
    """/v1 diff?file= and the dojo tree?path= used to answer hostile filters with an empty 200."""
    key = tenant.keys["admin"]
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    git.commit(work, {"b.txt": "b"}, "second")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    ws = call(server, "POST", f"/api/repos/{tenant.org}/{repo}/workspaces", key,
              {"name": "filters", "agent_name": "a"}).json()["workspace"]["id"]
    for hostile in (".git/config", "a/../b", "GIT~1/x", "x/.git"):
        refused(call(server, "GET", f"/v1/repos/{repo}/diff?file={hostile}", key), 422)
        answer = call(server, "GET", f"/api/repos/{tenant.org}/{repo}/workspaces/{ws}/tree?path={hostile}", key)
        assert answer.status_code == 400 and "error" in answer.json(), answer.text
    assert call(server, "GET", f"/v1/repos/{repo}/diff?file=b.txt", key).status_code == 200


def test_a_small_body_with_many_or_huge_bad_keys_gets_a_small_422(server, tenant):
    """One field error per unknown key turned a 2.3 MB body into a 16 MB answer built for 1.8 s."""
    headers = {"Authorization": f"Bearer {tenant.keys['admin']}", "Content-Type": "application/json"}
    many = {"name": "x", **{f"k{i}": 1 for i in range(200_000)}}
    response = requests.post(f"{server.url}/v1/repos", data=json.dumps(many), headers=headers, timeout=60)
    assert response.status_code == 422 and len(response.content) < 64 * 1024
    details = response.json()["details"]
    assert len(details["fields"]) == 50 and details["omittedFields"] == 200_000 - 50
    huge = {"name": "x", "k" * 500_000: 1}
    response = requests.post(f"{server.url}/v1/repos", data=json.dumps(huge), headers=headers, timeout=60)
    assert response.status_code == 422 and len(response.content) < 4 * 1024
    assert requests.get(f"{server.url}/v1/repos/x", headers=headers, timeout=30).status_code == 404
