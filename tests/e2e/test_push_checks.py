"""The hook pipeline on real pushes: checks reject with `! [remote rejected] <ref> (<reason>)`, effects record."""
from __future__ import annotations

import hashlib
import itertools
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib

import pytest
import requests
from sqlalchemy import select

from control.services import repos
from storage.models import Branch, Event, Repository
from tests.support import api, pkt, raw_request, receive_pack, repo_path, start_server


EMPTY_PACK = b"PACK\0\0\0\2\0\0\0\0" + bytes.fromhex("029d08823bd8a8eab510ad6ac75c823cfd3ed31e")


def repo_row(server, tenant, slug):
    with server.context.db.session() as session:
        return session.scalar(select(Repository).where(Repository.org_id == tenant.org_id, Repository.slug == slug))


def hostile_tree_commit(git, work, name: str) -> str:
    """A commit whose root tree has an entry literally named `name` (built with hash-object --literally)."""
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=work, input=b"payload\n",
                          capture_output=True, check=True).stdout.decode().strip()
    entry = b"100644 " + name.encode() + b"\0" + bytes.fromhex(blob)
    tree = subprocess.run(["git", "hash-object", "-t", "tree", "-w", "--literally", "--stdin"], cwd=work,
                          input=entry, capture_output=True, check=True).stdout.decode().strip()
    return git.out("commit-tree", tree, "-p", "HEAD", "-m", f"hostile {name!r}", cwd=work)


@pytest.fixture
def pushed(tenant, git, tmp_path):
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"README.md": "hi\n"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    return repo, work


@pytest.mark.parametrize("name", [".git", ".GIT", "git~1", "GIT~1", ".git.", ".git ", ".git::$INDEX_ALLOCATION",
                                  ".g\u200cit", "..", ".", "a/b"])
def test_unsafe_paths_rejected_and_objects_discarded(tenant, git, pushed, server, name):
    repo, work = pushed
    bad = hostile_tree_commit(git, work, name)
    result = git("push", tenant.url(repo), f"{bad}:refs/heads/evil", cwd=work, check=False)
    assert result.returncode != 0
    assert b"[remote rejected]" in result.stderr
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/evil", cwd=work) == ""
    row = repo_row(server, tenant, repo)
    objects = subprocess.run(["git", "cat-file", "-e", bad], cwd=server.context.store.path_for(row.id))
    assert objects.returncode != 0, "objects of a rejected push must not become visible"


def test_old_histories_git_reads_fine_push_merge_and_list_and_broken_ones_do_not(tenant, git, pushed, server):
    """A repository mirrored from an old history (a time zone of +25000, zero-padded tree modes) was refused whole:
    what Gitaly takes, taken, merged and rebased, its dates listed as ISO 8601 reads them; a commit git cannot read
    right (a bad email, no space before a date) still not."""
    repo, work = pushed

    def literal(kind: str, raw: bytes) -> str:
        return subprocess.run(["git", "hash-object", "-t", kind, "-w", "--literally", "--stdin"], cwd=work,
                              input=raw, capture_output=True, check=True).stdout.decode().strip()

    def commit(parent: str, author: bytes, message: bytes) -> str:
        return literal("commit", b"tree %s\nparent %s\nauthor %s\ncommitter C <c@x> 1500000000 +0000\n\n%s\n"
                       % (tree.encode(), parent.encode(), author, message))

    head = git.out("rev-parse", "HEAD", cwd=work)
    blob = literal("blob", b"old\n")
    tree = literal("tree", b"0100644 old.txt\0" + bytes.fromhex(blob))
    old = commit(head, b"A <a@x> 1500000000 +25000", b"old")
    landed = git("push", tenant.url(repo), f"{old}:refs/heads/imported", cwd=work, check=False)
    assert landed.returncode == 0, landed.stderr.decode()
    listed = api(server, tenant.keys["read"], "GET", f"/v1/repos/{repo}/commits", params={"branch": "imported"})
    assert listed.json()["data"][0]["author"]["date"] == "2017-07-14T02:40:00Z", listed.text
    git.commit(work, {"main.txt": "main moves\n"}, "main moves")
    git("push", "-q", tenant.url(repo), "HEAD:main", cwd=work)
    for strategy in ("rebase", "squash", "merge"):
        merged = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/merges",
                     {"source": "imported", "target": "main", "strategy": strategy, "dryRun": True})
        assert merged.status_code == 200 and merged.json()["data"]["success"], (strategy, merged.text)
    for author, finding in ((b"A <a@x 1500000000 +0000", b"badEmail"),
                            (b"A <a@x>1500000000 +0000", b"missingSpaceBeforeDate")):
        broken = commit(head, author, b"broken")
        refused = git("push", tenant.url(repo), f"{broken}:refs/heads/broken", cwd=work, check=False)
        assert refused.returncode != 0 and finding in refused.stderr, refused.stderr


def literal_tree(work, entries: dict[bytes, tuple[str, str]]) -> str:
    """A tree written as given (name -> (mode, id)), in git's order, with hash-object --literally."""
    def order(name: bytes) -> bytes:
        return name + b"/" if entries[name][0] == "40000" else name
    raw = b"".join(f"{entries[n][0]} ".encode() + n + b"\0" + bytes.fromhex(entries[n][1])
                   for n in sorted(entries, key=order))
    return subprocess.run(["git", "hash-object", "-t", "tree", "-w", "--literally", "--stdin"], cwd=work,
                          input=raw, capture_output=True, check=True).stdout.decode().strip()


FSCK_PASSES = [b"GIT~2", "\uff0egit".encode(), ".git\u3000".encode(), b"..\\x", b"a\\b", b"a\x01b", b"a\x7fb", b" ",
               b"...", b"x" * 300, b"\xff\xfe", b"std::vector", "\u00e9".encode("latin-1")]


@pytest.mark.parametrize("bulk", [0, 120], ids=["loose", "packed"])  # receive-pack keeps 100 objects or more as a pack
@pytest.mark.parametrize("name", FSCK_PASSES, ids=repr)
def test_names_git_fsck_lets_through_are_refused_like_api_paths(tenant, git, pushed, name, bulk):
    """git's fsck refuses `.git`, `git~1` and some spellings; the API refuses these too (hooks/paths.py), and a
    pushed file the API cannot name could then be neither edited, renamed nor deleted through it. The entry
    below points at a blob the server already has: a rename brings no new blob, only a new tree. Pushed as a
    new branch (compared with the default branch) and as an update of the default branch."""
    repo, work = pushed
    readme = git.out("rev-parse", "HEAD:README.md", cwd=work)
    entries = {b"README.md": ("100644", readme), name: ("100644", readme)}
    if bulk:
        files = {f"f{i}.txt".encode(): ("100644", subprocess.run(
            ["git", "hash-object", "-w", "--stdin"], cwd=work, input=f"{i}\n".encode(), capture_output=True,
            check=True).stdout.decode().strip()) for i in range(bulk)}
        entries[b"bulk"] = ("40000", literal_tree(work, files))
    bad = git.out("commit-tree", literal_tree(work, entries), "-p", "HEAD", "-m", "odd name", cwd=work)
    for ref in ("refs/heads/odd", "refs/heads/main"):
        before = git.out("ls-remote", tenant.url(repo), ref, cwd=work)
        result = git("push", tenant.url(repo), f"{bad}:{ref}", cwd=work, check=False)
        assert result.returncode != 0
        assert b"[remote rejected] " in result.stderr and b"is refused: " in result.stderr, result.stderr
        assert git.out("ls-remote", tenant.url(repo), ref, cwd=work) == before


def test_of_new_refs_pushed_together_those_holding_a_refused_path_are_refused_for_it(tenant, git, pushed):
    """New refs are diffed one against the other (a mirror push of hundreds stays fast), and a refused path in
    one refused them all, each quoting a path it did not have. A push's checks pass or fail it whole (git's
    pre-receive), so `good`, which holds none, is not applied and says it is for another ref; `later`, made on
    top of `bad`, holds its path without adding it and is refused for it."""
    repo, work = pushed
    readme = git.out("rev-parse", "HEAD:README.md", cwd=work)
    bad = git.out("commit-tree", literal_tree(work, {b"README.md": ("100644", readme), b"a\\b": ("100644", readme)}),
                  "-p", "HEAD", "-m", "a backslash", cwd=work)
    later = git.out("commit-tree", literal_tree(work, {b"README.md": ("100644", readme), b"a\\b": ("100644", readme),
                                                       b"more.txt": ("100644", readme)}),
                    "-p", bad, "-m", "more on top", cwd=work)
    git.commit(work, {"fine.txt": "fine\n"}, "fine")
    good = git.out("rev-parse", "HEAD", cwd=work)
    result = git("push", tenant.url(repo), f"{bad}:refs/heads/b-bad", f"{later}:refs/heads/b-later",
                 f"{good}:refs/heads/a-good", cwd=work, check=False)
    assert result.returncode != 0
    rejected = {line.split(b" -> ")[1].split(b" ")[0]: line for line in result.stderr.splitlines()
                if b"[remote rejected]" in line}
    assert set(rejected) == {b"a-good", b"b-bad", b"b-later"}, result.stderr
    assert b"(not applied: refs/heads/b-bad was refused)" in rejected[b"a-good"], result.stderr
    assert b"contains a backslash" in rejected[b"b-bad"] and b"contains a backslash" in rejected[b"b-later"]
    assert "refs/heads/" not in git.out("ls-remote", "--heads", tenant.url(repo), cwd=work).replace("/main", "")


def test_pushed_names_the_api_accepts_still_push(tenant, git, pushed):
    repo, work = pushed
    git.commit(work, {"caf\u00e9/\u65e5\u672c.txt": "x", "a b/c-d_e.f~g": "y", ".github/x.yml": "z", "...x": "w"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    blob = git.out("rev-parse", "HEAD:...x", cwd=work)
    git("tag", "-a", "-m", "an annotated tag of a blob", "annotated-blob", blob, cwd=work)
    tree = git.out("rev-parse", "HEAD^{tree}", cwd=work)
    git("push", "-q", tenant.url(repo), f"{blob}:refs/tags/a-blob", "refs/tags/annotated-blob",  # no paths
        f"{tree}:refs/tags/a-tree", cwd=work)
    assert len(git.out("ls-remote", "--tags", tenant.url(repo), cwd=work).splitlines()) == 4  # with a peeled line


def test_a_path_deeper_than_the_api_allows_is_refused(tenant, git, pushed):
    repo, work = pushed
    before = git.out("ls-remote", tenant.url(repo), "refs/heads/main", cwd=work)
    git.commit(work, {"d/" * 70 + "deep.txt": "x"}, "70 levels")
    result = git("push", tenant.url(repo), "main", cwd=work, check=False)
    assert b"is refused: deeper than 64 levels" in result.stderr, result.stderr
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/main", cwd=work) == before


@pytest.mark.parametrize("ref,reason", [
    ("refs/heads/-leading-dash", b"may not start with '-'"),
    ("refs/internal/thing", b"only refs/heads/, refs/tags/ and refs/notes/ may be pushed"),
    ("refs/heads/caf\udce9", b"invalid ref name: not UTF-8"),  # the byte 0xe9 alone: Latin-1, not UTF-8
    ("refs/heads/" + "a" * 200 + "/" + "b" * 60, b"branch names are at most 255 characters"),
    ("refs/heads/HEAD/x", b"a branch HEAD/... breaks every clone"),
    ("refs/heads/@", b"HEAD and @ name the current branch in git (a branch HEAD/... breaks every clone)"),
    ("refs/heads/refs/heads/x", b"a branch may not start with refs/ (it would read as another ref)"),
])
def test_ref_name_rules(tenant, git, pushed, ref, reason):
    repo, work = pushed
    result = git("push", tenant.url(repo), f"HEAD:{ref}", cwd=work, check=False)
    assert result.returncode != 0
    rejected = [line for line in result.stderr.splitlines() if b"! [remote rejected] HEAD -> " in line]
    assert rejected and reason + b")" in rejected[0]
    assert git.out("ls-remote", tenant.url(repo), cwd=work).count("refs/") == 1


def test_a_branch_under_head_is_refused_and_one_already_there_can_be_deleted(server, tenant, git, pushed, tmp_path):
    """A branch `HEAD/x`, made by any agent key through the API or a push, failed every later clone of the
    repository ('refs/remotes/origin/HEAD/x' exists; cannot create 'refs/remotes/origin/HEAD')."""
    repo, work = pushed
    key = tenant.keys["agent"]
    for name, record_only in itertools.product(("HEAD/x", "refs/heads/x", "@"), (False, True)):
        made = requests.post(f"{server.url}/v1/repos/{repo}/branches", json={"name": name, "recordOnly": record_only},
                             timeout=30, headers={"Authorization": f"Bearer {key}"})
        assert made.status_code in (400, 422) and made.json()["success"] is False, (name, made.text)
    git("clone", "-q", tenant.url(repo), str(tmp_path / "clone"))
    head = git.out("rev-parse", "HEAD", cwd=work)
    subprocess.run(["git", "-C", str(repo_path(server, tenant, repo)), "update-ref", "refs/heads/HEAD/x", head],
                   check=True)  # made before the rule
    git("push", "-q", tenant.url(repo), ":refs/heads/HEAD/x", cwd=work)
    git("clone", "-q", tenant.url(repo), str(tmp_path / "again"))


def test_a_ref_refused_with_the_rest_of_its_push_says_which_ref_was_refused(tenant, git, pushed):
    """The checks' verdict holds for the whole push; a ref that passed them used to read only git's
    'pre-receive hook declined'."""
    repo, work = pushed
    result = git("push", tenant.url(repo), "HEAD:refs/heads/innocent", "HEAD:refs/heads/-dash", cwd=work,
                 check=False)
    assert result.returncode != 0
    assert b"! [remote rejected] HEAD -> innocent (not applied: refs/heads/-dash was refused)" in result.stderr
    assert b"-dash (invalid ref name: a component may not start with '-')" in result.stderr
    assert "innocent" not in git.out("ls-remote", tenant.url(repo), cwd=work)
    # a ref no push may make says so, not that another ref was refused
    result = git("push", tenant.url(repo), "HEAD:refs/heads/innocent", "HEAD:refs/heads/-dash",
                 "HEAD:refs/remotes/x", cwd=work, check=False)
    assert b"HEAD -> x (only refs/heads/, refs/tags/ and refs/notes/ may be pushed)" in result.stderr
    assert b"HEAD -> innocent (not applied: refs/heads/-dash was refused)" in result.stderr


def test_a_mirror_push_lands_its_branches_and_tags_and_leaves_the_servers_own_refs(server, tenant, git, pushed,
                                                                                    tmp_path):
    """A ref outside heads, tags and notes refused the whole push: `git push --mirror` from a clone (its
    refs/remotes/*) or from a GitHub mirror (refs/pull/*) moved nothing. git now refuses those refs one by one
    (hidden from pushers, as GitHub hides refs/pull), and the server's own refs/driftstone/ are not offered to a
    mirror push to delete."""
    repo, work = pushed
    url = tenant.url(repo)
    head = git.out("rev-parse", "HEAD", cwd=work)
    own = "refs/driftstone/workspaces/ws_kept"
    git("update-ref", own, head, cwd=repo_path(server, tenant, repo))
    clone = tmp_path / "mirror"
    git("clone", "-q", "--mirror", url, str(clone))
    # the server's own refs are not fetched either: a mirror clone pushed back as it is lands whole
    assert "refs/driftstone/" not in git.out("for-each-ref", cwd=clone)
    git("push", "--mirror", url, cwd=clone)
    git("update-ref", "refs/pull/1/head", head, cwd=clone)
    git("update-ref", "refs/remotes/origin/main", head, cwd=clone)
    git("update-ref", "refs/heads/feature", head, cwd=clone)
    git("tag", "v1", head, cwd=clone)
    result = git("push", "--mirror", url, cwd=clone, check=False)
    assert b"refs/pull/1/head (only refs/heads/, refs/tags/ and refs/notes/ may be pushed)" in result.stderr
    assert b"origin/main -> origin/main (only refs/heads/, refs/tags/ and refs/notes/ may be pushed)" in result.stderr
    served = git.out("ls-remote", url, cwd=work)
    assert "refs/heads/feature" in served and "refs/tags/v1" in served and "refs/pull/" not in served
    assert git("rev-parse", "--verify", own, cwd=repo_path(server, tenant, repo), check=False).returncode == 0


def test_protected_branch_refuses_force_and_delete(server, tenant, git, pushed):
    repo, work = pushed
    with server.context.db.session() as session:
        repos.protect_branch(session, repo_row(server, tenant, repo), "main")
    url = tenant.url(repo)
    git.commit(work, {"b.txt": "b"}, "fast-forward is fine")
    git("push", "-q", url, "main", cwd=work)
    head = git.out("rev-parse", "HEAD", cwd=work)
    git("commit", "-q", "--amend", "-m", "rewritten", cwd=work)
    forced = git("push", "--force", url, "main", cwd=work, check=False)
    assert b"! [remote rejected] main -> main (protected branch: force push is not allowed)" in forced.stderr
    deleted = git("push", url, ":main", cwd=work, check=False)
    assert b"! [remote rejected] main (protected branch: deletion is not allowed)" in deleted.stderr
    assert git.out("ls-remote", url, "refs/heads/main", cwd=work).split()[0] == head
    # other branches are not protected
    git("push", "-q", url, "HEAD:refs/heads/scratch", cwd=work)
    git("push", "-q", "--force", url, "HEAD~1:refs/heads/scratch", cwd=work)
    git("push", "-q", url, ":scratch", cwd=work)


def test_the_strictest_matching_protection_holds_and_a_star_stops_at_a_slash(server, tenant, git, pushed):
    """The first matching rule in table order decided: a permissive `**` made before stable's rule let stable be
    deleted. And fnmatch's `*` crossed '/', where GitHub's (the patterns users write) stops at it."""
    repo, work = pushed
    with server.context.db.session() as session:
        row = repo_row(server, tenant, repo)
        repos.protect_branch(session, row, "**", allow_force_push=True, allow_deletion=True)
        repos.protect_branch(session, row, "stable")
        repos.protect_branch(session, row, "release/*")
    url = tenant.url(repo)
    branches = ("stable", "release/v1", "release/next/hotfix")
    git("push", "-q", url, *(f"HEAD:refs/heads/{name}" for name in branches), cwd=work)
    deleted = git("push", url, ":stable", cwd=work, check=False)
    assert b"! [remote rejected] stable (protected branch: deletion is not allowed)" in deleted.stderr
    git("push", "-q", url, ":release/next/hotfix", cwd=work)
    refused = git("push", url, ":release/v1", cwd=work, check=False)
    assert b"! [remote rejected] release/v1 (protected branch: deletion is not allowed)" in refused.stderr
    assert git.out("ls-remote", url, "refs/heads/*", cwd=work).count("refs/heads/") == 3  # main, stable, release/v1


def test_the_default_branch_cannot_be_deleted_by_a_push(tenant, git, pushed):
    repo, work = pushed
    url = tenant.url(repo)
    git("push", "-q", url, "HEAD:refs/heads/other", cwd=work)
    deleted = git("push", url, ":main", cwd=work, check=False)
    assert b"! [remote rejected] main (the default branch cannot be deleted)" in deleted.stderr
    assert git.out("ls-remote", url, "refs/heads/main", cwd=work)
    git("push", "-q", url, ":other", cwd=work)  # any other branch may go


def assert_refused_for_size(git, url: str, work, before: str) -> None:
    """Pushing main is refused for an object over small_limits_server's 1 MiB cap, and main stays at `before`."""
    result = git("push", url, "main", cwd=work, check=False)
    assert result.returncode != 0
    assert b"[remote rejected] main -> main (object" in result.stderr
    assert b"larger than the 1048576 byte limit" in result.stderr
    assert git.out("ls-remote", url, "refs/heads/main", cwd=work) == before


def test_object_size_cap_on_inflated_size(small_limits_server, git, tmp_path):
    tenant = small_limits_server.tenant()
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"ok.txt": "small"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    git.commit(work, {"zeros.bin": b"\0" * (3 * 1024 * 1024)}, "compresses to almost nothing")
    result = git("push", tenant.url(repo), "main", cwd=work, check=False)
    assert result.returncode != 0
    assert b"[remote rejected] main -> main (object" in result.stderr
    assert b"larger than the 1048576 byte limit" in result.stderr


def _grows_from_both_ends(server, git, tmp_path):
    """A repository whose main holds f.txt (0.8 MiB), and a work tree where branch a appends to it and b
    prepends, each under small_limits_server's 1 MiB object limit, pushed; `merged` (a merged with b) is over it.
    Returns (tenant, repo, url, work, main's ls-remote line)."""
    def lines(tag: str, count: int) -> str:
        return "".join(f"{tag} line {i} of a file that grows from both ends\n" for i in range(count))

    tenant = server.tenant()
    repo = tenant.repo()
    url = tenant.url(repo)
    work = git.new_worktree(tmp_path / "w", {"f.txt": lines("base", 14_000)})
    git("push", "-q", url, "main", cwd=work)
    before = git.out("ls-remote", url, "refs/heads/main", cwd=work)
    git("checkout", "-q", "-b", "a", cwd=work)
    git.commit(work, {"f.txt": lines("base", 14_000) + lines("a", 6_000)}, "a appends")
    git("checkout", "-q", "-b", "b", "main", cwd=work)
    git.commit(work, {"f.txt": lines("b", 6_000) + lines("base", 14_000)}, "b prepends")
    git("push", "-q", url, "a", "b", cwd=work)
    git("checkout", "-q", "-B", "merged", "a", cwd=work)
    git("merge", "-q", "--no-edit", "b", cwd=work)
    return tenant, repo, url, work, before


@pytest.mark.parametrize("dry_run", [True, False])
def test_an_api_merge_over_the_object_limit_is_refused_before_it_stores_anything(small_limits_server, git, tmp_path,
                                                                                 dry_run):
    """A merge writes its objects before the checks run: one the size check refused left its oversized blob
    stored for good (and a push of the same merge then passed, its blob counted as one already stored), and its
    dry run said it would merge cleanly."""
    tenant, repo, _, work, _ = _grows_from_both_ends(small_limits_server, git, tmp_path)
    merged_blob = git.out("rev-parse", "merged:f.txt", cwd=work)
    headers = {"Authorization": f"Bearer {tenant.keys['admin']}"}
    merges = f"{small_limits_server.url}/v1/repos/{repo}/merges"
    assert requests.post(merges, headers=headers, json={"source": "a", "target": "main"}, timeout=60).ok
    refused = requests.post(merges, headers=headers, json={"source": "b", "target": "main", "dryRun": dry_run},
                            timeout=60)
    assert refused.status_code == 413 and refused.json()["code"] == "too_large", refused.text
    assert merged_blob in refused.json()["error"]
    stored = subprocess.run(["git", "cat-file", "-e", merged_blob], cwd=repo_path(small_limits_server, tenant, repo))
    assert stored.returncode != 0


def test_a_pushed_object_stored_already_but_reached_by_no_ref_still_counts(small_limits_server, git, tmp_path):
    """git's unpack-objects skips objects the repository has, and the size check counted only the quarantine's:
    an oversized blob stored by no accepted change (here written straight into the repository, as a refused API
    merge used to leave one) passed in a push."""
    tenant, repo, url, work, before = _grows_from_both_ends(small_limits_server, git, tmp_path)
    blob = subprocess.run(["git", "cat-file", "blob", "merged:f.txt"], cwd=work, capture_output=True,
                          check=True).stdout
    subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo_path(small_limits_server, tenant, repo),
                   input=blob, check=True, capture_output=True)
    git("checkout", "-q", "main", cwd=work)
    git("merge", "-q", "--ff-only", "merged", cwd=work)
    assert_refused_for_size(git, url, work, before)


def test_an_oversized_object_no_tip_reaches_counts_beside_a_stored_one(small_limits_server, git, tmp_path):
    """The second look (a push that sent objects stored already) replaced the quarantine scan's answer with what
    the pushed tips reach: an oversized blob no tip reaches passed as long as the pack also held one stored blob
    (found by this session's review)."""
    tenant = small_limits_server.tenant()
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a\n"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    old = git.out("rev-parse", "HEAD", cwd=work)
    new = git.commit(work, {"b.txt": "b\n"}, "small")
    stray = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=work, input=b"\0" * (2 * 1024 * 1024),
                           capture_output=True, check=True).stdout.decode().strip()
    objects = [new, git.out("rev-parse", "HEAD^{tree}", cwd=work), git.out("rev-parse", "HEAD:b.txt", cwd=work),
               stray, git.out("rev-parse", "HEAD:a.txt", cwd=work)]  # the last one the server has
    pack = subprocess.run(["git", "pack-objects", "--stdout", "-q"], cwd=work, capture_output=True, check=True,
                          input="\n".join(objects).encode() + b"\n").stdout
    answer = receive_pack(small_limits_server, tenant, repo,
                          pkt(f"{old} {new} refs/heads/main\0report-status\n".encode()) + b"0000" + pack).content
    assert f"ng refs/heads/main object {stray} is larger than the 1048576 byte limit".encode() in answer, answer


def test_object_size_cap_on_a_delta_in_a_kept_pack(small_limits_server, git, tmp_path):
    """Over 100 objects, so receive-pack keeps the pack; the big file arrives as a small delta against the
    version the server has, and it is the size it rebuilds that counts."""
    tenant = small_limits_server.tenant()
    repo = tenant.repo()
    lines = "".join(f"line {i} of a text that will be doubled\n" for i in range(20_000))
    work = git.new_worktree(tmp_path / "w", {"big.txt": lines})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    before = git.out("ls-remote", tenant.url(repo), "refs/heads/main", cwd=work)
    git.commit(work, {"big.txt": lines + lines, **{f"small/{i}.txt": f"{i}\n" for i in range(120)}}, "doubled")
    assert_refused_for_size(git, tenant.url(repo), work, before)


def test_object_size_cap_on_a_large_kept_pack(small_limits_server, git, tmp_path):
    """Over 100 objects: the server scans the pack before the hook asks (server/pack_prescan.py);
    the verdict is the same as the check's own scan."""
    tenant = small_limits_server.tenant()
    repo = tenant.repo()
    files = {f"small/{i}.bin": os.urandom(10_000) for i in range(150)}
    work = git.new_worktree(tmp_path / "w", files)
    git("push", "-q", tenant.url(repo), "main", cwd=work)  # 1.5 MiB, every object under the cap: accepted
    before = git.out("ls-remote", tenant.url(repo), "refs/heads/main", cwd=work)
    assert before.split()[0] == git.out("rev-parse", "HEAD", cwd=work)
    more = {f"more/{i}.bin": os.urandom(1000) for i in range(120)}
    git.commit(work, {"big.bin": os.urandom(1024 * 1024 + 1), **more})
    assert_refused_for_size(git, tenant.url(repo), work, before)


def test_a_thin_packs_base_already_stored_is_not_counted(small_limits_server, git, tmp_path):
    """The repository already holds a file over the cap (imported, or pushed before the cap was lowered). A push
    whose new version of it is small arrives as a delta against it in a thin pack, and git completes that pack
    by appending the base it already has: the base is not new and does not count."""
    tenant = small_limits_server.tenant()
    repo = tenant.repo()
    big = os.urandom(2 * 1024 * 1024)
    work = git.new_worktree(tmp_path / "w", {"b.bin": big})
    git("push", "-q", str(repo_path(small_limits_server, tenant, repo)), "main", cwd=work)  # on disk, unchecked
    git("fetch", "-q", tenant.url(repo), cwd=work)
    git.commit(work, {"b.bin": big[:700_000], **{f"s/{i}.bin": os.urandom(12_000) for i in range(120)}}, "shrink")
    result = git("push", tenant.url(repo), "main", cwd=work, check=False)
    assert result.returncode == 0, result.stderr
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/main", cwd=work).split()[0] == \
        git.out("rev-parse", "HEAD", cwd=work)


@pytest.mark.parametrize("copies", [40, 120])  # objects left loose, and a pack receive-pack keeps
def test_what_a_push_inflates_to_is_bounded(small_limits_server, git, tmp_path, copies):
    """Each object under the cap, the pack a few hundred KiB: deltas of one text rebuild far more. A sweep
    pushed a 743 KB pack that inflated to 911 MiB; only the pack's size and each object's were bounded."""
    tenant = small_limits_server.tenant()
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"ok.txt": "small"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    before = git.out("ls-remote", tenant.url(repo), "refs/heads/main", cwd=work)
    text = os.urandom(400_000).hex()  # 800 KB, under the 1 MiB object cap
    git.commit(work, {f"copy{i}.txt": f"{i}\n{text}" for i in range(copies)}, "many near-copies")
    result = git("push", tenant.url(repo), "main", cwd=work, check=False)
    assert result.returncode != 0
    assert b"the push's objects inflate to" in result.stderr
    assert f"more than the {24 * 1024 * 1024} byte limit".encode() in result.stderr
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/main", cwd=work) == before
    git("reset", "-q", "--hard", "HEAD~1", cwd=work)
    git.commit(work, {f"copy{i}.txt": f"{i}\n{text}" for i in range(25)}, "fewer: 20 MB")
    git("push", "-q", tenant.url(repo), "main", cwd=work)


def test_plain_gunicorn_with_a_relative_data_dir_still_checks_every_push(git, tmp_path):
    """DESIGN.md's production command, `gunicorn wsgi:application`, started beside a relative
    DRIFTSTONE_DATA_DIR. git takes a relative core.hooksPath relative to the repository and silently runs no
    hook it cannot find there, which let every push past every check. Also: a hook that goes missing while the
    server runs is put back, and if it cannot be, pushes are refused rather than let through unchecked; refs
    git moves without the checks' approval (a hook replaced by one that asks nothing) are put back."""
    def gunicorn(port: int) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "wsgi:application", "--config", "python:control.gunicorn_conf",
                "--bind", f"127.0.0.1:{port}", "--workers", "1"]

    server = start_server(tmp_path / "data", {"DRIFTSTONE_DATA_DIR": "data", "DRIFTSTONE_MAX_OBJECT_SIZE": "1048576"},
                          command=gunicorn, cwd=tmp_path)
    try:
        tenant = server.tenant()
        repo = tenant.repo()
        work = git.new_worktree(tmp_path / "w", {"ok.txt": "small"})
        git("push", "-q", tenant.url(repo), "main", cwd=work)
        git.commit(work, {"big.bin": os.urandom(1024 * 1024 + 1)}, "over the cap")
        result = git("push", tenant.url(repo), "main", cwd=work, check=False)
        assert b"larger than the 1048576 byte limit" in result.stderr

        hooks = tmp_path / "data" / "git-hooks"
        (hooks / "pre-receive").unlink()
        result = git("push", tenant.url(repo), "main", cwd=work, check=False)
        assert b"larger than the 1048576 byte limit" in result.stderr
        assert (hooks / "pre-receive").is_file()

        before = git.out("ls-remote", tenant.url(repo), "refs/heads/main", cwd=work)
        (hooks / "pre-receive").write_text("#!/bin/sh\nexit 0\n")  # replaced: asks nothing, lets git go on
        result = git("push", tenant.url(repo), "main", "HEAD:refs/heads/sneaked", cwd=work, check=False)
        assert b"(the push checks did not run: the change was undone)" in result.stderr
        assert git.out("ls-remote", tenant.url(repo), "refs/heads/*", cwd=work) == before

        for item in hooks.iterdir():
            item.unlink()
        hooks.rmdir()
        hooks.write_text("not a directory: the hook cannot be put back")
        result = git("push", tenant.url(repo), "main", cwd=work, check=False)
        assert result.returncode != 0 and b"503" in result.stderr
        assert git.out("ls-remote", tenant.url(repo), "refs/heads/main", cwd=work).split()[0] != \
            git.out("rev-parse", "HEAD", cwd=work)
    finally:
        server.stop()
        server.context.db.dispose()


@pytest.mark.parametrize("post_buffer", ["1m", "64m"])  # 1m: git sends the pack chunked; 64m: sized
def test_push_size_cap(small_limits_server, git, tmp_path, post_buffer):
    tenant = small_limits_server.tenant()
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w")
    for i in range(12):
        (work / f"r{i}.bin").write_bytes(os.urandom(900 * 1024))  # each under the object cap
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "10.8 MiB push", cwd=work)
    result = git("-c", f"http.postBuffer={post_buffer}", "push", tenant.url(repo), "main", cwd=work, check=False)
    assert result.returncode != 0
    if post_buffer == "64m":
        assert b"413" in result.stderr, result.stderr  # refused before any of it was sent on to git
    else:  # git took it in and refused it (receive.maxInputSize): the server's log says so
        refused = f"push to {repo_path(small_limits_server, tenant, repo)} refused by git"
        assert refused in small_limits_server.log_text()
    assert git.out("ls-remote", tenant.url(repo), cwd=work) == ""


def test_a_sized_push_past_the_cap_is_heard_by_a_client_that_sends_all_first(small_limits_server):
    """A client that writes its whole body before reading (urllib here; libgit2 and JGit do the same) used to meet
    a reset connection when the server refused a push by its Content-Length: the answer was sent and the
    connection closed with the body unread. The rest is now read and dropped first, and the client reads the 413."""
    tenant = small_limits_server.tenant()
    repo = tenant.repo()
    body = pkt(f"{'0' * 40} {'1' * 40} refs/heads/main\0report-status\n".encode()) + b"0000" + \
        b"PACK" + b"\0" * (24 * 1024 * 1024)
    request = urllib.request.Request(
        f"http://127.0.0.1:{small_limits_server.port}/{tenant.org}/{repo}.git/git-receive-pack", data=body,
        headers={"Authorization": f"Bearer {tenant.keys['agent']}",
                 "Content-Type": "application/x-git-receive-pack-request"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 413
    assert b"too large" in refused.value.read()


def _answer_then_closed(server, head: bytes, sent: bytes) -> tuple[bytes, bool]:
    """Send a head announcing a large body and a few bytes of it, then nothing: the answer, and whether the server
    closed the connection within 20 s (it drains the rest of a body for a minute at most, and only while it comes)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(head + sent)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            return answer, False
    return answer, True


def test_a_body_nobody_asked_for_holds_no_thread(server, tenant):
    """Draining a refused request's body let anyone without a key hold a server thread for up to a minute (a
    review of the drain): only a request whose key was accepted has its body drained, and a drain stops once
    the client stops sending."""
    repo = tenant.repo()
    for path in (f"/{tenant.org}/{repo}.git/git-receive-pack", "/v1/repos"):
        head = (f"POST {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 100000000\r\n"
                "Content-Type: application/x-git-receive-pack-request\r\n\r\n").encode()
        answer, closed = _answer_then_closed(server, head, b"0" * 10)
        assert answer.startswith(b"HTTP/1.1 401") and closed, answer[:200]
    key = tenant.keys["agent"]  # past the push size limit: refused at once, then drained while the body comes
    head = (f"POST /{tenant.org}/{repo}.git/git-receive-pack HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: 3000000000\r\n"
            "Content-Type: application/x-git-receive-pack-request\r\n\r\n").encode()
    answer, closed = _answer_then_closed(server, head, b"0" * 10)
    assert answer.startswith(b"HTTP/1.1 413") and closed, answer[:200]


def test_effects_record_branches_and_push_events(server, tenant, git, pushed):
    repo, work = pushed
    url = tenant.url(repo)
    old = git.out("rev-parse", "HEAD", cwd=work)
    new = git.commit(work, {"c.txt": "c"}, "another")
    git("push", "-q", url, "main", "HEAD:refs/heads/topic", cwd=work)
    row = repo_row(server, tenant, repo)
    with server.context.db.session() as session:
        branches = {b.name: b.head_sha for b in session.scalars(select(Branch).where(Branch.repo_id == row.id))}
        events = session.scalars(select(Event).where(Event.repo_id == row.id).order_by(Event.created_at)).all()
    assert branches == {"main": new, "topic": new}
    last = events[-1]
    assert last.kind == "refs.push"
    assert last.actor_key_id is not None
    assert {(r["ref"], r["old"], r["new"]) for r in last.payload["refs"]} == {
        ("refs/heads/main", old, new), ("refs/heads/topic", "0" * 40, new)}
    served = repo_path(server, tenant, repo)
    reflog = git.out("log", "-g", "-1", "--format=%gn <%ge> %gs", "refs/heads/main", cwd=served)
    assert reflog == f"{last.actor_key_id} <{last.actor_key_id}@{tenant.org_id}> push"  # as http-backend's REMOTE_USER
    git("push", "-q", url, ":topic", cwd=work)
    with server.context.db.session() as session:
        names = set(session.scalars(select(Branch.name).where(Branch.repo_id == row.id)))
    assert names == {"main"}


def test_rejected_push_records_nothing(server, tenant, git, pushed):
    repo, work = pushed
    row = repo_row(server, tenant, repo)
    with server.context.db.session() as session:
        before = len(session.scalars(select(Event).where(Event.repo_id == row.id)).all())
    bad = hostile_tree_commit(git, work, ".git")
    git("push", tenant.url(repo), f"{bad}:refs/heads/main", cwd=work, check=False)
    with server.context.db.session() as session:
        after = len(session.scalars(select(Event).where(Event.repo_id == row.id)).all())
        heads = set(session.scalars(select(Branch.head_sha).where(Branch.repo_id == row.id)))
    assert after == before
    assert bad not in heads


def test_reconcile_rebuilds_branch_rows(server, tenant, git, pushed):
    repo, work = pushed
    git("push", "-q", tenant.url(repo), "HEAD:refs/heads/b1", "HEAD:refs/heads/b2", cwd=work)
    row = repo_row(server, tenant, repo)
    with server.context.db.session() as session:
        for branch in session.scalars(select(Branch).where(Branch.repo_id == row.id)):
            session.delete(branch)
    driftstone = os.path.join(os.path.dirname(os.sys.executable), "driftstone")
    result = subprocess.run([driftstone, "admin", "reconcile", f"{tenant.org}/{repo}"],
                            env=server.env, capture_output=True, text=True, check=True)
    assert "3 branches" in result.stdout
    with server.context.db.session() as session:
        names = set(session.scalars(select(Branch.name).where(Branch.repo_id == row.id)))
    assert names == {"main", "b1", "b2"}


def test_reconcile_skips_branches_the_server_would_refuse(server, tenant, git, pushed):
    """A branch made outside Driftstone with a name it refuses (here: not UTF-8) gets no row; the rest do."""
    repo, work = pushed
    path = server.context.store.path_for(repo_row(server, tenant, repo).id)
    head = git.out("rev-parse", "HEAD", cwd=work)
    subprocess.run([b"git", b"update-ref", b"refs/heads/caf\xe9", head.encode()], cwd=path, check=True)
    subprocess.run(["git", "update-ref", "refs/heads/plain", head], cwd=path, check=True)
    driftstone = os.path.join(os.path.dirname(os.sys.executable), "driftstone")
    subprocess.run([driftstone, "admin", "reconcile", f"{tenant.org}/{repo}"], env=server.env, capture_output=True,
                   text=True, check=True)
    with server.context.db.session() as session:
        names = set(session.scalars(select(Branch.name).where(Branch.repo_id == repo_row(server, tenant, repo).id)))
    assert names == {"main", "plain"}


def protected_main(server, tenant, git, pushed):
    """`pushed` with main protected and a rewritten main ready to force-push; returns (url, protected head)."""
    repo, work = pushed
    with server.context.db.session() as session:
        repos.protect_branch(session, repo_row(server, tenant, repo), "main")
    head = git.out("rev-parse", "HEAD", cwd=work)
    git("commit", "-q", "--amend", "-m", "rewritten", cwd=work)
    return tenant.url(repo), head


@pytest.mark.parametrize("options,refspecs", [(["-o", "end"], []), (["-o", "frontend"], []),
                                              ([], ["HEAD:refs/heads/aa-weekend"]), ([], ["HEAD:refs/heads/caf\udce9"])])
def test_no_option_or_ref_name_lets_a_push_skip_the_checks(server, tenant, git, pushed, options, refspecs):
    """Each once made the server stop reading the hook's request early (a read ending in "end"), or made the
    hook drop every command after it (a ref name that is not UTF-8), so the forced main went unchecked."""
    url, head = protected_main(server, tenant, git, pushed)
    result = git("push", "--force", *options, url, *refspecs, "HEAD:main", cwd=pushed[1], check=False)
    assert result.returncode != 0
    assert git.out("ls-remote", url, "refs/heads/main", cwd=pushed[1]).split()[0] == head


def test_a_push_option_cannot_smuggle_lines_into_the_hook_request(server, tenant, git, pushed):
    """git refuses newlines in -o, a hostile client need not: `x\\nend` once ended the check request."""
    repo, work = pushed
    url, head = protected_main(server, tenant, git, pushed)
    zero = "0" * 40
    for option in (b"x\nend", b"y\nenv GIT_QUARANTINE_PATH=/tmp"):
        body = (pkt(f"{head} {zero} refs/heads/main\0report-status push-options\n".encode()) + b"0000"
                + pkt(option) + b"0000")
        response = receive_pack(server, tenant, repo, body)
        assert response.status_code == 200
        assert b"ok refs/heads/main" not in response.content
        assert git.out("ls-remote", url, "refs/heads/main", cwd=work).split()[0] == head


def test_a_protected_branch_is_not_deleted_by_a_zero_old_value(server, tenant, git, pushed):
    """git takes an all-zero new value as a deletion whatever the old one says ("allowing deletion of corrupt
    ref"); zero to zero used to count as a create, which the protection check passes over."""
    repo, work = pushed
    head = git.out("rev-parse", "HEAD", cwd=work)
    git("push", "-q", tenant.url(repo), "HEAD:refs/heads/release", cwd=work)
    with server.context.db.session() as session:
        repos.protect_branch(session, repo_row(server, tenant, repo), "release")
    body = pkt(f"{'0' * 40} {'0' * 40} refs/heads/release\0report-status\n".encode()) + b"0000"
    response = receive_pack(server, tenant, repo, body)
    assert b"ng refs/heads/release protected branch: deletion is not allowed" in response.content
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/release", cwd=work).split()[0] == head


def _loose_objects(path) -> set[str]:
    objects = path / "objects"
    return {f"{d.name}/{f.name}" for d in objects.iterdir() if len(d.name) == 2 for f in d.iterdir()}


def test_a_push_certificate_is_refused_before_git_stores_it(server, tenant, git, pushed):
    """git writes a push certificate into the object store (not the quarantine) before any hook runs, and keeps
    it when the push is refused: an unchecked object of any size. No nonce is advertised, so none is taken."""
    repo, work = pushed
    head = git.out("rev-parse", "HEAD", cwd=work)
    before = _loose_objects(repo_path(server, tenant, repo))
    cert = [b"certificate version 0.1\n", b"pusher x 0 +0000\n", b"pushee y\n", b"nonce n\n", b"\n",
            f"{head} {'0' * 40} refs/heads/main\n".encode(), b"-----BEGIN PGP SIGNATURE-----\n",
            b"A" * 60000 + b"\n", b"-----END PGP SIGNATURE-----\n"]
    for shallow in (b"", pkt(f"shallow {head}\n".encode())):
        body = (shallow + pkt(b"push-cert\0report-status side-band-64k\n") + b"".join(pkt(line) for line in cert)
                + pkt(b"push-cert-end\n") + b"0000")
        response = receive_pack(server, tenant, repo, body)
        assert response.status_code == 400 and b"signed pushes are not accepted" in response.content
    assert _loose_objects(repo_path(server, tenant, repo)) == before
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/main", cwd=work).split()[0] == head


@pytest.mark.parametrize("capabilities,branch", [(b"", "quiet"), (b"report-status side-band", "odd"),
                                                 (b"report-status\x0bside-band-64k", "odd")])
def test_a_push_the_server_reads_differently_from_git_still_gets_its_effects(server, tenant, git, pushed,
                                                                             capabilities, branch):
    """A client may ask for no report at all; and git reads capabilities split on spaces only and multiplexes its
    report for side-band-64k alone, so a report this server could not read used to leave a moved ref without its
    branch row and push event."""
    repo, work = pushed
    row = repo_row(server, tenant, repo)
    head = git.out("rev-parse", "HEAD", cwd=work)
    line = f"{'0' * 40} {head} refs/heads/{branch}".encode() + (b"\0" + capabilities if capabilities else b"")
    body = pkt(line + b"\n") + b"0000" + EMPTY_PACK
    assert receive_pack(server, tenant, repo, body).status_code == 200
    assert git.out("ls-remote", tenant.url(repo), f"refs/heads/{branch}", cwd=work).split()[0] == head
    with server.context.db.session() as session:
        found = session.scalar(select(Branch).where(Branch.repo_id == row.id, Branch.name == branch))
        events = session.scalars(select(Event).where(Event.repo_id == row.id, Event.kind == "refs.push")).all()
    assert found is not None and found.head_sha == head
    assert any(r["ref"] == f"refs/heads/{branch}" for e in events for r in e.payload["refs"])


def _cut_off(server, tenant, repo: str, body: bytes, headers: str) -> bytes:
    """POST `body` to receive-pack and end the connection before the body is whole (as `headers` promise)."""
    return raw_request(server, f"POST /{tenant.org}/{repo}.git/git-receive-pack HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               f"Authorization: Bearer {tenant.keys['admin']}\r\n"
                               f"Content-Type: application/x-git-receive-pack-request\r\n{headers}\r\n", body)


def test_a_gzip_body_cut_off_after_a_whole_command_list_moves_nothing(server, tenant, git, pushed):
    """git may have all it needs before the body is known to be whole (here a gzip stream whose trailer and last
    bytes never come): the push is refused, not applied."""
    import gzip
    repo, work = pushed
    url = tenant.url(repo)
    git("push", "-q", url, "HEAD:refs/heads/victim", cwd=work)
    head = git.out("rev-parse", "HEAD", cwd=work)
    command = pkt(f"{head} {'0' * 40} refs/heads/victim\0report-status side-band-64k\n".encode()) + b"0000"
    body = gzip.compress(command)
    _cut_off(server, tenant, repo, body[:-8], f"Content-Encoding: gzip\r\nContent-Length: {len(body) + 100}\r\n")
    time.sleep(0.5)
    assert git.out("ls-remote", url, "refs/heads/victim", cwd=work).split()[0] == head


def test_a_key_in_a_ref_name_is_not_written_to_the_application_log(server, tenant, git, pushed):
    """The application's warnings quote what a client sent (here the ref of a push that names it twice); a key
    put there is blanked out like one in a URL."""
    repo, work = pushed
    head = git.out("rev-parse", "HEAD", cwd=work)
    key = tenant.keys["admin"]
    ref = f"refs/heads/{key}".encode()
    body = (pkt(b"0" * 40 + b" " + head.encode() + b" " + ref + b"\0report-status\n")
            + pkt(b"1" * 40 + b" " + head.encode() + b" " + ref + b"\n") + b"0000"
            + EMPTY_PACK)
    assert receive_pack(server, tenant, repo, body).status_code < 500
    time.sleep(0.5)
    log = server.log_text()
    assert "'refs/heads/dk-[redacted]' named more than once" in log and key not in log


def test_a_ref_named_twice_in_one_push_is_refused_with_that_reason(server, tenant, git, pushed):
    """Only a hand-made request does this (git's client will not): it was refused as 'the push could not be
    checked', the hook's list and the request's disagreeing."""
    repo, work = pushed
    head = git.out("rev-parse", "HEAD", cwd=work)
    first = f"{'0' * 40} {head} refs/heads/dup".encode() + b"\0report-status"
    body = pkt(first + b"\n") + pkt(f"{'0' * 40} {head} refs/heads/dup\n".encode()) + b"0000" + EMPTY_PACK
    answer = receive_pack(server, tenant, repo, body)
    assert b"ng refs/heads/dup this ref is named more than once in the push" in answer.content, answer.content
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/dup", cwd=work) == ""


def test_a_lock_a_killed_git_left_does_not_refuse_the_next_push(server, tenant, git, pushed):
    """A git killed holding refs/heads/<branch>.lock (a whole server killed mid-push) kept that branch from
    every push and API change for 15 minutes, and then the first push still failed ('failed to update ref')
    before the lock was cleared. A lock minutes old is cleared before git's ref transaction; a fresh one is
    git's to wait for and stays."""
    repo, work = pushed
    lock = repo_path(server, tenant, repo) / "refs" / "heads" / "main.lock"
    lock.write_text("")
    git.commit(work, {"during.txt": "while a git holds the lock\n"}, "during")
    held = git("push", tenant.url(repo), "main", cwd=work, check=False)
    assert held.returncode != 0 and lock.exists()
    three_minutes_ago = time.time() - 180
    os.utime(lock, (three_minutes_ago, three_minutes_ago))
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    assert not lock.exists()
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/main", cwd=work).split()[0] == \
        git.out("rev-parse", "HEAD", cwd=work)


def test_a_ref_git_cannot_write_is_refused_alone_and_the_rest_get_their_effects(server, tenant, git, pushed):
    """side/x under a loose side (a file where its directory would be): looking for a stale lock of it raised
    NotADirectoryError, the answer was cut off ('RPC failed') and the ref that did move got no branch row and
    no event."""
    repo, work = pushed
    url = tenant.url(repo)
    git("push", "-q", url, "HEAD:refs/heads/side", cwd=work)
    result = git("push", url, "HEAD:refs/heads/newb", "HEAD:refs/heads/side/x", cwd=work, check=False)
    assert b"* [new branch]      HEAD -> newb" in result.stderr, result.stderr
    assert b"! [remote rejected] HEAD -> side/x (failed to update ref)" in result.stderr
    head = git.out("rev-parse", "HEAD", cwd=work)
    with server.context.db.session() as session:
        row = repo_row(server, tenant, repo)
        assert session.scalar(select(Branch.head_sha).where(Branch.repo_id == row.id, Branch.name == "newb")) == head
        pushes = session.scalars(select(Event.payload).where(Event.repo_id == row.id)).all()
        assert any([r["ref"] for r in payload["refs"]] == ["refs/heads/newb"] for payload in pushes)


def test_a_ref_name_too_long_for_the_file_system_gets_its_reason(tenant, git, pushed):
    """Looking for a stale lock of it raised ENAMETOOLONG and cut the answer off: the pusher saw 'RPC failed'."""
    repo, work = pushed
    result = git("push", tenant.url(repo), "HEAD:refs/heads/newb", "HEAD:refs/tags/" + "t" * 300, cwd=work,
                 check=False)
    assert b"may be at most 250 bytes" in result.stderr and b"! [remote rejected] HEAD -> newb" in result.stderr
    assert b"RPC failed" not in result.stderr


def _delta_bomb(declared: int) -> tuple[bytes, str]:
    """A pack of a 64 KiB blob of zeros and a delta against it that declares `declared` bytes: its data is one
    byte per 64 KiB copied (gitformat-pack "Deltified representation"). Returns the pack and the rebuilt blob's id."""
    def header(kind: int, size: int) -> bytes:
        out = [(kind << 4) | (size & 15)]
        size >>= 4
        while size:
            out[-1] |= 0x80
            out.append(size & 0x7F)
            size >>= 7
        return bytes(out)

    def number(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n >> 7 else 0))
            n >>= 7
            if not n:
                return bytes(out)

    base = b"\0" * 65536
    base_id = hashlib.sha1(b"blob 65536\0" + base).digest()
    copies = (declared - 1) // 65536
    delta = number(65536) + number(copies * 65536 + 1) + b"\x01x" + b"\x80" * copies
    pack = b"PACK" + struct.pack(">II", 2, 2)
    pack += header(3, len(base)) + zlib.compress(base) + header(7, len(delta)) + base_id + zlib.compress(delta)
    rebuilt = hashlib.sha1(b"blob %d\0x" % (copies * 65536 + 1) + base * copies).hexdigest()
    return pack + hashlib.sha1(pack).digest(), rebuilt


@pytest.mark.parametrize("options", [False, True])
def test_a_delta_declaring_a_huge_object_is_refused_before_git_builds_it(small_limits_server, options):
    """A 175-byte pack whose delta declared 256 MiB made git allocate and fill 256 MiB (1 GiB and 16 s for a
    332-byte one; three at once took 6.2 GiB) before the size check could see the object. git is now held to an
    allocation limit that follows from the pack's object count: it stops at the declaration."""
    tenant = small_limits_server.tenant()
    repo = tenant.repo()
    pack, blob = _delta_bomb(256 * 1024 * 1024)
    caps = b"report-status push-options" if options else b"report-status"
    body = pkt(b"0" * 40 + b" " + blob.encode() + b" refs/tags/bomb\0" + caps + b"\n") + b"0000"
    body += (pkt(b"an option\n") + b"0000" if options else b"") + pack
    answer = requests.post(f"{tenant.plain_url(repo)}/git-receive-pack", data=body, timeout=60,
                           headers={"Content-Type": "application/x-git-receive-pack-request",
                                    "Authorization": f"Bearer {tenant.keys['agent']}"})
    assert answer.status_code == 200
    assert b"ng refs/tags/bomb an object in the pack would inflate past the 1048576 byte limit" in answer.content


def test_a_ref_whose_objects_did_not_come_is_refused_by_git_alone(server, tenant, git, pushed):
    """git passes the pre-receive hook commands it has already found broken; the path check failed on the missing
    object and refused the whole push as 'internal error while checking the push' (with an error traceback),
    where git http-backend says 'missing necessary objects' for that ref and takes the rest."""
    repo, work = pushed
    head = git.out("rev-parse", "HEAD", cwd=work)
    empty_pack = b"PACK" + struct.pack(">II", 2, 0)
    body = (pkt(b"0" * 40 + b" " + b"1234567890" * 4 + b" refs/tags/missing\0report-status\n")
            + pkt(b"0" * 40 + b" " + head.encode() + b" refs/heads/ok\n") + b"0000"
            + empty_pack + hashlib.sha1(empty_pack).digest())
    answer = receive_pack(server, tenant, repo, body)
    assert b"ng refs/tags/missing missing necessary objects" in answer.content, answer.content
    assert b"ok refs/heads/ok" in answer.content
    assert b"internal error" not in answer.content
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/ok", cwd=work).split()[0] == head


def test_an_atomic_push_with_a_ref_git_hides_moves_nothing(tenant, git, pushed):
    """git refuses a ref outside heads, tags and notes by itself, before any hook, and then applied the rest of an
    --atomic push (push-path sweep): `git push --atomic url main:refs/pull/1/head main:good` created good."""
    repo, work = pushed
    url = tenant.url(repo)
    result = git("push", "--atomic", url, "main:refs/pull/1/head", "main:refs/heads/good", cwd=work, check=False)
    assert result.returncode != 0
    assert b"refs/pull/1/head (only refs/heads/, refs/tags/ and refs/notes/ may be pushed)" in result.stderr
    assert "refs/heads/good" not in git.out("ls-remote", url, cwd=work)
    git("push", "-q", url, "main:refs/pull/1/head", "main:refs/heads/good", cwd=work, check=False)  # not atomic
    assert "refs/heads/good" in git.out("ls-remote", url, cwd=work)


def test_a_delete_must_name_the_value_the_ref_has(server, tenant, git, pushed):
    """git 2.39 deletes a ref whatever it holds when the old value a push names is no object it has (zeros, or a
    value whose objects are gone since a force push): a branch that had moved on was deleted (push-path sweep)."""
    repo, work = pushed
    url = tenant.url(repo)
    head = git.out("rev-parse", "HEAD", cwd=work)
    git("push", "-q", url, "main:refs/heads/y", "main:refs/heads/x", cwd=work)
    zero = "0" * 40
    for old, ref in ((hashlib.sha1(b"gone").hexdigest(), "refs/heads/y"), (zero, "refs/heads/x"),
                     (hashlib.sha1(b"gone").hexdigest(), "refs/heads/never")):
        body = pkt(f"{old} {zero} {ref}\0report-status\n".encode()) + b"0000"
        answer = receive_pack(server, tenant, repo, body).content
        reason = b"does not exist: nothing to delete" if ref.endswith("never") else b"fetch first"
        assert f"ng {ref} ".encode() in answer and reason in answer, answer
    served = git.out("ls-remote", url, cwd=work)
    assert f"{head}\trefs/heads/y" in served and f"{head}\trefs/heads/x" in served
    body = pkt(f"{head} {zero} refs/heads/y\0report-status\n".encode()) + b"0000"
    assert b"ok refs/heads/y" in receive_pack(server, tenant, repo, body).content  # the value it has: deleted
    assert "refs/heads/y" not in git.out("ls-remote", url, cwd=work)
