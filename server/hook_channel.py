"""The server end of the pre-receive hook: receives git's commands over a socket, answers with a verdict."""
from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import hooks
from hooks.context import ChangeContext, Rejection
from hooks.pipeline import run_checks
from hooks.refs import RefUpdate, is_sha

log = logging.getLogger(__name__)

HOOK_SCRIPT = Path(hooks.__file__).parent / "git" / "pre-receive"
_QUARANTINE_ENV = ("GIT_QUARANTINE_PATH", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES")
MAX_REQUEST = 16 * 1024 * 1024


def install_hook_scripts(target_dir: Path) -> Path:
    """Copy the hook into the data dir with the exec bit (package data may lose it); returns core.hooksPath."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / "pre-receive"
    temporary = target_dir / f".pre-receive.{os.getpid()}"
    shutil.copyfile(HOOK_SCRIPT, temporary)
    os.chmod(temporary, 0o755)
    os.replace(temporary, target)
    return target_dir


@dataclass
class HookChannel:
    """Serves one receive-pack's pre-receive call on a thread; `rejections` holds the checks' verdict."""

    ctx: ChangeContext
    server_end: socket.socket
    child_end: socket.socket
    push_options: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    _thread: threading.Thread | None = None

    @classmethod
    def open(cls, ctx: ChangeContext) -> "HookChannel":
        server_end, child_end = socket.socketpair()
        return cls(ctx=ctx, server_end=server_end, child_end=child_end)

    def child_env(self) -> dict[str, str]:
        return {"DRIFTSTONE_HOOK_FD": str(self.child_end.fileno())}

    def start(self) -> None:
        """Call after the child process has been spawned (it holds its own copy of child_end)."""
        self.child_end.close()
        self._thread = threading.Thread(target=self._serve, name="pre-receive", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.server_end.close()

    def _serve(self) -> None:
        try:
            request = self._read_request()
            if request is None:
                return
            env, updates = request
            ctx = replace(self.ctx, git_env=env, push_options=tuple(self.push_options))
            self.rejections = run_checks(ctx, updates)
            self.server_end.sendall(self._verdict())
        except Exception:
            log.exception("pre-receive check failed")
            self.rejections = [Rejection("*", "internal error while checking the push")]
            try:
                self.server_end.sendall(self._verdict())
            except OSError:
                pass

    def _verdict(self) -> bytes:
        lines = [f"message {r.ref}: {r.reason}" if r.ref != "*" else f"message {r.reason}"
                 for r in self.rejections]
        lines.append("exit 1" if self.rejections else "exit 0")
        return ("\n".join(lines) + "\n").encode("utf-8", "replace")

    def _read_request(self) -> tuple[dict[str, str], list[RefUpdate]] | None:
        data = bytearray()
        while not data.endswith(b"end\n"):
            chunk = self.server_end.recv(65536)
            if not chunk:
                return None
            data += chunk
            if len(data) > MAX_REQUEST:
                raise ValueError("hook request too large")
        env: dict[str, str] = {}
        updates: list[RefUpdate] = []
        for line in data.decode("utf-8", "surrogateescape").splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "env":
                name, _, value = rest.partition("=")
                if name in _QUARANTINE_ENV and value:
                    env[name] = value
            elif kind == "option":
                self.push_options.append(rest)
            elif kind == "update":
                old, new, ref = (rest.split(" ", 2) + ["", ""])[:3]
                if is_sha(old) and is_sha(new):
                    updates.append(RefUpdate(old=old, new=new, ref=ref))
        self._check_quarantine_paths(env)
        return env, updates

    def _check_quarantine_paths(self, env: dict[str, str]) -> None:
        root = self.ctx.repo_path.resolve()
        for name in ("GIT_QUARANTINE_PATH", "GIT_OBJECT_DIRECTORY"):
            if name in env and not Path(env[name]).resolve().is_relative_to(root):
                raise ValueError("quarantine outside the repository")
