"""The pack cache through the real git CLI: a clone repeated at the same state is sent the pack made for the
first (git prints no "Counting objects" then: the server ran no pack-objects), and every clone gets what it
asked for, whatever was kept before."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.support import repo_path, seed_three_commits_and_a_tag

PROTOCOLS = ["0", "2"]
PACK_MADE = b"Counting objects"  # pack-objects' progress, relayed by upload-pack


seeded = pytest.fixture(seed_three_commits_and_a_tag, name="seeded")


def cache_files(server, tenant, repo: str, suffix: str) -> list[Path]:
    """The repository's files in the pack cache whose names end in `suffix` (after the state's key)."""
    repo_id = repo_path(server, tenant, repo).name.removesuffix(".git")
    return sorted(server.context.store.kept_packs.glob(f"{repo_id}.*{suffix}"))


def kept_packs(server, tenant, repo: str, count: int | None = None) -> list[Path]:
    """The repository's kept packs, once there are `count` of them (each is moved into place after its clone)."""
    deadline = time.monotonic() + 10
    while True:
        kept = cache_files(server, tenant, repo, ".pack")
        if count is None or len(kept) >= count or time.monotonic() > deadline:
            return kept
        time.sleep(0.02)


def clone(git, url: str, dest: Path, *options: str, version: str = "2") -> bytes:
    """Clone with progress shown; returns what git printed."""
    return git("-c", f"protocol.version={version}", "clone", "--progress", *options, url, str(dest)).stderr


@pytest.mark.parametrize("version", PROTOCOLS)
def test_a_repeated_clone_is_sent_the_kept_pack(seeded, server, tenant, git, tmp_path, version):
    repo, work = seeded
    first = clone(git, tenant.url(repo), tmp_path / "first", version=version)
    assert PACK_MADE in first
    assert len(kept_packs(server, tenant, repo, 1)) == 1
    second = clone(git, tenant.url(repo), tmp_path / "second", version=version)
    assert PACK_MADE not in second
    for dest in ("first", "second"):
        assert git.out("rev-parse", "HEAD", cwd=tmp_path / dest) == git.out("rev-parse", "HEAD", cwd=work)
        assert git.out("tag", cwd=tmp_path / dest) == "v1.0"
        git("fsck", "--strict", cwd=tmp_path / dest)


def test_a_clone_after_a_push_gets_the_new_state(seeded, server, tenant, git, tmp_path):
    repo, work = seeded
    clone(git, tenant.url(repo), tmp_path / "before")
    kept_packs(server, tenant, repo, 1)
    new = git.commit(work, {"src/new.py": "x = 1\n"}, "fourth")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    after = clone(git, tenant.url(repo), tmp_path / "after")
    assert PACK_MADE in after
    assert git.out("rev-parse", "HEAD", cwd=tmp_path / "after") == new
    assert (tmp_path / "after" / "src/new.py").read_text() == "x = 1\n"


def test_partial_shallow_and_whole_clones_each_get_their_own_pack(seeded, server, tenant, git, tmp_path):
    repo, work = seeded
    url = tenant.url(repo)
    clone(git, url, tmp_path / "partial", "--filter=blob:none", "--no-checkout")
    kept_packs(server, tenant, repo, 1)
    shallow = [clone(git, url, tmp_path / "shallow0", "--depth", "1")]
    kept_packs(server, tenant, repo, 2)  # in place once made durable, after the clone had it
    shallow.append(clone(git, url, tmp_path / "shallow1", "--depth", "1"))
    whole = clone(git, url, tmp_path / "whole", "--no-checkout")
    assert PACK_MADE in whole and PACK_MADE in shallow[0] and PACK_MADE not in shallow[1]
    for i in range(2):
        assert git.out("rev-list", "--count", "HEAD", cwd=tmp_path / f"shallow{i}") == "1"
    assert git.out("rev-list", "--count", "HEAD", cwd=tmp_path / "whole") == "3"
    missing = git.out("rev-list", "--objects", "--missing=print", "--all", cwd=tmp_path / "whole")
    assert not [line for line in missing.splitlines() if line.startswith("?")]
    git("fsck", "--strict", cwd=tmp_path / "whole")
    # the partial clone's blobs come in a lazy fetch on checkout, which wants them by name
    git("checkout", "-q", "main", cwd=tmp_path / "partial")
    assert (tmp_path / "partial" / "docs/guide.md").read_text() == "# guide\n"


def test_a_fetch_with_objects_the_client_has_is_left_to_git(seeded, server, tenant, git, tmp_path):
    """The cache's program leaves a lock file for every request it sees, before it sends anything."""
    repo, work = seeded
    clone(git, tenant.url(repo), tmp_path / "c")
    kept_packs(server, tenant, repo, 1)
    repo_id = repo_path(server, tenant, repo).name.removesuffix(".git")
    before = sorted(server.context.store.kept_packs.glob(f"{repo_id}.*"))
    new = git.commit(work, {"more.txt": "1\n"}, "more")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    git("fetch", "-q", "origin", cwd=tmp_path / "c")
    assert git.out("rev-parse", "origin/main", cwd=tmp_path / "c") == new
    assert sorted(server.context.store.kept_packs.glob(f"{repo_id}.*")) == before
    clone(git, tenant.url(repo), tmp_path / "d")
    assert len(sorted(server.context.store.kept_packs.glob(f"{repo_id}.*"))) > len(before)


def test_a_kept_pack_is_not_sent_once_it_is_older_than_the_limit(seeded, server, tenant, git, tmp_path):
    repo, _ = seeded
    clone(git, tenant.url(repo), tmp_path / "first")
    [kept] = kept_packs(server, tenant, repo, 1)
    long_ago = time.time() - 11 * 60
    os.utime(kept, (long_ago, long_ago))
    assert PACK_MADE in clone(git, tenant.url(repo), tmp_path / "second")
    [again] = kept_packs(server, tenant, repo, 1)
    deadline = time.monotonic() + 10
    while again.stat().st_mtime < long_ago + 60 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert again.stat().st_mtime > long_ago + 60


def test_simultaneous_clones_all_get_their_pack_and_one_is_kept(seeded, server, tenant, git, tmp_path):
    """Eight agents cloning one new state at once: one pack-objects run (one clone shows its progress), whose
    pack the others are sent as it is written."""
    repo, work = seeded
    outputs: dict[int, bytes] = {}

    def run(i: int) -> None:
        outputs[i] = clone(git, tenant.url(repo), tmp_path / f"c{i}", "--bare")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(outputs) == 8
    tip = git.out("rev-parse", "HEAD", cwd=work)
    for i in range(8):
        assert git.out("rev-parse", "main", cwd=tmp_path / f"c{i}") == tip
        git("fsck", "--strict", cwd=tmp_path / f"c{i}")
    assert sum(PACK_MADE in output for output in outputs.values()) == 1
    assert len(kept_packs(server, tenant, repo, 1)) == 1
    assert PACK_MADE not in clone(git, tenant.url(repo), tmp_path / "after", "--bare")


def test_a_shallow_clone_gets_a_tag_made_since_the_last_one(seeded, server, tenant, git, tmp_path):
    """A shallow clone asks for one branch; git adds the annotated tags that point into what it sends, as the
    refs stand. A pack kept before a new tag must not be sent after it (CI's `git describe` would go wrong)."""
    repo, work = seeded
    clone(git, tenant.url(repo), tmp_path / "before", "--depth", "1")
    kept_packs(server, tenant, repo, 1)
    git("tag", "-a", "v2.0", "-m", "next", cwd=work)
    git("push", "-q", tenant.url(repo), "v2.0", cwd=work)
    clone(git, tenant.url(repo), tmp_path / "after", "--depth", "1")
    assert "v2.0" in git.out("tag", cwd=tmp_path / "after").split()


def test_repositories_do_not_share_kept_packs(seeded, server, tenant, git, tmp_path):
    """Two repositories with the same history: each makes its own pack (a kept pack never leaves its
    repository, and deleting one repository takes its packs with it)."""
    repo, work = seeded
    twin = tenant.repo()
    git("push", "-q", tenant.url(twin), "main", "v1.0", cwd=work)
    assert PACK_MADE in clone(git, tenant.url(repo), tmp_path / "a")
    assert PACK_MADE in clone(git, tenant.url(twin), tmp_path / "b")
    assert len(kept_packs(server, tenant, repo, 1)) == 1 and len(kept_packs(server, tenant, twin, 1)) == 1


def test_by_default_a_state_s_pack_is_kept_from_its_second_clone(small_limits_server, git, tmp_path):
    """DRIFTSTONE_PACK_CACHE_MIN_OCCURRENCES at its default (1): the first clone of a state keeps nothing, the
    second keeps its pack, the third is sent it."""
    server = small_limits_server
    tenant = server.tenant()
    repo, work = seed_three_commits_and_a_tag(tenant, git, tmp_path)
    first = clone(git, tenant.url(repo), tmp_path / "first")
    assert PACK_MADE in first
    for suffix in (".partial.*", ".pack"):  # a pack being kept: from before its first byte
        assert not cache_files(server, tenant, repo, suffix)
    second = clone(git, tenant.url(repo), tmp_path / "second")
    assert PACK_MADE in second
    assert len(kept_packs(server, tenant, repo, 1)) == 1
    third = clone(git, tenant.url(repo), tmp_path / "third")
    assert PACK_MADE not in third
    for dest in ("first", "second", "third"):
        assert git.out("rev-parse", "HEAD", cwd=tmp_path / dest) == git.out("rev-parse", "HEAD", cwd=work)
        git("fsck", "--strict", cwd=tmp_path / dest)
