"""A workspace search reads a bounded amount of text and number of files: a word in every file of a large
repository read them all (1.2 s for 5,000 small files, bench/RESULTS.md). Past the budget it stops and says it
was cut short.

In-process (werkzeug's test client on the real application) so that the budget can be made small.
"""
from __future__ import annotations

import base64

from control.services import workspaces
from tests.support import in_process_app


def _workspace_of_six_files(tmp_path, content: bytes):
    """A search function over a workspace whose overlay holds f0.txt ... f5.txt, each `content`."""
    client, auth, _path = in_process_app(tmp_path, "budget", "agent")
    key = base64.b64decode(auth["Authorization"].split()[1]).decode().partition(":")[2]
    headers = {"Authorization": f"Bearer {key}"}
    base = "/api/repos/budget/r/workspaces"
    ws = client.post(base, json={"name": "w"}, headers=headers).get_json()["workspace"]["id"]
    for i in range(6):
        assert client.put(f"{base}/{ws}/files/f{i}.txt", data=content, headers=headers).status_code == 200
    return lambda: client.get(f"{base}/{ws}/search?q=needle", headers=headers).get_json()


def test_a_search_past_its_budget_stops_and_says_so(tmp_path, monkeypatch):
    search = _workspace_of_six_files(tmp_path, b"needle " * 1000)

    assert len(search()["results"]) == 6 and search()["truncated"] is False
    monkeypatch.setattr(workspaces, "SEARCH_BUDGET_BYTES", 7000 * 3)
    cut = search()
    assert [hit["path"] for hit in cut["results"]] == ["f0.txt", "f1.txt", "f2.txt"] and cut["truncated"] is True


def test_a_search_past_its_file_budget_stops_and_says_so(tmp_path, monkeypatch):
    """Small files cost their lookup, not their bytes: 100,000 files of ~27 bytes never reached the byte budget
    and a search took 6-33 s."""
    search = _workspace_of_six_files(tmp_path, b"needle")
    monkeypatch.setattr(workspaces, "SEARCH_BUDGET_FILES", 4)
    cut = search()
    assert [hit["path"] for hit in cut["results"]] == ["f0.txt", "f1.txt", "f2.txt", "f3.txt"]
    assert cut["truncated"] is True
