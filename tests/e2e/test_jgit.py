"""Clone, fetch and push with JGit, a fourth git implementation (Java: Eclipse EGit, Gerrit, Jenkins).

Debian's libjgit-java (JGit 4.11, smart HTTP protocol v0; `.ci/run` installs it) drives tests/e2e/jgit/JGitClient.java,
compiled with the machine's JDK at the start of the session. JGit sends its upload-pack requests with
`Content-Encoding: gzip` (seen through a logging proxy), so its clones and fetches exercise the server's gzip
request bodies with a real client.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import remote_ref, seed_two_commits

SOURCE = Path(__file__).parent / "jgit" / "JGitClient.java"
JARS = Path("/usr/share/java")
CLASSPATH_JARS = ("org.eclipse.jgit.jar", "jsch.jar", "javaewah.jar", "slf4j-api.jar", "slf4j-nop.jar")


@pytest.fixture(scope="session")
def jgit_classpath(tmp_path_factory) -> str:
    missing = [jar for jar in CLASSPATH_JARS if not (JARS / jar).is_file()]
    if missing or not (shutil.which("java") and shutil.which("javac")):
        pytest.fail("the JGit tests need a JDK and Debian's JGit: "
                    "apt-get install openjdk-17-jdk-headless libjgit-java")
    classes = tmp_path_factory.mktemp("jgit-classes")
    subprocess.run(["javac", "-cp", str(JARS / CLASSPATH_JARS[0]), "-d", str(classes), str(SOURCE)], check=True,
                   capture_output=True, timeout=300)
    return os.pathsep.join([str(classes), *(str(JARS / jar) for jar in CLASSPATH_JARS)])


@pytest.fixture
def jgit(jgit_classpath, tmp_path):
    home = tmp_path / "jgit-home"  # JGit reads ~/.gitconfig: give it an empty home
    home.mkdir()

    def run(*args: str, key: str | None, check: bool = True) -> dict:
        env = {k: v for k, v in os.environ.items() if k != "DRIFTSTONE_KEY"}
        env.update({"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(home)})
        if key is not None:
            env["DRIFTSTONE_KEY"] = key
        result = subprocess.run(["java", f"-Duser.home={home}", "-cp", jgit_classpath, "JGitClient", *args],
                                env=env, capture_output=True, timeout=120)
        assert result.stdout, result.stderr.decode(errors="replace")
        answer = json.loads(result.stdout.decode().strip().splitlines()[-1])
        if check:
            assert result.returncode == 0, answer
        return answer

    return run


@pytest.fixture
def seeded(tenant, git, tmp_path):
    return seed_two_commits(tenant, git, tmp_path)


def test_clone_push_and_fetch_round_trip_with_c_git(jgit, seeded, tenant, git, tmp_path):
    repo, work = seeded
    key, url = tenant.keys["agent"], tenant.plain_url(repo)
    clone = tmp_path / "jgit"
    assert jgit("clone", url, str(clone), key=key)["head"] == git.out("rev-parse", "HEAD", cwd=work)
    assert (clone / "src" / "app.py").read_text() == "print(1)\n"

    mine = jgit("commit", str(clone), "jgit.txt", "jgit commit", "from JGit\n", key=key)["oid"]
    assert jgit("push", str(clone), "main", key=key)["refs"]["refs/heads/main"]["status"] == "OK"
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == mine
    git("pull", "-q", "--ff-only", tenant.url(repo), "main", cwd=work)
    assert (work / "jgit.txt").read_text() == "from JGit\n"

    theirs = git.commit(work, {"cli.txt": "from C git\n"}, "cli commit")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    assert jgit("fetch", str(clone), key=key)["main"] == theirs
    assert jgit("log", str(clone), "refs/remotes/origin/main", key=key)["oids"][:2] == [theirs, mine]

    jgit("branch", str(clone), "jgit-feature", key=key)
    feature = jgit("commit", str(clone), "feature.txt", "on a branch", "branch work\n", key=key)["oid"]
    assert jgit("push", str(clone), "jgit-feature", key=key)["refs"]["refs/heads/jgit-feature"]["status"] == "OK"
    assert jgit("ls-remote", url, key=key)["refs"]["refs/heads/jgit-feature"] == feature
    assert jgit("push", str(clone), "jgit-feature", "--delete", key=key)["refs"]["refs/heads/jgit-feature"][
        "status"] == "OK"
    assert remote_ref(git, tenant.url(repo), "refs/heads/jgit-feature") == ""


def test_wrong_key_and_read_key_are_refused(jgit, seeded, tenant, git, tmp_path):
    repo, _ = seeded
    url = tenant.plain_url(repo)
    refused = jgit("clone", url, str(tmp_path / "no"), key="dk-not-a-key", check=False)
    assert refused["type"] == "TransportException" and "not authorized" in refused["error"]
    anonymous = jgit("ls-remote", url, key=None, check=False)
    assert anonymous["type"] == "TransportException" and "Authentication is required" in anonymous["error"]

    clone = tmp_path / "ro"
    jgit("clone", url, str(clone), key=tenant.keys["read"])
    before = remote_ref(git, tenant.url(repo), "refs/heads/main")
    jgit("commit", str(clone), "x.txt", "read key", "x\n", key=None)
    denied = jgit("push", str(clone), "main", key=tenant.keys["read"], check=False)
    assert denied["type"] == "TransportException" and "git-receive-pack not permitted" in denied["error"]  # its 403
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == before


def test_non_fast_forward_is_rejected_and_force_moves_the_branch(jgit, seeded, tenant, git, tmp_path):
    repo, work = seeded
    key, url = tenant.keys["agent"], tenant.plain_url(repo)
    clone = tmp_path / "jgit"
    jgit("clone", url, str(clone), key=key)
    elsewhere = git.commit(work, {"race.txt": "C git got there first\n"}, "first")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    mine = jgit("commit", str(clone), "race.txt", "second", "JGit lost\n", key=key)["oid"]
    rejected = jgit("push", str(clone), "main", key=key)["refs"]["refs/heads/main"]
    assert rejected["status"] == "REJECTED_NONFASTFORWARD"
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == elsewhere
    assert jgit("push", str(clone), "main", "--force", key=key)["refs"]["refs/heads/main"]["status"] == "OK"
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == mine


def test_a_hook_rejection_reaches_jgit_with_its_reason(jgit, small_limits_server, git, tmp_path):
    tenant = small_limits_server.tenant()
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "seed", {"README.md": "hello\n"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    key = tenant.keys["agent"]
    clone = tmp_path / "jgit"
    jgit("clone", tenant.plain_url(repo), str(clone), key=key)
    (clone / "big.txt").write_text("0123456789abcdef\n" * 131072)
    jgit("commit", str(clone), "big.txt", "2 MiB, over the 1 MiB cap", key=key)
    result = jgit("push", str(clone), "main", key=key)["refs"]["refs/heads/main"]
    assert result["status"] == "REJECTED_OTHER_REASON"
    assert "larger than the 1048576 byte limit" in result["message"]
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == git.out("rev-parse", "HEAD", cwd=work)
