"""Pushes that leave many packs or loose refs get the repository repacked / its refs packed in the background
(in-process jobs, or rq)."""
from __future__ import annotations

import os
import subprocess
import time

from storage.housekeeping import count_packs
from tests.support import api, repo_path


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
