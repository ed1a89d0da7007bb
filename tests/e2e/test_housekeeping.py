"""Pushes that leave many packs get the repository repacked in the background (in-process jobs, or rq)."""
from __future__ import annotations

import subprocess
import time

from sqlalchemy import select

from storage.housekeeping import count_packs
from storage.models import Event, Repository


def test_pushes_that_leave_many_packs_are_repacked_in_the_background(small_limits_server, git, tmp_path):
    server = small_limits_server
    tenant = server.tenant()
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w")
    heads = []
    for round_ in range(4):  # over 100 objects each, so receive-pack keeps every push as a pack; 4 > the limit 3
        heads.append(git.commit(work, {f"f{i}.txt": f"{round_} {i}\n" for i in range(110)}, f"round {round_}"))
        git("push", "-q", tenant.url(repo), "main", cwd=work)
    with server.context.db.session() as session:
        repo_id = session.scalar(select(Repository.id).where(Repository.org_id == tenant.org_id,
                                                             Repository.slug == repo))
        pushes = session.scalars(select(Event.id).where(Event.repo_id == repo_id)).all()
    path = server.context.store.path_for(repo_id)

    deadline = time.monotonic() + 60
    while count_packs(path) > 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert count_packs(path) == 1
    assert list((path / "objects" / "pack").glob("*.bitmap"))
    assert len(pushes) == 4
    subprocess.run(["git", "fsck", "--no-progress", "--no-dangling"], cwd=path, check=True, capture_output=True)

    clone = tmp_path / "clone"
    git("clone", "-q", tenant.url(repo), str(clone))
    assert git.out("rev-list", "main", cwd=clone).split() == heads[::-1]
    git.commit(work, {"after.txt": "pushed after the repack\n"}, "after")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    git("pull", "-q", "--ff-only", cwd=clone)
    assert (clone / "after.txt").read_text() == "pushed after the repack\n"
