"""server.pack_prescan against a real `git receive-pack`: the pack of a large push is found in the quarantine by
its .keep and scanned while receive-pack is still short of (or inside) its pre-receive hook."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from server.git_process import GitProcess
from server.pack_prescan import kept_pack_index, prescan_pushed_pack
from storage.push_scans import PushScans
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


def _push_request(git, tmp_path: Path, files: dict[str, bytes]) -> tuple[bytes, str]:
    work = git.new_worktree(tmp_path / "work")
    head = git.commit(work, files, "a large push")
    pack = subprocess.run(["git", "pack-objects", "--stdout", "--revs", "-q"], cwd=work, input=b"HEAD\n",
                          capture_output=True, check=True).stdout
    return pkt(f"{ZERO} {head} refs/heads/main\0report-status\n".encode()) + b"0000" + pack, work


def _start(bare: Path, hooks: Path, body: bytes, scans: PushScans) -> GitProcess:
    process = GitProcess(bare, ["-c", f"core.hooksPath={hooks}", "receive-pack", "--stateless-rpc", "."], {})
    process.feed([body], then=lambda: prescan_pushed_pack(bare, process, scans, LIMIT))
    return process


def _finish(process: GitProcess, go: Path) -> bytes:
    go.touch()
    output = b"".join(process.output())
    process.wait()
    process.cleanup()
    return output


def test_the_kept_pack_is_scanned_before_the_hook_lets_go(git, tmp_path):
    big = os.urandom(2 * LIMIT)
    body, work = _push_request(git, tmp_path, {"big.bin": big, **{f"small/{i}.txt": f"{i}\n" for i in range(150)}})
    big_id = git.out("rev-parse", "HEAD:big.bin", cwd=work)
    bare = tmp_path / "bare.git"
    git("init", "-q", "--bare", str(bare))
    hooks, go = _blocking_hook(tmp_path)
    scans = PushScans()
    process = _start(bare, hooks, body, scans)
    try:
        deadline = time.monotonic() + 30
        while not scans.finished() and time.monotonic() < deadline and process.proc.poll() is None:
            time.sleep(0.01)
        (idx,) = scans.finished()
        assert idx.parent.parent.name.startswith("tmp_objdir-incoming-")
        assert scans.pack(idx, LIMIT).oversized == [big_id]
    finally:
        output = _finish(process, go)
    assert b"ok refs/heads/main" in output


def test_a_small_push_is_left_to_the_check(git, tmp_path):
    """Under PRESCAN_MIN_BYTES nothing is looked for: the check's own scan is cheaper than the polling."""
    body, _ = _push_request(git, tmp_path, {f"f{i}.txt": f"{i}\n" for i in range(150)})
    bare = tmp_path / "bare.git"
    git("init", "-q", "--bare", str(bare))
    hooks, go = _blocking_hook(tmp_path)
    scans = PushScans()
    output = _finish(_start(bare, hooks, body, scans), go)
    assert b"ok refs/heads/main" in output
    assert scans.finished() == []


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
