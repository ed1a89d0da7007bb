"""The hook pipeline on real pushes: checks reject with `! [remote rejected] <ref> (<reason>)`, effects record."""
from __future__ import annotations

import os
import subprocess

import pytest
from sqlalchemy import select

from control.services import repos
from storage.models import Branch, Event, Repository


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


@pytest.mark.parametrize("ref,reason", [
    ("refs/heads/-leading-dash", b"may not start with '-'"),
    ("refs/internal/thing", b"only refs/heads/, refs/tags/ and refs/notes/ may be pushed"),
])
def test_ref_name_rules(tenant, git, pushed, ref, reason):
    repo, work = pushed
    result = git("push", tenant.url(repo), f"HEAD:{ref}", cwd=work, check=False)
    assert result.returncode != 0
    rejected = [line for line in result.stderr.splitlines() if b"! [remote rejected] HEAD -> " in line]
    assert rejected and reason + b")" in rejected[0]
    assert git.out("ls-remote", tenant.url(repo), cwd=work).count("refs/") == 1


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
    result = git("push", tenant.url(repo), "main", cwd=work, check=False)
    assert result.returncode != 0
    assert b"[remote rejected] main -> main (object" in result.stderr
    assert b"larger than the 1048576 byte limit" in result.stderr
    assert git.out("ls-remote", tenant.url(repo), "refs/heads/main", cwd=work) == before


def test_push_size_cap(small_limits_server, git, tmp_path):
    tenant = small_limits_server.tenant()
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w")
    for i in range(12):
        (work / f"r{i}.bin").write_bytes(os.urandom(900 * 1024))  # each under the object cap
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "10.8 MiB push", cwd=work)
    result = git("push", tenant.url(repo), "main", cwd=work, check=False)
    assert result.returncode != 0
    assert git.out("ls-remote", tenant.url(repo), cwd=work) == ""


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
