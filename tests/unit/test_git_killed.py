"""A git that a request runs is killed: the request gets 503 with Retry-After (a kill sweep got 500s with a
traceback when it killed a stack merge's `git index-pack`), nothing moves, and the same request then succeeds.

When to kill a merge's index-pack from outside cannot be timed reliably (it runs for milliseconds), so the kernel
kills it: the merge's index-pack runs with a file-size limit of 0 and dies of SIGXFSZ as it writes its pack. The
application, SQLite and git are real.
"""
from __future__ import annotations

import base64
import resource
import subprocess

from storage import git_refs, merge_store
from storage.git_env import GIT, GitFailed, clean_git_env
from tests.support import in_process_app


def _bearer(auth: dict) -> dict:
    key = base64.b64decode(auth["Authorization"].split()[1]).decode().split(":", 1)[1]
    return {"Authorization": f"Bearer {key}"}


def _commit(client, headers, branch: str, name: str):
    body = {"branch": branch, "message": name, "operations": [
        {"action": "create", "path": f"{name}.txt", "content": base64.b64encode(name.encode()).decode()}]}
    answer = client.post("/v1/repos/r/commits", json=body, headers=headers)
    assert answer.status_code == 201, answer.json


def _no_room_for_a_file():
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def _killed_by_the_kernel(repo_path, args, *, input=None, **kwargs):
    result = subprocess.run([GIT, "-C", str(repo_path), *args], input=input, capture_output=True,
                            env=clean_git_env(None), preexec_fn=_no_room_for_a_file)
    raise GitFailed(result.returncode, result.args, result.stdout, result.stderr)


def test_a_merge_whose_git_is_killed_answers_503_and_changes_nothing(tmp_path, monkeypatch):
    client, auth, repo_path = in_process_app(tmp_path, "acme", "admin")
    headers = _bearer(auth)
    _commit(client, headers, "main", "base")
    assert client.post("/v1/repos/r/branches", json={"name": "feature"}, headers=headers).status_code == 201
    _commit(client, headers, "feature", "feature")
    _commit(client, headers, "main", "main")
    main = git_refs.read_ref(repo_path, "refs/heads/main")

    with monkeypatch.context() as patch:
        patch.setattr(merge_store, "run_git", _killed_by_the_kernel)
        answer = client.post("/v1/repos/r/merges", json={"source": "feature", "target": "main"}, headers=headers)
    assert answer.status_code == 503, answer.json
    assert answer.json["code"] == "unavailable" and answer.headers["Retry-After"] == "1", answer.json
    assert "Traceback" not in answer.get_data(as_text=True)
    assert git_refs.read_ref(repo_path, "refs/heads/main") == main

    again = client.post("/v1/repos/r/merges", json={"source": "feature", "target": "main"}, headers=headers)
    assert again.status_code == 200 and again.json["data"]["success"] is True, again.json
    assert git_refs.read_ref(repo_path, "refs/heads/main") == again.json["data"]["head_commit"] != main
