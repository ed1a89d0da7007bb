"""Concurrent pushes race by compare-and-swap; interrupted pushes leave nothing visible."""
from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

from tests.support import pkt, repo_path

ZERO = "0" * 40


def leftovers(path):
    """Lock files and quarantine dirs under a repository.

    os.walk, not Path.rglob: git removes its quarantine while we scan, and rglob raises on a directory that
    vanished between listing and opening it; os.walk skips it.
    """
    locks = [Path(root, name) for root, _, names in os.walk(path) for name in names if name.endswith(".lock")]
    quarantines = list((path / "objects").glob("tmp_objdir-*")) + list((path / "objects").glob("incoming-*"))
    return locks, quarantines


def test_sixteen_racing_pushes_exactly_one_wins(server, tenant, git, tmp_path):
    repo = tenant.repo()
    url = tenant.url(repo)
    base = git.new_worktree(tmp_path / "base", {"shared.txt": "base\n"})
    git("push", "-q", url, "main", cwd=base)
    base_sha = git.out("rev-parse", "HEAD", cwd=base)
    clones = []
    for i in range(16):
        clone = tmp_path / f"agent{i}"
        git("clone", "-q", url, str(clone))
        clones.append((clone, git.commit(clone, {f"agent{i}.txt": f"{i}\n"}, f"agent {i}")))
    barrier = threading.Barrier(16)
    results = [None] * 16

    def push(i):
        clone, _ = clones[i]
        barrier.wait()
        results[i] = git("push", "origin", "main", cwd=clone, check=False)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    winners = [i for i, r in enumerate(results) if r.returncode == 0]
    assert len(winners) == 1, [r.stderr for r in results]
    for i, result in enumerate(results):
        if i in winners:
            continue
        assert b"rejected" in result.stderr, result.stderr
        assert b"returned error: 5" not in result.stderr, result.stderr  # git's words for an HTTP 5xx
        assert str(server.data_dir).encode() not in result.stderr, result.stderr
    head = git.out("ls-remote", url, "refs/heads/main", cwd=base).split()[0]
    assert head == clones[winners[0]][1]
    assert git.out("rev-parse", f"{head}~1", cwd=clones[winners[0]][0]) == base_sha
    locks, quarantines = leftovers(repo_path(server, tenant, repo))
    assert locks == [] and quarantines == []
    server_errors = [line for line in server.log_text().splitlines()
                     if f"/{tenant.org}/{repo}" in line and re.search(r'" 5\d\d ', line)]
    assert server_errors == []


def test_a_ref_being_written_is_named_without_the_server_paths(server, tenant, git, tmp_path):
    """A push meeting the lock of a ref another writer holds read git's message for someone at the server's disk:
    `Unable to create '/<data dir>/repos/.../refs/heads/main.lock': File exists.`, then advice about an editor
    opened by 'git commit' and removing the file by hand. The other refs of the push still land."""
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    git.commit(work, {"b.txt": "b"}, "second")
    lock = repo_path(server, tenant, repo) / "refs" / "heads" / "main.lock"
    lock.write_text("")
    try:
        result = git("push", tenant.url(repo), "main", "main:refs/heads/other", cwd=work, check=False)
    finally:
        lock.unlink()
    assert result.returncode != 0 and b"[new branch]      main -> other" in result.stderr, result.stderr
    assert b"cannot lock ref 'refs/heads/main': another change to it is being written; try again" in result.stderr
    assert str(server.data_dir).encode() not in result.stderr and b"editor" not in result.stderr, result.stderr
    git("push", "-q", tenant.url(repo), "main", cwd=work)


def _gits_in(path: Path) -> list[int]:
    """Processes whose working directory is `path` (receive-pack and its hook run there)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "cwd") == str(path):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_a_push_whose_client_goes_away_while_git_still_writes_finishes(server, tenant, git, tmp_path):
    """The client went away with more than a pipe's worth of git's answer still to come (here the messages of
    20,000 refused refs): the loop's reader of git's output was closed with the loop, nothing read the rest, and
    receive-pack and its hook waited on a full pipe for good, the request thread with them (found by this
    session's protocol sweep; gunicorn's stop then left both gits behind)."""
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    head = git.out("rev-parse", "HEAD", cwd=work)
    empty_pack = subprocess.run(["git", "pack-objects", "--stdout", "-q"], cwd=work, input=b"",
                                capture_output=True, check=True).stdout
    commands = [f"{ZERO} {head} refs/heads/-{'y' * 150}/{n}" for n in range(20_000)]
    body = (pkt(f"{commands[0]}\0report-status side-band-64k\n".encode())
            + b"".join(pkt(f"{command}\n".encode()) for command in commands[1:]) + b"0000" + empty_pack)
    head_lines = (f"POST /{tenant.org}/{repo}.git/git-receive-pack HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {tenant.keys['admin']}\r\n"
                  f"Content-Type: application/x-git-receive-pack-request\r\nContent-Length: {len(body)}\r\n\r\n")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(head_lines.encode() + body)
    time.sleep(3)  # the checks refuse every ref; git writes their reasons, the server the answer nobody reads
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # a reset
    path = repo_path(server, tenant, repo)
    deadline = time.monotonic() + 30
    while _gits_in(path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _gits_in(path) == []
    assert git.out("ls-remote", tenant.url(repo), cwd=work).count("refs/heads/") == 1


def test_truncated_push_leaves_no_objects_and_no_ref(server, tenant, git, tmp_path):
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w")
    (work / "big.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "big", cwd=work)
    new = git.out("rev-parse", "HEAD", cwd=work)
    blob = git.out("rev-parse", "HEAD:big.bin", cwd=work)
    pack = subprocess.run(["git", "pack-objects", "--stdout", "--revs", "-q"], cwd=work, input=new.encode() + b"\n",
                          capture_output=True, check=True).stdout
    body = pkt(f"{ZERO} {new} refs/heads/main\0report-status side-band-64k agent=test\n".encode()) + b"0000" + pack
    head = (f"POST /{tenant.org}/{repo}.git/git-receive-pack HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {tenant.keys['agent']}\r\n"
            f"Content-Type: application/x-git-receive-pack-request\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head + body[: len(body) // 2])
        time.sleep(0.3)
    path = repo_path(server, tenant, repo)
    deadline = time.monotonic() + 20
    while leftovers(path)[1] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert git.out("ls-remote", tenant.url(repo), cwd=work) == ""
    assert subprocess.run(["git", "cat-file", "-e", blob], cwd=path).returncode != 0
    assert subprocess.run(["git", "cat-file", "-e", new], cwd=path).returncode != 0
    assert leftovers(path) == ([], [])


def test_killed_git_client_leaves_a_consistent_repository(server, tenant, git, tmp_path):
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w")
    (work / "big.bin").write_bytes(os.urandom(48 * 1024 * 1024))
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "big", cwd=work)
    blob = git.out("rev-parse", "HEAD:big.bin", cwd=work)
    from tests.support import client_env
    process = subprocess.Popen(["git", "-c", "http.postBuffer=65536", "push", tenant.url(repo), "main"], cwd=work,
                               env=client_env(git.home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    time.sleep(0.4)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    path = repo_path(server, tenant, repo)
    deadline = time.monotonic() + 20
    while leftovers(path)[1] and time.monotonic() < deadline:
        time.sleep(0.1)
    has_ref = git.out("ls-remote", tenant.url(repo), cwd=work) != ""
    has_blob = subprocess.run(["git", "cat-file", "-e", blob], cwd=path).returncode == 0
    assert has_ref == has_blob
    assert leftovers(path) == ([], [])


def test_repositories_fsync_refs_and_objects(server, tenant):
    repo = tenant.repo()
    path = repo_path(server, tenant, repo)
    config = lambda key: subprocess.run(["git", "config", key], cwd=path, capture_output=True, text=True).stdout.strip()
    assert "committed" in config("core.fsync").split(",")
    assert config("core.fsyncMethod") == "fsync"
    assert config("receive.fsckObjects") == "true"
