"""Repositories whose branch rows may be behind their refs, marked by a file in the repository's directory: the ask
for their reconcile outlives a queue that loses its jobs (Redis restarted without its data, a failover), and the
database, which was away when the rows could not be written, is not where it can be kept.

A ref change whose rows are not written yet is marked too, from before its ref moves until its rows are committed,
by a file naming the processes that make it: one killed in between (a worker killed by an operator, the OOM killer,
gunicorn's timeout) leaves the ref moved and the rows behind, and its mark becomes an ask for a reconcile once
none of those processes lives (`ask_for_abandoned_changes`)."""
from __future__ import annotations

import functools
import hashlib
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Sequence

MARK = "driftstone-reconcile-asked"
CHANGING = "driftstone-changing-"
ORPHAN_WAIT_SECONDS = 5.0  # a receive-pack whose worker died ends within milliseconds: its ref update, then SIGPIPE
FOREIGN_CHANGE_SECONDS = 15 * 60  # no change lasts this long (a request is cut at 120 s); its owners cannot be seen


def mark(repo_path: Path) -> None:
    (repo_path / MARK).touch()


def mark_time(repo_path: Path) -> int | None:
    try:
        return (repo_path / MARK).stat().st_mtime_ns
    except FileNotFoundError:
        return None


def unmark_if_unchanged(repo_path: Path, seen: int | None) -> None:
    """Remove the mark a reconcile found before it read the refs; one renewed since asks for another."""
    if seen is not None and mark_time(repo_path) == seen:
        (repo_path / MARK).unlink(missing_ok=True)


def marked_repositories(repos_root: Path) -> list[str]:
    """The ids of the marked repositories under a repository store's root (`<fan-out>/<id>.git`)."""
    return sorted(mark_path.parent.name[:-len(".git")] for mark_path in repos_root.glob(f"*/*.git/{MARK}"))


def begin_change(repo_path: Path, also: Sequence[int] = ()) -> Path:
    """Mark a ref change about to be made by this process (and the processes `also` names: a receive-pack that
    moves the refs itself); raises OSError where the mark cannot be written (the repository is gone, a full disk).
    The owners are in the file's name, which appears whole (a half-written content would read as no owner), after
    where their pids mean something: a host's boot and a pid namespace (a job worker in another container, or on
    another host sharing the disk, would find none of them alive)."""
    owners = [(pid, _start_time(pid)) for pid in (os.getpid(), *also)]
    owners = owners[:1] + [owner for owner in owners[1:] if owner[1]]  # one that has ended already moves nothing
    named = "-".join(f"{pid}.{start}" for pid, start in owners)
    change = repo_path / f"{CHANGING}{_where()}-{named}-{uuid.uuid4().hex[:12]}"
    change.touch(exist_ok=False)
    return change


def end_change(change: Path) -> None:
    """The change's rows are written (or it moved nothing): its mark goes."""
    change.unlink(missing_ok=True)


def ask_for_abandoned_changes(repos_root: Path) -> list[str]:
    """Turn the change marks whose processes all died into reconcile marks; the ids of those repositories. A mark
    made where this process cannot see its owners (another pid namespace or host) is judged by its age; one from
    before this host's last boot is abandoned."""
    asked = set()
    here = _where()
    for change in repos_root.glob(f"*/*.git/{CHANGING}*"):
        try:
            if _abandoned(change, here):
                mark(change.parent)
                end_change(change)
                asked.add(change.parent.name[:-len(".git")])
        except OSError:  # the repository was purged meanwhile, or its directory cannot be written: the others go on
            continue
    return sorted(asked)


def _abandoned(change: Path, here: str) -> bool:
    parsed = _parse(change.name)
    if parsed is None:
        return False
    where, owners = parsed
    if where != here:
        host, boot, _ = where.split(".")
        this_host, this_boot, _ = here.split(".")
        if host == this_host and boot != this_boot:
            return True  # made before this host's last boot: nothing of it runs
        return time.time() - change.stat().st_mtime > FOREIGN_CHANGE_SECONDS
    if _alive(owners[0]):
        return False
    deadline = time.monotonic() + ORPHAN_WAIT_SECONDS
    while any(_alive(owner) for owner in owners[1:]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(_alive(owner) for owner in owners[1:])  # a git still at work: the next ask looks again


def _parse(name: str) -> tuple[str, list[tuple[int, str]]] | None:
    parts = name[len(CHANGING):].split("-")
    if len(parts) < 3 or parts[0].count(".") != 2:
        return None
    try:
        owners = [(int(pid), start) for pid, _, start in (part.partition(".") for part in parts[1:-1])]
    except ValueError:
        return None
    return parts[0], owners


@functools.cache
def _where() -> str:
    """This host (a hash of its name), its boot, and this process's pid namespace: `host.boot.namespace`, read once
    per process (a forked worker reads its own), not on every ref change."""
    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:12]
    except OSError:
        boot = "0"
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = "0"
    return f"{host}.{boot}.{namespace}"


os.register_at_fork(after_in_child=_where.cache_clear)  # a child may be in a pid namespace of its own


def _start_time(pid: int) -> str:
    """When the process started (clock ticks since boot): a pid the kernel gave to a new process names another."""
    stat = _stat_fields(pid)
    return stat[19] if stat and len(stat) > 19 else ""


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command's name (state first), None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read().decode("ascii", "replace")
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def _alive(owner: tuple[int, str]) -> bool:
    pid, start = owner
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    stat = _stat_fields(pid)
    if stat is None:
        return os.path.exists(f"/proc/{pid}") or not start  # there but unreadable (hidepid): alive
    return stat[0] not in ("Z", "X") and (not start or (len(stat) > 19 and stat[19] == start))
