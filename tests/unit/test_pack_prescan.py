"""server.pack_prescan against a real `git receive-pack`: the pack of a push of UNPACK_LIMIT objects or more is
found in the quarantine by its .keep, and scanned and diffed while receive-pack is still short of (or inside) its
pre-receive hook."""
from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

from hooks import checks
from hooks.context import ChangeContext, RepoRef
from hooks.refs import RefUpdate
from server.git_process import GitProcess
from server.pack_prescan import UNPACK_LIMIT, diff_ahead, kept_pack_index, prescan_pushed_pack
from storage import git_read
from storage.git_env import GitFailed
from storage.push_scans import PushScans
from storage.settings import Settings
from tests.support import pkt

ZERO = "0" * 40
LIMIT = 1024 * 1024


def _blocking_hook(tmp_path: Path) -> tuple[Path, Path]:
    """A pre-receive hook that holds receive-pack until the `go` file exists."""
    hooks, go = tmp_path / "hooks", tmp_path / "go"
    hooks.mkdir()
    hook = hooks / "pre-receive"
    hook.write_text(f'#!/bin/sh\ncat >/dev/null\nwhile [ ! -e "{go}" ]; do sleep 0.02; done\n')
    hook.chmod(0o755)
    return hooks, go


def _push_request(git, tmp_path: Path, files: dict[str, bytes]) -> tuple[bytes, str, int]:
    """The request body, the pushing work tree, and the number of objects in the pack."""
    work = git.new_worktree(tmp_path / "work")
    head = git.commit(work, files, "a large push")
    pack = subprocess.run(["git", "pack-objects", "--stdout", "--revs", "-q"], cwd=work, input=b"HEAD\n",
                          capture_output=True, check=True).stdout
    objects = int.from_bytes(pack[8:12], "big")
    return pkt(f"{ZERO} {head} refs/heads/main\0report-status\n".encode()) + b"0000" + pack, work, objects


def _start(bare: Path, hooks: Path, body: bytes, scans: PushScans, on_found=None) -> GitProcess:
    process = GitProcess(bare, ["-c", f"core.hooksPath={hooks}", "-c", f"receive.unpackLimit={UNPACK_LIMIT}",
                                "receive-pack", "--stateless-rpc", "."], {})
    process.feed([body], then=lambda: prescan_pushed_pack(bare, process, scans, LIMIT, on_found=on_found))
    return process


def _wait_for(done, process: GitProcess) -> None:
    deadline = time.monotonic() + 30
    while not done() and time.monotonic() < deadline and process.proc.poll() is None:
        time.sleep(0.01)


def _finish(process: GitProcess, go: Path) -> bytes:
    go.touch()
    output = b"".join(process.output())
    process.wait()
    process.cleanup()
    return output


def test_the_kept_pack_is_scanned_before_the_hook_lets_go(git, tmp_path):
    big = os.urandom(2 * LIMIT)
    body, work, objects = _push_request(git, tmp_path, {"big.bin": big, **{f"small/{i}.txt": f"{i}\n" for i in range(150)}})
    big_id = git.out("rev-parse", "HEAD:big.bin", cwd=work)
    bare = tmp_path / "bare.git"
    git("init", "-q", "--bare", str(bare))
    hooks, go = _blocking_hook(tmp_path)
    scans = PushScans(sent_objects=objects)
    process = _start(bare, hooks, body, scans)
    try:
        _wait_for(scans.finished, process)
        (idx,) = scans.finished()
        assert idx.parent.parent.name.startswith("tmp_objdir-incoming-")
        assert scans.pack(idx, LIMIT).oversized == [big_id]
    finally:
        output = _finish(process, go)
    assert b"ok refs/heads/main" in output


def test_the_path_checks_diff_is_found_before_the_hook_lets_go(git, tmp_path, monkeypatch):
    """A push of 40 commits spends ~12 ms in git's connectivity walk after its pack is written: the diff the path
    check asks for is made in that time, on the quarantine, and the check takes it from the same PushScans."""
    body, work, objects = _push_request(git, tmp_path, {f"src/{i}.txt": f"{i}\n" for i in range(150)})
    head = git.out("rev-parse", "HEAD", cwd=work)
    bare = tmp_path / "bare.git"
    git("init", "-q", "--bare", str(bare))
    hooks, go = _blocking_hook(tmp_path)
    scans = PushScans(sent_objects=objects)
    ctx = ChangeContext(db=None, settings=Settings(data_dir=tmp_path), repo=RepoRef("r", "o", "r", "main"),
                        repo_path=bare, actor=None, push_scans=scans)
    diffed = []
    real = git_read.changed_paths

    def recorded(*args, **kwargs):
        diffed.append(real(*args, **kwargs))
        return diffed[-1]

    monkeypatch.setattr(git_read, "changed_paths", recorded)
    update = RefUpdate(ZERO, head, "refs/heads/main")
    process = _start(bare, hooks, body, scans, on_found=lambda idx: diff_ahead(ctx, [update], idx))
    try:
        _wait_for(lambda: diffed, process)
        assert diffed and process.proc.poll() is None  # the hook still holds receive-pack
        assert "src/0.txt" in diffed[0] and "src" in diffed[0]
        asked = []
        monkeypatch.setattr(git_read, "changed_paths", lambda *args, **kwargs: asked.append(args))
        assert checks.check_pushed_paths(ctx, [update], None) == [] and asked == []  # taken from the scans
    finally:
        output = _finish(process, go)
    assert b"ok refs/heads/main" in output


def test_a_push_stored_loose_is_left_to_the_check(git, tmp_path):
    """Under UNPACK_LIMIT objects git unpacks the push into loose objects: there is no pack to wait for."""
    body, _, objects = _push_request(git, tmp_path, {f"f{i}.txt": f"{i}\n" for i in range(UNPACK_LIMIT - 10)})
    assert objects < UNPACK_LIMIT
    bare = tmp_path / "bare.git"
    git("init", "-q", "--bare", str(bare))
    hooks, go = _blocking_hook(tmp_path)
    scans = PushScans(sent_objects=objects)
    found = []
    output = _finish(_start(bare, hooks, body, scans, on_found=found.append), go)
    assert b"ok refs/heads/main" in output
    assert scans.finished() == [] and found == []


def test_a_quarantine_left_from_before_the_push_is_passed_over(git, tmp_path):
    """A receive-pack killed earlier may have left its quarantine behind, naming a process id now reused."""
    work = git.new_worktree(tmp_path / "work", {f"f{i}.txt": f"{i}\n" for i in range(5)})
    git("repack", "-q", "-ad", cwd=work)
    (idx,) = (work / ".git" / "objects" / "pack").glob("*.idx")
    objects = tmp_path / "objects"
    quarantine = objects / "tmp_objdir-incoming-left"
    (quarantine / "pack").mkdir(parents=True)
    for suffix in (".pack", ".idx"):
        (quarantine / "pack" / idx.with_suffix(suffix).name).write_bytes(idx.with_suffix(suffix).read_bytes())
    (quarantine / "pack" / idx.with_suffix(".keep").name).write_bytes(b"receive-pack 4242 on host\n")
    an_hour_ago = time.time() - 3600
    os.utime(quarantine, (an_hour_ago, an_hour_ago))
    marker = b"receive-pack 4242 on "
    assert kept_pack_index(objects, marker, since=time.time() - 1) is None
    assert kept_pack_index(objects, marker) == quarantine / "pack" / idx.name
    assert kept_pack_index(objects, b"receive-pack 424 on ") is None


def test_a_diff_that_failed_ahead_of_the_checks_is_made_again_by_the_check(git, tmp_path, monkeypatch):
    """Work ahead keeps no error (PushScans.tentative): the objects it lacked may be there when the check asks."""
    work = git.new_worktree(tmp_path / "work", {"a.txt": "a\n"})
    head = git.out("rev-parse", "HEAD", cwd=work)
    repo = work / ".git"
    scans = PushScans(sent_objects=UNPACK_LIMIT)
    ctx = ChangeContext(db=None, settings=Settings(data_dir=tmp_path), repo=RepoRef("r", "o", "r", "main"),
                        repo_path=repo, actor=None, push_scans=scans)
    update = RefUpdate(ZERO, head, "refs/heads/new")
    real, calls, failed = git_read.changed_paths, [], threading.Event()

    def failing_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            failed.set()
            raise GitFailed(128, ["git", "diff-tree"], stderr=b"fatal: bad object")
        return real(*args, **kwargs)

    monkeypatch.setattr(git_read, "changed_paths", failing_once)
    monkeypatch.setattr("hooks.changed_paths.default_head", lambda ctx: None)
    diff_ahead(ctx, [update], repo / "objects" / "pack" / "pack-x.idx")
    assert failed.wait(30)
    deadline = time.monotonic() + 30
    while any(t.name.startswith("new-paths") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert checks.check_pushed_paths(ctx, [update], None) == []
    assert len(calls) == 2


def test_the_git_app_diffs_a_kept_pack_ahead_of_its_checks(git, tmp_path, monkeypatch):
    """Through the application (a real receive-pack, its hook and checks, in-process): a push of 100 objects or
    more has its commands' diffs started once its pack is written, and lands."""
    from server import app as git_app
    from tests.support import in_process_app

    client, auth, repo_path = in_process_app(tmp_path / "server", "acme", "agent")
    body, work, objects = _push_request(git, tmp_path, {f"src/{i}.txt": f"{i}\n" for i in range(150)})
    assert objects >= UNPACK_LIMIT
    head = git.out("rev-parse", "HEAD", cwd=work)
    asked = []
    real = git_app.diff_ahead
    monkeypatch.setattr(git_app, "diff_ahead", lambda ctx, updates, idx: asked.append((updates, idx)) or real(
        ctx, updates, idx))
    answer = client.post("/acme/r.git/git-receive-pack", data=body, headers={
        **auth, "Content-Type": "application/x-git-receive-pack-request"})
    assert answer.status_code == 200 and b"ok refs/heads/main" in answer.data, answer.data
    assert [updates for updates, _ in asked] == [[RefUpdate(ZERO, head, "refs/heads/main")]]
    assert asked[0][1].parent.parent.name.startswith("tmp_objdir-incoming-")
    assert git.out("rev-parse", "refs/heads/main", cwd=repo_path) == head
