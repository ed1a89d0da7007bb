"""Run the operator's agent program for an extension run: in its own directory and process group, with the prompt
on its standard input, a clean environment, a deadline, and its output kept in files (read back bounded)."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from storage.process_groups import kill_group

OUTPUT_KEPT = 64 * 1024  # bytes of the program's standard output a run's result keeps (its end)
ERRORS_KEPT = 4 * 1024  # bytes of its standard error a failed run's error keeps (its end)
BEAT_SECONDS = 15  # how often a running program's run says it is alive
REDACTED = "[redacted]"
SHARED_SCRATCH = (Path("/tmp"), Path("/var/tmp"))  # every process's: other runs' files, the server's scratch files


@dataclass(frozen=True)
class AgentOutcome:
    exit_code: int | None  # None: it did not end by itself (deadline, or the run was taken away)
    stdout: str
    stderr: str
    timed_out: bool = False
    lost: bool = False  # the run's claim was lost while the program ran (another job took it up)


def prompt_title(prompt: str, otherwise: str) -> str:
    """A prompt's first non-blank line: a run's commit title, and its name where it has none."""
    return next((line.strip() for line in prompt.splitlines() if line.strip()), otherwise)


def agent_env(run_dir: Path, passed: Mapping[str, str], run_values: Mapping[str, str]) -> dict[str, str]:
    """Nothing of the server's environment but PATH and the locale, and the variables the operator passes on."""
    env = {name: os.environ[name] for name in ("PATH", "LANG", "LC_ALL", "TZ") if name in os.environ}
    env.update({"HOME": str(run_dir / "home"), "TMPDIR": str(run_dir / "tmp")})
    env.update(passed)
    env.update(run_values)
    return env


def in_sandbox(argv: Sequence[str], run_dir: Path, workdir: Path, hidden: Sequence[Path],
               scratch: Sequence[Path] = SHARED_SCRATCH, network: bool = True) -> list[str]:
    """`argv` under bubblewrap: the whole file system read-only, the `hidden` directories (the server's data:
    repositories, database, keys) replaced by empty ones, `scratch` (/tmp: what other runs and the server leave
    there) by the run's own `tmp` (on disk, gone with the run; in memory where the run directory is itself in
    one of them), the run's own directory writable, a process
    namespace of its own (nothing it starts outlives it, nor it the server's process that started it). The
    program's own files stay where they are, should they be in a scratch directory. Without `network`, a network
    namespace of its own with nothing in it (not even the host's loopback, where its database and Redis may be)."""
    command = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for directory in scratch:
        if directory.is_dir():  # a run directory inside it would hold the bind in itself (a loop): a tmpfs then
            own = ["--tmpfs"] if run_dir.is_relative_to(directory) else ["--bind", str(run_dir / "tmp")]
            command += [*own, str(directory)]
    for kept in _program_roots(argv, scratch):
        command += ["--ro-bind", str(kept), str(kept)]
    for directory in hidden:
        command += ["--tmpfs", str(directory)]
    command += ["--bind", str(run_dir), str(run_dir)]
    for directory in hidden:  # after the bind, which makes its mount point in one of them
        command += ["--remount-ro", str(directory)]
    if not network:
        command += ["--unshare-net"]
    command += ["--chdir", str(workdir), "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session",
                "--", *argv]
    return command


def _program_roots(argv: Sequence[str], scratch: Sequence[Path]) -> list[Path]:
    """The top directories in `scratch` holding the program or the files its arguments name (a checkout under
    /tmp, say), as they are and as their links lead."""
    named = [Path(shutil.which(argv[0]) or argv[0]), *(Path(arg) for arg in argv[1:] if os.path.isabs(arg))]
    roots = []
    for path in named + [path.resolve() for path in named]:
        for directory in scratch:
            if path.is_relative_to(directory) and path != directory and path.exists():
                root = directory / path.relative_to(directory).parts[0]
                if root not in roots:
                    roots.append(root)
    return roots


def run_agent(argv: Sequence[str], workdir: Path, run_dir: Path, prompt: str, env: Mapping[str, str],
              timeout: float, beat: Callable[[], bool], secrets: Sequence[str] = ()) -> AgentOutcome:
    """`beat()` is called every BEAT_SECONDS while the program runs; False stops it (the run is no longer ours).
    Values in `secrets` are blanked out of what is read back."""
    for name in ("home", "tmp"):  # before the program starts: its sandbox binds this tmp at /tmp
        (run_dir / name).mkdir(exist_ok=True)
    prompt_path, out_path, err_path = run_dir / "prompt", run_dir / "stdout", run_dir / "stderr"
    prompt_path.write_text(prompt, encoding="utf-8")
    with open(prompt_path, "rb") as stdin, open(out_path, "wb") as stdout, open(err_path, "wb") as stderr:
        try:
            process = subprocess.Popen(list(argv), cwd=workdir, env=dict(env), stdin=stdin, stdout=stdout,
                                       stderr=stderr, start_new_session=True)
        except OSError as error:
            return AgentOutcome(None, "", f"the agent program ({argv[0]}) could not be started: {error.strerror}")
        deadline = time.monotonic() + timeout
        timed_out = lost = False
        try:
            while True:
                try:
                    process.wait(timeout=max(0.0, min(BEAT_SECONDS, deadline - time.monotonic())))
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() >= deadline:
                        timed_out = True
                        break
                    if not beat():
                        lost = True
                        break
        finally:
            kill_group(process)  # whatever it started in the background goes with it
    code = None if timed_out or lost else process.returncode
    return AgentOutcome(code, _tail(out_path, OUTPUT_KEPT, secrets), _tail(err_path, ERRORS_KEPT, secrets),
                        timed_out=timed_out, lost=lost)


def _tail(path: Path, limit: int, secrets: Sequence[str]) -> str:
    """The end of a file, secrets blanked: read with room before it for the longest secret, whose occurrences are
    then replaced whole; a secret's end left at the start of what was read (its beginning was before) goes too."""
    secrets = [secret.encode() for secret in secrets if secret]
    room = max((len(secret) for secret in secrets), default=0)
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        start = max(0, handle.tell() - limit - room)
        handle.seek(start)
        data = handle.read()
    if start:
        data = data[max((_end_of(secret, data) for secret in secrets), default=0):]
    for secret in secrets:
        data = data.replace(secret, REDACTED.encode())
    return data[-limit:].decode("utf-8", "replace")


def _end_of(secret: bytes, data: bytes) -> int:
    """How long an end of `secret` that `data` starts with is."""
    return next((size for size in range(len(secret) - 1, 0, -1) if data.startswith(secret[-size:])), 0)
