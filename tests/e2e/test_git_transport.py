"""Clone, fetch and push with the real git CLI over protocol v0, v1 and v2."""
from __future__ import annotations

import pytest

from tests.support import seed_three_commits_and_a_tag

PROTOCOLS = ["0", "1", "2"]


seeded = pytest.fixture(seed_three_commits_and_a_tag, name="seeded")


@pytest.mark.parametrize("version", PROTOCOLS)
def test_clone_and_fetch(seeded, tenant, git, tmp_path, version):
    repo, work = seeded
    clone = tmp_path / f"clone{version}"
    result = git("-c", f"protocol.version={version}", "clone", tenant.url(repo), str(clone),
                 env={"GIT_TRACE_PACKET": "1"})
    if version == "2":
        assert b"version 2" in result.stderr
    assert (clone / "docs/guide.md").read_text() == "# guide\n"
    assert git.out("rev-parse", "HEAD", cwd=clone) == git.out("rev-parse", "HEAD", cwd=work)
    assert git.out("tag", cwd=clone) == "v1.0"

    new = git.commit(work, {"src/new.py": "x = 1\n"}, "fourth")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    git("-c", f"protocol.version={version}", "fetch", "-q", "origin", cwd=clone)
    assert git.out("rev-parse", "origin/main", cwd=clone) == new


@pytest.mark.parametrize("version", PROTOCOLS)
def test_push_new_branch_fast_forward_and_delete(seeded, tenant, git, version):
    repo, work = seeded
    url = tenant.url(repo)
    cfg = ("-c", f"protocol.version={version}")
    git("checkout", "-q", "-b", f"feature/v{version}", cwd=work)
    first = git.commit(work, {"f.txt": "1"}, "feature 1")
    git(*cfg, "push", "-q", url, f"feature/v{version}", cwd=work)
    second = git.commit(work, {"f.txt": "2"}, "feature 2")
    git(*cfg, "push", "-q", url, f"feature/v{version}", cwd=work)
    remote = git.out("ls-remote", url, f"refs/heads/feature/v{version}", cwd=work)
    assert remote.split()[0] == second != first
    git(*cfg, "push", "-q", url, f":feature/v{version}", cwd=work)
    assert git.out("ls-remote", url, f"refs/heads/feature/v{version}", cwd=work) == ""


def test_non_fast_forward_rejected_and_force_accepted(seeded, tenant, git):
    repo, work = seeded
    url = tenant.url(repo)
    before = git.out("rev-parse", "HEAD", cwd=work)
    git("reset", "-q", "--hard", "HEAD~1", cwd=work)
    rewritten = git.commit(work, {"other.txt": "diverged"}, "diverge")
    result = git("push", url, "main", cwd=work, check=False)
    assert result.returncode != 0
    assert b"[rejected]" in result.stderr and b"non-fast-forward" in result.stderr
    assert git.out("ls-remote", url, "refs/heads/main", cwd=work).split()[0] == before
    git("push", "-q", "--force", url, "main", cwd=work)
    assert git.out("ls-remote", url, "refs/heads/main", cwd=work).split()[0] == rewritten


def test_tags_lightweight_and_annotated(seeded, tenant, git, tmp_path):
    repo, work = seeded
    url = tenant.url(repo)
    git("tag", "light", cwd=work)
    git("push", "-q", url, "--tags", cwd=work)
    refs = git.out("ls-remote", "--tags", url, cwd=work)
    assert "refs/tags/light" in refs and "refs/tags/v1.0^{}" in refs
    git("push", "-q", url, ":refs/tags/light", cwd=work)
    assert "refs/tags/light" not in git.out("ls-remote", "--tags", url, cwd=work)


def test_atomic_push_is_all_or_nothing(seeded, tenant, git):
    repo, work = seeded
    url = tenant.url(repo)
    main_before = git.out("rev-parse", "HEAD", cwd=work)
    git("branch", "side", "HEAD~1", cwd=work)
    git("push", "-q", url, "side", cwd=work)
    git("checkout", "-q", "-b", "atomic-new", cwd=work)
    git.commit(work, {"n.txt": "n"}, "new branch commit")
    git("checkout", "-q", "side", cwd=work)
    git("reset", "-q", "--hard", "HEAD~1", cwd=work)
    git.commit(work, {"s.txt": "s"}, "diverging side")  # non-fast-forward for `side`
    result = git("push", "--atomic", url, "atomic-new", "side", cwd=work, check=False)
    assert result.returncode != 0
    assert b"atomic" in result.stderr
    refs = git.out("ls-remote", url, cwd=work)
    assert "refs/heads/atomic-new" not in refs
    assert main_before in refs


def test_push_options_reach_the_event_log(seeded, tenant, git, server):
    from sqlalchemy import select
    from storage.models import Event
    repo, work = seeded
    git.commit(work, {"o.txt": "o"}, "with options")
    git("push", "-q", "-o", "ci.skip", "-o", "reviewer=alice", tenant.url(repo), "main", cwd=work)
    with server.context.db.session() as session:
        events = session.scalars(select(Event).where(Event.org_id == tenant.org_id)).all()
    assert any(e.payload.get("pushOptions") == ["ci.skip", "reviewer=alice"] for e in events)


def test_a_push_option_that_is_not_utf8_is_recorded_readably(seeded, tenant, git, server):
    """git passes push options as bytes; one in Latin-1 used to reach the event as a lone surrogate, which
    PostgreSQL's JSON refuses: the whole effect (event and branch row) was lost. Now the byte becomes U+FFFD."""
    import os
    from sqlalchemy import select
    from storage.models import Branch, Event
    repo, work = seeded
    new = git.commit(work, {"l.txt": "l"}, "latin-1 option")
    git("push", "-q", "-o", os.fsdecode(b"caf\xe9"), tenant.url(repo), "main", cwd=work)
    with server.context.db.session() as session:
        events = session.scalars(select(Event).where(Event.org_id == tenant.org_id)).all()
        heads = set(session.scalars(select(Branch.head_sha).where(Branch.name == "main")))
    assert any(e.payload.get("pushOptions") == ["caf\ufffd"] for e in events)
    assert new in heads


@pytest.mark.parametrize("version", PROTOCOLS)
def test_shallow_depth_deepen_since_unshallow(tenant, git, tmp_path, version):
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w")
    for i in range(6):
        date = f"2020-01-0{i + 1}T12:00:00Z"
        (work / "n.txt").write_text(str(i))
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", f"c{i}", cwd=work, env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    cfg = ("-c", f"protocol.version={version}")
    clone = tmp_path / "shallow"
    git(*cfg, "clone", "-q", "--depth", "2", tenant.url(repo), str(clone))
    assert git.out("rev-list", "--count", "HEAD", cwd=clone) == "2"
    git(*cfg, "fetch", "-q", "--deepen", "2", cwd=clone)
    assert git.out("rev-list", "--count", "HEAD", cwd=clone) == "4"
    since = tmp_path / "since"
    git(*cfg, "clone", "-q", "--shallow-since", "2020-01-04T00:00:00Z", tenant.url(repo), str(since))
    assert git.out("rev-list", "--count", "HEAD", cwd=since) == "3"
    git(*cfg, "fetch", "-q", "--unshallow", cwd=clone)
    assert git.out("rev-list", "--count", "HEAD", cwd=clone) == "6"
    assert not (clone / ".git" / "shallow").exists()


@pytest.mark.parametrize("version", PROTOCOLS)
@pytest.mark.parametrize("spec", ["blob:none", "tree:0"])
def test_partial_clone_with_lazy_fetch(seeded, tenant, git, tmp_path, version, spec):
    repo, work = seeded
    clone = tmp_path / "partial"
    git("-c", f"protocol.version={version}", "clone", "-q", "--no-checkout", f"--filter={spec}",
        tenant.url(repo), str(clone))
    missing = git.out("rev-list", "--objects", "--all", "--missing=print", cwd=clone)
    assert any(line.startswith("?") for line in missing.splitlines()), "filter did not omit anything"
    assert git.out("config", "remote.origin.promisor", cwd=clone) == "true"
    git("-c", f"protocol.version={version}", "checkout", "-q", "main", cwd=clone)  # lazy fetch on checkout
    assert (clone / "src/app.py").read_text() == "print(2)\n"
    assert (clone / "README.md").read_text() == "hello\n"


def test_repo_url_without_git_suffix(seeded, tenant, git, tmp_path):
    repo, _ = seeded
    clone = tmp_path / "nosuffix"
    git("clone", "-q", tenant.url(repo, suffix=""), str(clone))
    assert (clone / "README.md").exists()


def test_chunked_push_body(tenant, git, tmp_path):
    """A push bigger than http.postBuffer goes out with Transfer-Encoding: chunked."""
    import os
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w")
    git.commit(work, {"blob.bin": os.urandom(3 * 1024 * 1024)}, "3 MiB")
    result = git("-c", "http.postBuffer=65536", "push", tenant.url(repo), "main", cwd=work,
                 env={"GIT_TRACE_CURL": "1", "GIT_TRACE_CURL_NO_DATA": "1"})
    assert b"Transfer-Encoding: chunked" in result.stderr
    clone = tmp_path / "c"
    git("clone", "-q", tenant.url(repo), str(clone))
    assert (clone / "blob.bin").read_bytes() == (work / "blob.bin").read_bytes()


def test_gzip_upload_pack_request(seeded, tenant, git, tmp_path):
    """git gzips large upload-pack requests: a fetch with many haves sends Content-Encoding: gzip."""
    repo, work = seeded
    clone = tmp_path / "c"
    git("clone", "-q", tenant.url(repo), str(clone))
    for i in range(300):
        git("commit", "-q", "--allow-empty", "-m", f"local {i}", cwd=clone)
    git("commit", "-q", "--allow-empty", "-m", "x", cwd=work)
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    result = git("-c", "protocol.version=0", "fetch", "origin", cwd=clone,
                 env={"GIT_TRACE_CURL": "1", "GIT_TRACE_CURL_NO_DATA": "1"})
    assert b"Content-Encoding: gzip" in result.stderr
    assert git.out("rev-parse", "origin/main", cwd=clone) == git.out("rev-parse", "HEAD", cwd=work)


@pytest.mark.slow
def test_push_and_clone_over_100_mib(tenant, git, tmp_path):
    import os
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w")
    for i in range(4):
        (work / f"big{i}.bin").write_bytes(os.urandom(27 * 1024 * 1024))
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "108 MiB of incompressible data", cwd=work)
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    clone = tmp_path / "c"
    git("clone", "-q", tenant.url(repo), str(clone))
    assert git.out("rev-parse", "HEAD", cwd=clone) == git.out("rev-parse", "HEAD", cwd=work)
    assert (clone / "big3.bin").stat().st_size == 27 * 1024 * 1024
