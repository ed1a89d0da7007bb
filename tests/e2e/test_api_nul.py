"""NUL characters in names, bodies and queries are refused cleanly on SQLite and PostgreSQL alike."""
import requests


def test_nul_in_path_query_and_body(server, tenant):
    headers = {"Authorization": f"Bearer {tenant.keys['admin']}"}
    repo = tenant.repo()
    for path in ("/v1/repos/a%00b", f"/v1/repos/{repo}/branches/x%00y", f"/api/repos/{tenant.org}/a%00/workspaces"):
        response = requests.get(server.url + path, headers=headers, timeout=30)
        assert response.status_code == 404, (path, response.text)
    body = requests.post(server.url + "/v1/repos", data='{"name": "a\\u0000b"}', timeout=30,
                         headers={**headers, "Content-Type": "application/json"})
    assert body.status_code == 422 and body.json()["code"] == "invalid"
    query = requests.get(f"{server.url}/v1/repos/{repo}/commits", params={"branch": "a\x00"}, headers=headers,
                         timeout=30)
    assert query.status_code == 422


def test_nul_in_a_json_key_and_unstructured_dojo_intent_are_refused(server, tenant, git, tmp_path):
    """A NUL in an object key used to reach the commit (git fsck: nulInCommit) and truncate its message; a
    nested intent value was stored as Python's repr of it. Both are refused now (400, dojo's status for bad
    requests), and no commit is made."""
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "seed", {"a.txt": "a\n"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    headers = {"Authorization": f"Bearer {tenant.keys['agent']}"}
    dojo = f"{server.url}/api/repos/{tenant.org}/{repo}/workspaces"
    ws = requests.post(dojo, json={"name": "w"}, headers=headers, timeout=30).json()["workspace"]
    requests.put(f"{dojo}/{ws['id']}/files/b.txt", data=b"b\n", headers=headers, timeout=30)
    raw_key = '{"message": "m", "intent": {"k\\u0000ey": "v"}}'
    for body in ({"data": raw_key, "headers": {**headers, "Content-Type": "application/json"}},
                 {"json": {"message": "m", "intent": {"nested": {"a": None}}}, "headers": headers},
                 {"json": {"message": "m", "intent": {"bad key!": "v"}}, "headers": headers}):
        refused = requests.post(f"{dojo}/{ws['id']}/commit", timeout=30, **body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == "invalid" and "success" not in refused.json()
    listed = requests.get(dojo, headers=headers, timeout=30).json()["workspaces"]
    assert [w["current_commit"] for w in listed] == [ws["current_commit"]]
    committed = requests.post(f"{dojo}/{ws['id']}/commit", json={"message": "m", "intent": {"goal": "g", "n": 3}},
                              headers=headers, timeout=30)
    assert committed.status_code == 201 and committed.json()["commit"]["intent"] == {"goal": "g", "n": 3}
