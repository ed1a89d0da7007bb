"""Pushes that leave many packs or loose refs get the repository repacked / its refs packed in the background
(in-process jobs, or rq)."""
from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import time
from datetime import datetime, timedelta, timezone

import requests
from sqlalchemy import select, update

from control.services import repos
from storage.git_prune import PIN_REF
from storage.housekeeping import count_packs
from storage.models import Event, Workspace
from tests.support import age_object_files, api, has_object, repo_path


def loose_refs(path):
    """os.walk, not rglob: pack-refs removes directories while we scan, which rglob raises on."""
    return [name for _, _, names in os.walk(path / "refs" / "heads") for name in names]


def wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    return condition()


def test_pushes_that_leave_many_packs_are_repacked_in_the_background(small_limits_server, git, tmp_path):
    server = small_limits_server
    tenant = server.tenant()
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w")
    heads = []
    for round_ in range(4):  # over 100 objects each, so receive-pack keeps every push as a pack; 4 > the limit 3
        heads.append(git.commit(work, {f"f{i}.txt": f"{round_} {i}\n" for i in range(110)}, f"round {round_}"))
        git("push", "-q", tenant.url(repo), "main", cwd=work)
    path = repo_path(server, tenant, repo)

    assert wait_for(lambda: count_packs(path) == 1)
    assert list((path / "objects" / "pack").glob("*.bitmap"))
    subprocess.run(["git", "fsck", "--no-progress", "--no-dangling"], cwd=path, check=True, capture_output=True)

    clone = tmp_path / "clone"
    git("clone", "-q", tenant.url(repo), str(clone))
    assert git.out("rev-list", "main", cwd=clone).split() == heads[::-1]
    git.commit(work, {"after.txt": "pushed after the repack\n"}, "after")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    git("pull", "-q", "--ff-only", cwd=clone)
    assert (clone / "after.txt").read_text() == "pushed after the repack\n"


def test_many_ref_updates_get_the_refs_packed_and_branches_keep_working(small_limits_server, git, tmp_path):
    server = small_limits_server
    tenant = server.tenant()
    repo = tenant.repo()
    url = tenant.url(repo)
    work = git.new_worktree(tmp_path / "w", {"README.md": "hello\n"})
    branches = [f"agent-{i}/task" for i in range(24)]  # one push of 25 ref updates, over the limit of 20
    git("push", "-q", url, "main", *[f"main:refs/heads/{b}" for b in branches], cwd=work)
    path = repo_path(server, tenant, repo)

    assert wait_for(lambda: not loose_refs(path))
    packed = (path / "packed-refs").read_text()
    assert all(f"refs/heads/{b}" in packed for b in ["main", *branches])

    moved = git.commit(work, {"next.txt": "next\n"}, "next")
    git("push", "-q", url, f"HEAD:refs/heads/{branches[0]}", f":refs/heads/{branches[1]}", cwd=work)
    remote = dict(reversed(line.split("\t")) for line in git.out("ls-remote", url, cwd=work).splitlines())
    assert remote[f"refs/heads/{branches[0]}"] == moved
    assert f"refs/heads/{branches[1]}" not in remote
    assert len([r for r in remote if r.startswith("refs/heads/")]) == 24
    key = tenant.keys["admin"]
    assert api(server, key, "POST", f"/v1/repos/{repo}/branches", {"name": "from-the-api"}).status_code == 201
    listed = {b["name"] for b in api(server, key, "GET", f"/v1/repos/{repo}/branches").json()["data"]}
    assert {"main", "from-the-api", branches[0]} <= listed and branches[1] not in listed
    assert git.out("ls-remote", url, "refs/heads/from-the-api", cwd=work).split()[0] == remote["refs/heads/main"]


def test_a_repack_drops_what_nothing_needs_and_keeps_what_the_database_names(small_limits_server, git, tmp_path):
    """Objects past the 14-day grace (their files back-dated here; the database rows too) are dropped unless a
    row names them: a live workspace's overlay file, the commit of a branch deleted a moment ago (its push event).
    A branch deleted long ago (its event back-dated) and a deleted workspace's file go."""
    server = small_limits_server
    tenant = server.tenant()
    repo = tenant.repo()
    url = tenant.url(repo)
    path = repo_path(server, tenant, repo)
    work = git.new_worktree(tmp_path / "w", {"README.md": "hello\n"})
    git("push", "-q", url, "main", cwd=work)
    git("checkout", "-q", "-b", "gone", cwd=work)
    gone = git.commit(work, {"gone.txt": "a branch deleted long ago\n"}, "gone")
    git("push", "-q", url, "gone", cwd=work)
    git("push", "-q", url, ":gone", cwd=work)
    git("checkout", "-q", "-b", "just-deleted", "main", cwd=work)
    just_deleted = git.commit(work, {"recent.txt": "a branch deleted a moment ago\n"}, "recent")
    git("push", "-q", url, "just-deleted", cwd=work)
    git("push", "-q", url, ":just-deleted", cwd=work)
    git("checkout", "-q", "main", cwd=work)

    dojo_base = f"{server.url}/api/repos/{tenant.org}/{repo}/workspaces"
    headers = {"Authorization": f"Bearer {tenant.keys['agent']}"}
    live = requests.post(dojo_base, json={"name": "live"}, headers=headers, timeout=60).json()["workspace"]["id"]
    dropped = requests.post(dojo_base, json={"name": "dropped"}, headers=headers, timeout=60).json()["workspace"]["id"]
    overlay = b"an overlay file no commit holds\n"
    for workspace, content in ((live, overlay), (dropped, b"a deleted workspace's file\n")):
        assert requests.put(f"{dojo_base}/{workspace}/files/notes.txt", data=content, headers=headers,
                            timeout=60).status_code == 200
    assert requests.delete(f"{dojo_base}/{dropped}", headers=headers, timeout=60).status_code == 200
    overlay_blob = blob_id(overlay)
    deleted_blob = blob_id(b"a deleted workspace's file\n")
    assert all(has_object(path, sha) for sha in (gone, just_deleted, overlay_blob, deleted_blob))

    long_ago = datetime.now(timezone.utc) - timedelta(days=30)
    with server.context.db.session() as session:
        repo_id = repos.get_repo(session, tenant.org_id, repo).id
        session.execute(update(Event).where(Event.repo_id == repo_id).values(created_at=long_ago))
        session.execute(update(Workspace).where(Workspace.id == dropped).values(updated_at=long_ago))
    deletion_is_recent(server, repo_id, just_deleted)
    age_object_files(path, days=30)

    for round_ in range(4):  # over 100 objects each, so each push is a pack: 4 > the limit 3, a repack is asked
        git.commit(work, {f"f{i}.txt": f"{round_} {i}\n" for i in range(110)}, f"round {round_}")
        git("push", "-q", url, "main", cwd=work)
    assert wait_for(lambda: count_packs(path) == 1 and not has_object(path, gone))

    assert not has_object(path, deleted_blob)
    assert has_object(path, just_deleted) and has_object(path, overlay_blob)
    read = requests.get(f"{dojo_base}/{live}/files/notes.txt", headers=headers, timeout=60).json()
    assert base64.b64decode(read["content"]) == overlay and read["source"] == "overlay"
    assert wait_for(lambda: not subprocess.run(["git", "for-each-ref", "refs/driftstone/housekeeping/"], cwd=path,
                                               capture_output=True, text=True, check=True).stdout)  # after its check
    subprocess.run(["git", "fsck", "--no-progress", "--no-dangling"], cwd=path, check=True, capture_output=True)
    clone = tmp_path / "clone"
    git("clone", "-q", url, str(clone))
    assert git.out("rev-parse", "HEAD", cwd=clone) == git.out("rev-parse", "HEAD", cwd=work)


def deletion_is_recent(server, repo_id, old_sha):
    """The deletion's event alone is made recent again: it names the commit the branch held."""
    with server.context.db.session() as session:
        events = session.scalars(select(Event).where(Event.repo_id == repo_id)).all()
        deletions = [e for e in events if any(r.get("old") == old_sha for r in e.payload.get("refs", []))]
        assert len(deletions) == 1
        deletions[0].created_at = datetime.now(timezone.utc)


def blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def test_housekeeping_s_pin_ref_is_never_advertised(server, git, tmp_path):
    """While a repack runs, its pin ref keeps objects the database names: no client should be offered it."""
    tenant = server.tenant()
    repo = tenant.repo()
    url = tenant.url(repo)
    work = git.new_worktree(tmp_path / "w", {"README.md": "hello\n"})
    git("push", "-q", url, "main", cwd=work)
    path = repo_path(server, tenant, repo)
    subprocess.run(["git", "update-ref", PIN_REF, git.out("rev-parse", "HEAD", cwd=work)], cwd=path, check=True)
    for protocol in ("0", "2"):
        listed = git.out("-c", f"protocol.version={protocol}", "ls-remote", url, cwd=work)
        assert "refs/heads/main" in listed and "housekeeping" not in listed
    mirror = tmp_path / "mirror.git"
    git("clone", "-q", "--mirror", url, str(mirror))
    assert not git.out("for-each-ref", "refs/driftstone/", cwd=mirror)
