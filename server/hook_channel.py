"""The server end of the pre-receive hook: receives git's commands over a socket, answers with a verdict."""
from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from sqlalchemy.exc import OperationalError, TimeoutError as PoolTimeout

import hooks
from hooks.context import ChangeContext, Rejection, printable
from hooks.pipeline import begin_change, end_change, run_checks
from hooks.refs import RefUpdate, is_sha
from storage import git_refs
from storage.errors import NotFound, StorageFailure

from .scripts import install_script

log = logging.getLogger(__name__)

HOOK_SCRIPT = Path(hooks.__file__).parent / "git" / "pre-receive"
_QUARANTINE_ENV = ("GIT_QUARANTINE_PATH", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES")
MAX_REQUEST = 16 * 1024 * 1024


def install_hook_scripts(target_dir: Path) -> Path:
    """Copy the hook into the data dir; returns core.hooksPath."""
    install_script(HOOK_SCRIPT, target_dir)
    return target_dir


def hook_scripts_ready(hooks_path: Path) -> bool:
    """Whether git will find our hook, reinstalling it if it went missing: git runs no hook at all when it finds
    none (or, for a relative core.hooksPath, looks beside the repository), and a push would pass unchecked."""
    hook = hooks_path / "pre-receive"
    if hooks_path.is_absolute() and os.access(hook, os.X_OK):
        return True
    try:
        install_hook_scripts(hooks_path)
    except OSError:
        log.exception("cannot install the pre-receive hook in %s", hooks_path)
        return False
    return hooks_path.is_absolute() and os.access(hook, os.X_OK)


class HookProtocolError(ValueError):
    """The hook's request is not what our hook script sends: the push is refused, not checked."""


@dataclass
class HookChannel:
    """Serves one receive-pack's pre-receive call on a thread; `rejections` holds the checks' verdict."""

    ctx: ChangeContext
    server_end: socket.socket
    child_end: socket.socket
    # the commands parsed from the request body (None: not readable); checked as well as the hook's list
    requested: Callable[[], list[RefUpdate] | None] | None = None
    # whether the whole request body arrived intact (None: not asked); a push whose body did not is refused
    body_complete: Callable[[], bool] | None = None
    atomic: Callable[[], bool] | None = None  # whether the request's commands asked for all or nothing
    push_options: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    approved: bool = False  # the checks ran on every command of the push and refused none
    git_pid: int | None = None  # the receive-pack that moves the refs once they are approved
    change: Path | None = None  # the approved change's mark, until its effects have run (hooks.pipeline.begin_change)
    _thread: threading.Thread | None = None
    _closed: bool = False  # the request is done with the channel: a late verdict must not mark a change
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, ctx: ChangeContext, requested: Callable[[], list[RefUpdate] | None] | None = None) -> "HookChannel":
        server_end, child_end = socket.socketpair()
        return cls(ctx=ctx, server_end=server_end, child_end=child_end, requested=requested)

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
        with self._lock:
            self._closed = True
        self.server_end.close()

    def finish_change(self, recorded: bool = True) -> None:
        """The approved change's effects ran (`recorded`), or did not finish: then a reconcile is asked for."""
        if self.change is not None:
            end_change(self.ctx, self.change, recorded)
            self.change = None

    def _serve(self) -> None:
        try:
            request = self._read_request()
            if request is None:
                return
            env, updates = request
            if self.body_complete is not None and not self.body_complete():
                self._refuse("the request body was cut off or malformed: nothing was applied")
                return
            ctx = replace(self.ctx, git_env=env, push_options=tuple(self.push_options),
                          atomic=bool(self.atomic and self.atomic()))
            self.rejections = _named_twice(updates) or run_checks(ctx, self._with_requested(updates))
            if not self.rejections:
                # marked before git may move a ref: a worker killed before the effects ran leaves it to a reconcile
                with self._lock:
                    if self._closed:  # checks that outlasted the request (its git is gone): no verdict to give
                        return
                    self.change = begin_change(ctx, also=(self.git_pid,) if self.git_pid else ())
            self.approved = not self.rejections
            if self.approved and (stale := git_refs.remove_stale_locks(ctx.repo_path, [u.ref for u in updates])):
                # before git's ref transaction takes them: it would fail the push with a bare "failed to update ref"
                log.warning("removed lock files a killed git left in %s: %s", ctx.repo_path, ", ".join(stale))
            self.server_end.sendall(self._verdict())
        except HookProtocolError as error:
            log.warning("pre-receive hook request refused: %s", error)
            self._refuse("the push could not be checked")
        except NotFound:
            self._refuse_as_deleted()
        except StorageFailure as error:
            log.error("push refused: %s", error)
            self._refuse("the server could not write to its storage; try again later")
        except (OperationalError, PoolTimeout):  # refused, dropped or out of connections, after run_checks' retries
            log.warning("pre-receive check failed: the database is unavailable", exc_info=True)
            self._refuse("the server's database is unavailable: nothing was applied, try again shortly")
        except Exception:
            if not self.ctx.repo_path.is_dir():
                self._refuse_as_deleted()
                return
            log.exception("pre-receive check failed")
            self._refuse("internal error while checking the push")

    def _refuse_as_deleted(self) -> None:
        """The repository was deleted, and purged, while its push was checked (its quarantine went with it)."""
        log.info("push to %s refused: the repository was deleted meanwhile", self.ctx.repo_path)
        self._refuse("repository not found")

    def _refuse(self, reason: str) -> None:
        self.rejections = [Rejection("*", reason)]
        try:
            self.server_end.sendall(self._verdict())
            # a hook still writing its request must fail (EPIPE) instead of waiting on a full socket forever
            self.server_end.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _with_requested(self, updates: list[RefUpdate]) -> list[RefUpdate]:
        """The hook's updates plus any the client asked for that the hook did not pass on.

        Whatever the hook script makes of its input, every command in the request body is checked; a ref the
        two lists disagree about fails the push.
        """
        if self.requested is None:
            return updates
        requested = self.requested()
        if requested is None:
            raise HookProtocolError("the push commands could not be read from the request")
        by_ref = {u.ref: u for u in updates}
        merged = list(updates)
        for update in requested:
            seen = by_ref.get(update.ref)
            if seen is None:
                merged.append(update)
            elif seen != update:
                raise HookProtocolError(f"the hook and the request disagree about {update.ref!r}")
        return merged

    def _verdict(self) -> bytes:
        lines = [f"message {printable(r.ref)}: {r.reason}" if r.ref != "*" else f"message {r.reason}"
                 for r in self.rejections]
        lines.append("exit 1" if self.rejections else "exit 0")
        return ("\n".join(lines) + "\n").encode("utf-8", "replace")

    def _read_request(self) -> tuple[dict[str, str], list[RefUpdate]] | None:
        """Read up to the line `end`; anything that is not a well-formed line fails the push (fail closed)."""
        data = bytearray()
        while not (data == b"end\n" or data.endswith(b"\nend\n")):  # a whole line: "option frontend" is not it
            chunk = self.server_end.recv(65536)
            if not chunk:
                return None
            data += chunk
            if len(data) > MAX_REQUEST:
                raise HookProtocolError("hook request too large")
        env: dict[str, str] = {}
        updates: list[RefUpdate] = []
        for line in data.decode("utf-8", "surrogateescape").split("\n")[:-2]:  # split on LF only, drop "end"
            kind, _, rest = line.partition(" ")
            if kind == "env":
                name, _, value = rest.partition("=")
                if name not in _QUARANTINE_ENV or name in env:
                    raise HookProtocolError(f"unexpected hook environment line {name!r}")
                env[name] = value
            elif kind == "option":
                self.push_options.append(_readable(_unescape_option(rest)))
            elif kind == "update":
                old, _, rest = rest.partition(" ")
                new, _, ref = rest.partition(" ")
                if not (is_sha(old) and is_sha(new) and ref):
                    raise HookProtocolError("malformed ref update from the hook")
                updates.append(RefUpdate(old=old, new=new, ref=ref))
            else:
                raise HookProtocolError("malformed hook request")
        env = {name: value for name, value in env.items() if value}
        self._check_quarantine_paths(env)
        return env, updates

    def _check_quarantine_paths(self, env: dict[str, str]) -> None:
        root = self.ctx.repo_path.resolve()
        for name in ("GIT_QUARANTINE_PATH", "GIT_OBJECT_DIRECTORY"):
            if name in env and not Path(env[name]).resolve().is_relative_to(root):
                raise HookProtocolError("quarantine outside the repository")


def _named_twice(updates: list[RefUpdate]) -> list[Rejection]:
    """git applies the first of two commands for one ref and fails the second; the whole push is refused, as
    any push with a refused command is, and says why."""
    seen: set[str] = set()
    twice = list(dict.fromkeys(u.ref for u in updates if u.ref in seen or seen.add(u.ref)))
    if twice:
        log.warning("push refused: %s named more than once", ", ".join(repr(ref) for ref in twice))
    return [Rejection(ref, "this ref is named more than once in the push", "invalid") for ref in twice]


def _readable(text: str) -> str:
    """A push option is bytes to git; stored, it is text: a byte that is not UTF-8 becomes U+FFFD (as a lone
    surrogate PostgreSQL's JSON would refuse it, and the push's event and branch rows with it)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _unescape_option(text: str) -> str:
    """Undo the hook's escaping of push option values (`\\` and `\n`)."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append("\n" if text[i + 1] == "n" else text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
