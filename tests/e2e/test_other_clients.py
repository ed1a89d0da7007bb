"""Clone, fetch and push with two git implementations other than C git: libgit2 (pygit2) and dulwich."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pygit2
import pytest
from dulwich import porcelain
from dulwich.client import HttpGitClient, HTTPUnauthorized
from dulwich.config import ConfigDict
from dulwich.errors import GitProtocolError
from dulwich.repo import Repo as DulwichRepo

from tests.support import remote_ref, seed_two_commits

SIGNATURE = pygit2.Signature("Lib Agent", "lib@example.test")
IDENTITY = b"Dul Agent <dul@example.test>"


@pytest.fixture
def seeded(tenant, git, tmp_path):
    return seed_two_commits(tenant, git, tmp_path)


# --- libgit2 (pygit2) -----------------------------------------------------------------------------------------


def callbacks(key: str) -> pygit2.RemoteCallbacks:
    return pygit2.RemoteCallbacks(credentials=pygit2.UserPass("agent", key))


class CountingCallbacks(pygit2.RemoteCallbacks):
    """Offers the given key once, then gives up (libgit2 would otherwise ask again after each 401)."""

    def __init__(self, key: str):
        super().__init__()
        self.key, self.calls = key, 0

    def credentials(self, url, username_from_url, allowed_types):
        self.calls += 1
        if self.calls > 1:
            raise pygit2.GitError("credentials refused")
        return pygit2.UserPass("agent", self.key)


def pygit2_commit(repo: pygit2.Repository, ref: str, files: dict[str, str], message: str) -> str:
    """Write files into the work tree and commit them on `ref` on top of HEAD."""
    for name, content in files.items():
        path = Path(repo.workdir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        repo.index.add(name)
    repo.index.write()
    tree = repo.index.write_tree()
    return str(repo.create_commit(ref, SIGNATURE, SIGNATURE, message, tree, [repo.head.target]))


def test_pygit2_clone_fetch_push(seeded, tenant, git, tmp_path):
    """libgit2 clones and fetches with Basic credentials after the 401 challenge, and pushes main and a branch."""
    repo, work = seeded
    url = tenant.url(repo)
    clone = pygit2.clone_repository(tenant.plain_url(repo), str(tmp_path / "lg"), callbacks=callbacks(tenant.keys["agent"]))
    assert (tmp_path / "lg" / "src/app.py").read_text() == "print(1)\n"
    assert str(clone.head.target) == git.out("rev-parse", "HEAD", cwd=work)

    new = git.commit(work, {"src/app.py": "print(2)\n"}, "from the CLI")
    git("push", "-q", url, "main", cwd=work)
    clone.remotes["origin"].fetch(callbacks=callbacks(tenant.keys["agent"]))
    assert str(clone.references["refs/remotes/origin/main"].target) == new

    clone.checkout_tree(clone[new])  # fast-forward the local main onto the fetched commit
    clone.references["refs/heads/main"].set_target(new)
    on_main = pygit2_commit(clone, "refs/heads/main", {"lg.txt": "libgit2\n"}, "from libgit2")
    clone.branches.local.create("lg-feature", clone[on_main])
    clone.checkout("refs/heads/lg-feature")
    on_branch = pygit2_commit(clone, "refs/heads/lg-feature", {"lg.txt": "branch\n"}, "libgit2 branch")
    clone.remotes["origin"].push(["refs/heads/main", "refs/heads/lg-feature"], callbacks=callbacks(tenant.keys["agent"]))

    assert remote_ref(git, url, "refs/heads/main") == on_main
    assert remote_ref(git, url, "refs/heads/lg-feature") == on_branch
    git("pull", "-q", url, "main", cwd=work)
    assert (work / "lg.txt").read_text() == "libgit2\n"
    assert (work / "src/app.py").read_text() == "print(2)\n"


def test_pygit2_wrong_key_is_refused(seeded, tenant, tmp_path):
    """A wrong key is answered with 401 again and libgit2 fails the clone."""
    repo, _ = seeded
    cb = CountingCallbacks("ds_wrong_key_0000000000000000")
    with pytest.raises(pygit2.GitError):
        pygit2.clone_repository(tenant.plain_url(repo), str(tmp_path / "bad"), callbacks=cb)
    assert cb.calls == 2  # asked after the first challenge and again after the wrong key was refused
    assert not (tmp_path / "bad" / "README.md").exists()


def test_pygit2_read_key_cannot_push(seeded, tenant, git, tmp_path):
    """A read-scope key clones but its push is refused and the ref stays where it was."""
    repo, work = seeded
    before = git.out("rev-parse", "HEAD", cwd=work)
    read = callbacks(tenant.keys["read"])
    clone = pygit2.clone_repository(tenant.plain_url(repo), str(tmp_path / "ro"), callbacks=read)
    pygit2_commit(clone, "refs/heads/main", {"ro.txt": "nope\n"}, "read-only attempt")
    with pytest.raises(pygit2.GitError, match="403"):
        clone.remotes["origin"].push(["refs/heads/main"], callbacks=read)
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == before


# --- dulwich --------------------------------------------------------------------------------------------------


def dulwich_commit(path: Path, files: dict[str, str], message: str) -> str:
    for name, content in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content)
    porcelain.add(str(path), [str(path / name) for name in files])
    return porcelain.commit(str(path), message.encode(), author=IDENTITY, committer=IDENTITY).decode()


def test_dulwich_clone_fetch_push(seeded, tenant, git, tmp_path):
    """dulwich clones, fetches and pushes (main and a new branch) with username/password."""
    repo, work = seeded
    url, plain = tenant.url(repo), tenant.plain_url(repo)
    auth = {"username": "agent", "password": tenant.keys["agent"]}
    quiet = {"errstream": io.BytesIO()}
    path = tmp_path / "dw"
    porcelain.clone(plain, str(path), **quiet, **auth).close()
    assert (path / "src/app.py").read_text() == "print(1)\n"
    with DulwichRepo(str(path)) as local:
        assert local.head().decode() == git.out("rev-parse", "HEAD", cwd=work)

    new = git.commit(work, {"src/app.py": "print(2)\n"}, "from the CLI")
    git("push", "-q", url, "main", cwd=work)
    result = porcelain.fetch(str(path), "origin", outstream=io.StringIO(), **quiet, **auth)
    assert result.refs[b"refs/heads/main"].decode() == new
    with DulwichRepo(str(path)) as local:
        assert local.refs[b"refs/remotes/origin/main"].decode() == new

    porcelain.reset(str(path), "hard", new)  # fast-forward the local main onto the fetched commit
    assert (path / "src/app.py").read_text() == "print(2)\n"
    on_main = dulwich_commit(path, {"dw.txt": "dulwich\n"}, "from dulwich")
    porcelain.push(str(path), plain, ["refs/heads/main:refs/heads/main", "refs/heads/main:refs/heads/dw-feature"],
                   outstream=io.BytesIO(), **quiet, **auth)
    assert remote_ref(git, url, "refs/heads/main") == on_main
    assert remote_ref(git, url, "refs/heads/dw-feature") == on_main
    git("pull", "-q", url, "main", cwd=work)
    assert (work / "dw.txt").read_text() == "dulwich\n"
    assert (work / "src/app.py").read_text() == "print(2)\n"


def bearer_client(base: str, key: str) -> HttpGitClient:
    """An HTTP client sending `Authorization: Bearer` via http.extraHeader (its extra_headers= argument is unused)."""
    config = ConfigDict()
    config.set((b"http",), b"extraHeader", f"Authorization: Bearer {key}".encode())
    return HttpGitClient(base, config=config)


def test_dulwich_bearer_header(seeded, tenant, git, tmp_path):
    """dulwich lists refs and fetches with a Bearer key sent as http.extraHeader; a wrong bearer key gets 401."""
    repo, work = seeded
    head = git.out("rev-parse", "HEAD", cwd=work)
    base = f"{tenant.server.url}/{tenant.org}/"
    client = bearer_client(base, tenant.keys["read"])
    assert client.get_refs(f"{repo}.git").refs[b"refs/heads/main"].decode() == head
    with DulwichRepo.init(str(tmp_path / "bearer"), mkdir=True) as target:
        client.fetch(f"{repo}.git", target)
        assert target[head.encode()].message == b"second\n"
    with pytest.raises(HTTPUnauthorized):
        bearer_client(base, "ds_wrong_key_0000000000000000").get_refs(f"{repo}.git")


def test_dulwich_wrong_key_and_read_key(seeded, tenant, git, tmp_path):
    """dulwich: a wrong key cannot clone, a read key clones but cannot push."""
    repo, work = seeded
    plain, before = tenant.plain_url(repo), git.out("rev-parse", "HEAD", cwd=work)
    with pytest.raises(HTTPUnauthorized):
        porcelain.clone(plain, str(tmp_path / "bad"), errstream=io.BytesIO(),
                        username="agent", password="ds_wrong_key_0000000000000000")
    path = tmp_path / "ro"
    read = {"username": "agent", "password": tenant.keys["read"]}
    porcelain.clone(plain, str(path), errstream=io.BytesIO(), **read).close()
    dulwich_commit(path, {"ro.txt": "nope\n"}, "read-only attempt")
    with pytest.raises(GitProtocolError, match="403"):
        porcelain.push(str(path), plain, ["refs/heads/main"], outstream=io.BytesIO(), errstream=io.BytesIO(), **read)
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == before


def test_pygit2_push_over_the_size_limit_hears_why(small_limits_server, git, tmp_path):
    """git stops reading a push past its limits (receive.maxInputSize, GIT_ALLOC_LIMIT) and answers; the server
    sent that answer and closed with the rest of the body unread, so the kernel reset the connection and libgit2,
    still writing, reported only "Broken pipe" (JGit: "Error writing request body"). The rest is read and dropped
    first, as http-backend's web server does, and the client reads the refusal."""
    tenant = small_limits_server.tenant()
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "seed", {"a.txt": "a\n"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    clone = pygit2.clone_repository(tenant.plain_url(repo), str(tmp_path / "big"),
                                    callbacks=callbacks(tenant.keys["agent"]))
    (Path(clone.workdir) / "big.bin").write_bytes(os.urandom(24 * 1024 * 1024))
    clone.index.add("big.bin")
    clone.index.write()
    clone.create_commit("refs/heads/main", SIGNATURE, SIGNATURE, "big", clone.index.write_tree(), [clone.head.target])
    with pytest.raises(pygit2.GitError, match="unpacking the sent packfile failed on the remote"):  # http-backend too
        clone.remotes["origin"].push(["refs/heads/main"], callbacks=callbacks(tenant.keys["agent"]))
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == git.out("rev-parse", "HEAD", cwd=work)
