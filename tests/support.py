"""Helpers for driving real servers and real git clients in tests."""
from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests

from control.bootstrap import bootstrap
from control.context import AppContext
from control.services import accounts, repos
from storage.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client_env(home: Path) -> dict[str, str]:
    """A git client environment with no user or system config of the machine leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "DRIFTSTONE_"))}
    env.update({
        "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test Agent", "GIT_AUTHOR_EMAIL": "agent@example.test",
        "GIT_COMMITTER_NAME": "Test Agent", "GIT_COMMITTER_EMAIL": "agent@example.test",
        "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false",
    })
    return env


@dataclass
class Git:
    home: Path

    def __call__(self, *args: str, cwd: Path | None = None, check: bool = True, input: bytes | None = None,
                 env: dict | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True,
                                env={**client_env(self.home), **(env or {})}, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout.decode(errors='replace')}\n{result.stderr.decode(errors='replace')}")
        return result

    def out(self, *args: str, cwd: Path | None = None) -> str:
        return self(*args, cwd=cwd).stdout.decode().strip()

    def commit(self, repo: Path, files: dict[str, str | bytes], message: str = "change") -> str:
        for name, content in files.items():
            path = repo / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
        self("add", "-A", cwd=repo)
        self("commit", "-q", "-m", message, cwd=repo)
        return self.out("rev-parse", "HEAD", cwd=repo)

    def new_worktree(self, path: Path, files: dict[str, str | bytes] | None = None) -> Path:
        self("init", "-q", "-b", "main", str(path))
        if files:
            self.commit(path, files, "initial")
        return path


@dataclass
class Tenant:
    """An organization with one key per scope and helpers to make repositories in it."""

    server: "RunningServer"
    org: str
    org_id: str
    keys: dict[str, str]

    def repo(self, name: str | None = None) -> str:
        name = name or f"r-{uuid.uuid4().hex[:8]}"
        with self.server.context.db.session() as session:
            repo = repos.create_repo(session, self.server.context.store, self.org_id, name)
            return repo.slug

    def url(self, repo: str, scope: str = "admin", suffix: str = ".git") -> str:
        return f"http://agent:{self.keys[scope]}@127.0.0.1:{self.server.port}/{self.org}/{repo}{suffix}"

    def plain_url(self, repo: str, suffix: str = ".git") -> str:
        return f"{self.server.url}/{self.org}/{repo}{suffix}"


@dataclass
class RunningServer:
    port: int
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen
    context: AppContext
    log_path: Path
    worker: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tenant(self, prefix: str = "org") -> Tenant:
        slug = f"{prefix}-{uuid.uuid4().hex[:10]}"
        with self.context.db.session() as session:
            org = accounts.create_org(session, slug)
            keys = {scope: accounts.create_key(session, org.id, scope, scope).secret
                    for scope in ("admin", "agent", "read")}
        return Tenant(server=self, org=slug, org_id=org.id, keys=keys)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        for process in (self.process, self.worker):
            if process is None:
                continue
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def start_server(data_dir: Path, extra_env: dict[str, str] | None = None,
                 command: Callable[[int], list[str]] | None = None, cwd: Path = ROOT) -> RunningServer:
    """`command(port)` replaces `driftstone serve`; `extra_env` may then name the data dir relative to `cwd`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTSTONE_")}
    env.update({"DRIFTSTONE_DATA_DIR": str(data_dir), **(extra_env or {})})
    settings = Settings.from_env({**env, "DRIFTSTONE_DATA_DIR": str(data_dir)})
    context = bootstrap(settings)
    port = free_port()
    log_path = data_dir / "server.log"
    log = open(log_path, "wb")
    serve = [str(Path(os.sys.executable).parent / "driftstone"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command(port) if command else serve, env=env, stdout=log, stderr=subprocess.STDOUT,
                               cwd=cwd)
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.1)
    server = RunningServer(port=port, data_dir=data_dir, env=env, process=process, context=context, log_path=log_path)
    if settings.redis_url:
        worker_log = open(data_dir / "worker.log", "wb")
        server.worker = subprocess.Popen([str(Path(os.sys.executable).parent / "driftstone"), "worker"], env=env,
                                         stdout=worker_log, stderr=subprocess.STDOUT, cwd=ROOT)
    return server


def repo_path(server, tenant, slug: str) -> Path:
    """Where the server keeps a tenant's repository on disk."""
    with server.context.db.session() as session:
        return server.context.store.path_for(repos.get_repo(session, tenant.org_id, slug).id)


def remote_ref(git, url: str, ref: str) -> str:
    """The sha `ref` has on the server, or "" when it does not exist."""
    out = git.out("ls-remote", url, ref)
    return out.split()[0] if out else ""


def seed_three_commits_and_a_tag(tenant, git, tmp_path: Path) -> tuple[str, Path]:
    """A repository on the server with three commits on main and an annotated tag v1.0; (slug, work tree)."""
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "seed", {"README.md": "hello\n", "src/app.py": "print(1)\n"})
    git.commit(work, {"src/app.py": "print(2)\n"}, "second")
    git.commit(work, {"docs/guide.md": "# guide\n"}, "third")
    git("tag", "-a", "v1.0", "-m", "release", cwd=work)
    git("push", "-q", tenant.url(repo), "main", "v1.0", cwd=work)
    return repo, work


def seed_two_commits(tenant, git, tmp_path: Path) -> tuple[str, Path]:
    """A repository on the server with two commits on main, pushed by the git CLI; (slug, work tree)."""
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "seed", {"README.md": "hello\n"})
    git.commit(work, {"src/app.py": "print(1)\n"}, "second")
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    return repo, work


def pkt(line: bytes) -> bytes:
    """One git pkt-line."""
    return b"%04x" % (len(line) + 4) + line


def raw_request(server, head: str, body: bytes) -> bytes:
    """Send `head` + `body`, close our sending side (the client went away), read the whole answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(head.encode() + body)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def receive_pack(server, tenant, repo: str, body: bytes, scope: str = "admin") -> requests.Response:
    """A raw git-receive-pack POST (for requests the git CLI will not make)."""
    return requests.post(f"{server.url}/{tenant.org}/{repo}.git/git-receive-pack", data=body, timeout=60,
                         headers={"Authorization": f"Bearer {tenant.keys[scope]}",
                                  "Content-Type": "application/x-git-receive-pack-request"})


def api(server, key, method, path, body=None, **kwargs):
    """A control API call with a Bearer key; `body` is sent as JSON."""
    headers = {"Authorization": f"Bearer {key}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
        kwargs["data"] = json.dumps(body)
    return requests.request(method, server.url + path, headers=headers, timeout=60, **kwargs)


NUMBERED_TEXT = "".join(f"line {i}\n" for i in range(1, 21))


def edited(changes: dict[int, str]) -> str:
    """NUMBERED_TEXT with line i (0-based) replaced by changes[i]."""
    lines = NUMBERED_TEXT.split("\n")[:-1]
    for i, text in changes.items():
        lines[i] = text
    return "".join(line + "\n" for line in lines)


def at_once(count: int, request) -> list[requests.Response]:
    """`request(i)` from `count` threads released together; every response."""
    barrier = threading.Barrier(count)
    responses: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        responses[i] = request(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return responses


def request_interrupted(server, head: str, body: bytes, sent: int, meanwhile: Callable[[], None]) -> bytes:
    """Send `head` and the first `sent` bytes of `body`, give the server a moment to start on the request, run
    `meanwhile()` (the request is still waiting for its body), then send the rest and read the whole answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(head.encode() + body[:sent])
        time.sleep(0.3)
        meanwhile()
        sock.sendall(body[sent:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def wait_until_gone(path: Path, timeout: float = 30) -> None:
    """Wait for a background job (a purge) to remove `path`."""
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not path.exists(), path


def in_process_app(tmp_path: Path, org: str, scope: str, **settings):
    """The real application in-process (werkzeug's test client, SQLite, real repositories) with one repository,
    `{org}/r`: (client, Basic auth headers for a `scope` key, the repository's path). `settings` override the
    defaults."""
    import base64

    from werkzeug.test import Client

    import wsgi

    settings = Settings(data_dir=tmp_path, **settings)
    context = bootstrap(settings)
    with context.db.session() as session:
        created = accounts.create_org(session, org)
        secret = accounts.create_key(session, created.id, "k", scope).secret
        repo = repos.create_repo(session, context.store, created.id, "r")
    auth = {"Authorization": "Basic " + base64.b64encode(f"x:{secret}".encode()).decode()}
    return Client(wsgi.create_application(settings)), auth, context.store.path_for(repo.id)


def commit_in(repo: Path, branch: str) -> str:
    """A commit of the empty tree written straight into a bare repository, as `branch`'s head."""
    def run(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True,
                              env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                                   "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}).stdout.decode().strip()

    commit = run("commit-tree", run("mktree"), "-m", branch)
    run("update-ref", f"refs/heads/{branch}", commit)
    return commit


def has_object(repo: Path, sha: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", sha], cwd=repo, capture_output=True).returncode == 0


def age_object_files(repo: Path, days: int) -> None:
    """Back-date every object file of a repository, packs and loose ones: what an object's time means to a
    prune."""
    moment = time.time() - days * 24 * 3600
    for path in (repo / "objects").rglob("*"):
        if path.is_file():
            os.utime(path, (moment, moment))


class WebhookReceiver:
    """A webhook receiver on 127.0.0.1 (or `host`, "::1" say): records each POST (headers, body); answers the
    statuses queued in `answers`, then 200."""

    def __init__(self, host: str = "127.0.0.1"):
        self.received: list[tuple[dict, bytes]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self.httpd = Server((host, 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.httpd.server_address[1]}/hooks/in?from=driftstone"

    def events(self, name: str) -> list[tuple[dict, dict]]:
        return [(headers, json.loads(body)) for headers, body in self.received if headers["x-driftstone-event"] == name]

    def wait_for(self, name: str, count: int = 1, timeout: float = 30) -> list[tuple[dict, dict]]:
        deadline = time.monotonic() + timeout
        while len(self.events(name)) < count:
            assert time.monotonic() < deadline, f"{name}: {len(self.events(name))} of {count} came"
            time.sleep(0.05)
        return self.events(name)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Dojo:
    """A client of seed 004's API for one repository."""

    def __init__(self, server, tenant, repo, scope="agent"):
        self.base = f"{server.url}/api/repos/{tenant.org}/{repo}"
        self.headers = {"Authorization": f"Bearer {tenant.keys[scope]}"}

    def __call__(self, method, path, json=None, data=None, **kwargs):
        return requests.request(method, self.base + path, json=json, data=data, headers=self.headers, timeout=60,
                                **kwargs)

    def workspace(self, name: str) -> dict:
        return self("POST", "/workspaces", {"name": name}).json()["workspace"]


def submit_work(dojo, name, files, base_commit=None, message="work"):
    body = {"name": name, "agent_name": f"{name}-bot"}
    if base_commit:
        body["base_commit"] = base_commit
    ws = dojo("POST", "/workspaces", body).json()["workspace"]
    for path, content in files.items():
        assert dojo("PUT", f"/workspaces/{ws['id']}/files/{path}", data=content.encode()).status_code == 200
    commit = dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": message})
    assert commit.status_code == 201, commit.text
    submitted = dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": f"{name}: {message}"})
    assert submitted.status_code == 201, submitted.text
    return ws, submitted.json()["stack"], commit.json()["commit"]["sha"]


def v1(server, tenant, method, path, json=None, scope="agent"):
    return requests.request(method, f"{server.url}/v1/repos/{path}", json=json, timeout=60,
                            headers={"Authorization": f"Bearer {tenant.keys[scope]}"})
