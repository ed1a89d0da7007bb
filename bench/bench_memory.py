"""Peak memory of a whole process tree: the sum of the RSS of a root process and all its descendants.

A thread reads /proc every ~20 ms while an operation runs. Descendants are found through each
process's parent id (so processes spawned by any thread of a worker are counted), and the RSS is
field 24 of /proc/PID/stat. Processes that start and end between two samples are missed, as with any
sampler; shared pages (forked workers, a pack mmapped by several git processes) count once per process.
"""
from __future__ import annotations

import os
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


TICK = os.sysconf("SC_CLK_TCK")


def _fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (field 3 onwards), or None once it has gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2:].split()


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, rss bytes) of one process."""
    fields = _fields(pid)
    return None if fields is None else (int(fields[1]), int(fields[21]) * PAGE)


def tree_cpu(root: int) -> float:
    """CPU seconds used so far by the tree: user + system time of each live process plus that of the
    children it has reaped (so git processes that ran and ended under a worker or lighttpd count)."""
    total = 0
    for pid in TreeReader(root).members():
        fields = _fields(pid)
        if fields is not None:
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / TICK


class TreeReader:
    """Sums the RSS of a process tree. Processes known to be outside the tree are not read again (a
    process never moves into another tree), so a sample costs one read per new or member process."""

    def __init__(self, root: int):
        self.root = root
        self.outside: set[int] = set()

    def members(self) -> set[int]:
        self.read()
        return self._members

    def read(self) -> tuple[int, int]:
        """(sum of RSS in bytes, number of processes) of the root and its descendants."""
        pids = [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()]
        self.outside.intersection_update(pids)
        stats = {}
        for pid in pids:
            if pid in self.outside:
                continue
            stat = _stat(pid)
            if stat is not None:
                stats[pid] = stat
        self._members: set[int] = set()
        if self.root not in stats:
            return 0, 0
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        total, members, todo = 0, set(), [self.root]
        while todo:
            pid = todo.pop()
            total += stats[pid][1]
            members.add(pid)
            todo.extend(children.get(pid, ()))
        self.outside.update(pid for pid in stats if pid not in members)
        self._members = members
        return total, len(members)


def tree_rss(root: int) -> tuple[int, int]:
    return TreeReader(root).read()


class PeakSampler:
    """`with PeakSampler(pid) as peak: ...` then `peak.peak_bytes`, `peak.max_processes`, `peak.samples`,
    and `peak.cpu_seconds` (CPU the tree used meanwhile, read a moment after the block so that the
    server has reaped its git children)."""

    def __init__(self, root_pid: int | None, interval: float = 0.02):
        self.root = root_pid
        self.interval = interval
        self.peak_bytes = 0
        self.max_processes = 0
        self.samples = 0
        self.cpu_seconds = 0.0
        self._reader = TreeReader(root_pid) if root_pid is not None else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        total, count = self._reader.read()
        self.samples += 1
        self.peak_bytes = max(self.peak_bytes, total)
        self.max_processes = max(self.max_processes, count)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self._sample()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def __enter__(self) -> "PeakSampler":
        if self.root is not None:
            self._cpu_start = tree_cpu(self.root)
            self._sample()
            self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10)
            self._sample()
            time.sleep(0.15)
            self.cpu_seconds = tree_cpu(self.root) - self._cpu_start
