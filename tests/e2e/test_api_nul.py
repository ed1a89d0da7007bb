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
