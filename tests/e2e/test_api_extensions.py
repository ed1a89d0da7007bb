"""Extensions (seed 001) on a real server: create / update / delete / run / poll as the document writes them, runs
of a real agent program (tests/agents/scripted_agent.py, following its prompt) as background jobs (in-process,
or rq with `driftstone worker` under DRIFTSTONE_TEST_REDIS_URL), their changes committed onto a branch of their
own and cloned back with git."""
from __future__ import annotations

import base64
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import AGENT_TOKEN
from tests.support import api, at_once

EXTENSION = {"type": "agent", "name": "README reviewer", "description": "Reviews README updates before publishing.",
             "presets": ["openclaw"]}


def new_repo(server, tenant, files: dict[str, str] | None = None) -> str:
    created = api(server, tenant.keys["admin"], "POST", "/v1/repos", {"name": f"ext-{uuid.uuid4().hex[:8]}"})
    assert created.status_code == 201, created.text
    slug = created.json()["data"]["slug"]
    if files:
        operations = [{"action": "create", "path": path, "content": base64.b64encode(text.encode()).decode()}
                      for path, text in files.items()]
        made = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{slug}/commits",
                   {"branch": "main", "message": "seed", "operations": operations})
        assert made.status_code == 201, made.text
    return slug


def create(server, tenant, prompt: str, **fields):
    return api(server, tenant.keys["agent"], "POST", "/v1/extensions/create", {**EXTENSION, "prompt": prompt, **fields})


def extension(server, tenant, prompt: str | None = None) -> str:
    made = create(server, tenant, prompt or f"Inspect the README. {uuid.uuid4().hex}")
    assert made.status_code == 201, made.text
    return made.json()["data"]["extensionId"]


def listed(server, tenant, ext_id: str) -> dict | None:
    found = api(server, tenant.keys["read"], "GET", "/v1/extensions").json()["data"]
    return next((e for e in found if e["extensionId"] == ext_id), None)


def storage_path(tenant, repo: str, rest: str = "main") -> str:
    return f"organizations/{tenant.org_id}/repositories/{repo}/{rest}"


def run(server, tenant, extension_id: str, path: str, prompt: str | None = None, key: str = "agent"):
    body = {"extensionId": extension_id, "path": path}
    if prompt is not None:
        body["prompt"] = prompt
    return api(server, tenant.keys[key], "POST", "/v1/extensions/run", body)


def finished(server, tenant, run_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        polled = api(server, tenant.keys["read"], "GET", f"/v1/extensions/poll/{run_id}")
        assert polled.status_code == 200, polled.text
        data = polled.json()["data"]
        assert data["status"] in ("running", "completed", "failed")
        if data["status"] != "running":
            return data
        assert time.monotonic() < deadline, data
        time.sleep(0.2)


def run_to_end(server, tenant, repo: str, script: str, files: dict[str, str] | None = None) -> dict:
    started = run(server, tenant, extension(server, tenant), storage_path(tenant, repo), script)
    assert started.status_code == 202, started.text
    return finished(server, tenant, started.json()["data"]["runId"])


def clone(server, tenant, git, repo: str, branch: str, into) -> None:
    git("clone", "-q", "--branch", branch, tenant.url(repo), str(into))


def test_create_update_list_delete_as_the_document_writes_them(server, tenant):
    prompt = f"Inspect the README and suggest concise release-note updates. {uuid.uuid4().hex}"
    made = create(server, tenant, prompt)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["success"] is True
    data = body["data"]
    ext_id = data["extensionId"]
    assert ext_id.startswith("ext-") and data["id"] == ext_id
    assert (data["type"], data["name"], data["prompt"], data["presets"], data["status"]) == (
        "agent", "README reviewer", prompt, ["openclaw"], "active")
    updated = api(server, tenant.keys["agent"], "POST", "/v1/extensions/update",
                  {"extensionId": ext_id, "status": "disabled", "prompt": "Inspect docs changes only. " + prompt})
    assert updated.status_code == 200, updated.text
    assert updated.json()["data"]["status"] == "disabled"
    assert updated.json()["data"]["name"] == "README reviewer"  # what the update did not name stays
    every = api(server, tenant.keys["read"], "GET", "/v1/extensions").json()["data"]
    assert [e["extensionId"] for e in every] == [ext_id]
    assert listed(server, tenant, ext_id)["prompt"].startswith("Inspect docs changes only.")
    deleted = api(server, tenant.keys["agent"], "POST", "/v1/extensions/delete", {"extensionId": ext_id})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["data"]["extensionId"] == ext_id
    assert listed(server, tenant, ext_id) is None
    again = api(server, tenant.keys["agent"], "POST", "/v1/extensions/delete", {"extensionId": ext_id})
    assert again.status_code == 404 and again.json()["code"] == "not_found"


def test_a_duplicate_prompt_in_one_organization_is_refused_but_not_across_organizations(server, tenant):
    prompt = f"Summarize the changes. {uuid.uuid4().hex}"
    assert create(server, tenant, prompt).status_code == 201
    duplicate = create(server, tenant, prompt, name="another name")
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "conflict"
    other = create(server, tenant, f"Something else. {uuid.uuid4().hex}")
    onto = api(server, tenant.keys["agent"], "POST", "/v1/extensions/update",
               {"extensionId": other.json()["data"]["extensionId"], "prompt": prompt})
    assert onto.status_code == 409
    assert listed(server, tenant, other.json()["data"]["extensionId"])["prompt"] != prompt  # nothing changed
    assert create(server, server.tenant(), prompt).status_code == 201


@pytest.mark.parametrize("body, field", [
    ({"type": "tool"}, "type"),
    ({"presets": ["other"]}, "presets.0"),
    ({"name": ""}, "name"),
    ({"prompt": ""}, "prompt"),
    ({"name": "   "}, "name"),
    ({"prompt": " \n\t "}, "prompt"),
    ({"unknown": 1}, "unknown"),
])
def test_bad_fields_are_a_422_naming_them(server, tenant, body, field):
    made = api(server, tenant.keys["agent"], "POST", "/v1/extensions/create",
               {**EXTENSION, "prompt": f"Prompt {uuid.uuid4().hex}", **body})
    assert made.status_code == 422, made.text
    assert field in [f["loc"] for f in made.json()["details"]["fields"]]


def test_update_needs_a_mutable_field_and_a_known_status(server, tenant):
    ext_id = extension(server, tenant)
    bare = api(server, tenant.keys["agent"], "POST", "/v1/extensions/update", {"extensionId": ext_id})
    assert bare.status_code == 422 and bare.json()["code"] == "invalid"
    bad = api(server, tenant.keys["agent"], "POST", "/v1/extensions/update", {"extensionId": ext_id, "status": "paused"})
    assert bad.status_code == 422
    assert listed(server, tenant, ext_id)["status"] == "active"


def test_scopes_and_privacy(server, tenant):
    ext_id = extension(server, tenant)
    refused = api(server, tenant.keys["read"], "POST", "/v1/extensions/create", {**EXTENSION, "prompt": "read keys"})
    assert refused.status_code == 403
    assert api(server, "dk-wrong", "GET", "/v1/extensions").status_code == 401
    stranger = server.tenant()
    repo = new_repo(server, stranger, {"README.md": "theirs\n"})
    for method, path, body in [
        ("POST", "/v1/extensions/update", {"extensionId": ext_id, "name": "taken"}),
        ("POST", "/v1/extensions/delete", {"extensionId": ext_id}),
        ("POST", "/v1/extensions/run", {"extensionId": ext_id, "path": storage_path(stranger, repo)}),
    ]:
        answer = api(server, stranger.keys["admin"], method, path, body)
        assert answer.status_code == 404, (path, answer.text)
    assert api(server, stranger.keys["read"], "GET", "/v1/extensions").json()["data"] == []
    assert listed(server, tenant, ext_id)["name"] == "README reviewer"


def test_a_run_commits_the_agents_changes_onto_a_branch_of_its_own(server, tenant, git, tmp_path):
    repo = new_repo(server, tenant, {"README.md": "# hello\n", "docs/old.md": "old\n", "tool.sh": "echo\n"})
    head = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}").json()["data"]["mainHeadCommit"]
    ext_id = extension(server, tenant, "Review the README.\nappend README.md release notes: v1\n")
    started = run(server, tenant, ext_id, storage_path(tenant, repo),
                  "write docs/new.md fresh\ndelete docs/old.md\nchmod+x tool.sh\nprint reviewed 3 files")
    assert started.status_code == 202, started.text
    accepted = started.json()["data"]
    assert accepted["status"] == "running" and accepted["runId"].startswith("run-")
    assert (accepted["branch"], accepted["baseCommit"]) == ("main", head)
    done = finished(server, tenant, accepted["runId"])
    assert done["status"] == "completed", (done["error"], done["result"])
    result = done["result"]
    assert result["output"] == "reviewed 3 files\n" and result["exitCode"] == 0
    assert result["branch"] == f"extensions/{accepted['runId']}" and result["baseCommit"] == head
    assert result["changes"] == [{"path": "README.md", "action": "update"}, {"path": "docs/new.md", "action": "create"},
                                 {"path": "docs/old.md", "action": "delete"}, {"path": "tool.sh", "action": "update"}]
    assert done["finishedAt"] and done["startedAt"] and done["error"] is None
    work = tmp_path / "work"
    clone(server, tenant, git, repo, result["branch"], work)
    assert (work / "README.md").read_text() == "# hello\nrelease notes: v1\n"
    assert (work / "docs" / "new.md").read_text() == "fresh\n" and not (work / "docs" / "old.md").exists()
    assert git.out("ls-files", "-s", "tool.sh", cwd=work).startswith("100755")
    assert git.out("rev-parse", "HEAD^", cwd=work).strip() == head
    message = git.out("log", "-1", "--format=%B", cwd=work)
    assert message.startswith("Review the README.") and f"Intent-Run: {accepted['runId']}" in message
    main = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}").json()["data"]["mainHeadCommit"]
    assert main == head  # the run's branch is for review; main does not move
    branch = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/branches/{result['branch']}")
    assert branch.status_code == 200
    assert (branch.json()["data"]["headCommit"], branch.json()["data"]["baseBranch"]) == (result["commit"], "main")


def test_a_finished_run_is_a_workflow_run_event_for_the_repositorys_webhooks(server, tenant, receiver):
    """An agent waiting for its run polled; a webhook subscribed to workflow_run is told instead (GitHub's)."""
    repo = new_repo(server, tenant, {"a.txt": "a\n"})
    made = api(server, tenant.keys["admin"], "POST", f"/v1/repos/{repo}/webhooks",
               {"url": receiver.url, "events": ["workflow_run"]})
    assert made.status_code == 201, made.text
    done = run_to_end(server, tenant, repo, "write b.txt b\nprint done")
    failed = run_to_end(server, tenant, repo, "fail 2 no model")
    told = {body["workflowRun"]["id"]: body for _, body in receiver.wait_for("workflow_run", 2)}
    success, failure = told[done["runId"]], told[failed["runId"]]
    assert (success["action"], success["workflowRun"]["conclusion"], success["workflowRun"]["commit"]) == (
        "completed", "success", done["result"]["commit"])
    assert success["workflowRun"]["link"] == f"/v1/extensions/poll/{done['runId']}"
    assert success["repository"]["slug"] == repo and success["actorKeyId"]
    assert (failure["workflowRun"]["conclusion"], failure["workflowRun"]["error"]) == (
        "failure", "the agent exited with status 2: no model")


def test_the_run_prompt_is_appended_to_the_extension_prompt(server, tenant):
    repo = new_repo(server, tenant, {"a.txt": "a\n"})
    ext_id = extension(server, tenant, "Base instructions.\nprint-prompt")
    done = finished(server, tenant, run(server, tenant, ext_id, storage_path(tenant, repo),
                                        "Focus on docs/README.md.").json()["data"]["runId"])
    assert done["status"] == "completed"
    assert done["result"]["output"] == "Base instructions.\nprint-prompt\n\nFocus on docs/README.md.\n"
    assert done["result"]["commit"] is None and done["result"]["branch"] is None and done["result"]["changes"] == []


def test_a_failing_agent_fails_the_run_with_its_exit_status_and_what_it_said(server, tenant):
    repo = new_repo(server, tenant, {"a.txt": "a\n"})
    done = run_to_end(server, tenant, repo, "write a.txt changed\nprint halfway\nfail 3 could not reach the model")
    assert done["status"] == "failed"
    assert done["error"] == "the agent exited with status 3: could not reach the model"
    assert done["result"] == {"output": "halfway\n", "exitCode": 3, "artifacts": []}
    branches = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/branches").json()["data"]
    assert [b["name"] for b in branches] == ["main"]  # nothing of a failed run is committed


def test_an_agent_past_its_time_limit_is_stopped(small_limits_server):
    tenant = small_limits_server.tenant()
    repo = new_repo(small_limits_server, tenant, {"a.txt": "a\n"})
    begun = time.monotonic()
    done = run_to_end(small_limits_server, tenant, repo, "print started\nsleep 60")
    assert done["status"] == "failed" and "past its 3 s limit" in done["error"]
    assert done["result"]["output"] == "started\n"
    assert time.monotonic() - begun < 50


def test_what_git_cannot_take_is_left_out_and_reported(server, tenant, git, tmp_path):
    repo = new_repo(server, tenant, {"a.txt": "a\n"})
    done = run_to_end(server, tenant, repo, "write .git/config [core]\nwrite sub/.GIT/hooks/x boom\n"
                                            "symlink link /etc/passwd\nwrite kept.txt kept")
    assert done["status"] == "completed", (done["error"], done["result"])
    assert done["result"]["changes"] == [{"path": "kept.txt", "action": "create"}]
    assert sorted(done["result"]["skipped"], key=lambda s: s["path"]) == [
        {"path": ".git", "reason": "a .git directory"}, {"path": "link", "reason": "a symlink"},
        {"path": "sub/.GIT", "reason": "a .git directory"}]
    work = tmp_path / "work"
    clone(server, tenant, git, repo, done["result"]["branch"], work)
    assert sorted(p.name for p in work.iterdir() if p.name != ".git") == ["a.txt", "kept.txt"]


def test_a_file_over_the_object_limit_fails_the_run(small_limits_server):
    tenant = small_limits_server.tenant()
    repo = new_repo(small_limits_server, tenant, {"a.txt": "a\n"})
    done = run_to_end(small_limits_server, tenant, repo, f"big huge.bin {2 * 1024 * 1024}")
    assert done["status"] == "failed" and "huge.bin is larger than the 1048576 byte limit" in done["error"]


@pytest.mark.parametrize("secret_file", ["../../../secret_key", "{data}/secret_key", "{data}/driftstone.db"])
def test_the_agent_sees_nothing_of_the_servers_data(server, tenant, secret_file):
    """Its sandbox hides the data directory (keys, database, every organization's repositories)."""
    repo = new_repo(server, tenant, {"a.txt": "a\n"})
    done = run_to_end(server, tenant, repo, "print-file " + secret_file.format(data=server.data_dir))
    assert done["status"] == "failed" and "No such file or directory" in done["error"], done
    done = run_to_end(server, tenant, repo, f"write {server.data_dir}/repos/planted x")
    assert done["status"] == "failed" and "Read-only file system" in done["error"], done
    assert not (server.data_dir / "repos" / "planted").exists()


def test_the_agent_has_a_temporary_directory_of_its_own(server, tenant):
    """/tmp is shared by every process of the machine: the server's scratch files and other runs' (another
    organization's agent read the commits the server was checking there). The agent's /tmp is its own, writable,
    gone with it."""
    planted = Path(tempfile.gettempdir()) / f"driftstone-test-{uuid.uuid4().hex}"
    planted.write_text("the server's scratch\n")
    written = Path("/tmp") / f"driftstone-agent-{uuid.uuid4().hex}"
    try:
        repo = new_repo(server, tenant, {"a.txt": "a\n"})
        done = run_to_end(server, tenant, repo, f"print-file {planted}")
        assert done["status"] == "failed" and "No such file or directory" in done["error"], done
        done = run_to_end(server, tenant, repo, f"write {written} mine\nprint-file {written}")
        assert done["status"] == "completed" and "mine" in done["result"]["output"], done
        assert not written.exists()
    finally:
        planted.unlink()


def test_the_agent_gets_no_secret_of_the_server_and_passed_on_values_are_blanked(server, tenant):
    repo = new_repo(server, tenant, {"a.txt": "a\n"})
    done = run_to_end(server, tenant, repo, "print-env")
    assert done["status"] == "completed"
    env = dict(line.split("=", 1) for line in done["result"]["output"].splitlines() if "=" in line)
    assert env["AGENT_TEST_TOKEN"] == "[redacted]"  # passed on by the operator, never echoed back
    assert not [name for name in env if name.startswith("DRIFTSTONE_") and name not in (
        "DRIFTSTONE_RUN_ID", "DRIFTSTONE_EXTENSION_ID", "DRIFTSTONE_STORAGE_PATH", "DRIFTSTONE_BRANCH",
        "DRIFTSTONE_BASE_COMMIT", "DRIFTSTONE_PRESETS", "DRIFTSTONE_PROMPT_FILE", "DRIFTSTONE_ARTIFACTS_DIR")]
    text = str(done)
    for secret in [AGENT_TOKEN, server.context.settings.secret_key, *tenant.keys.values()]:
        assert secret not in text
    assert AGENT_TOKEN not in server.log_text()


def test_the_agent_may_read_the_token_the_operator_passes(server, tenant):
    """It has the value (its model's key, say), though the run's output shows it blanked."""
    repo = new_repo(server, tenant, {"a.txt": "a\n"})
    done = run_to_end(server, tenant, repo, "print-env")
    assert "AGENT_TEST_TOKEN=[redacted]" in done["result"]["output"]


@pytest.mark.parametrize("rest, status, code", [
    ("main/../../other", 422, "invalid"),
    ("no-such-branch", 404, "not_found"),
    ("main/ver-00000000", 409, "stale_ref"),
])
def test_bad_storage_paths(server, tenant, rest, status, code):
    repo = new_repo(server, tenant, {"a.txt": "a\n"})
    started = run(server, tenant, extension(server, tenant), storage_path(tenant, repo, rest))
    assert started.status_code == status, started.text
    assert started.json()["code"] == code


@pytest.mark.parametrize("path", ["hello-world/main", "organizations//repositories/x/main", "/etc/passwd",
                                  "organizations/x/projects/y"])
def test_paths_of_another_shape_are_a_422(server, tenant, path):
    started = run(server, tenant, extension(server, tenant), path)
    assert started.status_code == 422 and started.json()["details"]["fields"][0]["loc"] == "path"


def test_another_organizations_path_is_not_found(server, tenant):
    stranger = server.tenant()
    theirs = new_repo(server, stranger, {"a.txt": "a\n"})
    mine = new_repo(server, tenant, {"a.txt": "a\n"})
    ext_id = extension(server, tenant)
    for path in (storage_path(stranger, theirs), f"organizations/{stranger.org}/repositories/{theirs}/main",
                 f"organizations/{stranger.org_id}/repositories/{mine}/main"):
        started = run(server, tenant, ext_id, path)
        assert started.status_code == 404, (path, started.text)


def test_the_org_slug_and_an_uploaded_identifier_name_the_path(server, tenant):
    repo = new_repo(server, tenant, {"a.txt": "a\n"})
    ext_id = extension(server, tenant, "print ok")
    assert run(server, tenant, ext_id, f"organizations/{tenant.org}/repositories/{repo}").status_code == 202
    upload = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/uploads",
                 {"identifier": "ver-1234abcd", "files": [{"name": "README.md", "hash": "a" * 64}]})
    assert upload.status_code in (200, 201), upload.text  # requested, not completed: main's head is unnamed
    assert run(server, tenant, ext_id, storage_path(tenant, repo, "main/ver-1234abcd")).status_code == 409


def test_any_uploaded_identifier_names_the_path_after_a_branch(server, tenant):
    """An upload takes identifiers other than `ver-...` (`release.1`); a run path ending in one after a branch was
    read as a branch of that whole name: 404."""
    from tests.e2e.test_api_uploads import upload_tree

    repo = new_repo(server, tenant, {"a.txt": "a\n"})
    ext_id = extension(server, tenant, "print ok")
    assert api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches",
               {"name": "feature/x"}).status_code == 201
    for branch in ("main", "feature/x"):
        done = upload_tree(server, tenant, repo, "release.1", {"README.md": b"hi\n"}, branch=branch)
        started = run(server, tenant, ext_id, storage_path(tenant, repo, f"{branch}/release.1"))
        assert started.status_code == 202, started.text
        polled = finished(server, tenant, started.json()["data"]["runId"])
        assert polled["branch"] == branch and polled["baseCommit"] == done["commit"], polled
    stale = run(server, tenant, ext_id, storage_path(tenant, repo, "main/release.0"))
    assert stale.status_code == 409 and stale.json()["code"] == "stale_ref", stale.text
    assert run(server, tenant, ext_id, storage_path(tenant, repo, "nope/release.1")).status_code == 404


def test_a_disabled_extension_does_not_run(server, tenant):
    repo = new_repo(server, tenant, {"a.txt": "a\n"})
    ext_id = extension(server, tenant)
    api(server, tenant.keys["agent"], "POST", "/v1/extensions/update", {"extensionId": ext_id, "status": "disabled"})
    refused = run(server, tenant, ext_id, storage_path(tenant, repo))
    assert refused.status_code == 409 and refused.json()["code"] == "conflict"


def test_a_run_outlives_its_extension(server, tenant):
    repo = new_repo(server, tenant, {"a.txt": "a\n"})
    ext_id = extension(server, tenant, "sleep 1\nprint done")
    run_id = run(server, tenant, ext_id, storage_path(tenant, repo)).json()["data"]["runId"]
    assert api(server, tenant.keys["agent"], "POST", "/v1/extensions/delete", {"extensionId": ext_id}).status_code == 200
    done = finished(server, tenant, run_id)
    assert done["status"] == "completed" and done["result"]["output"] == "done\n"
    assert api(server, server.tenant().keys["read"], "GET", f"/v1/extensions/poll/{run_id}").status_code == 404


def test_a_run_on_an_empty_repository_starts_its_branch(server, tenant, git, tmp_path):
    repo = new_repo(server, tenant)
    done = run_to_end(server, tenant, repo, "write README.md started by an agent")
    assert done["status"] == "completed", (done["error"], done["result"])
    assert done["result"]["baseCommit"] is None
    work = tmp_path / "work"
    clone(server, tenant, git, repo, done["result"]["branch"], work)
    assert (work / "README.md").read_text() == "started by an agent\n"
    assert git.out("rev-list", "--count", "HEAD", cwd=work).strip() == "1"


def test_runs_of_one_repository_at_once_each_get_their_branch(server, tenant):
    repo = new_repo(server, tenant, {"count.txt": "0\n"})
    ext_id = extension(server, tenant, "append count.txt one more")
    run_ids = [run(server, tenant, ext_id, storage_path(tenant, repo)).json()["data"]["runId"] for _ in range(4)]
    results = [finished(server, tenant, run_id) for run_id in run_ids]
    assert [r["status"] for r in results] == ["completed"] * 4
    assert len({r["result"]["commit"] for r in results}) == 4
    branches = {b["name"] for b in api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/branches").json()["data"]}
    assert branches == {"main", *(f"extensions/{run_id}" for run_id in run_ids)}


def test_the_agent_works_in_a_directory_of_its_own(server, tenant):
    repo = new_repo(server, tenant, {"a.txt": "a\n"})
    done = run_to_end(server, tenant, repo, "print-file a.txt")
    assert done["result"]["output"] == "a\n\n"
    result = subprocess.run(["ls", str(server.data_dir / "extension-runs")], capture_output=True, text=True)
    assert result.stdout.strip() == ""  # each run's directory goes when it ends


def test_a_file_that_became_a_directory_and_back_is_committed(server, tenant, git, tmp_path):
    repo = new_repo(server, tenant, {"notes": "a file\n", "docs/a.md": "a\n", "keep.txt": "k\n"})
    done = run_to_end(server, tenant, repo, "delete notes\nwrite notes/inner.txt now a directory\n"
                                            "delete docs/a.md\nrmdir docs\nwrite docs now a file")
    assert done["status"] == "completed", (done["error"], done["result"])
    work = tmp_path / "work"
    clone(server, tenant, git, repo, done["result"]["branch"], work)
    assert (work / "notes" / "inner.txt").read_text() == "now a directory\n"
    assert (work / "docs").read_text() == "now a file\n" and (work / "keep.txt").exists()
    assert git.out("rev-list", "--count", "HEAD", cwd=work).strip() == "3"  # seed, the deletions, the rest


def test_names_git_would_not_take_are_left_out_and_the_rest_committed(server, tenant, git, tmp_path):
    repo = new_repo(server, tenant, {"README.md": "r\n"})
    done = run_to_end(server, tenant, repo, "write ok.txt fine\nwrite tab\there x\nwrite .GIT. x\n"
                                            "delete README.md\nsymlink README.md /etc/passwd")
    assert done["status"] == "completed", (done["error"], done["result"])
    assert done["result"]["changes"] == [{"path": "ok.txt", "action": "create"}]
    reasons = {s["path"]: s["reason"] for s in done["result"]["skipped"]}
    assert reasons[".GIT."] == "a .git file"
    assert reasons["README.md"] == "a symlink where the commit has a file, kept"
    assert reasons["tab\there"].startswith("a path git is not given")
    work = tmp_path / "work"
    clone(server, tenant, git, repo, done["result"]["branch"], work)
    assert (work / "README.md").read_text() == "r\n"  # kept as committed


def test_a_run_on_an_empty_repository_records_its_branch_base(server, tenant):
    repo = new_repo(server, tenant)
    done = run_to_end(server, tenant, repo, "write a.txt x")
    branch = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/branches/{done['result']['branch']}").json()
    assert (branch["data"]["baseBranch"], branch["data"]["baseCommit"]) == ("main", None)


def test_a_key_limited_to_other_repositories_cannot_poll_the_run(server, tenant):
    seen, unseen = new_repo(server, tenant, {"a.txt": "a\n"}), new_repo(server, tenant, {"a.txt": "a\n"})
    run_id = run(server, tenant, extension(server, tenant), storage_path(tenant, unseen)).json()["data"]["runId"]
    limited = api(server, tenant.keys["admin"], "POST", "/v1/keys", {"name": "l", "scope": "read", "repos": [seen]})
    assert limited.status_code == 201, limited.text
    polled = api(server, limited.json()["data"]["key"], "GET", f"/v1/extensions/poll/{run_id}")
    assert polled.status_code == 404
    finished(server, tenant, run_id)


def test_a_key_limited_to_some_repositories_runs_extensions_but_cannot_change_them(server, tenant):
    """Extensions are the organization's: a key that cannot see a repository must not steer what runs commit
    there (its prompt changed, or the extension deleted), as it cannot create repositories."""
    seen = new_repo(server, tenant, {"a.txt": "a\n"})
    ext_id = extension(server, tenant, "print shared")
    made = api(server, tenant.keys["admin"], "POST", "/v1/keys", {"name": "l", "scope": "agent", "repos": [seen]})
    assert made.status_code == 201, made.text
    limited = made.json()["data"]["key"]
    for path, body in (("update", {"extensionId": ext_id, "prompt": "print hijacked"}),
                       ("update", {"extensionId": ext_id, "status": "disabled"}),
                       ("delete", {"extensionId": ext_id}),
                       ("create", {**EXTENSION, "prompt": f"print mine {uuid.uuid4().hex}"})):
        refused = api(server, limited, "POST", f"/v1/extensions/{path}", body)
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden", refused.text
    assert listed(server, tenant, ext_id)["status"] == "active"
    started = api(server, limited, "POST", "/v1/extensions/run", {"extensionId": ext_id,
                                                                  "path": storage_path(tenant, seen)})
    assert started.status_code == 202, started.text
    done = finished(server, tenant, started.json()["data"]["runId"])
    assert done["status"] == "completed" and done["result"]["output"].strip() == "shared", done


def test_an_update_racing_a_delete_is_a_404_never_a_500(server, tenant):
    for _ in range(8):
        ext_id = extension(server, tenant)

        def request(i: int):
            if i == 0:
                return api(server, tenant.keys["agent"], "POST", "/v1/extensions/delete", {"extensionId": ext_id})
            return api(server, tenant.keys["agent"], "POST", "/v1/extensions/update",
                       {"extensionId": ext_id, "name": f"n{i}", "prompt": f"p {uuid.uuid4().hex}"})

        answers = at_once(4, request)
        assert all(a.status_code in (200, 404) for a in answers), [(a.status_code, a.text) for a in answers]
        assert answers[0].status_code == 200
