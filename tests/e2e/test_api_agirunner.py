"""agirunner's workspaces (seed 002) on a real server: the Project view of repositories, as the document and
agirunner's platform API write it ({"data"} and {"error": {"code", "message"}, "meta"}), with the real git CLI
on the repositories behind them."""
from __future__ import annotations

import base64
import time
import uuid

import pytest
import requests

from sqlalchemy import select

from storage.models import Artifact
from tests.support import api, at_once

PLATFORM = {"name": "Platform", "description": "Workspace for platform API and dashboard work.",
            "repository_url": "https://github.com/agirunner/agirunner-platform",
            "settings": {"workspace_storage_type": "git_remote"}, "memory": {"domain": "platform"}}


def create(server, tenant, slug: str | None = None, key: str = "admin", **fields):
    body = {**PLATFORM, "slug": slug or f"platform-{uuid.uuid4().hex[:8]}", **fields}
    return api(server, tenant.keys[key], "POST", "/api/v1/workspaces", body)


def workspace(server, tenant, **fields) -> dict:
    made = create(server, tenant, **fields)
    assert made.status_code == 201, made.text
    return made.json()["data"]


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error", "meta"} and set(body["meta"]) == {"request_id", "timestamp"}, body
    return body["error"]


def test_create_answers_the_documented_record_and_its_repository_clones(server, tenant, git, tmp_path):
    made = create(server, tenant, slug="platform")
    assert made.status_code == 201, made.text
    body = made.json()
    assert set(body) == {"data", "meta"} and body["meta"]["request_id"]
    data = body["data"]
    assert (data["name"], data["slug"], data["description"], data["repository_url"]) == (
        "Platform", "platform", PLATFORM["description"], PLATFORM["repository_url"])
    assert data["memory"] == {"domain": "platform"} and data["memory_size_bytes"] == len('{"domain":"platform"}')
    assert data["memory_max_bytes"] == 1024 * 1024 and data["is_active"] is True and data["current_spec_version"] == 0
    assert data["settings"] == {"workspace_storage_type": "git_remote",
                                "credentials": {"git_token": None, "git_token_configured": False}}
    assert data["tenant_id"] == tenant.org_id and data["created_at"] and data["updated_at"]
    work = tmp_path / "work"
    git("clone", "-q", tenant.url("platform"), str(work))
    git.commit(work, {"README.md": "hello\n"})
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    repo = api(server, tenant.keys["read"], "GET", "/v1/repos/platform").json()["data"]
    assert repo["id"] == data["id"] and repo["mainHeadCommit"]  # one entity, two names


def test_create_refusals(server, tenant):
    taken = workspace(server, tenant)
    clash = create(server, tenant, slug=taken["slug"])
    assert clash.status_code == 409 and error_of(clash)["code"] == "CONFLICT"
    missing = api(server, tenant.keys["admin"], "POST", "/api/v1/workspaces", {"name": "no slug"})
    assert missing.status_code == 422
    problem = error_of(missing)
    assert problem["code"] == "SCHEMA_VALIDATION_FAILED" and problem["message"].startswith("Invalid request body: ")
    assert "slug" in problem["details"]["issues"]["fieldErrors"]
    forbidden = create(server, tenant, key="agent")
    assert forbidden.status_code == 403 and error_of(forbidden)["code"] == "FORBIDDEN"
    assert error_of(api(server, "dk-nope", "GET", "/api/v1/workspaces"))["code"] == "UNAUTHORIZED"
    token = create(server, tenant, settings={"credentials": {"git_token": "ghp_secret\nvalue"}})
    assert token.status_code == 400 and error_of(token)["code"] == "VALIDATION_ERROR"
    assert "ghp_secret" not in token.text
    nowhere = create(server, tenant, settings={"credentials": {"git_token": "ghp_secret_value"}}, repository_url=None)
    assert nowhere.status_code == 400 and "repository_url" in error_of(nowhere)["message"]
    tabbed = create(server, tenant, repository_url="https://example.com/a\tb.git")  # urlsplit drops it, git refuses it
    assert tabbed.status_code == 422 and "repository_url" in str(error_of(tabbed))
    for url in ("https://[2001:db8::1]/acme/widgets.git", "ssh://git@[2001:db8::1]:2222/acme/widgets.git"):
        literal = create(server, tenant, repository_url=url)  # an IPv6 address as a git URL spells it
        assert literal.status_code == 201 and literal.json()["data"]["repository_url"] == url, literal.text
    unclosed = create(server, tenant, repository_url="https://[2001:db8::1/acme/widgets.git")
    assert unclosed.status_code == 422 and "repository_url" in str(error_of(unclosed))
    retired = create(server, tenant, settings={"model_override": "x"})
    assert retired.status_code == 400
    assert api(server, tenant.keys["read"], "GET", "/v1/repos").json()["pagination"] is not None


def test_list_filters_pages_and_summarises_runs(server):
    tenant = server.tenant()
    made = [workspace(server, tenant, slug=f"alpha-{i}", name=f"Alpha {i}") for i in range(3)]
    other = workspace(server, tenant, slug="beta", name="Beta")
    api(server, tenant.keys["admin"], "PATCH", f"/api/v1/workspaces/{other['id']}", {"is_active": False})
    listed = api(server, tenant.keys["agent"], "GET", "/api/v1/workspaces", params={"per_page": "2"})
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert [w["slug"] for w in body["data"]] == ["beta", "alpha-2"]  # newest first
    assert {k: body["meta"][k] for k in ("total", "page", "per_page", "pages")} == {
        "total": 4, "page": 1, "per_page": 2, "pages": 2}
    assert body["data"][1]["summary"] == {"workflow_count": 0, "open_workflow_count": 0,  # seed 002's two
                                          "active_workflow_count": 0, "completed_workflow_count": 0,
                                          "attention_workflow_count": 0, "total_workflow_count": 0,
                                          "last_workflow_activity_at": None}
    found = api(server, tenant.keys["agent"], "GET", "/api/v1/workspaces", params={"q": "ALPHA 1"}).json()["data"]
    assert [w["id"] for w in found] == [made[1]["id"]]
    active = api(server, tenant.keys["agent"], "GET", "/api/v1/workspaces", params={"is_active": "false"}).json()
    assert [w["slug"] for w in active["data"]] == ["beta"]
    as_number = api(server, tenant.keys["agent"], "GET", "/api/v1/workspaces", params={"is_active": "0"}).json()
    assert [w["slug"] for w in as_number["data"]] == ["beta"]
    maybe = api(server, tenant.keys["agent"], "GET", "/api/v1/workspaces", params={"is_active": "maybe"})
    assert maybe.status_code in (400, 422) and error_of(maybe)["code"] == "SCHEMA_VALIDATION_FAILED", maybe.text
    for bad in ({"page": "0"}, {"per_page": "101"}, {"page": "x"}, {"per_page": "2.5"}):
        refused = api(server, tenant.keys["agent"], "GET", "/api/v1/workspaces", params=bad)
        assert refused.status_code == 400 and error_of(refused)["message"] == "Invalid pagination values", bad
    assert api(server, server.tenant().keys["agent"], "GET", "/api/v1/workspaces").json()["data"] == []


def test_runs_of_an_extension_count_as_the_workspaces_workflows(server, tenant):
    ws = workspace(server, tenant)
    seed = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{ws['slug']}/commits", {
        "branch": "main", "message": "seed",
        "operations": [{"action": "create", "path": "a.txt", "content": base64.b64encode(b"a\n").decode()}]})
    assert seed.status_code == 201, seed.text
    ext = api(server, tenant.keys["agent"], "POST", "/v1/extensions/create",
              {"type": "agent", "name": "Reviewer", "prompt": f"print ok {uuid.uuid4().hex}"}).json()["data"]
    run_id = api(server, tenant.keys["agent"], "POST", "/v1/extensions/run", {
        "extensionId": ext["extensionId"], "path": f"organizations/{tenant.org}/repositories/{ws['slug']}"}
    ).json()["data"]["runId"]
    deadline = time.monotonic() + 60
    while api(server, tenant.keys["read"], "GET", f"/v1/extensions/poll/{run_id}").json()["data"]["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    listed = api(server, tenant.keys["agent"], "GET", "/api/v1/workspaces", params={"q": ws["slug"]}).json()["data"]
    summary = listed[0]["summary"]
    assert (summary["completed_workflow_count"], summary["total_workflow_count"]) == (1, 1)
    assert (summary["workflow_count"], summary["open_workflow_count"]) == (1, 0)
    assert summary["last_workflow_activity_at"].endswith("Z")  # UTC, on SQLite as on PostgreSQL
    timeline = api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{ws['id']}/timeline").json()["data"]
    kinds = [item["kind"] for item in timeline]
    assert "run_summary" in kinds and "event" in kinds
    run = next(item for item in timeline if item["kind"] == "run_summary")
    assert (run["workflow_id"], run["name"], run["state"]) == (run_id, "Reviewer", "completed")
    assert run["duration_seconds"] is not None and run["link"] == f"/v1/extensions/poll/{run_id}"
    for item in timeline:  # ISO 8601 in UTC as every other answer; they read as HTTP dates to the second
        assert item["created_at"].endswith("Z") and "T" in item["created_at"], item
    assert run["started_at"].endswith("Z") and run["completed_at"].endswith("Z")


def test_get_by_id_or_slug_and_privacy(server, tenant):
    ws = workspace(server, tenant)
    for name in (ws["id"], ws["slug"]):
        got = api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{name}")
        assert got.status_code == 200 and got.json()["data"]["id"] == ws["id"]
    stranger = server.tenant()
    for method, path, body in [("GET", "", None), ("PATCH", "", {"name": "x"}), ("DELETE", "", None),
                               ("GET", "/spec", None), ("PATCH", "/memory", {"key": "k", "value": 1}),
                               ("GET", "/files", None), ("GET", "/timeline", None)]:
        answer = api(server, stranger.keys["admin"], method, f"/api/v1/workspaces/{ws['id']}{path}", body)
        assert answer.status_code == 404 and error_of(answer)["code"] == "NOT_FOUND", (method, path, answer.text)
    assert api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{ws['id']}").json()["data"]["name"] == "Platform"
    unknown = api(server, tenant.keys["agent"], "GET", "/api/v1/nothing-here")
    assert unknown.status_code == 404 and error_of(unknown)["code"] == "NOT_FOUND"


def test_patch_changes_what_it_names_and_merges_settings(server, tenant, git, tmp_path):
    ws = workspace(server, tenant)
    new_slug = f"renamed-{uuid.uuid4().hex[:6]}"
    patched = api(server, tenant.keys["admin"], "PATCH", f"/api/v1/workspaces/{ws['id']}",
                  {"name": "Platform 2", "slug": new_slug, "settings": {"default_branch": "main"}, "is_active": False})
    assert patched.status_code == 200, patched.text
    data = patched.json()["data"]
    assert (data["name"], data["slug"], data["is_active"], data["description"]) == (
        "Platform 2", new_slug, False, PLATFORM["description"])
    assert data["settings"]["workspace_storage_type"] == "git_remote" and data["settings"]["default_branch"] == "main"
    git("clone", "-q", tenant.url(new_slug), str(tmp_path / "work"))
    empty = api(server, tenant.keys["admin"], "PATCH", f"/api/v1/workspaces/{ws['id']}", {})
    assert empty.status_code == 422
    assert error_of(empty)["message"] == "Invalid request body: At least one field is required"
    other = workspace(server, tenant)
    clash = api(server, tenant.keys["admin"], "PATCH", f"/api/v1/workspaces/{ws['id']}", {"slug": other["slug"]})
    assert clash.status_code == 409
    assert api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{ws['id']}").json()["data"]["slug"] == new_slug


def test_memory_keys_are_written_and_removed_under_a_cap(server, tenant):
    ws = workspace(server, tenant)
    path = f"/api/v1/workspaces/{ws['id']}/memory"
    written = api(server, tenant.keys["agent"], "PATCH", path, {"key": "release-policy", "value": {"owner": "platform-team"}})
    assert written.status_code == 200, written.text
    assert written.json()["data"]["memory"] == {"domain": "platform", "release-policy": {"owner": "platform-team"}}
    big = api(server, tenant.keys["agent"], "PATCH", path, {"key": "big", "value": "x" * (1024 * 1024)})
    assert big.status_code == 400
    problem = error_of(big)
    assert problem["message"] == "Workspace memory patch exceeds memory_max_bytes"
    assert problem["details"]["memory_max_bytes"] == 1024 * 1024 and problem["details"]["key"] == "big"
    removed = api(server, tenant.keys["agent"], "DELETE", f"{path}/release-policy")
    assert removed.status_code == 200 and removed.json()["data"]["memory"] == {"domain": "platform"}
    again = api(server, tenant.keys["agent"], "DELETE", f"{path}/release-policy")
    assert again.status_code == 200 and again.json()["data"]["memory"] == {"domain": "platform"}
    assert api(server, tenant.keys["read"], "PATCH", path, {"key": "k", "value": 1}).status_code == 403


def test_the_spec_is_versioned(server, tenant):
    ws = workspace(server, tenant)
    path = f"/api/v1/workspaces/{ws['id']}/spec"
    empty = api(server, tenant.keys["agent"], "GET", path).json()["data"]
    assert empty == {"workspace_id": ws["id"], "version": 0, "spec": {}, "created_at": None, "created_by_type": None,
                     "created_by_id": None}
    first = {"resources": {"repo": {"type": "repository", "binding": {"url": "https://github.com/a/b"}}},
             "instructions": {"style": "terse"}}
    put = api(server, tenant.keys["admin"], "PUT", path, first)
    assert put.status_code == 200, put.text
    one = put.json()["data"]
    assert (one["version"], one["spec"], one["created_by_type"]) == (1, first, "admin")
    assert tenant.keys["admin"].startswith(one["created_by_id"]) and one["created_at"].endswith("Z")
    assert api(server, tenant.keys["admin"], "PUT", path, {"config": {"x": 1}}).json()["data"]["version"] == 2
    assert api(server, tenant.keys["agent"], "GET", path).json()["data"]["spec"] == {"config": {"x": 1}}
    assert api(server, tenant.keys["agent"], "GET", path, params={"version": "1"}).json()["data"]["spec"] == first
    assert api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{ws['id']}").json()["data"][
        "current_spec_version"] == 2
    assert api(server, tenant.keys["agent"], "GET", path, params={"version": "9"}).status_code == 404
    assert api(server, tenant.keys["agent"], "GET", path, params={"version": "x"}).status_code == 400
    for bad in ({"resources": {"r": {"type": "ftp", "binding": {}}}},
                {"resources": {"r": {"type": "api", "binding": {"base_url": "https://x", "api_key": "k"}}}},
                {"resources": {"r": {"type": "repository", "binding": {"url": "file:///etc"}}}},
                {"tools": {"available": ["a", "a"]}}):
        refused = api(server, tenant.keys["admin"], "PUT", path, bad)
        assert refused.status_code == 400 and error_of(refused)["code"] == "VALIDATION_ERROR", bad
    assert api(server, tenant.keys["agent"], "PUT", path, {"config": {}}).status_code == 403
    assert api(server, tenant.keys["agent"], "GET", path).json()["data"]["version"] == 2  # refusals stored nothing


def test_files_upload_list_read_and_delete(server, tenant):
    ws = workspace(server, tenant)
    path = f"/api/v1/workspaces/{ws['id']}/files"
    one = api(server, tenant.keys["admin"], "POST", path, {
        "file_name": "release-context.md", "content_base64": "IyBSZWxlYXNlIGNvbnRleHQK",
        "content_type": "text/markdown", "description": "Operator-provided release context."})
    assert one.status_code == 201, one.text
    record = one.json()["data"]
    assert (record["key"], record["file_name"], record["size_bytes"], record["content_type"]) == (
        "release-context-md", "release-context.md", 18, "text/markdown")
    assert record["download_url"] == f"/api/v1/workspaces/{ws['id']}/files/{record['id']}/content"
    batch = api(server, tenant.keys["admin"], "POST", f"{path}/batch", {"files": [
        {"file_name": "../../etc/notes.txt", "content_base64": base64.b64encode(b"notes").decode()},
        {"file_name": "data.bin", "key": "raw", "content_base64": base64.b64encode(bytes(range(256))).decode()}]})
    assert batch.status_code == 201, batch.text
    assert [(f["file_name"], f["key"], f["content_type"]) for f in batch.json()["data"]] == [
        ("notes.txt", "notes-txt", "application/octet-stream"), ("data.bin", "raw", "application/octet-stream")]
    listed = api(server, tenant.keys["agent"], "GET", path).json()["data"]
    assert len(listed) == 3 and listed[-1]["id"] == record["id"]  # newest first
    content = api(server, tenant.keys["agent"], "GET", record["download_url"])
    assert content.status_code == 200 and content.content == b"# Release context\n"
    assert content.headers["Content-Type"].startswith("text/markdown")
    assert content.headers["X-Content-Type-Options"] == "nosniff" and "script-src 'none'" in content.headers[
        "Content-Security-Policy"]
    assert content.headers["Content-Disposition"] == 'inline; filename="release-context.md"'
    raw = next(f for f in batch.json()["data"] if f["key"] == "raw")
    assert api(server, tenant.keys["agent"], "GET", raw["download_url"]).content == bytes(range(256))
    deleted = api(server, tenant.keys["admin"], "DELETE", f"{path}/{record['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert api(server, tenant.keys["agent"], "GET", record["download_url"]).status_code == 404
    assert len(api(server, tenant.keys["agent"], "GET", path).json()["data"]) == 2


@pytest.mark.parametrize("body, status", [
    ({"file_name": "a", "content_base64": "!!!"}, 400),
    ({"file_name": "a", "content_base64": "="}, 400),
    ({"file_name": "/", "content_base64": "YQ=="}, 400),
    ({"file_name": "a\nb", "content_base64": "YQ=="}, 400),
    ({"file_name": "a", "content_base64": ""}, 422),
    ({"content_base64": "YQ=="}, 422),
])
def test_bad_files_are_refused(server, tenant, body, status):
    ws = workspace(server, tenant)
    refused = api(server, tenant.keys["admin"], "POST", f"/api/v1/workspaces/{ws['id']}/files", body)
    assert refused.status_code == status, refused.text
    assert api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{ws['id']}/files").json()["data"] == []


def test_a_files_key_names_one_file(server, tenant):
    """The document's "stable logical key": a second file under a key (given, or derived from the same file name;
    across requests, in one batch, or at once) is refused and the first stays."""
    ws = workspace(server, tenant)
    path = f"/api/v1/workspaces/{ws['id']}/files"
    admin = tenant.keys["admin"]
    first = api(server, admin, "POST", path, {"file_name": "a.md", "key": "k1", "content_base64": "YQ=="})
    assert first.status_code == 201, first.text
    again = api(server, admin, "POST", path, {"file_name": "b.md", "key": "k1", "content_base64": "Yg=="})
    assert again.status_code == 409 and error_of(again)["code"] == "CONFLICT" and "k1" in error_of(again)["message"]
    batch = api(server, admin, "POST", f"{path}/batch", {"files": [
        {"file_name": "notes.txt", "content_base64": "YQ=="}, {"file_name": "NOTES.txt", "content_base64": "Yg=="}]})
    assert batch.status_code == 400 and "notes-txt" in error_of(batch)["message"], batch.text
    racing = at_once(6, lambda i: api(server, admin, "POST", path, {"file_name": f"r{i}.md", "key": "raced",
                                                                     "content_base64": "YQ=="}))
    assert sorted(r.status_code for r in racing) == [201] + [409] * 5
    listed = api(server, tenant.keys["agent"], "GET", path).json()["data"]
    assert sorted(f["key"] for f in listed) == ["k1", "raced"]
    assert api(server, admin, "DELETE", f"{path}/{first.json()['data']['id']}").status_code == 204
    assert api(server, admin, "POST", path, {"file_name": "b.md", "key": "k1", "content_base64": "Yg=="}).status_code \
        == 201  # replaced once the first is deleted


def test_a_batch_of_more_than_ten_stores_none(server, tenant):
    ws = workspace(server, tenant)
    files = [{"file_name": f"f{i}.txt", "content_base64": "YQ=="} for i in range(11)]
    refused = api(server, tenant.keys["admin"], "POST", f"/api/v1/workspaces/{ws['id']}/files/batch", {"files": files})
    assert refused.status_code == 400 and "at most 10" in error_of(refused)["message"]
    assert api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{ws['id']}/files").json()["data"] == []


def test_delete_removes_the_workspace_and_its_repository(server, tenant, git, tmp_path):
    ws = workspace(server, tenant)
    api(server, tenant.keys["admin"], "POST", f"/api/v1/workspaces/{ws['id']}/files",
        {"file_name": "a.txt", "content_base64": "YQ=="})
    deleted = api(server, tenant.keys["admin"], "DELETE", f"/api/v1/workspaces/{ws['id']}")
    assert deleted.status_code == 200 and deleted.json()["data"] == {"id": ws["id"], "deleted": True}
    assert api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{ws['id']}").status_code == 404
    cloned = git("clone", "-q", tenant.url(ws["slug"]), str(tmp_path / "gone"), check=False)
    assert cloned.returncode != 0
    assert workspace(server, tenant, slug=ws["slug"])["id"] != ws["id"]  # the slug is free again


def run_agent(server, tenant, ws: dict, script: str, name: str = "Reporter") -> dict:
    """An extension run of the scripted agent (tests/agents) on the workspace's repository, to its end."""
    ext = api(server, tenant.keys["agent"], "POST", "/v1/extensions/create",
              {"type": "agent", "name": name, "prompt": f"{script}\n# {uuid.uuid4().hex}"}).json()["data"]
    run_id = api(server, tenant.keys["agent"], "POST", "/v1/extensions/run", {
        "extensionId": ext["extensionId"], "path": f"organizations/{tenant.org}/repositories/{ws['slug']}"}
    ).json()["data"]["runId"]
    deadline = time.monotonic() + 60
    while True:
        polled = api(server, tenant.keys["read"], "GET", f"/v1/extensions/poll/{run_id}").json()["data"]
        if polled["status"] != "running":
            return polled
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_artifacts_agent_runs_leave_are_explored_and_downloaded(server, tenant):
    ws = workspace(server, tenant)
    done = run_agent(server, tenant, ws, "artifact report.md # Findings\nartifact data/results.json {}\n"
                                         "symlink-artifact\nprint done")
    assert done["status"] == "completed", done
    assert sorted(a["logicalPath"] for a in done["result"]["artifacts"]) == ["data/results.json", "report.md"]
    failed = run_agent(server, tenant, ws, "artifact crash.log stack trace\nfail 2 broke", name="Crasher")
    assert failed["status"] == "failed" and [a["logicalPath"] for a in failed["result"]["artifacts"]] == ["crash.log"]
    path = f"/api/v1/workspaces/{ws['id']}/artifacts"
    explored = api(server, tenant.keys["agent"], "GET", path, params={"sort": "name"})
    assert explored.status_code == 200, explored.text
    body = explored.json()
    assert [a["logical_path"] for a in body["data"]] == ["crash.log", "report.md", "data/results.json"]
    meta = body["meta"]
    assert (meta["total"], meta["total_pages"], meta["has_more"], meta["page"], meta["per_page"]) == (3, 1, False, 1, 20)
    assert meta["summary"]["total_artifacts"] == 3 and meta["summary"]["workflow_count"] == 2
    assert sorted(meta["filters"]["roles"]) == ["Crasher", "Reporter"]
    assert sorted(meta["filters"]["content_types"]) == ["application/json", "text/markdown", "text/plain"]
    report = next(a for a in body["data"] if a["logical_path"] == "report.md")
    assert (report["workflow_id"], report["task_id"], report["role"], report["workflow_state"]) == (
        done["runId"], done["runId"], "Reporter", "completed")
    assert (report["preview_eligible"], report["preview_mode"], report["content_type"]) == (True, "text", "text/markdown")
    assert report["created_at"].endswith("Z")
    content = api(server, tenant.keys["agent"], "GET", report["download_url"])
    assert content.status_code == 200 and content.content == b"# Findings\n"
    assert content.headers["X-Content-Type-Options"] == "nosniff"
    only = api(server, tenant.keys["agent"], "GET", path, params={"workflow_id": failed["runId"]}).json()["data"]
    assert [a["logical_path"] for a in only] == ["crash.log"]
    assert [a["logical_path"] for a in api(server, tenant.keys["agent"], "GET", path, params={
        "q": "RESULTS"}).json()["data"]] == ["data/results.json"]
    assert api(server, tenant.keys["agent"], "GET", path, params={"work_item_id": "w1"}).json()["data"] == []
    assert len(api(server, tenant.keys["agent"], "GET", path, params={"per_page": "2", "page": "2"}).json()["data"]) == 1
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert api(server, tenant.keys["agent"], "GET", path, params={"created_from": today, "created_to": today}).json()[
        "meta"]["total"] == 3
    assert api(server, tenant.keys["agent"], "GET", path, params={"created_to": "2000-01-01"}).json()["data"] == []
    backwards = api(server, tenant.keys["agent"], "GET", path, params={"created_from": today, "created_to": "2000-01-01"})
    assert backwards.status_code == 400
    assert api(server, tenant.keys["agent"], "GET", path, params={"created_from": "2026-02-30"}).status_code == 400
    assert api(server, tenant.keys["agent"], "GET", path, params={"sort": "random"}).status_code == 422
    stranger = server.tenant()
    assert api(server, stranger.keys["admin"], "GET", report["download_url"]).status_code == 404
    assert api(server, stranger.keys["admin"], "GET", path).status_code == 404


def verify(server, tenant, ws_id: str, **body):
    return api(server, tenant.keys["admin"], "POST", f"/api/v1/workspaces/{ws_id}/verify-git-access", body)


def test_verify_git_access_reads_a_real_repository_with_the_token(server, tenant):
    """The server reads its own repositories over http on 127.0.0.1 (allowed on this test server)."""
    ws = workspace(server, tenant)
    api(server, tenant.keys["agent"], "POST", f"/v1/repos/{ws['slug']}/commits", {
        "branch": "main", "message": "seed",
        "operations": [{"action": "create", "path": "a.txt", "content": base64.b64encode(b"a\n").decode()}]})
    url = tenant.plain_url(ws["slug"])
    good = verify(server, tenant, ws["id"], repository_url=url, default_branch="main", git_token_mode="replace",
                  git_token=tenant.keys["read"])
    assert good.status_code == 200, good.text
    assert good.json()["data"] == {"ok": True, "repository_url": url, "default_branch": "main", "branch_verified": True}
    no_branch = verify(server, tenant, ws["id"], repository_url=url, git_token_mode="replace", git_token=tenant.keys["read"])
    assert no_branch.json()["data"]["branch_verified"] is False
    missing = verify(server, tenant, ws["id"], repository_url=url, default_branch="nope", git_token_mode="replace",
                     git_token=tenant.keys["read"])
    assert missing.status_code == 400 and error_of(missing)["message"] == 'Default branch "nope" could not be verified.'
    wrong = "dk-" + "x" * 43
    denied = verify(server, tenant, ws["id"], repository_url=url, git_token_mode="replace", git_token=wrong)
    assert denied.status_code == 400
    assert error_of(denied)["message"] == "Git access failed while verifying the repository. Check the repository token."
    anonymous = verify(server, tenant, ws["id"], repository_url=url, git_token_mode="clear")
    assert anonymous.status_code == 400 and "Check the repository token" in error_of(anonymous)["message"]
    for answer in (good, missing, denied):
        assert tenant.keys["read"] not in answer.text and wrong not in answer.text
    assert tenant.keys["read"] not in server.log_text()


@pytest.mark.parametrize("url, status, says", [
    ("file:///etc", 422, "Invalid request body"),
    ("ext::sh -c touch% /tmp/pwned", 422, "Invalid request body"),
    ("https://user:secret@example.com/x.git", 422, "without credentials in it"),
    ("https://example.com:99999/x.git", 422, "a port up to 65535"),
])
def test_verify_git_access_refuses_urls_that_break_the_rules(server, tenant, url, status, says):
    ws = workspace(server, tenant)
    refused = verify(server, tenant, ws["id"], repository_url=url, git_token_mode="clear")
    assert refused.status_code == status and says in error_of(refused)["message"], refused.text
    assert "secret" not in refused.text


def test_verify_git_access_refuses_loopback_and_http_unless_the_operator_allows_them(small_limits_server):
    tenant = small_limits_server.tenant()
    ws = workspace(small_limits_server, tenant)
    for url, says in [(tenant.plain_url(ws["slug"]), "only https"),
                      (f"https://127.0.0.1:{small_limits_server.port}/x.git", "not public"),
                      ("https://localhost/x.git", "not public")]:
        refused = verify(small_limits_server, tenant, ws["id"], repository_url=url, git_token_mode="clear")
        assert refused.status_code == 400 and says in error_of(refused)["message"], (url, refused.text)
    replace = verify(small_limits_server, tenant, ws["id"], repository_url="https://example.com/x.git",
                     git_token_mode="replace")
    assert replace.status_code == 422 and "git_token is required" in error_of(replace)["message"]


def test_a_planning_workflow_is_an_agent_run_on_the_default_branch(server, tenant, git, tmp_path):
    ws = workspace(server, tenant)
    started = api(server, tenant.keys["admin"], "POST", f"/api/v1/workspaces/{ws['id']}/planning-workflow",
                  {"brief": "Survey the workspace and propose a staged delivery plan.\nwrite PLAN.md 1. stage one\n"
                            "artifact plan-notes.md considered", "name": "Workspace planning run"})
    assert started.status_code == 201, started.text
    workflow = started.json()["data"]
    assert (workflow["workspace_id"], workflow["name"], workflow["state"]) == (ws["id"], "Workspace planning run",
                                                                              "pending")
    deadline = time.monotonic() + 60
    while (polled := api(server, tenant.keys["read"], "GET", workflow["link"]).json()["data"])["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert polled["status"] == "completed", polled
    work = tmp_path / "work"
    git("clone", "-q", "--branch", polled["result"]["branch"], tenant.url(ws["slug"]), str(work))
    assert (work / "PLAN.md").read_text() == "1. stage one\n"
    timeline = api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{ws['id']}/timeline").json()["data"]
    assert [(t["workflow_id"], t["name"]) for t in timeline if t["kind"] == "run_summary"] == [
        (workflow["id"], "Workspace planning run")]
    explored = api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{ws['id']}/artifacts").json()["data"]
    assert [(a["logical_path"], a["workflow_name"]) for a in explored] == [("plan-notes.md", "Workspace planning run")]
    assert api(server, tenant.keys["agent"], "POST", f"/api/v1/workspaces/{ws['id']}/planning-workflow",
               {"brief": "x"}).status_code == 403


def test_concurrent_memory_writes_and_deletes_lose_nothing(server, tenant):
    """20 keys written at once, then 10 of them deleted at once (a review found 16 of 20 lost)."""
    ws = workspace(server, tenant)
    path = f"/api/v1/workspaces/{ws['id']}/memory"
    written = at_once(20, lambda i: api(server, tenant.keys["agent"], "PATCH", path, {"key": f"k{i}", "value": i}))
    assert [w.status_code for w in written] == [200] * 20
    memory = api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{ws['id']}").json()["data"]["memory"]
    assert memory == {"domain": "platform", **{f"k{i}": i for i in range(20)}}
    removed = at_once(10, lambda i: api(server, tenant.keys["agent"], "DELETE", f"{path}/k{i}"))
    assert [r.status_code for r in removed] == [200] * 10
    memory = api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{ws['id']}").json()["data"]["memory"]
    assert memory == {"domain": "platform", **{f"k{i}": i for i in range(10, 20)}}
    settings = at_once(10, lambda i: api(server, tenant.keys["admin"], "PATCH", f"/api/v1/workspaces/{ws['id']}",
                                         {"settings": {f"s{i}": i}}))
    assert [r.status_code for r in settings] == [200] * 10
    kept = api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{ws['id']}").json()["data"]["settings"]
    assert all(kept.get(f"s{i}") == i for i in range(10)), kept


def test_renames_racing_for_one_slug_give_one_200_and_409s(server, tenant):
    spaces = [workspace(server, tenant) for _ in range(6)]
    target = f"race-{uuid.uuid4().hex[:6]}"
    answers = at_once(6, lambda i: api(server, tenant.keys["admin"], "PATCH", f"/api/v1/workspaces/{spaces[i]['id']}",
                                       {"slug": target}))
    assert sorted(a.status_code for a in answers) == [200] + [409] * 5, [a.text for a in answers]


def test_a_file_of_several_mebibytes_and_any_name_comes_back_whole(server, tenant):
    ws = workspace(server, tenant)
    data = bytes(range(256)) * (5 * 4096)  # 5 MiB
    made = api(server, tenant.keys["admin"], "POST", f"/api/v1/workspaces/{ws['id']}/files",
               {"file_name": "文件 名 😀.bin", "content_base64": base64.b64encode(data).decode()})
    assert made.status_code == 201, made.text[:300]
    content = api(server, tenant.keys["agent"], "GET", made.json()["data"]["download_url"])
    assert content.status_code == 200 and content.content == data
    assert content.headers["Content-Disposition"] == (
        "inline; filename=\"__ _ _.bin\"; filename*=UTF-8''%E6%96%87%E4%BB%B6%20%E5%90%8D%20%F0%9F%98%80.bin")


@pytest.mark.parametrize("body", [
    {"file_name": "ct.txt", "content_base64": "YQ==", "content_type": "text/plain\r\nX-Evil: 1"},
    {"file_name": ".", "content_base64": "YQ=="},
    {"file_name": "a/..", "content_base64": "YQ=="},
])
def test_header_tricks_and_dot_names_are_refused(server, tenant, body):
    ws = workspace(server, tenant)
    refused = api(server, tenant.keys["admin"], "POST", f"/api/v1/workspaces/{ws['id']}/files", body)
    assert refused.status_code in (400, 422), refused.text
    assert api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{ws['id']}/files").json()["data"] == []


@pytest.mark.parametrize("params", [{"page": "inf"}, {"page": "1e400"}, {"page": "1_0"}, {"per_page": "１"},
                                    {"page": "99999999999"}])
def test_odd_page_numbers_are_a_400(server, tenant, params):
    refused = api(server, tenant.keys["agent"], "GET", "/api/v1/workspaces", params=params)
    assert refused.status_code == 400 and error_of(refused)["message"] == "Invalid pagination values"


def test_out_of_range_numbers_are_refused_and_huge_versions_not_found(server, tenant):
    ws = workspace(server, tenant)
    for version in ("99999999999999999999", "2147483648"):
        assert api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{ws['id']}/spec",
                   params={"version": version}).status_code == 404
    raw = requests.patch(f"{server.url}/api/v1/workspaces/{ws['id']}/memory", data=b'{"key": "inf", "value": 1e999}',
                         headers={"Authorization": f"Bearer {tenant.keys['agent']}", "Content-Type": "application/json"},
                         timeout=60)
    assert raw.status_code == 400, raw.text
    assert "inf" not in api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{ws['id']}").json()["data"]["memory"]


def test_a_memory_key_with_a_slash_can_be_deleted(server, tenant):
    ws = workspace(server, tenant)
    path = f"/api/v1/workspaces/{ws['id']}/memory"
    api(server, tenant.keys["agent"], "PATCH", path, {"key": "a/b", "value": 1})
    removed = api(server, tenant.keys["agent"], "DELETE", f"{path}/a/b")
    assert removed.status_code == 200 and "a/b" not in removed.json()["data"]["memory"]


def test_credentials_in_repository_url_and_secrets_deep_in_a_spec_are_refused(server, tenant):
    key = tenant.keys["admin"]
    refused = create(server, tenant, repository_url=f"https://u:{key}@example.com/x.git")
    assert refused.status_code == 422 and key not in refused.text and "credentials" in refused.text
    ws = workspace(server, tenant)
    # URLs that do not parse (a port out of range, a bracket left open) are repeated without what precedes the @
    token = f"ghp_{uuid.uuid4().hex}"  # another server's token: this one's own keys are blanked wherever they appear
    for url in (f"https://u:{token}@example.com:99999/x.git", f"https://u:{token}@[::1/x.git"):
        for answer in (create(server, tenant, repository_url=url),
                       api(server, key, "PATCH", f"/api/v1/workspaces/{ws['id']}", {"repository_url": url}),
                       api(server, key, "PUT", f"/v1/repos/{ws['slug']}/remotes/upstream", {"url": url})):
            assert answer.status_code in (400, 422) and token not in answer.text and token[4:20] not in answer.text, \
                answer.text
    nested = api(server, tenant.keys["admin"], "PUT", f"/api/v1/workspaces/{ws['id']}/spec", {"resources": {"r": {
        "type": "api", "binding": {"base_url": "https://x", "headers": {"Authorization": "Bearer sk-123"}}}}})
    assert nested.status_code == 400 and "headers.Authorization" in error_of(nested)["message"]


def test_a_cascade_delete_stops_the_running_agent_and_keeps_nothing_it_left(server, tenant):
    ws = workspace(server, tenant)
    api(server, tenant.keys["agent"], "POST", f"/v1/repos/{ws['slug']}/commits", {
        "branch": "main", "message": "seed",
        "operations": [{"action": "create", "path": "a.txt", "content": base64.b64encode(b"a\n").decode()}]})
    ext = api(server, tenant.keys["agent"], "POST", "/v1/extensions/create",
              {"type": "agent", "name": "slow", "prompt": f"sleep 30\nartifact late.md x\n# {uuid.uuid4().hex}"})
    run_id = api(server, tenant.keys["agent"], "POST", "/v1/extensions/run", {
        "extensionId": ext.json()["data"]["extensionId"],
        "path": f"organizations/{tenant.org}/repositories/{ws['slug']}"}).json()["data"]["runId"]
    time.sleep(1)
    deleted = api(server, tenant.keys["admin"], "DELETE", f"/api/v1/workspaces/{ws['id']}", params={"cascade": "true"})
    assert deleted.status_code == 200, deleted.text
    polled = api(server, tenant.keys["read"], "GET", f"/v1/extensions/poll/{run_id}").json()["data"]
    assert (polled["status"], polled["error"]) == ("failed", "the workspace was deleted")
    time.sleep(20)  # the job's next heartbeat (every 15 s) sees the run taken away and stops the agent
    with server.context.db.session() as session:
        assert session.scalars(select(Artifact).where(Artifact.run_id == run_id)).all() == []
    assert api(server, tenant.keys["read"], "GET", f"/v1/extensions/poll/{run_id}").json()["data"]["status"] == "failed"
