"""Run `git upload-pack` / `git receive-pack` with --stateless-rpc, streaming both ways."""
from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from storage.git_env import GIT, clean_git_env

log = logging.getLogger(__name__)
READ_SIZE = 64 * 1024


class RepositoryGone(Exception):
    """The repository's directory went away (the repository was deleted) after the request found it."""


class GitProcess:
    """A git service subprocess whose stdin is fed from an iterable on a thread while stdout is read."""

    def __init__(self, repo_path: Path, args: Sequence[str], env: Mapping[str, str], pass_fds: Sequence[int] = ()):
        self.stderr = tempfile.TemporaryFile()
        self.started = time.time()
        try:
            self.proc = subprocess.Popen(
                [GIT, *args],
                cwd=repo_path,
                env=clean_git_env(env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                pass_fds=tuple(pass_fds),
            )
        except FileNotFoundError:
            self.stderr.close()
            if not Path(repo_path).is_dir():
                raise RepositoryGone(str(repo_path)) from None
            raise
        self.input_error: Exception | None = None
        self.input_done = threading.Event()  # the whole request body was read (or failed): see input_complete
        self.bytes_fed = 0
        self.bytes_out = 0
        self.exited = threading.Event()
        self._writer: threading.Thread | None = None

    def feed(self, chunks: Iterable[bytes], observe: Callable[[bytes], None] | None = None,
             then: Callable[[], None] | None = None) -> None:
        """Write `chunks` to git's stdin on a thread, then close it; `then` runs next on that thread."""
        def write() -> None:
            stdin = self.proc.stdin
            try:
                for chunk in chunks:
                    if observe is not None:
                        observe(chunk)
                    stdin.write(chunk)
                    self.bytes_fed += len(chunk)
            except BrokenPipeError:
                pass
            except Exception as error:  # a broken or oversized request body: git sees a truncated stream
                self.input_error = error
            finally:
                self.input_done.set()
                try:
                    stdin.close()
                except OSError:
                    pass
            if then is not None:
                try:
                    then()
                except Exception:
                    log.exception("after feeding %s", self.proc.args)

        self._writer = threading.Thread(target=write, name="git-stdin", daemon=True)
        self._writer.start()

    def input_complete(self, timeout: float) -> bool:
        """Whether the request body was read to its end without an error, waiting up to `timeout` seconds. git may
        have all it needs before the body is known to be whole (a pack complete, then a gzip trailer missing or
        the chunked framing cut off): what git got must not be acted on before this is True."""
        return self.input_done.wait(timeout) and self.input_error is None

    def close_input(self) -> None:
        self.proc.stdin.close()

    def output(self) -> Iterator[bytes]:
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, READ_SIZE)
            if not chunk:
                return
            self.bytes_out += len(chunk)
            yield chunk

    def wait(self) -> int:
        code = self.proc.wait()
        self.exited.set()
        if self._writer is not None:
            self._writer.join()
        return code

    def stderr_tail(self, limit: int = 4096) -> str:
        self.stderr.seek(0, os.SEEK_END)
        size = self.stderr.tell()
        self.stderr.seek(max(0, size - limit))
        return self.stderr.read().decode("utf-8", "replace")

    def terminate(self) -> None:
        """SIGTERM first: git removes its quarantine and lock files on SIGTERM, not on SIGKILL."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.wait()

    def cleanup(self) -> None:
        self.terminate()
        self.proc.stdout.close()
        self.stderr.close()
