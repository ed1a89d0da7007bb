"""The pre-receive hook's request, end to end through the real hook script (bash) and the server's reader.

These are the framing rules every push check depends on: a request is read up to the line `end` (not up to any
read that happens to end in "end"), push options are escaped so no option can add lines, ref names are bytes,
and every command the client sent is checked even if the hook's list lacks it.
"""
from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from hooks.refs import RefUpdate
from server.hook_channel import HOOK_SCRIPT, HookChannel, HookProtocolError

OLD, NEW = "1" * 40, "2" * 40


def channel_for(tmp_path: Path, requested=None) -> HookChannel:
    from hooks.context import ChangeContext, RepoRef

    ctx = ChangeContext(db=None, settings=None, repo=RepoRef("repo_x", "org_x", "x", "main"),
                        repo_path=tmp_path, actor=None)
    return HookChannel.open(ctx, requested=requested)


def run_hook(channel: HookChannel, stdin: bytes, options: list[bytes], quarantine: Path) -> subprocess.Popen:
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "DRIFTSTONE_HOOK_FD": str(channel.child_end.fileno()),
           "GIT_QUARANTINE_PATH": str(quarantine), "GIT_PUSH_OPTION_COUNT": str(len(options))}
    env_bytes = {k.encode(): v.encode() for k, v in env.items()}
    env_bytes.update({f"GIT_PUSH_OPTION_{i}".encode(): value for i, value in enumerate(options)})
    proc = subprocess.Popen(["bash", str(HOOK_SCRIPT)], stdin=subprocess.PIPE, env=env_bytes,
                            pass_fds=[channel.child_end.fileno()], stderr=subprocess.PIPE)
    channel.child_end.close()
    proc.stdin.write(stdin)
    proc.stdin.close()
    return proc


def test_hostile_options_and_a_non_utf8_ref_arrive_intact(tmp_path):
    quarantine = tmp_path / "objects" / "tmp_objdir-incoming-x"
    channel = channel_for(tmp_path)
    options = [b"x\nend", b"y\nenv GIT_QUARANTINE_PATH=/tmp\nupdate " + OLD.encode() + b" 0 refs/heads/z",
               b"back\\slash", b"end"]
    stdin = (f"{OLD} {NEW} refs/heads/caf".encode() + b"\xe9\n" + f"{OLD} {NEW} refs/heads/main\n".encode())
    proc = run_hook(channel, stdin, options, quarantine)
    env, updates = channel._read_request()
    channel.server_end.sendall(b"exit 0\n")
    assert proc.wait(timeout=10) == 0
    assert env == {"GIT_QUARANTINE_PATH": str(quarantine)}
    assert [o.encode() for o in channel.push_options] == options
    assert updates == [RefUpdate(OLD, NEW, "refs/heads/caf\udce9"), RefUpdate(OLD, NEW, "refs/heads/main")]
    channel.server_end.close()


def test_a_read_that_ends_in_end_is_not_the_end_of_the_request(tmp_path):
    channel = channel_for(tmp_path)
    first = b"env GIT_QUARANTINE_PATH=\noption frontend\n"
    rest = f"update {OLD} {NEW} refs/heads/weekend\nupdate {OLD} {NEW} refs/heads/main\nend\n".encode()
    channel.child_end.sendall(first)
    threading.Timer(0.2, channel.child_end.sendall, [rest]).start()
    env, updates = channel._read_request()
    assert channel.push_options == ["frontend"]
    assert [u.ref for u in updates] == ["refs/heads/weekend", "refs/heads/main"]
    channel.child_end.close()
    channel.server_end.close()


@pytest.mark.parametrize("request_text", [
    b"update not-a-sha x refs/heads/main\nend\n",
    b"env PATH=/usr/bin\nend\n",
    b"env GIT_QUARANTINE_PATH=/a\nenv GIT_QUARANTINE_PATH=/b\nend\n",
    b"something else\nend\n",
    b"env GIT_QUARANTINE_PATH=/tmp\nend\n",  # outside the repository
])
def test_anything_but_our_hook_script_s_lines_fails_closed(tmp_path, request_text):
    channel = channel_for(tmp_path)
    channel.child_end.sendall(request_text)
    with pytest.raises(HookProtocolError):
        channel._read_request()
    channel.child_end.close()
    channel.server_end.close()


def test_every_requested_command_is_checked_and_disagreement_fails(tmp_path):
    main, other = RefUpdate(OLD, NEW, "refs/heads/main"), RefUpdate(OLD, NEW, "refs/heads/other")
    channel = channel_for(tmp_path, requested=lambda: [main, other])
    assert channel._with_requested([other]) == [other, main]
    assert channel._with_requested([]) == [main, other]
    with pytest.raises(HookProtocolError):
        channel._with_requested([RefUpdate(OLD, "3" * 40, "refs/heads/main")])
    unreadable = channel_for(tmp_path, requested=lambda: None)
    with pytest.raises(HookProtocolError):
        unreadable._with_requested([main])
    for c in (channel, unreadable):
        c.child_end.close()
        c.server_end.close()


def test_a_refusal_shuts_the_socket_so_a_hook_still_writing_gives_up(tmp_path):
    channel = channel_for(tmp_path, requested=lambda: None)
    hook_end = channel.child_end  # plays the hook script
    serving = threading.Thread(target=channel._serve)
    serving.start()
    hook_end.sendall(f"update {OLD} {NEW} refs/heads/main\nend\n".encode())
    serving.join(timeout=10)
    assert [r.reason for r in channel.rejections] == ["the push could not be checked"]
    assert hook_end.recv(1000) == b"message the push could not be checked\nexit 1\n"
    with pytest.raises(OSError):  # EPIPE: a hook that kept writing would exit instead of blocking forever
        for _ in range(1000):
            hook_end.sendall(b"x" * 65536)
    hook_end.close()
    channel.server_end.close()
