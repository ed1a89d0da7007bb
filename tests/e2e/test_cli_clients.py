"""Clone, fetch and push with two more git implementations, each driven through a small command line of ours
that prints one JSON line (the same commands for both):

- isomorphic-git (JavaScript, smart HTTP v1 only) under the machine's Node.js, from tests/e2e/isogit (versions
  pinned by its package-lock.json, installed with `npm ci` on first use);
- JGit (Java: Eclipse EGit, Gerrit, Jenkins), Debian's libjgit-java 4.11 (smart HTTP v0; tests/install-clients.sh
  installs it) driving tests/e2e/jgit/JGitClient.java, compiled with the machine's JDK at the start of the session.
  JGit sends its upload-pack requests with `Content-Encoding: gzip` (seen through a logging proxy), so its
  clones and fetches exercise the server's gzip request bodies with a real client.

Each client's answers are read into one vocabulary (`ok`, `non-fast-forward`, `rejected`, `unauthorized`,
`forbidden`) so that the scenarios below are written once.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import remote_ref, seed_two_commits

ISOGIT = Path(__file__).parent / "isogit"
JGIT_SOURCE = Path(__file__).parent / "jgit" / "JGitClient.java"
JARS = Path("/usr/share/java")
JGIT_JARS = ("org.eclipse.jgit.jar", "jsch.jar", "javaewah.jar", "slf4j-api.jar", "slf4j-nop.jar")


@dataclass
class Outcome:
    status: str  # ok | non-fast-forward | rejected | unauthorized | forbidden
    message: str = ""


class CliClient:
    """One git implementation behind a command line: clone URL DIR, fetch DIR, log DIR REF,
    commit DIR PATH MESSAGE [TEXT], branch DIR NAME, push DIR REF [--force | --delete]."""

    name: str

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.argv, self.env = argv, env

    def run(self, *args: str, key: str | None, check: bool = True) -> dict:
        env = {k: v for k, v in self.env.items() if k != "DRIFTSTONE_KEY"}
        if key is not None:
            env["DRIFTSTONE_KEY"] = key
        result = subprocess.run([*self.argv, *args], env=env, capture_output=True, timeout=120)
        assert result.stdout, result.stderr.decode(errors="replace")
        answer = json.loads(result.stdout.decode().strip().splitlines()[-1])
        if check:
            assert result.returncode == 0, answer
        return answer

    def clone(self, url: str, dest: Path, key: str) -> str:
        return self.run("clone", url, str(dest), key=key)["head"]

    def fetch(self, clone: Path, key: str) -> str:
        return self.run("fetch", str(clone), key=key)["fetchHead"]

    def log(self, clone: Path, ref: str) -> list[str]:
        return self.run("log", str(clone), ref, key=None)["oids"]

    def commit(self, clone: Path, path: str, message: str, text: str | None = None) -> str:
        return self.run("commit", str(clone), path, message, *([text] if text is not None else []), key=None)["oid"]

    def branch(self, clone: Path, name: str) -> None:
        self.run("branch", str(clone), name, key=None)

    def push(self, clone: Path, ref: str, key: str, flag: str | None = None) -> Outcome:
        return self.push_outcome(self.run("push", str(clone), ref, *([flag] if flag else []), key=key, check=False),
                                 f"refs/heads/{ref}")

    def refusal(self, answer: dict) -> str:
        raise NotImplementedError

    def push_outcome(self, answer: dict, ref: str) -> Outcome:
        raise NotImplementedError


class IsomorphicGit(CliClient):
    name = "isomorphic-git"

    def refusal(self, answer: dict) -> str:
        assert answer.get("code") == "HttpError", answer
        return {401: "unauthorized", 403: "forbidden"}[answer["status"]]

    def push_outcome(self, answer: dict, ref: str) -> Outcome:
        if "error" not in answer:
            assert answer["ok"] and answer["refs"][ref]["ok"], answer
            return Outcome("ok")
        if answer["code"] == "PushRejectedError":
            return Outcome("non-fast-forward", answer["error"])
        if answer["code"] == "GitPushError":  # the server's report refused the ref
            return Outcome("rejected", answer["error"])
        return Outcome(self.refusal(answer), answer["error"])


class JGit(CliClient):
    name = "JGit"
    STATUSES = {"OK": "ok", "REJECTED_NONFASTFORWARD": "non-fast-forward", "REJECTED_OTHER_REASON": "rejected"}

    def refusal(self, answer: dict) -> str:
        assert answer.get("type") == "TransportException", answer
        if answer["error"].endswith(": not authorized"):  # JGit's words for a 401 to its credentials
            return "unauthorized"
        assert "git-receive-pack not permitted" in answer["error"] or "git-upload-pack not permitted" in \
            answer["error"], answer  # ... and for a 403
        return "forbidden"

    def push_outcome(self, answer: dict, ref: str) -> Outcome:
        if "error" in answer:
            return Outcome(self.refusal(answer), answer["error"])
        update = answer["refs"][ref]
        return Outcome(self.STATUSES[update["status"]], update["message"] or "")


@pytest.fixture(scope="session")
def isogit_installed():
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.fail("the isomorphic-git tests need Node.js and npm on PATH")
    with open(ISOGIT / ".npm-install.flock", "w") as lock:  # xdist workers share the directory
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (ISOGIT / "node_modules" / "isomorphic-git" / "package.json").exists():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ISOGIT, check=True, capture_output=True,
                           timeout=600)


@pytest.fixture(scope="session")
def jgit_classpath(tmp_path_factory) -> str:
    missing = [jar for jar in JGIT_JARS if not (JARS / jar).is_file()]
    if missing or not (shutil.which("java") and shutil.which("javac")):
        pytest.fail("the JGit tests need a JDK and Debian's JGit: bash tests/install-clients.sh")
    classes = tmp_path_factory.mktemp("jgit-classes")
    subprocess.run(["javac", "-cp", str(JARS / JGIT_JARS[0]), "-d", str(classes), str(JGIT_SOURCE)], check=True,
                   capture_output=True, timeout=300)
    return os.pathsep.join([str(classes), *(str(JARS / jar) for jar in JGIT_JARS)])


@pytest.fixture(params=["isomorphic-git", "JGit"])
def client(request, tmp_path) -> CliClient:
    if request.param == "isomorphic-git":
        request.getfixturevalue("isogit_installed")
        return IsomorphicGit(["node", str(ISOGIT / "cli.mjs")], dict(os.environ))
    home = tmp_path / "jgit-home"  # JGit reads ~/.gitconfig: give it an empty home
    home.mkdir()
    classpath = request.getfixturevalue("jgit_classpath")
    return JGit(["java", f"-Duser.home={home}", "-cp", classpath, "JGitClient"],
                {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(home)})


@pytest.fixture
def seeded(tenant, git, tmp_path):
    return seed_two_commits(tenant, git, tmp_path)


def test_clone_push_and_fetch_round_trip_with_c_git(client, seeded, tenant, git, tmp_path):
    repo, work = seeded
    key, url = tenant.keys["agent"], tenant.plain_url(repo)
    clone = tmp_path / "clone"
    assert client.clone(url, clone, key) == git.out("rev-parse", "HEAD", cwd=work)
    assert (clone / "src" / "app.py").read_text() == "print(1)\n"

    mine = client.commit(clone, "other.txt", "other commit", f"from {client.name}\n")
    assert client.push(clone, "main", key) == Outcome("ok")
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == mine
    git("pull", "-q", "--ff-only", tenant.url(repo), "main", cwd=work)
    assert (work / "other.txt").read_text() == f"from {client.name}\n"

    theirs = git.commit(work, {"cli.txt": "from C git\n"}, "cli commit")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    assert client.fetch(clone, key) == theirs
    assert client.log(clone, "refs/remotes/origin/main")[:2] == [theirs, mine]

    client.branch(clone, "feature")
    feature = client.commit(clone, "feature.txt", "on a branch", "branch work\n")
    assert client.push(clone, "feature", key) == Outcome("ok")
    assert remote_ref(git, tenant.url(repo), "refs/heads/feature") == feature
    assert client.push(clone, "feature", key, "--delete") == Outcome("ok")
    assert remote_ref(git, tenant.url(repo), "refs/heads/feature") == ""


def test_wrong_key_and_read_key_are_refused(client, seeded, tenant, git, tmp_path):
    repo, _ = seeded
    url = tenant.plain_url(repo)
    assert client.refusal(client.run("clone", url, str(tmp_path / "no"), key="dk-not-a-key", check=False)) == \
        "unauthorized"
    clone = tmp_path / "ro"
    client.clone(url, clone, tenant.keys["read"])
    before = remote_ref(git, tenant.url(repo), "refs/heads/main")
    client.commit(clone, "x.txt", "read key", "x\n")
    assert client.push(clone, "main", tenant.keys["read"]).status == "forbidden"
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == before


def test_non_fast_forward_is_rejected_and_force_moves_the_branch(client, seeded, tenant, git, tmp_path):
    repo, work = seeded
    key, url = tenant.keys["agent"], tenant.plain_url(repo)
    clone = tmp_path / "clone"
    client.clone(url, clone, key)
    elsewhere = git.commit(work, {"race.txt": "C git got there first\n"}, "first")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    mine = client.commit(clone, "race.txt", "second", f"{client.name} lost\n")
    assert client.push(clone, "main", key).status == "non-fast-forward"
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == elsewhere
    assert client.push(clone, "main", key, "--force") == Outcome("ok")
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == mine


def test_a_hook_rejection_reaches_the_client_with_its_reason(client, small_limits_server, git, tmp_path):
    tenant = small_limits_server.tenant()
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "seed", {"README.md": "hello\n"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    key = tenant.keys["agent"]
    clone = tmp_path / "clone"
    client.clone(tenant.plain_url(repo), clone, key)
    (clone / "big.txt").write_text("0123456789abcdef\n" * 131072)
    client.commit(clone, "big.txt", "2 MiB, over the 1 MiB cap")
    outcome = client.push(clone, "main", key)
    assert outcome.status == "rejected"
    assert "object" in outcome.message and "larger than the 1048576 byte limit" in outcome.message
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == git.out("rev-parse", "HEAD", cwd=work)


def test_a_push_of_several_mib_streams_through(client, seeded, tenant, git, tmp_path):
    """Bodies of 1 MiB and more are streamed to receive-pack (and their pack scanned while git indexes it)
    instead of being read whole first: the path every large push takes."""
    repo, work = seeded
    key = tenant.keys["agent"]
    clone = tmp_path / "clone"
    client.clone(tenant.plain_url(repo), clone, key)
    payload = os.urandom(3 * 1024 * 1024)  # incompressible: the pack is as large as the file
    (clone / "random.bin").write_bytes(payload)
    mine = client.commit(clone, "random.bin", "3 MiB of random bytes")
    assert client.push(clone, "main", key) == Outcome("ok")
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == mine
    git("pull", "-q", "--ff-only", tenant.url(repo), "main", cwd=work)
    assert (work / "random.bin").read_bytes() == payload
