"""The three targets of the git benchmark, each able to make a repository and give its git URL:

- Driftstone: `driftstone serve` (gunicorn master + gthread workers) on its own data dir;
- the reference: lighttpd (Debian) running `git http-backend` as CGI, with Basic auth and streaming
  request and response bodies;
- local: bare repositories on disk, used through git's file transport (`git clone --no-local`,
  `git push /path`).

Every repository gets the same git config as a Driftstone repository (fsck on receive, fsync, ...): the
config file of a Driftstone repository is copied, so the targets differ only by what serves them.
Servers bind 127.0.0.1 on a free port and run in their own process group, so `stop()` ends exactly the
processes this module started.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
USER = "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def plain_git(*args: str, cwd: Path | None = None, timeout: float = 600) -> str:
    """git with no user or system config (for setting up repositories, never timed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "DRIFTSTONE_"))}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "HOME": "/nonexistent"})
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, env=env, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed:\n{result.stderr.decode(errors='replace')}")
    return result.stdout.decode().strip()


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def populate(repo: Path, source: Path, ref_sha: str) -> None:
    """Give the bare `repo` the pack of the bare `source` (hard links: packs are never modified) and
    point refs/heads/main at `ref_sha`."""
    pack_dir = repo / "objects" / "pack"
    pack_dir.mkdir(parents=True, exist_ok=True)
    for item in (source / "objects" / "pack").iterdir():
        if item.suffix in (".pack", ".idx", ".bitmap", ".rev"):
            link_or_copy(item, pack_dir / item.name)
    plain_git("update-ref", "refs/heads/main", ref_sha, cwd=repo)


def wait_until(check, deadline_s: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + deadline_s
    while True:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited early ({proc.returncode}):\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {deadline_s}s:\n{_tail(log)}")
        time.sleep(0.1)


def _tail(path: Path | None, limit: int = 4000) -> str:
    if path is None or not path.exists():
        return ""
    return path.read_text(errors="replace")[-limit:]


def _http_ok(url: str, auth: tuple[str, str]) -> bool:
    request = urllib.request.Request(url)
    request.add_header("Authorization", "Basic " + b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class _Process:
    """A server started in its own process group; stop() ends that group only."""

    proc: subprocess.Popen | None = None
    log_path: Path

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def _spawn(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        try:  # stragglers of our own group (git children), by the group id we created
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Driftstone(_Process):
    name = "Driftstone"

    def __init__(self, work: Path, org: str = "bench", source: Path | None = None):
        """`source`: a directory holding an exported revision of the project to run instead of the
        installed (editable) working tree; it goes first on PYTHONPATH."""
        self.data_dir = work / "driftstone-data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = work / "driftstone.log"
        self.org = org
        self.source = source
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTSTONE_", "GIT_"))}
        self.env["DRIFTSTONE_DATA_DIR"] = str(self.data_dir)
        if source is not None:
            self.env["PYTHONPATH"] = str(source)
        self.port = free_port()
        self.key = ""
        self.paths: dict[str, Path] = {}

    def _argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "control.cli", *args]

    def cli(self, *args: str) -> str:
        result = subprocess.run(self._argv(*args), env=self.env, cwd=self.source or ROOT,
                                capture_output=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"driftstone {' '.join(args)} failed:\n{result.stderr.decode(errors='replace')}")
        return result.stdout.decode()

    def start(self, workers: int | None = None, threads: int | None = None) -> None:
        self.cli("admin", "create-org", self.org)
        self.key = self.cli("admin", "create-key", self.org, "--scope", "admin").strip().splitlines()[-1]
        argv = self._argv("serve", "--host", HOST, "--port", str(self.port))
        if workers:
            argv += ["--workers", str(workers)]
        if threads:
            argv += ["--threads", str(threads)]
        self._spawn(argv, self.env, self.source or ROOT)
        wait_until(lambda: _http_ok(f"http://{HOST}:{self.port}/healthz", (USER, self.key)), 90,
                   "driftstone", self.proc, self.log_path)

    def create_repo(self, name: str) -> Path:
        output = self.cli("admin", "create-repo", f"{self.org}/{name}")
        match = re.search(r"\((repo_[0-9a-f]+)\)", output)
        if match is None:
            raise RuntimeError(f"unexpected create-repo output: {output!r}")
        repo_id = match.group(1)
        path = self.data_dir / "repos" / repo_id[-2:] / f"{repo_id}.git"
        if not (path / "HEAD").is_file():
            raise RuntimeError(f"repository {repo_id} not found at {path}")
        self.paths[name] = path
        return path

    def populate(self, name: str, source: Path, ref_sha: str) -> None:
        populate(self.paths[name], source, ref_sha)
        self.cli("admin", "reconcile", f"{self.org}/{name}")  # the branch rows follow the refs

    def url(self, name: str) -> str:
        return f"http://{USER}:{self.key}@{HOST}:{self.port}/{self.org}/{name}.git"

    def _kept(self, name: str, pattern: str) -> list[Path]:
        repo_id = self.paths[name].name.removesuffix(".git")
        return list((self.data_dir / "repos" / ".kept-packs").glob(repo_id + pattern))

    def forget_kept_packs(self, name: str) -> None:
        """Empty the repository's pack cache (server/pack_cache.py): the next clone is the first of its state."""
        for kept in self._kept(name, ".*"):
            kept.unlink(missing_ok=True)

    def wait_for_kept_pack(self, name: str, timeout: float = 60) -> None:
        """Until a pack of the repository is kept (moved into place once fsynced, after its clone finished)."""
        deadline = time.monotonic() + timeout
        while not self._kept(name, ".*.pack"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no pack of {name} was kept within {timeout:.0f} s")
            time.sleep(0.05)

    def repo_path(self, name: str) -> Path:
        return self.paths[name]

    def describe(self) -> str:
        return "driftstone serve (gunicorn gthread, default workers/threads)"


LIGHTTPD_CONF = """\
server.modules = ("mod_auth", "mod_authn_file", "mod_cgi", "mod_setenv", "mod_alias")
server.bind = "{host}"
server.port = {port}
server.document-root = "{root}/www"
server.errorlog = "{root}/lighttpd-error.log"
server.upload-dirs = ("{root}/tmp")
server.max-request-size = 2097152
server.stream-request-body = 0
server.stream-response-body = 2
server.max-connections = 1024

alias.url = ("/git/" => "{backend}/")

auth.backend = "plain"
auth.backend.plain.userfile = "{root}/users"
auth.require = ("/git/" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))

$HTTP["url"] =~ "^/git/" {{
    cgi.assign = ("" => "")
    setenv.set-environment = (
        "GIT_PROJECT_ROOT" => "{root}/repos",
        "GIT_HTTP_EXPORT_ALL" => "1",
        "GIT_CONFIG_NOSYSTEM" => "1",
        "GIT_CONFIG_GLOBAL" => "/dev/null",
        "HOME" => "{root}/home",
        "PATH" => "/usr/local/bin:/usr/bin:/bin",
    )
}}
"""


class _PlainRepos:
    """Bare repositories made with git itself and given the benchmark's shared config file."""

    template_config: Path

    def repo_path(self, name: str) -> Path:
        raise NotImplementedError

    def create_repo(self, name: str) -> Path:
        path = self.repo_path(name)
        plain_git("init", "--bare", "--quiet", "--initial-branch=main", str(path))
        shutil.copyfile(self.template_config, path / "config")
        return path

    def populate(self, name: str, source: Path, ref_sha: str) -> None:
        populate(self.repo_path(name), source, ref_sha)


class HttpBackend(_PlainRepos, _Process):
    """lighttpd + git http-backend (CGI): the reference smart-HTTP server."""

    name = "git http-backend"

    def __init__(self, work: Path, template_config: Path):
        self.root = work / "lighttpd"
        for sub in ("www", "tmp", "repos", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.log_path = work / "lighttpd.log"
        self.template_config = template_config
        self.port = free_port()
        self.key = "dk-" + os.urandom(24).hex()
        self.backend = Path(plain_git("--exec-path")) / "git-http-backend"

    def start(self) -> None:
        if shutil.which("lighttpd") is None:
            raise RuntimeError("lighttpd is not installed: run bench/setup.sh")
        (self.root / "users").write_text(f"{USER}:{self.key}\n")
        conf = self.root / "lighttpd.conf"
        conf.write_text(LIGHTTPD_CONF.format(host=HOST, port=self.port, root=self.root, backend=self.backend))
        check = subprocess.run(["lighttpd", "-tt", "-f", str(conf)], capture_output=True, timeout=60)
        if check.returncode != 0:
            raise RuntimeError(f"lighttpd config rejected:\n{check.stderr.decode(errors='replace')}")
        self.create_repo("ready-probe")
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        self._spawn(["lighttpd", "-D", "-f", str(conf)], env, self.root)
        probe = f"http://{HOST}:{self.port}/git/ready-probe.git/info/refs?service=git-upload-pack"
        wait_until(lambda: _http_ok(probe, (USER, self.key)), 60, "lighttpd", self.proc, self.log_path)

    def url(self, name: str) -> str:
        return f"http://{USER}:{self.key}@{HOST}:{self.port}/git/{name}.git"

    def repo_path(self, name: str) -> Path:
        return self.root / "repos" / f"{name}.git"

    def describe(self) -> str:
        return "lighttpd (mod_cgi, streaming bodies, Basic auth) + git http-backend"


class Local(_PlainRepos):
    """Bare repositories on disk, reached through git's file transport: the speed of git itself."""

    name = "local"
    pid = None

    def __init__(self, work: Path, template_config: Path):
        self.root = work / "local"
        self.root.mkdir(parents=True, exist_ok=True)
        self.template_config = template_config

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def url(self, name: str) -> str:
        return str(self.repo_path(name))

    def repo_path(self, name: str) -> Path:
        return self.root / f"{name}.git"

    def describe(self) -> str:
        return "git's file transport (git clone --no-local, git push /path)"
