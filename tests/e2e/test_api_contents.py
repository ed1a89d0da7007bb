"""Contents API on a real server, checked with the real git CLI: atomic multi-file commits (intent trailers,
compare-and-swap on the expected head, hostile paths), reading files and trees, and diffs that match `git diff`."""
from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from tests.support import Git, api, repo_path

AUTHOR = {"name": "Ada Agent", "email": "ada@example.test"}


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def create(path: str, content: bytes | str, **extra) -> dict:
    return {"action": "create", "path": path, "content": b64(content), **extra}


def commit(server, tenant, repo, operations, key="agent", **fields):
    body = {"branch": "main", "message": "api change", "operations": operations, **fields}
    return api(server, tenant.keys[key], "POST", f"/v1/repos/{repo}/commits", body)


def head_of(git, tenant, repo, branch="main") -> str | None:
    out = git.out("ls-remote", tenant.url(repo), f"refs/heads/{branch}")
    return out.split()[0] if out else None


def clone(git, tenant, repo, tmp_path: Path, name: str | None = None) -> Path:
    target = tmp_path / (name or f"clone-{uuid.uuid4().hex[:6]}")
    git("clone", "-q", tenant.url(repo), str(target))
    return target


def files_of(work: Path) -> dict[str, bytes]:
    found = {}
    for root, dirs, names in os.walk(work):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            full = Path(root) / name
            found[str(full.relative_to(work))] = os.readlink(full).encode() if full.is_symlink() else full.read_bytes()
    return found


SEED_FILES = {"README.md": "# hello\n", "src/app.py": "print('hi')\n", "src/util.py": "def util():\n    return 1\n",
              "docs/guide.md": "guide\n" * 30, "run.sh": "echo run\n"}


def _push_seed(tenant, git, where: Path):
    repo = tenant.repo()
    work = git.new_worktree(where, SEED_FILES)
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    return repo, work, git.out("rev-parse", "HEAD", cwd=work)


@pytest.fixture
def pushed(tenant, git, tmp_path):
    """A repository with history pushed by git: (repo, work tree, head)."""
    return _push_seed(tenant, git, tmp_path / "seed")


@pytest.fixture(scope="module")
def unchanged(server, tmp_path_factory):
    """One pushed repository shared by the tests whose requests must all be refused: (tenant, git, repo, head)."""
    home = tmp_path_factory.mktemp("home")
    git, tenant = Git(home=home), server.tenant()
    repo, _, head = _push_seed(tenant, git, tmp_path_factory.mktemp("work") / "seed")
    return tenant, git, repo, head


def test_first_commit_on_an_empty_repository_clones_with_exactly_these_files(server, tenant, git, tmp_path):
    repo = tenant.repo()
    binary = bytes(range(256)) * 8
    intent = {"goal": "Bootstrap the service", "confidence": 0.9, "plan_step": 1, "risk-level": "low"}
    response = commit(server, tenant, repo, [
        create("README.md", "# service\n"),
        create("src/main.py", "print('main')\n"),
        create("bin/tool", "#!/bin/sh\necho tool\n", mode="100755"),
        create("notes/ünïcode.txt", "héllo\n"),
        create("assets/blob.bin", binary),
        create("empty.txt", b""),
    ], message="Bootstrap", author=AUTHOR, intent=intent)
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["parents"] == [] and data["branch"] == "main" and len(data["sha"]) == 40 and len(data["tree"]) == 40
    assert data["intent"] == intent and data["message"].startswith("Bootstrap\n\n")

    work = clone(git, tenant, repo, tmp_path)
    assert files_of(work) == {"README.md": b"# service\n", "src/main.py": b"print('main')\n",
                              "bin/tool": b"#!/bin/sh\necho tool\n", "notes/ünïcode.txt": "héllo\n".encode(),
                              "assets/blob.bin": binary, "empty.txt": b""}
    assert git.out("rev-parse", "HEAD", cwd=work) == data["sha"]
    assert git.out("rev-parse", "HEAD^{tree}", cwd=work) == data["tree"]
    assert git.out("ls-files", "-s", "bin/tool", cwd=work).startswith("100755 ")
    assert git.out("log", "--format=%an <%ae>", cwd=work) == "Ada Agent <ada@example.test>"
    trailers = git.out("log", "-1", "--format=%(trailers:only,unfold)", cwd=work).splitlines()
    assert trailers == ["Intent-Goal: Bootstrap the service", "Intent-Confidence: 0.9", "Intent-Plan-Step: 1",
                        "Intent-Risk-Level: low"]
    git("fsck", "--strict", cwd=work)

    meta = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/commits/{data['sha']}").json()["data"]
    assert meta["source"] == "api" and meta["intent"] == intent  # typed as sent, as in the commit's own answer
    listed = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/commits?branch=main").json()["data"]
    assert listed[0]["sha"] == data["sha"] and listed[0]["intent"] == intent
    branch = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/branches/main").json()["data"]
    assert branch["headCommit"] == data["sha"]

    # trailers written into the message itself are the commit's intent, in its answer as in every read of it
    written = commit(server, tenant, repo, [create("b.txt", "b\n")], message="Tidy\n\nIntent-Goal: tidy up")
    assert written.status_code == 201 and written.json()["data"]["intent"] == {"goal": "tidy up"}, written.text
    read = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/commits/{written.json()['data']['sha']}")
    assert read.json()["data"]["intent"] == written.json()["data"]["intent"]


def test_update_delete_rename_make_one_commit_on_the_head(server, tenant, git, tmp_path, pushed):
    repo, _, head = pushed
    response = commit(server, tenant, repo, [
        {"action": "update", "path": "src/app.py", "content": b64("print('hello')\n")},
        {"action": "delete", "path": "docs/guide.md"},
        {"action": "rename", "previousPath": "src/util.py", "path": "lib/util.py"},
        {"action": "rename", "previousPath": "README.md", "path": "README.txt", "content": b64("hello\n")},
        {"action": "update", "path": "run.sh", "content": b64("echo run\n"), "mode": "100755"},
        create("src/new/deep/file.txt", "deep\n"),
    ], expectedHeadSha=head, message="Reshape", intent={"goal": "reshape"})
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["parents"] == [head]

    work = clone(git, tenant, repo, tmp_path)
    assert git.out("rev-list", "--count", "HEAD", cwd=work) == "2"
    assert files_of(work) == {"src/app.py": b"print('hello')\n", "lib/util.py": b"def util():\n    return 1\n",
                              "README.txt": b"hello\n", "run.sh": b"echo run\n", "src/new/deep/file.txt": b"deep\n"}
    status = git.out("diff", "--name-status", "-M", "HEAD~", "HEAD", cwd=work).splitlines()
    assert "R100\tsrc/util.py\tlib/util.py" in status and "D\tdocs/guide.md" in status
    assert git.out("ls-files", "-s", "run.sh", cwd=work).startswith("100755 ")
    assert "Intent-Goal: reshape" in git.out("log", "-1", "--format=%B", cwd=work)


def test_stale_or_null_expected_head_is_refused_with_the_actual_head(server, tenant, git, pushed):
    repo, _, head = pushed
    stale = "0" * 39 + "1"
    response = commit(server, tenant, repo, [create("x.txt", "x")], expectedHeadSha=stale)
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "stale_ref" and body["details"]["actualHeadSha"] == head
    assert body["details"]["expectedHeadSha"] == stale
    exists = commit(server, tenant, repo, [create("x.txt", "x")], expectedHeadSha=None)
    assert exists.status_code == 409 and exists.json()["details"]["actualHeadSha"] == head
    assert head_of(git, tenant, repo) == head


def test_new_branches_empty_branches_and_unknown_branches(server, tenant, git, tmp_path, pushed):
    repo, _, head = pushed
    unknown = commit(server, tenant, repo, [create("a.txt", "a")], branch="nope")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    orphan = commit(server, tenant, repo, [create("a.txt", "a")], branch="orphan", expectedHeadSha=None)
    assert orphan.status_code == 201 and orphan.json()["data"]["parents"] == []
    created = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches",
                  {"name": "waiting", "recordOnly": True})
    assert created.status_code == 201, created.text
    first = commit(server, tenant, repo, [create("feature.txt", "f\n")], branch="waiting")
    assert first.status_code == 201, first.text
    assert first.json()["data"]["parents"] == [head]  # a record-only branch starts from its base branch
    branch = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/branches/waiting").json()["data"]
    assert branch["headCommit"] == first.json()["data"]["sha"] and branch["status"] == "ready"
    assert head_of(git, tenant, repo, "waiting") == first.json()["data"]["sha"]


@pytest.mark.parametrize("operations,status,code", [
    ([create("README.md", "again")], 409, "conflict"),
    ([create("src", "a file where a directory is")], 409, "conflict"),
    ([create("run.sh/inside", "under a file")], 409, "conflict"),
    ([{"action": "rename", "previousPath": "src/app.py", "path": "README.md"}], 409, "conflict"),
    ([{"action": "update", "path": "missing.txt", "content": b64("x")}], 404, "not_found"),
    ([{"action": "delete", "path": "missing.txt"}], 404, "not_found"),
    ([{"action": "rename", "previousPath": "missing.txt", "path": "b.txt"}], 404, "not_found"),
    ([{"action": "delete", "path": "src"}], 409, "conflict"),
    ([{"action": "update", "path": "README.md", "content": b64("# hello\n")}], 409, "conflict"),  # no change
    ([{"action": "update", "path": "README.md"}], 422, "invalid"),
    ([{"action": "delete", "path": "README.md", "content": b64("x")}], 422, "invalid"),
    ([{"action": "rename", "path": "b.txt"}], 422, "invalid"),
    ([create("a.txt", "1"), create("a.txt", "2")], 409, "conflict"),  # the request conflicts with itself
    ([create("d", "1"), create("d/e", "2")], 409, "conflict"),
    ([{"action": "delete", "path": "run.sh"}, create("run.sh/x", "2")], 409, "conflict"),
    ([{"action": "rename", "previousPath": "run.sh", "path": "run.sh"}], 422, "invalid"),  # moves nothing
    ([{"action": "rename", "previousPath": "run.sh", "path": "run.sh/x"}], 409, "conflict"),
    ([{"action": "rename", "previousPath": "src/app.py", "path": "src"}], 409, "conflict"),
    ([{"action": "create", "path": "a.txt", "content": "not base64!"}], 422, "invalid"),
    ([{"action": "create", "path": "a.txt", "content": "YQ"}], 422, "invalid"),  # unpadded
    ([{"action": "create", "path": "a.txt", "content": b64("x"), "mode": "120000"}], 422, "invalid"),
    ([{"action": "chmod", "path": "a.txt"}], 422, "invalid"),
    ([], 422, "invalid"),
])
def test_operations_that_do_not_fit_the_tree_change_nothing(server, unchanged, operations, status, code):
    tenant, git, repo, head = unchanged
    response = commit(server, tenant, repo, operations, expectedHeadSha=head)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert head_of(git, tenant, repo) == head


def test_a_rename_into_its_own_path_says_so(server, unchanged):
    """It was refused as "operations 0 and 0 both change 'run.sh'": an operation at odds with itself (an API
    sweep)."""
    tenant, git, repo, head = unchanged
    inside = commit(server, tenant, repo, [{"action": "rename", "previousPath": "run.sh", "path": "run.sh/x"}],
                    expectedHeadSha=head)
    assert inside.status_code == 409 and "renames 'run.sh' to 'run.sh/x'" in inside.json()["error"]
    same = commit(server, tenant, repo, [{"action": "rename", "previousPath": "run.sh", "path": "run.sh"}],
                  expectedHeadSha=head)
    assert same.status_code == 422 and same.json()["details"]["fields"][0]["loc"] == "operations.0.path"
    assert head_of(git, tenant, repo) == head


@pytest.mark.parametrize("fields,loc", [
    ({"message": "nul\0inside"}, "message"),
    ({"author": {"name": "Ada\nEvil: header", "email": "a@x"}}, "author.name"),
    ({"author": {"name": "Ada", "email": "a@x\0"}}, "author.email"),
    ({"author": {"name": "Ada <ada@x>", "email": "a@x"}}, "author.name"),
    ({"author": {"name": "Ada", "email": "<a@x>"}}, "author.email"),
    ({"author": {"name": "Ada", "email": "a @x"}}, "author.email"),
    ({"intent": {"goal": "nul\0"}}, "intent.goal"),
    ({"intent": {"bad key": "x"}}, "intent"),
    ({"intent": {f"k{i}": i for i in range(51)}}, "intent"),
    ({"intent": {"goal": "a", "Goal": "b"}}, "intent"),
    ({"intent": {"tests_passed": "a", "tests-passed": "b"}}, "intent"),
    ({"intent": {"nested": {"a": 1}}}, "intent.nested"),
    ({"branch": "bad..name"}, "name"),
    ({"expectedHeadSha": "HEAD"}, "expectedHeadSha"),
])
def test_commit_fields_are_checked(server, unchanged, fields, loc):
    tenant, git, repo, head = unchanged
    response = commit(server, tenant, repo, [create("fine.txt", "x")], **fields)
    assert response.status_code == 422, response.text
    assert response.json()["details"]["fields"][0]["loc"] == loc, response.text  # the field as the client wrote it
    assert head_of(git, tenant, repo) == head


HOSTILE_PATHS = [
    ".git/config", ".GIT/config", "a/.Git/hooks/x", "git~1/config", "a/GIT~12/x", ".git./x", ".git /x",
    ".git::$INDEX_ALLOCATION/x", ".git:stream", "a::b", "\u200c.git/config", ".g\u200dit/x", "\ufeff.git/x",
    "../escape", "a/../../etc/passwd", "a/./b", "./a", "/abs/path", "a//b", "a/", "a\\b", "..\\x", "nul\0byte",
    "tab\tname", "a/..", ".", "..", " .. ", "x" * 256, "/".join(["d"] * 65) + "/f", "é" * 600,
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_paths_are_refused(server, unchanged, path):
    tenant, git, repo, head = unchanged
    response = commit(server, tenant, repo, [create(path, "pwned")], expectedHeadSha=head)
    assert response.status_code == 422, (path, response.text)
    assert response.json()["code"] == "invalid"
    assert response.json()["details"]["fields"][0]["loc"] == "operations.0.path"
    renamed = commit(server, tenant, repo, [{"action": "rename", "previousPath": "README.md", "path": path}])
    assert renamed.status_code == 422, (path, renamed.text)
    assert head_of(git, tenant, repo) == head


def test_scopes_and_visibility(server, tenant, pushed):
    repo, _, head = pushed
    assert commit(server, tenant, repo, [create("a.txt", "a")], key="read").status_code == 403
    other = server.tenant()
    response = api(server, other.keys["admin"], "POST", f"/v1/repos/{repo}/commits",
                   {"branch": "main", "message": "m", "operations": [create("a.txt", "a")]})
    assert response.status_code == 404
    assert api(server, other.keys["admin"], "GET", f"/v1/repos/{repo}/contents/README.md").status_code == 404


def test_same_expected_head_from_two_writers_exactly_one_wins(server, tenant, git, tmp_path, pushed):
    repo, _, head = pushed
    for round_ in range(4):
        start = threading.Barrier(2)
        results = []

        def write(name):
            start.wait()
            results.append(commit(server, tenant, repo, [create(f"{name}-{round_}.txt", name)],
                                  expectedHeadSha=head))

        threads = [threading.Thread(target=write, args=(name,)) for name in ("left", "right")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        statuses = sorted(r.status_code for r in results)
        assert statuses == [201, 409], [r.text for r in results]
        winner = next(r for r in results if r.status_code == 201).json()["data"]["sha"]
        loser = next(r for r in results if r.status_code == 409).json()
        assert loser["code"] == "stale_ref" and loser["details"]["actualHeadSha"] in (winner, head)
        assert head_of(git, tenant, repo) == winner
        head = winner
    work = clone(git, tenant, repo, tmp_path)
    assert git.out("rev-list", "--count", "HEAD", cwd=work) == "5"


def test_writers_without_an_expected_head_all_land(server, tenant, git, tmp_path, pushed):
    """They take turns on the branch (storage/ref_turns.py), each building its commit once on the head the one
    before it left: with ten tries each, 32 at once left about half refused (a race sweep), with a 409 naming an
    `expectedHeadSha` none of them sent; with tries for 10 s and no turns, 3-5% on a loaded machine."""
    repo, _, head = pushed
    writers = 16
    start = threading.Barrier(writers)
    results = []

    def write(index):
        start.wait()
        results.append(commit(server, tenant, repo, [create(f"w{index}.txt", str(index))]))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.status_code for r in results) == [201] * writers, [r.text for r in results if r.status_code != 201]
    work = clone(git, tenant, repo, tmp_path)
    assert git.out("rev-list", "--count", "HEAD", cwd=work) == str(writers + 1)
    assert {f"w{i}.txt" for i in range(writers)} <= set(files_of(work))
    stored = git.out("cat-file", "--batch-all-objects", "--batch-check=%(objecttype)",
                     cwd=repo_path(server, tenant, repo)).split()
    assert stored.count("commit") == writers + 1  # no commit built on a head that moved before it landed


def test_read_files(server, tenant, git, tmp_path, pushed):
    repo, work, head = pushed
    os.symlink("src/app.py", work / "link")
    (work / "blob.bin").write_bytes(b"\0\1\2" * 100)
    second = git.commit(work, {}, "more")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    key = tenant.keys["read"]
    got = api(server, key, "GET", f"/v1/repos/{repo}/contents/src/app.py").json()["data"]
    assert got == {"path": "src/app.py", "ref": "main", "sha": second,
                   "blobSha": git.out("rev-parse", "HEAD:src/app.py", cwd=work), "size": 12, "mode": "100644",
                   "type": "blob", "encoding": "base64", "content": b64("print('hi')\n")}
    binary = api(server, key, "GET", f"/v1/repos/{repo}/contents/blob.bin?ref={second}").json()["data"]
    assert base64.b64decode(binary["content"]) == b"\0\1\2" * 100
    link = api(server, key, "GET", f"/v1/repos/{repo}/contents/link").json()["data"]
    assert link["type"] == "symlink" and link["mode"] == "120000" and base64.b64decode(link["content"]) == b"src/app.py"
    old = api(server, key, "GET", f"/v1/repos/{repo}/contents/link?ref={head}")
    assert old.status_code == 404 and old.json()["code"] == "not_found"
    directory = api(server, key, "GET", f"/v1/repos/{repo}/contents/src")
    assert directory.status_code == 422 and directory.json()["details"]["type"] == "tree"
    assert api(server, key, "GET", f"/v1/repos/{repo}/contents/src/app.py?ref=nope").status_code == 404
    assert api(server, key, "GET", f"/v1/repos/{repo}/contents/src/%2e%2e/README.md").status_code == 404
    assert api(server, key, "GET", f"/v1/repos/{repo}/contents/README.md?ref=..%2fconfig").status_code == 404
    assert api(server, key, "GET", f"/v1/repos/{repo}/contents/README.md?ref={'a' * 40}").status_code == 404
    for ref in ("main~1", "main^", "refs/heads/main~1", f"{second[:9]}^1"):  # git's ancestry steps, full names
        earlier = api(server, key, "GET", f"/v1/repos/{repo}/contents/src/app.py", params={"ref": ref})
        assert earlier.status_code == 200 and earlier.json()["data"]["sha"] == head, (ref, earlier.text)
    assert api(server, key, "GET", f"/v1/repos/{repo}/tree", params={"ref": "main~1"}).status_code == 200
    diff = api(server, key, "GET", f"/v1/repos/{repo}/diff", params={"head": "main", "base": "main~1"})
    assert diff.status_code == 200 and {f["path"] for f in diff.json()["data"]["files"]} == {"link", "blob.bin"}
    for ref in ("main~9", "main^2", "main~99999", "main@{1}", "main^{tree}", ":/more", "refs/heads/../../config"):
        refused_ref = api(server, key, "GET", f"/v1/repos/{repo}/contents/README.md", params={"ref": ref})
        assert refused_ref.status_code in (404, 422) and "[core]" not in refused_ref.text, (ref, refused_ref.text)


def test_an_annotated_tag_reads_as_its_commit_by_name_and_by_full_sha(server, tenant, git, pushed):
    """A short tag sha was peeled and the full one was 404 "commit not found"; a tag name was "branch not
    found" everywhere."""
    repo, work, head = pushed
    git("tag", "-a", "-m", "release", "v1", head, cwd=work)
    git("tag", "-a", "-m", "of a tree", "tree-tag", f"{head}^{{tree}}", cwd=work)
    git("push", "-q", tenant.url(repo), "v1", "tree-tag", cwd=work)
    tag_sha = git.out("rev-parse", "v1", cwd=work)
    key = tenant.keys["read"]
    for ref in ("v1", tag_sha, tag_sha[:10]):
        got = api(server, key, "GET", f"/v1/repos/{repo}/contents/README.md?ref={ref}")
        assert got.status_code == 200 and got.json()["data"]["sha"] == head, (ref, got.text)
    assert api(server, key, "GET", f"/v1/repos/{repo}/contents/README.md?ref=tree-tag").status_code == 404
    made = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches", {"name": "from-tag", "from": "v1"})
    assert made.status_code == 201 and made.json()["data"]["headCommit"] == head, made.text


def test_refs_the_server_cannot_write_are_a_503_not_a_stale_ref(server, tenant, git, pushed):
    """An unwritable refs/heads (a directory git cannot make a lock file in) answered 409 stale_ref "main is at
    X, not X", with nothing logged: a client retrying on stale_ref retried for good."""
    repo, _, head = pushed
    bare = repo_path(server, tenant, repo)
    subprocess.run(["git", "-C", str(bare), "pack-refs", "--all"], check=True)
    heads = bare / "refs" / "heads"
    for loose in heads.iterdir():
        loose.unlink()
    heads.rmdir()
    heads.symlink_to(bare / "nowhere")
    try:
        for response in (commit(server, tenant, repo, [create("x.txt", "x")], expectedHeadSha=head),
                         api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/branches", {"name": "nb"})):
            assert response.status_code == 503 and response.json()["code"] == "unavailable", response.text
            assert "storage" in response.json()["error"] and str(bare) not in response.text
    finally:
        heads.unlink()
        heads.mkdir()
    assert head_of(git, tenant, repo) == head
    assert "storage refused a write" in server.log_path.read_text()


def test_tree_listing_matches_git_ls_tree(server, tenant, git, pushed):
    repo, work, head = pushed
    key = tenant.keys["read"]
    root = api(server, key, "GET", f"/v1/repos/{repo}/tree").json()["data"]
    assert root["sha"] == head and root["path"] == "" and root["truncated"] is False
    assert {(e["path"], e["type"]) for e in root["entries"]} == {
        ("README.md", "blob"), ("run.sh", "blob"), ("src", "tree"), ("docs", "tree")}
    listing = api(server, key, "GET", f"/v1/repos/{repo}/tree?recursive=true&ref=main").json()["data"]
    expected = {}
    for line in git.out("ls-tree", "-r", "-l", "HEAD", cwd=work).splitlines():
        meta, path = line.split("\t")
        mode, kind, sha, size = meta.split()
        expected[path] = {"path": path, "type": kind, "mode": mode, "sha": sha, "size": int(size)}
    assert {e["path"]: e for e in listing["entries"]} == expected
    sub = api(server, key, "GET", f"/v1/repos/{repo}/tree?path=src").json()["data"]
    assert [e["path"] for e in sub["entries"]] == ["src/app.py", "src/util.py"]
    assert api(server, key, "GET", f"/v1/repos/{repo}/tree?path=README.md").status_code == 422
    assert api(server, key, "GET", f"/v1/repos/{repo}/tree?path=nothing").status_code == 404
    empty = tenant.repo()
    assert api(server, key, "GET", f"/v1/repos/{empty}/tree").status_code == 404


def test_diff_matches_git(server, tenant, git, tmp_path, pushed):
    repo, work, head = pushed
    made = commit(server, tenant, repo, [
        {"action": "update", "path": "src/app.py", "content": b64("print('hi')\nprint('more')\n")},
        {"action": "rename", "previousPath": "docs/guide.md", "path": "docs/manual.md",
         "content": b64("guide\n" * 29 + "manual\n")},
        {"action": "delete", "path": "run.sh"},
        create("img.bin", b"\0PNG" * 10),
    ], expectedHeadSha=head).json()["data"]
    key = tenant.keys["read"]
    diff = api(server, key, "GET", f"/v1/repos/{repo}/diff?head=main").json()["data"]
    assert diff["baseCommit"] == head and diff["headCommit"] == made["sha"] and diff["truncated"] is False
    git("pull", "-q", "--ff-only", tenant.url(repo), "main", cwd=work)
    numstat = {}
    for line in git.out("diff", "-M", "--numstat", head, made["sha"], cwd=work).splitlines():
        added, deleted, path = line.split("\t")
        numstat[path] = (added, deleted)
    by_path = {f["path"]: f for f in diff["files"]}
    assert numstat == {"docs/{guide.md => manual.md}": ("1", "1"), "img.bin": ("-", "-"),
                       "run.sh": ("0", "1"), "src/app.py": ("1", "0")}
    assert by_path["docs/manual.md"]["status"] == "renamed" and by_path["docs/manual.md"]["oldPath"] == "docs/guide.md"
    assert by_path["img.bin"]["binary"] is True and by_path["run.sh"]["status"] == "deleted"
    assert (by_path["src/app.py"]["insertions"], by_path["src/app.py"]["deletions"]) == (1, 0)
    assert by_path["src/app.py"]["hunks"] == [{"oldStart": 1, "oldLines": 1, "newStart": 1, "newLines": 2, "lines": [
        {"type": "context", "content": "print('hi')"}, {"type": "add", "content": "print('more')"}]}]
    header = [line for line in git.out("diff", head, made["sha"], "--", "src/app.py", cwd=work).splitlines()
              if line.startswith("@@")]
    assert header == ["@@ -1 +1,2 @@"]

    summary = api(server, key, "GET", f"/v1/repos/{repo}/diff?base={head}&head={made['sha']}&format=summary")
    assert all(f["hunks"] == [] for f in summary.json()["data"]["files"])
    one = api(server, key, "GET", f"/v1/repos/{repo}/diff?base={head}&head=main&file=src/app.py").json()["data"]
    assert [f["path"] for f in one["files"]] == ["src/app.py"]
    capped = api(server, key, "GET", f"/v1/repos/{repo}/diff?base={head}&maxFiles=1").json()["data"]
    assert capped["truncated"] is True and len(capped["files"]) == 1
    root = api(server, key, "GET", f"/v1/repos/{repo}/diff?head={head}").json()["data"]
    assert root["baseCommit"] is None and {f["status"] for f in root["files"]} == {"added"}
    assert api(server, key, "GET", f"/v1/repos/{repo}/diff?base=nope").status_code == 404
    assert api(server, key, "GET", f"/v1/repos/{repo}/diff?format=patch").status_code == 422


def test_protected_branches_take_api_commits_and_path_locks_hold(server, tenant, git, pushed):
    """API commits pass the same hook pipeline as pushes: fast-forwards on a protected branch, path locks."""
    repo, _, head = pushed
    from control.services import repos as repo_service

    with server.context.db.session() as session:
        row = repo_service.get_repo(session, tenant.org_id, repo)
        repo_service.protect_branch(session, row, "main")
    response = commit(server, tenant, repo, [create("ok.txt", "fast-forward\n")], expectedHeadSha=head)
    assert response.status_code == 201, response.text
    head = response.json()["data"]["sha"]

    dojo = f"/api/repos/{tenant.org}/{repo}/workspaces"
    holder = api(server, tenant.keys["agent"], "POST", dojo, {"name": "holder"}).json()["workspace"]
    locked = api(server, tenant.keys["agent"], "POST", f"{dojo}/{holder['id']}/lock", {"patterns": ["src/*"]})
    assert locked.status_code == 201, locked.text
    content = "refused by the lock, never stored\n"
    refused = commit(server, tenant, repo, [{"action": "update", "path": "src/app.py", "content": b64(content)}],
                     expectedHeadSha=head)
    assert refused.status_code == 423 and refused.json()["code"] == "locked", refused.text
    assert refused.json()["details"] == {"ref": "refs/heads/main", "path": "src/app.py", "pattern": "src/*",
                                         "lockId": locked.json()["lock"]["id"], "workspaceId": holder["id"],
                                         "workspaceName": "holder", "agentName": None}  # as a refused write's
    assert head_of(git, tenant, repo) == head
    blob = subprocess.run(["git", "hash-object", "--stdin"], input=content.encode(), capture_output=True,
                          check=True).stdout.decode().strip()
    assert subprocess.run(["git", "cat-file", "-e", blob], cwd=repo_path(server, tenant, repo)).returncode != 0
    elsewhere = commit(server, tenant, repo, [create("docs/free.md", "free\n")], expectedHeadSha=head)
    assert elsewhere.status_code == 201, elsewhere.text


def test_submodules_are_listed_but_not_files(server, tenant, git, pushed):
    repo, work, _ = pushed
    pinned = "1" * 40
    git("update-index", "--add", "--cacheinfo", f"160000,{pinned},vendor/lib", cwd=work)
    git("commit", "-q", "-m", "pin a submodule", cwd=work)
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    head = git.out("rev-parse", "HEAD", cwd=work)
    key = tenant.keys["read"]
    listing = api(server, key, "GET", f"/v1/repos/{repo}/tree?path=vendor").json()["data"]
    assert listing["entries"] == [{"path": "vendor/lib", "type": "commit", "mode": "160000", "sha": pinned,
                                   "size": None}]
    for route in ("contents/vendor/lib", "tree?path=vendor/lib"):  # each pointed to the other for a submodule
        read = api(server, key, "GET", f"/v1/repos/{repo}/{route}")
        assert read.status_code == 422 and read.json()["details"] == {"path": "vendor/lib", "type": "commit",
                                                                      "sha": pinned}, read.text
        assert "another repository" in read.json()["error"]
    for operation in ({"action": "delete", "path": "vendor/lib"},
                      {"action": "update", "path": "vendor/lib", "content": b64("x")}):
        refused = commit(server, tenant, repo, [operation], expectedHeadSha=head)
        assert refused.status_code == 409 and "submodule" in refused.json()["error"], refused.text
    diff = api(server, key, "GET", f"/v1/repos/{repo}/diff?head={head}").json()["data"]
    assert diff["files"][0]["path"] == "vendor/lib" and diff["files"][0]["hunks"][0]["lines"] == [
        {"type": "add", "content": f"Subproject commit {pinned}"}]


HOSTILE_GITMODULES = {  # what git's fsck refuses in a .gitmodules (CVE-2018-11235 and friends), as a push would be
    "gitmodulesName": '[submodule "../../modules/evil"]\n\tpath = x\n\turl = https://example.com/x\n',
    "gitmodulesUrl": '[submodule "x"]\n\tpath = x\n\turl = --upload-pack=touch${IFS}/tmp/pwned\n',
    "gitmodulesPath": '[submodule "x"]\n\tpath = --x\n\turl = https://example.com/x\n',
}


@pytest.mark.parametrize("name", [".gitmodules", "sub/.gitmodules", ".GitModules", ".gitmodules .", "GITMOD~1",
                                  "GI7EB~10", "~1000000", ".git\u200cmodules"])  # as git reads them on NTFS and HFS+
@pytest.mark.parametrize("problem", sorted(HOSTILE_GITMODULES))
def test_gitmodules_git_would_refuse_on_a_push_are_refused_here_too(server, unchanged, problem, name):
    tenant, git, repo, head = unchanged
    response = commit(server, tenant, repo, [create(name, HOSTILE_GITMODULES[problem])], expectedHeadSha=head)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid" and problem in response.json()["error"], response.text
    assert head_of(git, tenant, repo) == head
    # refused before its trees were written: they failed `git fsck` for good (repacks keep unreachable objects)
    fsck = subprocess.run(["git", "fsck", "--no-dangling"], cwd=repo_path(server, tenant, repo), capture_output=True)
    assert fsck.returncode == 0, fsck.stderr


@pytest.mark.parametrize("path", [".gitmodules/b.txt", "sub/GI7EBA~1/b.txt"])
def test_a_directory_named_gitmodules_is_refused_before_its_trees_are_written(server, unchanged, path):
    """git's fsck refuses a tree at `.gitmodules` (gitmodulesBlob); the check before writing looked at file names
    only, so the trees were written, refused by the check after, and stayed (a review of aafa32d)."""
    tenant, git, repo, head = unchanged
    response = commit(server, tenant, repo, [create(path, "x\n")], expectedHeadSha=head)
    assert response.status_code == 422 and "gitmodulesBlob" in response.json()["error"], response.text
    fsck = subprocess.run(["git", "fsck", "--no-dangling"], cwd=repo_path(server, tenant, repo), capture_output=True)
    assert fsck.returncode == 0, fsck.stderr


@pytest.mark.parametrize("path,content,problem", [
    (".gitattributes", "*.txt " + "a" * 3000 + "\n", "gitattributesLineLength"),
    ("sub/GITATT~1", "*.txt " + "a" * 3000 + "\n", "gitattributesLineLength"),
    (".gitattributes/x.txt", "x\n", "gitattributesBlob"),
])
def test_a_gitattributes_git_would_refuse_is_refused_before_its_trees_are_written(server, unchanged, path, content,
                                                                                   problem):
    """git 2.39's fsck checks `.gitattributes` too (a line over 2 KiB, a directory so named); the check before
    writing knew `.gitmodules` only, so these trees were written, refused after, and stayed (a second review)."""
    tenant, git, repo, head = unchanged
    response = commit(server, tenant, repo, [create(path, content)], expectedHeadSha=head)
    assert response.status_code == 422 and problem in response.json()["error"], response.text
    fsck = subprocess.run(["git", "fsck", "--no-dangling"], cwd=repo_path(server, tenant, repo), capture_output=True)
    assert fsck.returncode == 0, fsck.stderr


def test_a_well_formed_gitmodules_is_accepted(server, tenant, git, tmp_path, pushed):
    repo, _, head = pushed
    content = '[submodule "vendor/lib"]\n\tpath = vendor/lib\n\turl = https://example.com/lib.git\n'
    response = commit(server, tenant, repo, [create(".gitmodules", content)], expectedHeadSha=head)
    assert response.status_code in (200, 201), response.text
    work = clone(git, tenant, repo, tmp_path)
    git("-c", "transfer.fsckObjects=true", "fetch", "-q", "origin", cwd=work)
    assert (work / ".gitmodules").read_text() == content


def test_an_object_lock_left_by_a_killed_writer_does_not_block_that_object(server, tenant, git, tmp_path, pushed):
    """A worker killed while dulwich wrote a loose object leaves `objects/xx/<rest>.lock`; every later write of
    the same bytes (a retried commit, the same file elsewhere, an upload of it) waited 20 s and answered 503, for
    good (crash sweep). The object is now written past the lock, as git writes it."""
    repo, _, _ = pushed
    content = b"the same bytes a killed request was writing\n"
    sha = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
    objects = repo_path(server, tenant, repo) / "objects" / sha[:2]
    objects.mkdir(exist_ok=True)
    (objects / f"{sha[2:]}.lock").write_bytes(b"")
    made = commit(server, tenant, repo, [create("retried.txt", content), create("again/copy.txt", content)])
    assert made.status_code == 201, made.text
    work = clone(git, tenant, repo, tmp_path)
    assert files_of(work)["retried.txt"] == content and files_of(work)["again/copy.txt"] == content
    git("fsck", "--strict", cwd=work)
