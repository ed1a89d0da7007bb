"""How `driftstone serve` lays out its processes: gunicorn's master and its workers."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

from sqlalchemy import select

from tests.support import start_server


def _children(pid: int, expected: int) -> list[int]:
    """The master's children once there are `expected` of them (the first worker may answer before the
    master has forked the next)."""
    deadline = time.monotonic() + 30
    while True:
        children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                    for child in (task / "children").read_text().split()]
        if len(children) >= expected or time.monotonic() > deadline:
            return children
        time.sleep(0.05)


def _maps_pydantic_core(pid: int) -> bool:
    """pydantic-core's extension stands for the application's imports: gunicorn itself never loads it."""
    return "_pydantic_core" in Path(f"/proc/{pid}/maps").read_text()


def test_workers_fork_from_a_master_that_has_imported_the_application(server):
    """With two workers (the default) the master imports the code before it forks (gunicorn's --preload), so
    the workers share those pages instead of each loading its own copy."""
    master = server.process.pid  # `driftstone serve` execs gunicorn: the same process
    workers = _children(master, 1)
    assert 1 <= len(workers) <= 2
    assert _maps_pydantic_core(master)
    assert all(_maps_pydantic_core(worker) for worker in workers)


def _database_driver_loaded(pid: int) -> bool:
    """The database driver's extension (sqlite3's or psycopg's) is loaded when an engine is made, not on import."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "_sqlite3." in maps or "_psycopg." in maps


def _database_connections(pid: int, port: int = 5432) -> list[str]:
    """Open files of `pid` that are a database: an SQLite file, or a TCP connection to PostgreSQL's port."""
    targets = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:
            continue
    postgres = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                postgres.add(f"socket:[{fields[9]}]")
    return [target for target in targets if target in postgres or target.endswith((".db", ".db-wal"))]


def test_the_master_builds_the_application_and_forks_with_no_connection_open(server, tenant, git, tmp_path):
    """The master builds the application once (engine, routes, models) so that the workers share it; a database
    connection inherited across the fork would be two processes talking over one socket, so none is open then.
    Each worker opens its own."""
    master = server.process.pid
    assert _database_driver_loaded(master)
    assert _database_connections(master) == []
    repo = tenant.repo()
    for i in range(6):  # requests spread over both workers, each checking the key in the database
        git("clone", "--quiet", tenant.url(repo), str(tmp_path / f"clone-{i}"))
    assert _database_connections(master) == []


def test_a_single_worker_loads_the_code_itself(tmp_path):
    """With nothing to share, a master holding the code would only add its copy to the worker's."""
    serve = str(Path(os.sys.executable).parent / "driftstone")
    server = start_server(tmp_path / "data", command=lambda port: [
        serve, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"])
    try:
        workers = _children(server.process.pid, 1)
        assert len(workers) == 1
        assert not _maps_pydantic_core(server.process.pid)
        assert _maps_pydantic_core(workers[0])
        assert not _database_driver_loaded(server.process.pid)
    finally:
        server.stop()


def test_a_new_worker_finishes_what_a_killed_one_left_undone(small_limits_server):
    """A worker killed after a repository's deletion committed and before its purge ran (or midway through
    it) left the repository's files for good, as one killed before the purge of a deleted branch's uploads;
    one killed during a signed-URL PUT left its temporary file in the blob store for good. Each worker that
    starts asks for all of them to be finished."""
    import signal
    from datetime import datetime, timezone

    from storage.models import Repository, Upload, UploadFile
    from tests.e2e.test_api_uploads import upload_tree
    from tests.support import api

    server = small_limits_server
    tenant = server.tenant()
    left = []
    for name in ("never-purged", "purge-killed-midway"):
        created = api(server, tenant.keys["admin"], "POST", "/v1/repos", {"name": name}).json()["data"]
        with server.context.db.session() as session:  # deleted, and its purge never asked for
            session.get(Repository, created["id"]).deleted_at = datetime.now(timezone.utc)
        left.append(server.context.store.path_for(created["id"]))
    left[1] = left[1].rename(left[1].with_name(left[1].name + ".deleting"))  # moved aside, then the kill
    api(server, tenant.keys["admin"], "POST", "/v1/repos", {"name": "kept"})
    retired = upload_tree(server, tenant, "kept", "ver-1", {"a.txt": b"retired, its purge never asked for"})
    with server.context.db.session() as session:
        session.get(Upload, retired["uploadId"]).retired_at = datetime.now(timezone.utc)
        stored = [server.data_dir / "blobs" / row.storage_path
                  for row in session.query(UploadFile).filter_by(upload_id=retired["uploadId"])]
    assert stored and all(path.exists() for path in stored)
    left += stored
    uploads = server.data_dir / "blobs" / "tmp" / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    stale, fresh = uploads / "uf_cut.0a1b2c3d", uploads / "uf_now.4e5f6a7b"
    for path in (stale, fresh):
        path.write_bytes(b"part of a body")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(stale, (two_days_ago, two_days_ago))
    os.kill(_children(server.process.pid, 1)[0], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while (any(path.exists() for path in left) or stale.exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(path.exists() for path in left) and not stale.exists() and fresh.exists()
    with server.context.db.session() as session:
        assert session.get(Upload, retired["uploadId"]) is None


def test_a_change_whose_worker_was_killed_before_its_rows_were_written_gets_them(tmp_path_factory, git):
    """A worker killed after an API commit moved its ref and before the commit's rows were committed left the
    branch row at the old head for good (a race sweep: 2 of 24 commits killed so); a push's the same. A change is
    marked before its ref moves, naming its processes; a new worker turns the mark of dead ones into a
    reconcile. The kills are real; the moment is held by keeping the repository's write turn from the test,
    which the change's rows wait for once its ref moved."""
    from tests.conftest import _server
    from tests.e2e.test_api_contents import commit, create

    server, drops = _server(tmp_path_factory, "killed", {"DRIFTSTONE_DATABASE_LOCK_WAIT": "60"})
    try:
        tenant = server.tenant()
        repo = tenant.repo()
        commit(server, tenant, repo, [create("a.txt", "one\n")])
        _killed_while_its_rows_wait(server, tenant, repo, lambda: commit(server, tenant, repo, [create("b.txt", "2")]))
        work = tmp_path_factory.mktemp("pusher") / "w"
        git("clone", "-q", tenant.url(repo), str(work))
        (work / "c.txt").write_text("three\n")
        git("add", ".", cwd=work)
        git("commit", "-qm", "pushed", cwd=work)
        _killed_while_its_rows_wait(server, tenant, repo, lambda: git("push", "-q", "origin", "HEAD:main", cwd=work, check=False))
    finally:
        server.stop()
        server.context.db.dispose()
        for drop in drops:
            drop()


def _killed_while_its_rows_wait(server, tenant, repo: str, change) -> None:
    import signal
    import threading

    from storage.models import Branch
    from storage.repo_writes import serialize_repository_writes
    from tests.support import repo_path

    path = repo_path(server, tenant, repo)
    repo_id = path.name.removesuffix(".git")

    def head() -> str:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "refs/heads/main"], capture_output=True,
                              text=True, check=True).stdout.strip()

    def row() -> str | None:
        with server.context.db.session() as session:
            return session.scalar(select(Branch.head_sha).where(Branch.repo_id == repo_id, Branch.name == "main"))

    def send() -> None:
        try:
            change()
        except Exception:  # its worker was killed: no answer
            pass

    before = head()
    assert row() == before
    with server.context.db.session() as session:
        serialize_repository_writes(session, repo_id)  # the change's rows wait for this turn
        sent = threading.Thread(target=send, daemon=True)
        sent.start()
        deadline = time.monotonic() + 30
        while head() == before and time.monotonic() < deadline:
            time.sleep(0.01)
        moved = head()
        assert moved != before, "the change's ref did not move"
        assert list(path.glob("driftstone-changing-*")), "the change is not marked"
        for worker in _children(server.process.pid, 1):
            os.kill(worker, signal.SIGKILL)
    sent.join(30)
    deadline = time.monotonic() + 60
    while row() != moved and time.monotonic() < deadline:
        time.sleep(0.1)
    assert row() == moved == head()
    assert not list(path.glob("driftstone-changing-*"))


def test_a_worker_a_large_transfer_left_over_its_memory_limit_is_replaced_by_a_fresh_fork(tmp_path, git):
    """Small requests never make a worker retire (each retirement is a fork and a start-up job, and a warm worker
    is near the limit); a push of 16 MiB or more through one that leaves it over its limit (1 byte here) does,
    once the push is over. It serves on until the master's fresh fork has started, and leaves when asked (a lone
    worker that left first had none to accept meanwhile). Every request is answered."""
    server = start_server(tmp_path / "data", {"DRIFTSTONE_WORKER_PRIVATE_MEMORY_LIMIT": "1"})
    try:
        tenant = server.tenant()
        repo = tenant.repo()
        work = tmp_path / "work"
        git("init", "-q", "-b", "main", str(work))
        for i in range(6):
            git.commit(work, {f"small-{i}.txt": f"{i}\n"}, f"small {i}")
            git("push", "-q", tenant.url(repo), "HEAD:main", cwd=work)
            git("ls-remote", tenant.url(repo), cwd=work)
        time.sleep(3)  # more than a look's interval (control/worker_memory.py)
        assert "fresh fork" not in server.log_text()
        workers = set(_children(server.process.pid, 1))

        git.commit(work, {"large.bin": os.urandom(17 * 1024 * 1024)}, "large")
        git("push", "-q", tenant.url(repo), "HEAD:main", cwd=work)
        deadline = time.monotonic() + 30
        while (now := set(_children(server.process.pid, 1))) & workers or not now:
            assert time.monotonic() < deadline, (workers, now, server.log_text())
            time.sleep(0.1)
        log = server.log_text()
        assert "replaced by a fresh fork" in log
        (old,) = workers
        fresh = int(re.search(rf"worker {old} outgrew its memory: a fresh fork \((\d+)\)", log).group(1))
        assert log.index(f"Booting worker with pid: {fresh}") < log.index("worker idle, as the master asked: leaving")
        clone = tmp_path / "clone"
        git("clone", "-q", tenant.url(repo), str(clone))
        assert (clone / "large.bin").stat().st_size == 17 * 1024 * 1024
    finally:
        server.stop()


def _held_request(server, key: str, name: str):
    """A request the server is in the middle of: its head is in and the worker's thread waits for the body's
    last byte. Returns the socket and that byte."""
    body = ('{"name": "%s"}' % name).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(b"POST /v1/repos HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + key.encode()
                 + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:-1])
    return sock, body[-1:]


def _wait_for_log(server, text: str) -> None:
    deadline = time.monotonic() + 30
    while text not in server.log_text():
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.05)


def _wait_for_workers(master: int, count: int) -> list[int]:
    deadline = time.monotonic() + 30
    while len(workers := _children(master, 0)) != count:
        assert time.monotonic() < deadline, workers
        time.sleep(0.05)
    return workers


def test_a_worker_is_added_while_requests_overlap_and_goes_once_idle(tmp_path):
    """Two workers at most (the default), one while requests come one at a time: the second is forked from the
    master the moment a worker has two requests in flight, and leaves once it has had nothing in hand for
    DRIFTSTONE_GUNICORN_IDLE_WORKER_SECONDS (1 s here). The requests in flight meanwhile are all answered."""
    import requests

    server = start_server(tmp_path / "data", {"DRIFTSTONE_GUNICORN_IDLE_WORKER_SECONDS": "1"})
    try:
        tenant = server.tenant()
        master = server.process.pid
        time.sleep(2)  # more than a look of the master's, and than the idle time
        first = _wait_for_workers(master, 1)
        held = [_held_request(server, tenant.keys["admin"], f"held-{i}") for i in range(2)]
        workers = _wait_for_workers(master, 2)
        assert set(first) < set(workers)
        _wait_for_log(server, "requests overlap: a worker added (2 now)")  # the master writes it after the fork
        for sock, last in held:
            sock.sendall(last)
            assert sock.recv(64).startswith(b"HTTP/1.1 201 "), server.log_text()
            sock.close()
        assert len(_wait_for_workers(master, 1)) == 1
        assert "asked to leave (1 now)" in server.log_text()
        assert "worker idle, as the master asked: leaving" in server.log_text()
        names = {repo["name"] for repo in requests.get(f"http://127.0.0.1:{server.port}/v1/repos", timeout=10,
                 headers={"Authorization": f"Bearer {tenant.keys['admin']}"}).json()["data"]}
        assert {"held-0", "held-1"} <= names
    finally:
        server.stop()


def test_min_workers_keeps_them_all(tmp_path):
    """DRIFTSTONE_GUNICORN_MIN_WORKERS equal to the workers: as many as that all the time, idle or not."""
    server = start_server(tmp_path / "data", {"DRIFTSTONE_GUNICORN_MIN_WORKERS": "2",
                                              "DRIFTSTONE_GUNICORN_IDLE_WORKER_SECONDS": "1"})
    try:
        time.sleep(3)
        assert len(_wait_for_workers(server.process.pid, 2)) == 2
        assert "asked to leave" not in server.log_text()
    finally:
        server.stop()


def test_requests_one_after_another_add_no_worker(tmp_path):
    """What counts is requests, not connections: a kept-alive connection closing, or a new one that has sent
    nothing yet, beside the one request in flight is no overlap (each was counted once, and added a worker)."""
    server = start_server(tmp_path / "data", {"DRIFTSTONE_GUNICORN_IDLE_WORKER_SECONDS": "1"})
    try:
        tenant = server.tenant()
        kept = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert kept.recv(4096).startswith(b"HTTP/1.1 200 ")
        held, last = _held_request(server, tenant.keys["admin"], "held")
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        time.sleep(0.5)
        kept.close()
        time.sleep(2.5)  # more than two looks of the master's
        assert "requests overlap" not in server.log_text()
        held.sendall(last)
        assert held.recv(64).startswith(b"HTTP/1.1 201 ")
        held.close()
        silent.close()
        assert len(_wait_for_workers(server.process.pid, 1)) == 1
    finally:
        server.stop()


def test_a_reload_forks_only_the_workers_the_pool_keeps(tmp_path):
    """gunicorn's reload (SIGHUP) forks all of `--workers` and stops the rest at once: a worker stopped before it
    had its own signal handlers lived on, uncounted, and held each later reload for its graceful timeout."""
    import signal

    server = start_server(tmp_path / "data", {"DRIFTSTONE_GUNICORN_IDLE_WORKER_SECONDS": "1"})
    try:
        master = server.process.pid
        before = set(_wait_for_workers(master, 1))
        for _ in range(3):
            os.kill(master, signal.SIGHUP)
            time.sleep(1)
        deadline = time.monotonic() + 15
        while len(now := set(_children(master, 0))) != 1 or now & before:
            assert time.monotonic() < deadline, (before, now, server.log_text())
            time.sleep(0.1)
        time.sleep(2)
        assert len(_children(master, 0)) == 1
        assert server.log_text().count("Hang up: Master") == 3
        assert server.log_text().count("Booting worker") == 1 + 3  # one a reload, none to stop at once
        import requests
        assert requests.get(f"http://127.0.0.1:{server.port}/healthz", timeout=10).status_code == 200
    finally:
        server.stop()


def _serving_process(server_port: int, client: socket.socket, workers: list[int]) -> int | None:
    """Which worker holds the server's end of `client`'s connection."""
    return _serving_processes(server_port, [client], workers).get(client)


def _serving_processes(server_port: int, clients: list[socket.socket], workers: list[int]) -> dict:
    """Which worker holds the server's end of each client's connection, from one read of /proc."""
    by_port = {client.getsockname()[1]: client for client in clients}
    inodes = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
        if local == server_port and remote in by_port:
            inodes[f"socket:[{fields[9]}]"] = by_port[remote]
    found = {}
    for pid in workers:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                client = inodes.get(os.readlink(fd))
            except OSError:
                continue
            if client is not None:
                found[client] = pid
    return found


def _get(sock) -> bytes:
    """One whole response (head and body) to a GET /healthz on a kept-alive connection."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    def more() -> bytes:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    data = b""
    while b"\r\n\r\n" not in data:
        data += more()
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += more()
    return head + b"\r\n\r\n" + body


def test_a_worker_asked_to_leave_closes_its_kept_alive_connections(tmp_path):
    """A client reusing its connection every few seconds (within the 5 s keep-alive) kept a worker asked to leave
    serving, uncounted, for as long as it went on. The worker answers it "Connection: close" instead, as a
    stopping worker does, and leaves; the client's next connection goes to the worker that stays."""
    server = start_server(tmp_path / "data", {"DRIFTSTONE_GUNICORN_IDLE_WORKER_SECONDS": "1"})
    try:
        tenant = server.tenant()
        master = server.process.pid
        first = _wait_for_workers(master, 1)[0]
        held = [_held_request(server, tenant.keys["admin"], f"held-{i}") for i in range(2)]
        added = (set(_wait_for_workers(master, 2)) - {first}).pop()
        for sock, last in held:
            sock.sendall(last)
            assert sock.recv(64).startswith(b"HTTP/1.1 201 ")
            sock.close()
        on_added = None
        for _ in range(10):  # a connection the added worker accepted, found before it is idle for 1 s (a look at
            socks = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(6)]  # /proc
            for sock in socks:  # for each connection took past that on a loaded CI machine)
                assert _get(sock).startswith(b"HTTP/1.1 200 ")
            serving = _serving_processes(server.port, socks, [first, added])
            on_added = next((sock for sock in socks if serving.get(sock) == added), None)
            for sock in socks:
                if sock is not on_added:
                    sock.close()
            if on_added is not None:
                break
        assert on_added is not None
        deadline = time.monotonic() + 20
        while "asked to leave" not in server.log_text():
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.1)
        time.sleep(1.1)  # the worker sees the ask at its next look, within a second; then lingers 2 s
        answer = _get(on_added)
        assert answer.startswith(b"HTTP/1.1 200 ") and b"connection: close" in answer.lower(), answer
        on_added.close()
        assert _wait_for_workers(master, 1) == [first]
    finally:
        server.stop()


def test_after_an_add_half_of_the_kept_alive_clients_are_sent_to_connect_again(tmp_path):
    """Clients kept alive on the one worker would never reach the one added for them: in the two seconds after an
    add, every other connection's next request is answered "Connection: close", so that its client connects again
    (to the worker accepting first); the others stay."""
    server = start_server(tmp_path / "data")
    try:
        tenant = server.tenant()
        kept = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(8)]
        for sock in kept:
            assert b"connection: close" not in _get(sock).lower()
        held = [_held_request(server, tenant.keys["admin"], f"held-{i}") for i in range(2)]
        deadline = time.monotonic() + 20
        while "a worker added" not in server.log_text():
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.05)
        time.sleep(1.1)  # the worker sees the add at its next look, within a second
        answers = []
        for sock in kept:  # a client closes a connection answered so at once (gunicorn lingers up to 2 s for it)
            answers.append(_get(sock).lower())
            if b"connection: close" in answers[-1]:
                sock.close()
        assert all(answer.startswith(b"http/1.1 200 ") for answer in answers)
        assert sum(b"connection: close" in answer for answer in answers) == 4, answers
        for sock, last in held:
            sock.sendall(last)
            assert sock.recv(64).startswith(b"HTTP/1.1 201 ")
        time.sleep(2)  # the window is over: kept alive again
        stayed = [sock for sock, answer in zip(kept, answers) if b"connection: close" not in answer]
        assert all(b"connection: close" not in _get(sock).lower() for sock in stayed)
    finally:
        server.stop()
