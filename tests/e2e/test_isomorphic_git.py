"""Clone, fetch and push with isomorphic-git, a third git implementation (JavaScript, smart HTTP v1 only).

It runs under the machine's Node.js from tests/e2e/isogit (versions pinned by its package-lock.json,
installed with `npm ci` on first use).
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import remote_ref, seed_two_commits

ISOGIT = Path(__file__).parent / "isogit"


@pytest.fixture(scope="session")
def isogit_installed():
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.fail("the isomorphic-git tests need Node.js and npm on PATH")
    with open(ISOGIT / ".npm-install.flock", "w") as lock:  # xdist workers share the directory
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (ISOGIT / "node_modules" / "isomorphic-git" / "package.json").exists():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ISOGIT, check=True, capture_output=True,
                           timeout=600)


def isogit(*args: str, key: str | None, check: bool = True) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DRIFTSTONE_KEY"}
    if key is not None:
        env["DRIFTSTONE_KEY"] = key
    result = subprocess.run(["node", str(ISOGIT / "cli.mjs"), *args], env=env, capture_output=True, timeout=120)
    assert result.stdout, result.stderr.decode(errors="replace")
    answer = json.loads(result.stdout.decode().strip().splitlines()[-1])
    if check:
        assert result.returncode == 0, answer
    return answer


@pytest.fixture
def seeded(isogit_installed, tenant, git, tmp_path):
    return seed_two_commits(tenant, git, tmp_path)


def test_clone_push_and_fetch_round_trip_with_c_git(seeded, tenant, git, tmp_path):
    repo, work = seeded
    key, url = tenant.keys["agent"], tenant.plain_url(repo)
    clone = tmp_path / "iso"
    assert isogit("clone", url, str(clone), key=key)["head"] == git.out("rev-parse", "HEAD", cwd=work)
    assert (clone / "src" / "app.py").read_text() == "print(1)\n"

    mine = isogit("commit", str(clone), "iso.txt", "iso commit", "from isomorphic-git\n", key=key)["oid"]
    pushed = isogit("push", str(clone), "main", key=key)
    assert pushed["ok"] and pushed["refs"]["refs/heads/main"]["ok"]
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == mine
    git("pull", "-q", "--ff-only", tenant.url(repo), "main", cwd=work)
    assert (work / "iso.txt").read_text() == "from isomorphic-git\n"

    theirs = git.commit(work, {"cli.txt": "from C git\n"}, "cli commit")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    assert isogit("fetch", str(clone), key=key)["fetchHead"] == theirs
    assert isogit("log", str(clone), "refs/remotes/origin/main", key=key)["oids"][:2] == [theirs, mine]

    isogit("branch", str(clone), "iso-feature", key=key)
    feature = isogit("commit", str(clone), "feature.txt", "on a branch", "branch work\n", key=key)["oid"]
    assert isogit("push", str(clone), "iso-feature", key=key)["ok"]
    assert remote_ref(git, tenant.url(repo), "refs/heads/iso-feature") == feature
    assert isogit("push", str(clone), "iso-feature", "--delete", key=key)["ok"]
    assert remote_ref(git, tenant.url(repo), "refs/heads/iso-feature") == ""


def test_wrong_key_and_read_key_are_refused(seeded, tenant, git, tmp_path):
    repo, _ = seeded
    url = tenant.plain_url(repo)
    refused = isogit("clone", url, str(tmp_path / "no"), key="dk-not-a-key", check=False)
    assert refused["code"] == "HttpError" and refused["status"] == 401
    clone = tmp_path / "ro"
    isogit("clone", url, str(clone), key=tenant.keys["read"])
    before = remote_ref(git, tenant.url(repo), "refs/heads/main")
    isogit("commit", str(clone), "x.txt", "read key", "x\n", key=None)
    denied = isogit("push", str(clone), "main", key=tenant.keys["read"], check=False)
    assert denied["code"] == "HttpError" and denied["status"] == 403
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == before


def test_non_fast_forward_is_rejected_and_force_moves_the_branch(seeded, tenant, git, tmp_path):
    repo, work = seeded
    key, url = tenant.keys["agent"], tenant.plain_url(repo)
    clone = tmp_path / "iso"
    isogit("clone", url, str(clone), key=key)
    elsewhere = git.commit(work, {"race.txt": "C git got there first\n"}, "first")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    mine = isogit("commit", str(clone), "race.txt", "second", "isomorphic-git lost\n", key=key)["oid"]
    rejected = isogit("push", str(clone), "main", key=key, check=False)
    assert rejected["code"] == "PushRejectedError"
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == elsewhere
    assert isogit("push", str(clone), "main", "--force", key=key)["ok"]
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == mine


def test_a_hook_rejection_reaches_isomorphic_git(isogit_installed, small_limits_server, git, tmp_path):
    tenant = small_limits_server.tenant()
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "seed", {"README.md": "hello\n"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    key = tenant.keys["agent"]
    clone = tmp_path / "iso"
    isogit("clone", tenant.plain_url(repo), str(clone), key=key)
    (clone / "big.txt").write_text("0123456789abcdef\n" * 131072)
    isogit("commit", str(clone), "big.txt", "2 MiB, over the 1 MiB cap", key=key)
    result = isogit("push", str(clone), "main", key=key, check=False)
    assert result["code"] == "GitPushError"
    assert "refs/heads/main: object" in result["error"] and "larger than the 1048576 byte limit" in result["error"]
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == git.out("rev-parse", "HEAD", cwd=work)
