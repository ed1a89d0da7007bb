"""git's transport to another server, run as one process group: its helpers die with it (real processes; a
shell stands in for git so that the helper's behaviour is certain)."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from storage import git_remote
from storage.git_env import QUARANTINE_PREFIX
from storage.housekeeping import remove_stale_quarantines
from storage.object_quarantine import ObjectQuarantine


def _sleeps_only_this_test_starts() -> str:
    """A `sleep` no other test (run at the same time on another worker) starts: `sleep 60` is common."""
    return f"sleep 60.{os.getpid()}{time.monotonic_ns() % 1000:03d}"


def _still_running(command: str) -> list[bytes]:
    """The processes running `command`, given a moment to finish dying (SIGKILL is delivered asynchronously)."""
    for _ in range(50):
        left = subprocess.run(["pgrep", "-f", command], capture_output=True).stdout.split()
        if not left:
            return []
        time.sleep(0.1)
    return left


def test_a_helper_holding_the_pipes_does_not_keep_a_timed_out_call_waiting():
    """git-remote-https outlives a killed git and keeps its stderr open: the call waited for the remote to
    finish (a trickling remote: days) instead of answering at its deadline."""
    sleep = _sleeps_only_this_test_starts()
    began = time.monotonic()
    with pytest.raises(git_remote.RemoteFailed, match="within"):
        git_remote._run(["sh", "-c", f"{sleep} & {sleep}"], dict(os.environ), 0.5, "git fetch")
    assert time.monotonic() - began < 10
    assert not _still_running(sleep)


def test_a_stop_asked_for_midway_kills_the_helpers_too():
    sleep = _sleeps_only_this_test_starts()
    with pytest.raises(git_remote.RemoteTooLarge):
        git_remote._run(["sh", "-c", f"{sleep} & {sleep}"], dict(os.environ), 30, "git fetch",
                        stop_when=lambda: True)
    assert not _still_running(sleep)


def test_what_a_finished_call_wrote_is_returned():
    assert git_remote._run(["sh", "-c", "echo out; echo err >&2"], dict(os.environ), 10, "x") == b"out\n"
    with pytest.raises(git_remote.RemoteFailed, match="last words"):
        git_remote._run(["sh", "-c", "echo 'last words' >&2; exit 3"], dict(os.environ), 10, "x")


def test_a_token_a_server_echoes_is_blanked_out_of_what_git_said():
    """A remote's error may quote the request it refused: neither the token nor its Basic form is repeated."""
    token = "ghp_0123456789abcdef"
    basic = git_remote._basic(token)
    echo = f"echo 'fatal: refused {token} and Authorization: Basic {basic}' >&2; echo 'out'; exit 128"
    with pytest.raises(git_remote.RemoteFailed) as failed:
        git_remote._run(["sh", "-c", echo], dict(os.environ), 10, "x", token)
    assert token not in str(failed.value) and basic not in str(failed.value) and "refused ***" in str(failed.value)
    assert failed.value.output == b"out\n"
    for echoed in (f"fatal: remote error: ERR bad token {token.upper()}", f"remote: {token[::-1]}"):
        with pytest.raises(git_remote.RemoteFailed) as failed:
            git_remote._run(["sh", "-c", f"echo '{echoed}' >&2; exit 128"], dict(os.environ), 10, "x", token)
        assert str(failed.value) == git_remote.REMOTE_WORDS_LEFT_OUT
    with pytest.raises(git_remote.RemoteFailed, match=token.upper()):  # no token sent: nothing is left out
        git_remote._run(["sh", "-c", f"echo 'remote: {token.upper()}' >&2; exit 1"], dict(os.environ), 10, "x")


def test_a_fetch_quarantine_a_killed_worker_left_is_removed_by_housekeeping(tmp_path):
    bare = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    quarantine = ObjectQuarantine(bare)
    quarantine.__enter__()  # and never left: the worker was killed
    assert quarantine.path.name.startswith(QUARANTINE_PREFIX)
    (quarantine.path / "pack" / "tmp_pack_x").write_bytes(b"partial")
    old = time.time() - 7200
    for folder, dirs, files in os.walk(quarantine.path):
        for name in dirs + files:
            os.utime(os.path.join(folder, name), (old, old))
    os.utime(quarantine.path, (old, old))
    assert remove_stale_quarantines(bare) == [quarantine.path.name]
    assert not quarantine.path.exists()
