"""Signed-URL uploads on a real server: request URLs, PUT bytes without a key, complete into one commit, clone."""
from __future__ import annotations

import hashlib
import http.client
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from sqlalchemy import delete, func, select

from control.services import signing
from storage.models import Branch, CommitMeta, Event, Upload, UploadFile
from tests.support import api, at_once, pkt, receive_pack, repo_path, request_interrupted, wait_until_gone

UPLOADER = "Driftstone <uploads@driftstone.local>"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_repo(server, tenant) -> str:
    created = api(server, tenant.keys["admin"], "POST", "/v1/repos", {"name": f"up-{uuid.uuid4().hex[:8]}"})
    assert created.status_code == 201, created.text
    return created.json()["data"]["slug"]


def ask(server, tenant, repo, identifier, files: dict[str, bytes], branch=None, key="agent"):
    body = {"identifier": identifier, "files": [{"name": n, "hash": sha(d)} for n, d in files.items()]}
    if branch:
        body["branch"] = branch
    return api(server, tenant.keys[key], "POST", f"/v1/repos/{repo}/uploads", body)


def put(url: str, data, **kwargs):
    return requests.put(url, data=data, timeout=60, **kwargs)


def put_all(upload: dict, files: dict[str, bytes]) -> None:
    for target in upload["files"]:
        response = put(target["uploadUrl"], files[target["name"]])
        assert response.status_code == 200, response.text


def complete(server, tenant, repo, upload_id, key="agent"):
    return api(server, tenant.keys[key], "POST", f"/v1/repos/{repo}/uploads/{upload_id}/complete")


def upload_tree(server, tenant, repo, identifier, files, branch=None) -> dict:
    asked = ask(server, tenant, repo, identifier, files, branch)
    assert asked.status_code == 201, asked.text
    put_all(asked.json()["data"], files)
    done = complete(server, tenant, repo, asked.json()["data"]["uploadId"])
    assert done.status_code == 200, done.text
    return done.json()["data"]


def cloned_files(git, url: str, branch: str, into: Path) -> dict[str, bytes]:
    git("clone", "-q", "--branch", branch, url, str(into))
    return {str(p.relative_to(into)): p.read_bytes() for p in into.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(into).parts}


def stored_uploads(server, tenant, repo_id: str) -> Path:
    """Where a repository's uploaded files are kept (each upload's under its id)."""
    return server.data_dir / "blobs" / "organizations" / tenant.org_id / "uploads" / repo_id


def stored_state(server, repo_slug, tenant) -> dict:
    """Everything a failed request must leave alone: upload rows, files, commit rows, blobs, the repo's refs."""
    context = server.context
    with context.db.session() as session:
        from storage.models import Repository

        repo = session.scalar(select(Repository).where(Repository.org_id == tenant.org_id,
                                                        Repository.slug == repo_slug,
                                                        Repository.deleted_at.is_(None)))
        uploads = session.scalars(select(Upload).where(Upload.repo_id == repo.id)).all()
        files = session.scalars(select(UploadFile).where(UploadFile.upload_id.in_([u.id for u in uploads]))).all()
        state = {
            "uploads": sorted((u.id, u.status, u.commit_sha) for u in uploads),
            "files": sorted((f.id, f.received_sha256, f.size) for f in files),
            "blobs": sorted(f.storage_path for f in files if context.blobs.exists(f.storage_path)),
            "commits": session.scalar(select(func.count()).select_from(CommitMeta)
                                      .where(CommitMeta.repo_id == repo.id)),
            "main": repo.main_head_identifier,
        }
    refs = sorted(p.name for p in (context.store.path_for(repo.id) / "refs" / "heads").rglob("*"))
    temp = context.settings.blobs_dir / "tmp" / "uploads"
    state["refs"] = refs
    state["temp"] = sorted(p.name for p in temp.iterdir()) if temp.exists() else []
    return state


def test_round_trip_clone_branch_and_replace(server, tenant, git, tmp_path):
    repo = new_repo(server, tenant)
    files = {"README.md": b"# hello\n", "src/app.py": b"print('hi')\n", "docs/deep/a b \xc3\xa9.txt": b"x" * 70000,
             "empty.txt": b"", ".gitignore": b"*.pyc\n", "notes/100%#?.md": b"odd name\n"}
    asked = ask(server, tenant, repo, "ver-1234abcd", files)
    assert asked.status_code == 201, asked.text
    body = asked.json()
    assert body["success"] is True
    upload = body["data"]
    assert set(upload) == {"uploadId", "identifier", "branch", "expiresAt", "files"}
    assert upload["identifier"] == "ver-1234abcd" and upload["branch"] == "main"
    assert [f["name"] for f in upload["files"]] == list(files)
    for target in upload["files"]:
        assert target["method"] == "PUT" and target["hash"] == sha(files[target["name"]])
        repo_id = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}").json()["data"]["id"]
        assert target["path"] == f"organizations/{tenant.org_id}/uploads/{repo_id}/{upload['uploadId']}/{target['name']}"
        assert target["uploadUrl"].startswith(f"{server.url}/v1/blobs/organizations/{tenant.org_id}/")
    put_all(upload, files)
    done = complete(server, tenant, repo, upload["uploadId"])
    assert done.status_code == 200, done.text
    first = done.json()["data"]
    assert first["status"] == "completed" and len(first["commit"]) == 40

    assert cloned_files(git, tenant.url(repo), "main", tmp_path / "c1") == files
    work = tmp_path / "c1"
    assert git.out("log", "--format=%an <%ae>|%cn <%ce>|%s", cwd=work) == f"{UPLOADER}|{UPLOADER}|Upload ver-1234abcd"
    assert git.out("rev-list", "--count", "HEAD", cwd=work) == "1"
    git("fsck", "--strict", "--no-dangling", cwd=work)
    meta = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}").json()["data"]
    assert meta["mainHeadIdentifier"] == "ver-1234abcd" and meta["mainHeadCommit"] == first["commit"]
    commit = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/commits/{first['commit']}").json()["data"]
    assert commit["source"] == "upload" and commit["uploadIdentifier"] == "ver-1234abcd"

    again = complete(server, tenant, repo, upload["uploadId"])
    assert again.status_code == 200 and again.json()["data"] == first
    by_identifier = complete(server, tenant, repo, "ver-1234abcd")
    assert by_identifier.json()["data"]["commit"] == first["commit"]
    reused = ask(server, tenant, repo, "ver-1234abcd", files)
    assert reused.status_code == 409 and reused.json()["code"] == "conflict"

    feature = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches", {"name": "feature"})
    assert feature.status_code == 201
    assert feature.json()["data"]["headCommit"] == first["commit"]
    assert feature.json()["data"]["headIdentifier"] == "ver-1234abcd"

    second_files = {"README.md": b"# v2\n", "src/new.py": b"x = 2\n"}
    second = upload_tree(server, tenant, repo, "ver-2", second_files)
    assert cloned_files(git, tenant.url(repo), "main", tmp_path / "c2") == second_files
    assert git.out("rev-parse", "HEAD~1", cwd=tmp_path / "c2") == first["commit"]
    meta = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}").json()["data"]
    assert meta["mainHeadIdentifier"] == "ver-2" and meta["mainHeadCommit"] == second["commit"]
    main = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/branches/main").json()["data"]
    assert main["headIdentifier"] == "ver-2" and main["headCommit"] == second["commit"]
    untouched = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/branches/feature").json()["data"]
    assert untouched["headCommit"] == first["commit"]
    from_feature = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches",
                       {"name": "from-feature", "from": "feature"})  # its head's identifier comes along too
    assert from_feature.json()["data"]["headIdentifier"] == "ver-1234abcd", from_feature.text
    by_sha = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches",
                 {"name": "by-sha", "from": first["commit"]})  # a commit, not a branch: its main's is not ver-2
    assert by_sha.json()["data"]["headIdentifier"] is None, by_sha.text


def test_large_files_are_streamed_in_and_out(server, tenant, git, tmp_path):
    repo = new_repo(server, tenant)
    big = bytes(range(256)) * (40 * 1024 + 3)  # about 10 MiB: written into git by streaming, not in memory
    files = {"data/big.bin": big, "small.txt": b"small\n"}
    upload = ask(server, tenant, repo, "ver-large", files).json()["data"]
    for target in upload["files"]:
        data = files[target["name"]]
        chunks = (data[i:i + 1_000_000] for i in range(0, len(data), 1_000_000))
        assert put(target["uploadUrl"], chunks).status_code == 200  # chunked transfer encoding
    assert complete(server, tenant, repo, upload["uploadId"]).status_code == 200
    assert cloned_files(git, tenant.url(repo), "main", tmp_path / "c") == files
    git("fsck", "--strict", "--no-dangling", cwd=tmp_path / "c")


def test_upload_to_a_branch_moves_only_that_branch(server, tenant, git, tmp_path):
    repo = new_repo(server, tenant)
    base = upload_tree(server, tenant, repo, "ver-base", {"a.txt": b"a"})
    api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches", {"name": "feature/x"})
    done = upload_tree(server, tenant, repo, "ver-f1", {"b.txt": b"b"}, branch="feature/x")
    assert cloned_files(git, tenant.url(repo), "feature/x", tmp_path / "f") == {"b.txt": b"b"}
    assert git.out("rev-parse", "HEAD~1", cwd=tmp_path / "f") == base["commit"]
    branch = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/branches/feature/x").json()["data"]
    assert branch["headCommit"] == done["commit"] and branch["headIdentifier"] == "ver-f1"
    meta = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}").json()["data"]
    assert meta["mainHeadIdentifier"] == "ver-base" and meta["mainHeadCommit"] == base["commit"]
    same_identifier_elsewhere = upload_tree(server, tenant, repo, "ver-f1", {"c.txt": b"c"})
    assert same_identifier_elsewhere["branch"] == "main"
    ambiguous = complete(server, tenant, repo, "ver-f1")
    assert ambiguous.status_code == 409 and len(ambiguous.json()["details"]["uploadIds"]) == 2
    assert ask(server, tenant, repo, "ver-x", {"a": b""}, branch="nope").status_code == 404


def test_record_only_branch_gets_its_first_head_from_its_first_upload(server, tenant, git, tmp_path):
    repo = new_repo(server, tenant)
    main = upload_tree(server, tenant, repo, "ver-main", {"main.txt": b"m"})
    record = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches",
                 {"name": "later", "recordOnly": True})
    assert record.status_code == 201 and record.json()["data"]["headCommit"] is None
    files = {"only/here.txt": b"later\n"}
    done = upload_tree(server, tenant, repo, "ver-later-1", files, branch="later")
    assert cloned_files(git, tenant.url(repo), "later", tmp_path / "l") == files
    assert git.out("rev-parse", "HEAD~1", cwd=tmp_path / "l") == main["commit"]
    branch = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/branches/later").json()["data"]
    assert branch["headCommit"] == done["commit"] and branch["headIdentifier"] == "ver-later-1"
    assert branch["status"] == "ready" and branch["baseCommit"] == main["commit"]
    assert api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}").json()["data"]["mainHeadIdentifier"] == "ver-main"


def test_a_push_cannot_make_a_branch_that_would_keep_a_record_only_one_from_ever_getting_its_ref(server, tenant, git,
                                                                                                 tmp_path):
    """git lets a push make `held/x` beside a record-only `held` (it has no ref yet), and after that every upload
    to `held` was refused for good ("clashes with an existing ref"); the API refused the same name already."""
    repo = new_repo(server, tenant)
    upload_tree(server, tenant, repo, "ver-main", {"main.txt": b"m"})
    for name in ("held", "deep/held"):
        record = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches",
                     {"name": name, "recordOnly": True})
        assert record.status_code == 201, record.text
    work = tmp_path / "w"
    git("clone", "-q", tenant.url(repo), str(work))
    for clashing in ("held/x", "deep"):
        pushed = git("push", "origin", f"HEAD:refs/heads/{clashing}", cwd=work, check=False)
        assert pushed.returncode != 0
        assert "which awaits its first upload" in pushed.stderr.decode(), pushed.stderr.decode()
    assert git.out("ls-remote", "--heads", tenant.url(repo)).count("refs/heads/") == 1
    git("push", "-q", "origin", "HEAD:refs/heads/held-too", cwd=work)  # a name that only starts the same is fine
    done = upload_tree(server, tenant, repo, "ver-held", {"h.txt": b"h"}, branch="held")
    assert api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/branches/held").json()["data"][
        "headCommit"] == done["commit"]


def test_record_only_branch_of_an_empty_repository_starts_a_root_commit(server, tenant, git, tmp_path):
    repo = new_repo(server, tenant)
    api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches", {"name": "draft", "recordOnly": True})
    upload_tree(server, tenant, repo, "ver-d1", {"d.txt": b"d"}, branch="draft")
    assert cloned_files(git, tenant.url(repo), "draft", tmp_path / "d") == {"d.txt": b"d"}
    assert git.out("rev-list", "--count", "HEAD", cwd=tmp_path / "d") == "1"
    assert api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}").json()["data"]["mainHeadCommit"] is None


def test_asking_again_for_a_pending_upload_reissues_its_urls(server, tenant):
    repo = new_repo(server, tenant)
    files = {"a.txt": b"a", "b.txt": b"b"}
    first = ask(server, tenant, repo, "ver-again", files).json()["data"]
    assert put(first["files"][0]["uploadUrl"], files["a.txt"]).status_code == 200
    second = ask(server, tenant, repo, "ver-again", files)
    assert second.status_code == 201
    again = second.json()["data"]
    assert again["uploadId"] == first["uploadId"]
    assert [f["path"] for f in again["files"]] == [f["path"] for f in first["files"]]
    assert put(again["files"][1]["uploadUrl"], files["b.txt"]).status_code == 200
    different = ask(server, tenant, repo, "ver-again", {"a.txt": b"changed"})
    assert different.status_code == 409
    assert complete(server, tenant, repo, first["uploadId"]).status_code == 200


def test_identical_requests_for_a_new_upload_at_once_all_get_it(server, tenant):
    """Of six identical requests at once, four got 409 "being requested concurrently; retry"."""
    repo = new_repo(server, tenant)
    files = {"a.txt": b"a", "b.txt": b"b"}
    answers = at_once(6, lambda _i: ask(server, tenant, repo, "ver-at-once", files))
    assert [answer.status_code for answer in answers] == [201] * 6, [answer.text for answer in answers]
    assert len({answer.json()["data"]["uploadId"] for answer in answers}) == 1
    last = answers[-1].json()["data"]
    put_all(last, files)
    assert complete(server, tenant, repo, last["uploadId"]).status_code == 200
    answers = at_once(3, lambda i: ask(server, tenant, repo, "ver-at-once-2", {"a.txt": bytes([i])}))
    assert sorted(answer.status_code for answer in answers) == [201, 409, 409]  # the same identifier, other files


HOSTILE_NAMES = [
    "../escape", "a/../../escape", "a/..", "./a", "a/./b", "/etc/passwd", "a//b", "a/", "", "...", " ",
    ".git/config", ".GIT/config", "sub/.Git/hooks/post-checkout", ".git", "git~1/config", "GIT~1/config",
    "git~2/x", ".git./config", ".git /config", ".git. . /config", ".git::$INDEX_ALLOCATION/config",
    ".git:stream", "a::$DATA", ".g\u200cit/config", "\u200d.git/config", ".git\ufeff/config", ".Gi\u200et/x",
    "\uff0egit/config", "a\\b", "..\\escape", "a\x00b", "a\nb", "tab\there", "del\x7f", "c1\x85ctl",
    "x" * 1025, "/".join(["d"] * 65), "y" * 256,
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[repr(n)[:40] for n in HOSTILE_NAMES])
def test_hostile_file_names_are_refused(server, tenant, name):
    repo = new_repo(server, tenant)
    before = stored_state(server, repo, tenant)
    refused = ask(server, tenant, repo, "ver-hostile", {"ok.txt": b"ok", name: b"evil"})
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["success"] is False and body["code"] == "invalid"
    assert any(f["loc"].startswith("files.1") for f in body["details"]["fields"])
    assert stored_state(server, repo, tenant) == before


@pytest.mark.parametrize("files, where", [
    ([{"name": "a", "hash": sha(b"a")}, {"name": "a", "hash": sha(b"b")}], "files.1.name"),
    ([{"name": "a", "hash": sha(b"a")}, {"name": "a/b", "hash": sha(b"b")}], "files.0.name"),
    ([], "files"),
    ([{"name": "a", "hash": "abc"}], "files.0.hash"),
    ([{"name": "a", "hash": "g" * 64}], "files.0.hash"),
    ([{"name": "a", "hash": sha(b"a") + "0"}], "files.0.hash"),
    ([{"name": "a"}], "files.0.hash"),
    ([{"name": "a", "hash": sha(b"a"), "mode": "755"}], "files.0.mode"),
])
def test_invalid_file_lists_are_refused(server, tenant, files, where):
    repo = new_repo(server, tenant)
    before = stored_state(server, repo, tenant)
    refused = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/uploads",
                  {"identifier": "ver-1", "files": files})
    assert refused.status_code == 422, refused.text
    assert where in [f["loc"] for f in refused.json()["details"]["fields"]]
    assert stored_state(server, repo, tenant) == before


def test_upper_case_hashes_are_accepted_as_lower_case(server, tenant):
    repo = new_repo(server, tenant)
    asked = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/uploads",
                {"identifier": "ver-1", "files": [{"name": "a", "hash": sha(b"a").upper()}]})
    assert asked.status_code == 201 and asked.json()["data"]["files"][0]["hash"] == sha(b"a")


@pytest.mark.parametrize("identifier", ["", "../x", "ver/1", "ver 1", "-ver", ".ver", "v" * 201, "ver\x00", "vér"])
def test_invalid_identifiers_are_refused(server, tenant, identifier):
    repo = new_repo(server, tenant)
    refused = ask(server, tenant, repo, identifier, {"a": b"a"})
    assert refused.status_code == 422 and refused.json()["code"] == "invalid"


def test_request_body_errors(server, tenant):
    repo = new_repo(server, tenant)
    key = tenant.keys["agent"]
    path = f"{server.url}/v1/repos/{repo}/uploads"
    headers = {"Authorization": f"Bearer {key}"}
    malformed = requests.post(path, data=b'{"identifier": "ver-1", "files": [', timeout=30,
                              headers={**headers, "Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["code"] == "invalid_json"
    wrong_type = requests.post(path, data=json.dumps({"identifier": "ver-1", "files": []}), timeout=30,
                               headers={**headers, "Content-Type": "text/plain"})
    assert wrong_type.status_code == 415 and wrong_type.json()["success"] is False
    too_many = {"identifier": "ver-1", "files": [{"name": f"f{i}", "hash": sha(b"")} for i in range(10001)]}
    assert api(server, key, "POST", f"/v1/repos/{repo}/uploads", too_many).status_code == 422


def test_keys_scopes_and_organizations(server, tenant):
    repo = new_repo(server, tenant)
    files = {"a.txt": b"a"}
    stranger = server.tenant()
    assert ask(server, stranger, repo, "ver-1", files).status_code == 404
    assert ask(server, tenant, repo, "ver-1", files, key="read").status_code == 403
    anonymous = requests.post(f"{server.url}/v1/repos/{repo}/uploads", json={"identifier": "ver-1", "files": []},
                              timeout=30)
    assert anonymous.status_code == 401
    upload = ask(server, tenant, repo, "ver-1", files).json()["data"]
    put_all(upload, files)
    assert complete(server, stranger, repo, upload["uploadId"]).status_code == 404
    stranger_repo = new_repo(server, stranger)
    assert complete(server, stranger, stranger_repo, upload["uploadId"]).status_code == 404
    assert complete(server, tenant, repo, upload["uploadId"], key="read").status_code == 403
    assert complete(server, tenant, repo, "upl_000000000000000000000000").status_code == 404
    assert complete(server, tenant, repo, upload["uploadId"]).status_code == 200


def _with_query(url: str, **changes) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return parts._replace(query="&".join(f"{k}={quote(str(v))}" for k, v in query.items())).geturl()


def test_signed_urls_resist_tampering_replay_and_other_methods(server, tenant):
    repo = new_repo(server, tenant)
    files = {"a.txt": b"alpha", "b.txt": b"beta"}
    upload = ask(server, tenant, repo, "ver-sig", files).json()["data"]
    a_url, b_url = upload["files"][0]["uploadUrl"], upload["files"][1]["uploadUrl"]
    a_query = {k: v[0] for k, v in parse_qs(urlsplit(a_url).query).items()}
    b_query = {k: v[0] for k, v in parse_qs(urlsplit(b_url).query).items()}
    before = stored_state(server, repo, tenant)
    flipped = a_query["signature"][:-1] + ("0" if a_query["signature"][-1] != "0" else "1")
    attempts = {
        "flipped signature": _with_query(a_url, signature=flipped),
        "upper-case signature": _with_query(a_url, signature=a_query["signature"].upper()),
        "short signature": _with_query(a_url, signature=a_query["signature"][:32]),
        "later expiry": _with_query(a_url, expires=int(a_query["expires"]) + 3600),
        "another file's id": _with_query(a_url, fileId=b_query["fileId"]),
        "replay to another path": _with_query(b_url, signature=a_query["signature"]),
        "no signature": a_url.split("?")[0] + f"?expires={a_query['expires']}&fileId={a_query['fileId']}",
        "no query": a_url.split("?")[0],
        "other path, own query": a_url.replace("/a.txt?", "/c.txt?"),
        "traversal": a_url.replace("/a.txt?", "/x/%2e%2e/a.txt?"),
    }
    for what, url in attempts.items():
        response = put(url, files["a.txt"])
        assert response.status_code == 403, (what, response.status_code, response.text)
        assert response.json()["success"] is False and response.json()["code"] == "forbidden", what
    for method in ("GET", "POST"):
        response = requests.request(method, a_url, data=files["a.txt"] if method == "POST" else None, timeout=30)
        assert response.status_code == 403, (method, response.text)
    with_key = put(a_url, files["a.txt"], headers={"Authorization": f"Bearer {tenant.keys['agent']}"})
    assert with_key.status_code == 200  # a key is neither needed nor a substitute for the signature
    after = stored_state(server, repo, tenant)
    assert after["blobs"] == [upload["files"][0]["path"]] and after["uploads"] == before["uploads"]


def test_expiry_is_exactly_fifteen_minutes_after_issue(server, tenant):
    repo = new_repo(server, tenant)
    files = {"a.txt": b"alpha"}
    upload = ask(server, tenant, repo, "ver-exp", files).json()["data"]
    target = upload["files"][0]
    file_id = parse_qs(urlsplit(target["uploadUrl"]).query)["fileId"][0]
    secret = server.context.settings.secret_key
    base = target["uploadUrl"].split("?")[0]

    def url_issued(ago: timedelta) -> str:
        signed = signing.sign(secret, "PUT", target["path"], file_id, server.context.clock() - ago)
        return f"{base}?expires={signed.expires}&fileId={file_id}&signature={signed.signature}"

    for ago in (timedelta(minutes=15), timedelta(minutes=16), timedelta(days=2)):
        expired = put(url_issued(ago), files["a.txt"])
        assert expired.status_code == 403 and "expired" in expired.json()["error"], ago
    assert not server.context.blobs.exists(target["path"])
    assert put(url_issued(timedelta(minutes=14)), files["a.txt"]).status_code == 200


def test_oversized_files_are_refused_and_nothing_is_stored(small_limits_server):
    server = small_limits_server
    tenant = server.tenant()
    repo = new_repo(server, tenant)
    limit = 1024 * 1024
    files = {"big.bin": b"\x01" * (limit + 1), "exact.bin": b"\x02" * limit}
    upload = ask(server, tenant, repo, "ver-big", files).json()["data"]
    big, exact = upload["files"]
    before = stored_state(server, repo, tenant)
    declared = put(big["uploadUrl"], files["big.bin"])
    assert declared.status_code == 413 and declared.json()["code"] == "too_large"
    streamed = put(big["uploadUrl"], iter([files["big.bin"][:600000], files["big.bin"][600000:]]))
    assert streamed.status_code == 413 and streamed.json()["code"] == "too_large"
    assert stored_state(server, repo, tenant) == before
    assert put(exact["uploadUrl"], iter([files["exact.bin"]])).status_code == 200
    missing = complete(server, tenant, repo, upload["uploadId"])
    assert missing.status_code == 409 and missing.json()["details"]["missing"] == ["big.bin"]


def test_a_client_that_sends_all_before_reading_hears_the_refusal(small_limits_server):
    """urllib (Connection: close) writes a whole body before it reads the answer. The server answered a 16 MiB
    file at once and closed with the body unread, so the kernel reset the connection under the client, which
    saw a broken pipe instead of the 413; what is left of a refused body is now read and dropped first."""
    server = small_limits_server
    tenant = server.tenant()
    repo = new_repo(server, tenant)
    data = b"\x03" * (16 * 1024 * 1024)
    target = ask(server, tenant, repo, "ver-huge", {"huge.bin": data}).json()["data"]["files"][0]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(target["uploadUrl"], data=data, method="PUT"), timeout=60)
    assert refused.value.code == 413
    assert json.loads(refused.value.read())["code"] == "too_large"
    assert not server.context.blobs.exists(target["path"])


def test_empty_files_and_hash_mismatches(server, tenant):
    repo = new_repo(server, tenant)
    files = {"empty.txt": b"", "claims-content.txt": b"content", "data.bin": b"real data"}
    upload = ask(server, tenant, repo, "ver-mm", files).json()["data"]
    urls = {f["name"]: f["uploadUrl"] for f in upload["files"]}
    before = stored_state(server, repo, tenant)
    empty_for_content = put(urls["claims-content.txt"], b"")
    assert empty_for_content.status_code == 422 and empty_for_content.json()["code"] == "invalid"
    mismatch = put(urls["data.bin"], b"other data")
    assert mismatch.status_code == 422
    assert mismatch.json()["details"]["expected"] == sha(b"real data")
    assert stored_state(server, repo, tenant) == before
    assert put(urls["empty.txt"], b"").status_code == 200
    incomplete = complete(server, tenant, repo, upload["uploadId"])
    assert incomplete.status_code == 409
    assert incomplete.json()["details"]["missing"] == ["claims-content.txt", "data.bin"]
    assert api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}").json()["data"]["mainHeadCommit"] is None
    assert put(urls["data.bin"], b"real data").status_code == 200
    assert put(urls["data.bin"], b"tampered later").status_code == 422
    assert put(urls["claims-content.txt"], b"content").status_code == 200
    done = complete(server, tenant, repo, upload["uploadId"])
    assert done.status_code == 200
    after = put(urls["data.bin"], b"real data")
    assert after.status_code == 409  # a completed upload's files are final


def test_gzip_bodies_are_refused(server, tenant):
    repo = new_repo(server, tenant)
    upload = ask(server, tenant, repo, "ver-gz", {"a": b"a"}).json()["data"]
    refused = put(upload["files"][0]["uploadUrl"], b"a", headers={"Content-Encoding": "gzip"})
    assert refused.status_code == 415


def test_concurrent_completions_write_one_commit(server, tenant, git, tmp_path):
    repo = new_repo(server, tenant)
    upload_tree(server, tenant, repo, "ver-0", {"zero": b"0"})
    files = {"one": b"1", "two": b"2"}
    upload = ask(server, tenant, repo, "ver-race", files).json()["data"]
    put_all(upload, files)
    results = []
    threads = [threading.Thread(target=lambda: results.append(complete(server, tenant, repo, upload["uploadId"])))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [200] * 4, [r.text for r in results]
    assert len({r.json()["data"]["commit"] for r in results}) == 1
    assert cloned_files(git, tenant.url(repo), "main", tmp_path / "c") == files
    assert git.out("rev-list", "--count", "HEAD", cwd=tmp_path / "c") == "2"


def _pending_upload(server, tenant, repo, identifier, files) -> dict:
    upload = ask(server, tenant, repo, identifier, files).json()["data"]
    put_all(upload, files)
    return upload


def _complete_in_process(server, tenant, repo, upload_id, context=None):
    from control.services import repos as repo_service
    from control.services import uploads as upload_service
    from storage.keys import find_principal

    context = context or server.context
    with context.db.session() as session:
        principal = find_principal(session, tenant.keys["agent"])
        row = repo_service.visible_repo(session, principal, repo)
        return upload_service.complete_upload(session, context, row, principal, upload_id).commit_sha


def test_an_upload_asked_for_while_its_branch_is_deleted_goes_with_the_branch(server, tenant, monkeypatch):
    """The request looked at the branch, the deletion retired the branch's uploads, then the request inserted
    its own: it stayed live for good, and the branch made again under the name got 409 ('pending with a
    different file list') for that identifier (review). The request now takes the repository's turn first."""
    from control.services import repos as repo_service
    from control.services import uploads as upload_service
    from storage.keys import find_principal

    repo = new_repo(server, tenant)
    key = tenant.keys["agent"]
    assert api(server, key, "POST", f"/v1/repos/{repo}/branches", {"name": "brief", "recordOnly": True}) \
        .status_code == 201
    real_check = upload_service._check_branch
    deleted = []

    def delete_meanwhile(*args, **kwargs):
        real_check(*args, **kwargs)
        deleting = threading.Thread(target=lambda: deleted.append(
            api(server, key, "DELETE", f"/v1/repos/{repo}/branches/brief").status_code))
        deleting.start()
        deleting.join(timeout=3)  # done at once when nothing holds it back
        return None

    monkeypatch.setattr(upload_service, "_check_branch", delete_meanwhile)
    with server.context.db.session() as session:
        principal = find_principal(session, key)
        row = repo_service.visible_repo(session, principal, repo)
        upload_service.request_upload(session, server.context, row, principal, "v1",
                                      [upload_service.FileSpec("a.txt", sha(b"old"))], "brief")
    monkeypatch.undo()
    deadline = time.monotonic() + 30
    while not deleted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert deleted == [200]
    assert api(server, key, "POST", f"/v1/repos/{repo}/branches", {"name": "brief", "recordOnly": True}) \
        .status_code == 201
    again = ask(server, tenant, repo, "v1", {"b.txt": b"new"}, branch="brief")
    assert again.status_code == 201, again.text


def test_a_branch_moved_during_completion_is_a_stale_ref_and_nothing_is_recorded(server, tenant, git, tmp_path,
                                                                                   monkeypatch):
    from control.services import uploads as upload_service
    from storage.errors import StaleRef

    repo = new_repo(server, tenant)
    upload_tree(server, tenant, repo, "ver-0", {"zero": b"0"})
    upload = _pending_upload(server, tenant, repo, "ver-1", {"one": b"1"})
    work = tmp_path / "w"
    git("clone", "-q", tenant.url(repo), str(work))
    interloper = git.commit(work, {"pushed.txt": b"pushed"}, "pushed meanwhile")
    real_turn = upload_service.serialize_repository_writes

    def push_first(*args, **kwargs):  # once the files are written, before the completion takes its turn
        git("push", "-q", "origin", "main", cwd=work)
        return real_turn(*args, **kwargs)

    monkeypatch.setattr(upload_service, "serialize_repository_writes", push_first)
    before = stored_state(server, repo, tenant)
    with pytest.raises(StaleRef):
        _complete_in_process(server, tenant, repo, upload["uploadId"])
    monkeypatch.undo()
    after = stored_state(server, repo, tenant)
    # the push moved main past ver-0's commit: its effects clear the identifier; the failed completion itself
    # changes nothing
    assert after.pop("main") is None and before.pop("main") == "ver-0"
    assert after == before
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/main").split()[0] == interloper
    stale = complete(server, tenant, repo, upload["uploadId"])
    assert stale.status_code == 409 and stale.json()["code"] == "stale_ref", stale.text
    assert stale.json()["details"]["actual"] == interloper
    assert ask(server, tenant, repo, "ver-1", {"one": b"1"}).status_code == 201  # based on the new head; no new PUT
    retried = complete(server, tenant, repo, upload["uploadId"])
    assert retried.status_code == 200
    assert cloned_files(git, tenant.url(repo), "main", tmp_path / "c") == {"one": b"1"}
    assert git.out("rev-parse", "HEAD~1", cwd=tmp_path / "c") == interloper


@pytest.mark.parametrize("process_died", [False, True])
def test_a_completion_whose_transaction_failed_is_completed_by_a_retry(server, tenant, git, tmp_path, process_died):
    """The database fails after the completion moved main. The failed request takes its ref change back; if the
    process died before it could (stood in for by dropping that undo), main has moved with nothing recorded,
    and the retry recognises its own commit instead of writing a second one. Either way: one commit."""
    repo = new_repo(server, tenant)
    upload = _pending_upload(server, tenant, repo, "ver-lost", {"a.txt": b"a"})

    class DatabaseWentAway(Exception):
        pass

    from control.services import repos as repo_service
    from control.services import uploads as upload_service
    from storage.keys import find_principal

    context = server.context
    with pytest.raises(DatabaseWentAway):
        with context.db.session() as session:
            principal = find_principal(session, tenant.keys["agent"])
            row = repo_service.visible_repo(session, principal, repo)
            moved_to = upload_service.complete_upload(session, context, row, principal, upload["uploadId"]).commit_sha
            if process_died:
                session.info.pop("undo_on_rollback")
            raise DatabaseWentAway()
    assert api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}").json()["data"]["mainHeadIdentifier"] is None
    main = git.out("ls-remote", tenant.url(repo), "refs/heads/main").split()
    assert main == ([moved_to, "refs/heads/main"] if process_died else [])
    retried = complete(server, tenant, repo, upload["uploadId"])
    assert retried.status_code == 200
    if process_died:
        assert retried.json()["data"]["commit"] == moved_to
    meta = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}").json()["data"]
    assert meta["mainHeadIdentifier"] == "ver-lost" and meta["mainHeadCommit"] == retried.json()["data"]["commit"]
    assert cloned_files(git, tenant.url(repo), "main", tmp_path / "c") == {"a.txt": b"a"}
    assert git.out("rev-list", "--count", "HEAD", cwd=tmp_path / "c") == "1"


def test_receiving_on_an_injected_clock_expires_at_fifteen_minutes(server, tenant):
    import dataclasses

    from control.services import uploads as upload_service
    from storage.errors import Forbidden

    repo = new_repo(server, tenant)
    upload = ask(server, tenant, repo, "ver-clock", {"a.txt": b"a"}).json()["data"]
    target = upload["files"][0]
    query = {k: v[0] for k, v in parse_qs(urlsplit(target["uploadUrl"]).query).items()}
    issued = server.context.clock()
    signed = signing.sign(server.context.settings.secret_key, "PUT", target["path"], query["fileId"], issued)

    def receive_at(now):
        context = dataclasses.replace(server.context, clock=lambda: now)
        with context.db.session() as session:
            return upload_service.receive_file(session, context, target["path"], query["fileId"], str(signed.expires),
                                               signed.signature, iter([b"a"]), 1)

    with pytest.raises(Forbidden, match="expired"):
        receive_at(datetime.fromtimestamp(signed.expires, tz=timezone.utc))
    assert not server.context.blobs.exists(target["path"])
    assert receive_at(datetime.fromtimestamp(signed.expires, tz=timezone.utc) - timedelta(seconds=1)).size == 1
    assert server.context.blobs.exists(target["path"])


def test_completing_over_commits_the_upload_never_saw_is_a_stale_ref_until_asked_again(server, tenant, git,
                                                                                         tmp_path):
    """An upload is a whole directory: written over a commit pushed after it was requested, it would drop that
    commit's files without a word."""
    repo = new_repo(server, tenant)
    upload_tree(server, tenant, repo, "ver-1", {"a.txt": b"1"})
    upload = _pending_upload(server, tenant, repo, "ver-2", {"a.txt": b"2"})
    work = tmp_path / "w"
    git("clone", "-q", tenant.url(repo), str(work))
    pushed = git.commit(work, {"c.txt": b"someone else's"}, "add c")
    git("push", "-q", "origin", "main", cwd=work)
    before = stored_state(server, repo, tenant)
    stale = complete(server, tenant, repo, upload["uploadId"])
    assert stale.status_code == 409 and stale.json()["code"] == "stale_ref", stale.text
    assert stale.json()["details"]["actual"] == pushed
    assert stored_state(server, repo, tenant) == before
    asked_again = ask(server, tenant, repo, "ver-2", {"a.txt": b"2"})
    assert asked_again.status_code == 201, asked_again.text
    done = complete(server, tenant, repo, upload["uploadId"])
    assert done.status_code == 200, done.text
    assert cloned_files(git, tenant.url(repo), "main", tmp_path / "c") == {"a.txt": b"2"}
    assert git.out("rev-parse", "HEAD~1", cwd=tmp_path / "c") == pushed


def test_a_pushed_commit_posing_as_the_upload_is_not_taken_for_it(server, tenant, git, tmp_path):
    """Anyone who can push can copy the uploader's name and the Upload-Id trailer; only a commit of exactly the
    upload's files on the head it was asked against counts as the upload's own."""
    repo = new_repo(server, tenant)
    upload_tree(server, tenant, repo, "ver-0", {"a.txt": b"0"})
    files = {"a.txt": b"trusted"}
    upload = _pending_upload(server, tenant, repo, "ver-good", files)
    work = tmp_path / "w"
    git("clone", "-q", tenant.url(repo), str(work))
    (work / "a.txt").write_bytes(b"EVIL")
    git("add", "a.txt", cwd=work)
    git("-c", "user.name=Driftstone", "-c", "user.email=uploads@driftstone.local", "commit", "-q", "-m",
        f"Upload ver-good\n\nUpload-Id: {upload['uploadId']}", cwd=work)
    forged = git.out("rev-parse", "HEAD", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    assert complete(server, tenant, repo, upload["uploadId"]).status_code == 409
    assert ask(server, tenant, repo, "ver-good", files).status_code == 201  # now based on the forged commit
    done = complete(server, tenant, repo, upload["uploadId"])
    assert done.status_code == 200, done.text
    assert done.json()["data"]["commit"] != forged
    assert cloned_files(git, tenant.url(repo), "main", tmp_path / "c") == files
    meta = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}").json()["data"]
    assert meta["mainHeadCommit"] == done.json()["data"]["commit"] and meta["mainHeadIdentifier"] == "ver-good"


def test_a_gitmodules_git_would_refuse_is_not_committed(server, tenant, git):
    """Uploads pass the checks a push does, git's fsck of `.gitmodules` included (CVE-2018-11235)."""
    repo = new_repo(server, tenant)
    upload_tree(server, tenant, repo, "ver-0", {"a.txt": b"0"})
    files = {".gitmodules": b'[submodule "../../modules/evil"]\n\tpath = x\n\turl = --upload-pack=touch /tmp/pwned\n'}
    upload = _pending_upload(server, tenant, repo, "ver-evil", files)
    before = stored_state(server, repo, tenant)
    refused = complete(server, tenant, repo, upload["uploadId"])
    assert refused.status_code == 422 and refused.json()["code"] == "invalid", refused.text
    assert "gitmodulesName" in refused.json()["error"]
    assert stored_state(server, repo, tenant) == before
    fsck = subprocess.run(["git", "fsck", "--no-dangling"], cwd=repo_path(server, tenant, repo), capture_output=True)
    assert fsck.returncode == 0, fsck.stderr


def test_a_push_that_moves_nothing_keeps_the_upload_identifier_and_records_no_event(server, tenant):
    """isomorphic-git pushes an up-to-date branch as the command `X X refs/heads/main` (the git CLI sends none):
    its effects ran as for a moved ref, so the branch lost the identifier of its last upload and the repository
    its mainHeadIdentifier, and a push event said the branch went from X to X (an interop sweep)."""
    repo = new_repo(server, tenant)
    done = upload_tree(server, tenant, repo, "ver-kept", {"a.txt": b"a"})
    with server.context.db.session() as session:
        events = session.scalar(select(func.count()).select_from(Event))
    head = done["commit"]
    empty_pack = b"PACK" + (2).to_bytes(4, "big") + (0).to_bytes(4, "big")
    body = pkt(f"{head} {head} refs/heads/main\0report-status\n".encode()) + b"0000" + empty_pack + \
        hashlib.sha1(empty_pack).digest()
    answer = receive_pack(server, tenant, repo, body)
    assert answer.status_code == 200 and b"ok refs/heads/main" in answer.content, answer.content
    meta = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}").json()["data"]
    assert meta["mainHeadIdentifier"] == "ver-kept" and meta["mainHeadCommit"] == head
    branch = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/branches/main").json()["data"]
    assert branch["headIdentifier"] == "ver-kept", branch
    with server.context.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == events


def test_reconcile_drops_the_upload_identifier_of_a_branch_whose_head_it_moves(server, tenant, git, tmp_path):
    """A push whose effects the database kept out (a full disk) left the rows behind the ref; reconcile moved the
    head but kept the identifier of the upload that had made the old one, naming a commit it did not make (a
    disk-full sweep). A branch whose head reconcile leaves alone keeps its identifier."""
    repo = new_repo(server, tenant)
    upload_tree(server, tenant, repo, "ver-main", {"a.txt": b"a"})
    api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches", {"name": "feat"})
    upload_tree(server, tenant, repo, "ver-feat", {"b.txt": b"b"}, branch="feat")
    work = tmp_path / "w"
    git("clone", "-q", tenant.url(repo), str(work))
    (work / "pushed.txt").write_text("pushed\n")
    git("add", "pushed.txt", cwd=work)
    git("commit", "-q", "-m", "pushed, its effects lost", cwd=work)
    pushed = git.out("rev-parse", "HEAD", cwd=work)
    git("push", "-q", tenant.url(repo), "HEAD:refs/heads/scratch", cwd=work)  # the objects, through a push
    subprocess.run(["git", "-C", str(repo_path(server, tenant, repo)), "update-ref", "refs/heads/main", pushed],
                   check=True)  # main moves as a push whose effects were lost moved it
    driftstone = Path(sys.executable).parent / "driftstone"
    subprocess.run([str(driftstone), "admin", "reconcile", f"{tenant.org}/{repo}"], env=server.env, check=True,
                   capture_output=True)
    meta = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}").json()["data"]
    assert meta["mainHeadCommit"] == pushed and meta["mainHeadIdentifier"] is None, meta
    main = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/branches/main").json()["data"]
    feat = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/branches/feat").json()["data"]
    assert main["headIdentifier"] is None and feat["headIdentifier"] == "ver-feat", (main, feat)
    upload_tree(server, tenant, repo, "ver-again", {"c.txt": b"c"})  # and where main's row itself was lost:
    with server.context.db.session() as session:
        session.execute(delete(Branch).where(Branch.repo_id == meta["id"], Branch.name == "main"))
    subprocess.run([str(driftstone), "admin", "reconcile", f"{tenant.org}/{repo}"], env=server.env, check=True,
                   capture_output=True)
    assert api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}").json()["data"]["mainHeadIdentifier"] is None


def test_upload_url_signatures_are_not_written_to_the_access_log(server, tenant):
    """A signed URL is a bearer capability for fifteen minutes: its PUT's access-log line keeps the path and the
    other parameters, the signature blanked out; also where the parameter's name is percent-encoded
    (`%73ignature`, which the application decodes and accepts: it reached the log whole)."""
    import time

    repo = new_repo(server, tenant)
    files = {"logged.txt": b"x"}
    upload = ask(server, tenant, repo, "ver-log", files).json()["data"]
    put_all(upload, files)
    url = urlsplit(upload["files"][0]["uploadUrl"])
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)  # requests would decode the %73
    connection.request("PUT", f"{url.path}?{url.query.replace('signature=', '%73ignature=')}", files["logged.txt"])
    assert connection.getresponse().status == 200
    connection.close()
    signature = parse_qs(urlsplit(upload["files"][0]["uploadUrl"]).query)["signature"][0]
    file_id = parse_qs(urlsplit(upload["files"][0]["uploadUrl"]).query)["fileId"][0]
    deadline = time.monotonic() + 10
    while len([line for line in server.log_text().splitlines() if file_id in line]) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [line for line in server.log_text().splitlines() if file_id in line]
    assert len(lines) == 2 and all("ignature=[redacted]" in line for line in lines), lines
    assert signature not in server.log_text()


def test_a_recreated_repository_can_use_the_deleted_ones_identifiers_once_purged(server, tenant, git, tmp_path):
    """Identifiers are often derived (ver-<hash>): the deleted repository's uploads held their stored paths
    forever, so the same upload into the re-created repository was a 409 for good."""
    key = tenant.keys["admin"]
    api(server, key, "POST", "/v1/repos", {"name": "reborn"})
    upload_tree(server, tenant, "reborn", "ver-1", {"a.txt": b"old"})
    old_id = api(server, key, "GET", "/v1/repos/reborn").json()["data"]["id"]
    assert api(server, key, "DELETE", "/v1/repos/reborn").status_code == 200
    wait_until_gone(server.context.store.path_for(old_id))
    api(server, key, "POST", "/v1/repos", {"name": "reborn"})
    done = upload_tree(server, tenant, "reborn", "ver-1", {"a.txt": b"new"})
    assert cloned_files(git, tenant.url("reborn"), "main", tmp_path / "c") == {"a.txt": b"new"}
    assert done["identifier"] == "ver-1"


def test_bytes_that_arrive_after_their_repository_was_deleted_are_not_kept(server, tenant):
    """A PUT under way while the repository is deleted and purged stored its file after the purge, for good."""
    key = tenant.keys["admin"]
    api(server, key, "POST", "/v1/repos", {"name": "put-late"})
    repo_id = api(server, key, "GET", "/v1/repos/put-late").json()["data"]["id"]
    data = b"late bytes\n" * 100
    url = urlsplit(ask(server, tenant, "put-late", "ver-late", {"late.txt": data}).json()["data"]["files"][0]
                   ["uploadUrl"])
    head = (f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n"
            f"Connection: close\r\n\r\n")
    def delete_and_purge() -> None:
        assert api(server, key, "DELETE", "/v1/repos/put-late").status_code == 200
        wait_until_gone(server.context.store.path_for(repo_id))

    answer = request_interrupted(server, head, data, 10, delete_and_purge)
    assert answer.startswith(b"HTTP/1.1 404"), answer[:300]
    assert not list(stored_uploads(server, tenant, repo_id).rglob("late.txt"))


def test_a_put_for_a_deleted_branch_is_refused_and_nothing_is_kept(server, tenant):
    repo = new_repo(server, tenant)
    upload_tree(server, tenant, repo, "ver-0", {"a.txt": b"0"})
    key = tenant.keys["agent"]
    assert api(server, key, "POST", f"/v1/repos/{repo}/branches", {"name": "short-lived", "recordOnly": True}) \
        .status_code == 201
    files = {"b.txt": b"for a branch that goes away"}
    upload = ask(server, tenant, repo, "ver-b", files, branch="short-lived").json()["data"]
    assert api(server, key, "DELETE", f"/v1/repos/{repo}/branches/short-lived").status_code == 200
    response = put(upload["files"][0]["uploadUrl"], files["b.txt"])
    assert response.status_code == 404, response.text
    repo_id = api(server, key, "GET", f"/v1/repos/{repo}").json()["data"]["id"]
    assert not [p for p in (stored_uploads(server, tenant, repo_id) / upload["uploadId"]).rglob("*") if p.is_file()]


def test_the_longest_names_the_api_accepts_give_upload_urls_that_work(server, tenant, git, tmp_path):
    """A 255-byte branch, a 200-character identifier and a 1,023-byte file name, all accepted, made a URL past
    gunicorn's default request-line limit: every PUT was a 414."""
    repo = new_repo(server, tenant)
    upload_tree(server, tenant, repo, "ver-0", {"a.txt": b"0"})
    branch = "分" * 40 + "/" + "分" * 40
    assert api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches",
               {"name": branch, "recordOnly": True}).status_code == 201
    name = "/".join(["文" * 85] * 4)
    files = {name: b"long"}
    asked = ask(server, tenant, repo, "v" * 200, files, branch=branch)
    assert asked.status_code == 201, asked.text
    assert len(asked.json()["data"]["files"][0]["uploadUrl"]) > 3000  # the name, percent-encoded
    put_all(asked.json()["data"], files)
    assert complete(server, tenant, repo, asked.json()["data"]["uploadId"]).status_code == 200


@pytest.mark.parametrize("deleted_by", ["push", "reconcile", "create"])
def test_a_deleted_branchs_uploads_are_gone_and_its_identifiers_free_for_the_branch_made_again(
        server, tenant, git, tmp_path, deleted_by):
    """Only an API delete purged a branch's upload files: after `git push --delete` (or a ref deleted whose
    effects never ran, then reconcile) they stayed, and the same upload into the re-created branch was a 409
    ('already completed') for good. And where the branch was made again before the purge ran (`create`: its
    ref deleted by a request killed before its effects, then the branch created, whose purge of the old uploads
    ran after it and found the branch there), the old uploads stayed for good: same 409."""

    repo = new_repo(server, tenant)
    repo_id = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}").json()["data"]["id"]
    upload_tree(server, tenant, repo, "ver-0", {"a.txt": b"0"})
    assert api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches", {"name": "feat"}).status_code == 201
    old = upload_tree(server, tenant, repo, "v1", {"a.txt": b"feat 1"}, branch="feat")
    stored = stored_uploads(server, tenant, repo_id) / old["uploadId"]
    assert [p for p in stored.rglob("*") if p.is_file()]
    if deleted_by == "push":
        git("init", "-q", str(tmp_path / "any"))
        git("push", "-q", tenant.url(repo), "--delete", "feat", cwd=tmp_path / "any")
    else:
        subprocess.run(["git", "-C", str(repo_path(server, tenant, repo)), "update-ref", "-d", "refs/heads/feat"],
                       check=True)
    if deleted_by == "reconcile":
        driftstone = Path(sys.executable).parent / "driftstone"
        subprocess.run([str(driftstone), "admin", "reconcile", f"{tenant.org}/{repo}"], env=server.env, check=True,
                       capture_output=True)
    assert api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches", {"name": "feat"}).status_code == 201
    assert complete(server, tenant, repo, old["uploadId"]).status_code == 404
    again = upload_tree(server, tenant, repo, "v1", {"a.txt": b"feat again"}, branch="feat")
    assert again["identifier"] == "v1" and again["uploadId"] != old["uploadId"]
    assert cloned_files(git, tenant.url(repo), "feat", tmp_path / "c") == {"a.txt": b"feat again"}
    deadline = time.monotonic() + 30
    while [p for p in stored.rglob("*") if p.is_file()] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in stored.rglob("*") if p.is_file()]
    with server.context.db.session() as session:
        assert session.get(Upload, old["uploadId"]) is None
    assert [p for p in (stored_uploads(server, tenant, repo_id) / again["uploadId"]).rglob("*") if p.is_file()]


def test_an_identifier_names_only_the_head_its_upload_made(server, tenant, git, tmp_path):
    """After a push moved main past the upload's commit, the repository still said mainHeadIdentifier "ver-t9"
    and a branch made from main then was stamped with it, for a head that upload never produced."""
    repo = new_repo(server, tenant)
    made = upload_tree(server, tenant, repo, "ver-t9", {"a.txt": b"a\n"})
    reader = tenant.keys["read"]
    assert api(server, reader, "GET", f"/v1/repos/{repo}").json()["data"]["mainHeadIdentifier"] == "ver-t9"
    url = f"http://agent:{tenant.keys['agent']}@127.0.0.1:{server.port}/{tenant.org}/{repo}.git"
    work = tmp_path / "w"
    git("clone", "-q", "--branch", "main", url, str(work))
    git.commit(work, {"b.txt": "b\n"}, "pushed after the upload")
    git("push", "-q", "origin", "main", cwd=work)
    meta = api(server, reader, "GET", f"/v1/repos/{repo}").json()["data"]
    assert meta["mainHeadIdentifier"] is None and meta["mainHeadCommit"] != made["commit"]
    branch = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches", {"name": "after-push"})
    assert branch.status_code == 201 and branch.json()["data"]["headIdentifier"] is None, branch.text
    assert upload_tree(server, tenant, repo, "ver-t10", {"a.txt": b"a2\n"})["commit"]
    assert api(server, reader, "GET", f"/v1/repos/{repo}").json()["data"]["mainHeadIdentifier"] == "ver-t10"


def test_completes_and_puts_racing_their_branch_delete_answer_cleanly(server, tenant):
    """A branch deleted while its upload was completed or its file PUT made those answer 500: the purge of the
    branch's uploads removed their rows (or stored files) between the request's look at them and its write, or
    the delete removed the branch row the completion was recording its upload on (sweep: 40% of trials). Here it
    fails on SQLite with in-process jobs within a few trials; on PostgreSQL with rq the purge runs in another
    process and rarely meets the race (the sweep's script, 120 trials on PostgreSQL: 56 answers 500 before, none
    after)."""
    key = tenant.keys["agent"]
    repo = new_repo(server, tenant)
    data = b"racing\n"
    for trial in range(4):
        racers = []
        for pair in range(8):
            branch = f"ud-{trial}-{pair}"
            assert api(server, key, "POST", f"/v1/repos/{repo}/branches", {"name": branch}).status_code == 201
            upload = ask(server, tenant, repo, "v1", {"a.txt": data}, branch=branch).json()["data"]
            if pair % 2:  # the PUT races the delete
                racers.append((branch, lambda upload=upload: put(upload["files"][0]["uploadUrl"], data)))
            else:
                put_all(upload, {"a.txt": data})
                racers.append((branch, lambda upload=upload: complete(server, tenant, repo, upload["uploadId"])))

        def race(i: int):
            branch, racer = racers[i // 2]
            if i % 2 == 0:
                return racer()
            time.sleep(0.005 * ((i // 2 + trial) % 4))  # the delete lands at different points of the other's way
            return api(server, key, "DELETE", f"/v1/repos/{repo}/branches/{branch}")

        answers = at_once(16, race)
        for i in range(0, 16, 2):
            assert answers[i + 1].status_code == 200, answers[i + 1].text
            assert answers[i].status_code in (200, 404, 409), (trial, i, answers[i].status_code, answers[i].text)
            assert answers[i].headers["Content-Type"].startswith("application/json")
