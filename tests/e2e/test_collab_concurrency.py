"""Eight workspaces committing, submitting and merging into the same base at once."""
from __future__ import annotations

import threading

import requests


def test_eight_workspaces_merge_into_one_base(server, tenant, git, tmp_path):
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "seed", {"shared.txt": "line 1\nline 2\nline 3\n", "README.md": "r\n"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    original = git.out("rev-parse", "HEAD", cwd=work)
    headers = {"Authorization": f"Bearer {tenant.keys['agent']}"}
    dojo = f"{server.url}/api/repos/{tenant.org}/{repo}/workspaces"
    v1 = f"{server.url}/v1/repos/{repo}"
    barrier = threading.Barrier(8)
    results: list[dict] = [{} for _ in range(8)]
    statuses: list[int] = []

    def agent(i: int) -> None:
        def call(method, url, **kwargs):
            response = requests.request(method, url, headers=headers, timeout=120, **kwargs)
            statuses.append(response.status_code)
            return response

        ws = call("POST", dojo, json={"name": f"agent-{i}", "agent_name": f"bot-{i}"}).json()["workspace"]
        files = {f"agents/{i}.txt": f"agent {i}\n"}
        if i < 3:  # three agents rewrite the same line: at most one of them can merge cleanly
            files["shared.txt"] = f"line 1 by agent {i}\nline 2\nline 3\n"
        barrier.wait()
        for path, content in files.items():
            call("PUT", f"{dojo}/{ws['id']}/files/{path}", data=content.encode())
        commit = call("POST", f"{dojo}/{ws['id']}/commit", json={"message": f"agent {i}"}).json()["commit"]
        stack = call("POST", f"{dojo}/{ws['id']}/submit", json={"title": f"agent {i}"}).json()["stack"]
        merged = call("POST", f"{v1}/stacks/{stack['id']}/merge", json={"strategy": "merge"})
        results[i] = {"commit": commit["sha"], "merge": merged.json()["data"], "stack": stack["id"]}

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert all(code < 500 for code in statuses), statuses
    assert all(results), results

    clone = tmp_path / "final"
    git("clone", "-q", tenant.url(repo), str(clone))
    assert git("merge-base", "--is-ancestor", original, "HEAD", cwd=clone, check=False).returncode == 0
    merged = [i for i in range(8) if results[i]["merge"]["success"]]
    conflicted = [i for i in range(8) if not results[i]["merge"]["success"]]
    assert set(range(3, 8)) <= set(merged), results  # agents touching only their own file always merge
    assert len([i for i in merged if i < 3]) == 1
    for i in merged:
        assert git("merge-base", "--is-ancestor", results[i]["commit"], "HEAD", cwd=clone,
                   check=False).returncode == 0, f"agent {i}'s commit was lost"
        assert (clone / f"agents/{i}.txt").read_text() == f"agent {i}\n"
    for i in conflicted:
        assert results[i]["merge"]["conflicts"] == ["shared.txt"]
        assert not (clone / f"agents/{i}.txt").exists()
