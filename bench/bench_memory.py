"""Peak memory of a whole process tree: the sum of the RSS of a root process and all its descendants, and
on request the sum of their PSS (proportional set size, /proc/PID/smaps_rollup: each page shared by N
processes counts 1/N in each), which is what the tree really holds: the RSS sum counts a page shared by
forked workers, or a pack mmapped by several git processes, once per process. Of the PSS, the anonymous
part (`Pss_Anon`: heaps and stacks) is what the processes allocated; the rest is files they map, above all
the pack files git reads through mmap: page cache, which the kernel keeps whether mapped or not.

Reading PSS makes the kernel walk each process's page tables: ~1 ms per Python worker, ~5 ms a sample for
Driftstone's tree against a fraction of that for lighttpd's small one, so it would slow the server it
measures more than the reference. Timed runs therefore sample RSS only; PSS is sampled in untimed runs.

A thread reads /proc every ~20 ms while an operation runs. Descendants are found through each
process's parent id (so processes spawned by any thread of a worker are counted), and the RSS is
field 24 of /proc/PID/stat. Processes that start and end between two samples are missed, as with any
sampler.

One exception: a child that has not yet called exec (subprocess's vfork, whose child runs in its
parent's memory until exec) reports its parent's RSS although it owns no memory of its own; under a
loaded CPU such children wait for a core long enough to be sampled, several at a time. A child whose
executable and /proc/PID/statm equal its parent's at that instant is taken for one and not counted.
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

    def __init__(self, root: int, pss: bool = False):
        self.root = root
        self.pss = pss
        self.outside: set[int] = set()
        self.pss_total = 0
        self.anon_total = 0  # the anonymous part of pss_total

    def members(self) -> set[int]:
        self.read()
        return self._members

    def read(self) -> tuple[int, int]:
        """(sum of RSS in bytes, number of processes) of the root and its descendants; with `pss`, their PSS
        sum is left in `pss_total` and its anonymous part in `anon_total`."""
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
        self.rss_by_pid = {}
        while todo:
            pid = todo.pop()
            members.add(pid)
            todo.extend(children.get(pid, ()))
            if pid != self.root and _not_yet_executed(pid, stats[pid][0]):
                continue
            total += stats[pid][1]
            self.rss_by_pid[pid] = stats[pid][1]
        self.outside.update(pid for pid in stats if pid not in members)
        self._members = members
        if self.pss:
            shares = [_pss(pid) for pid in self.rss_by_pid]
            self.pss_total = sum(pss for pss, _ in shares)
            self.anon_total = sum(anon for _, anon in shares)
        return total, len(members)


def _pss(pid: int) -> tuple[int, int]:
    """(PSS, its anonymous part) in bytes of one process; zeros once it has gone."""
    fields = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                name, _, rest = line.partition(b":")
                if name in (b"Pss", b"Pss_Anon"):
                    fields[name] = int(rest.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return fields.get(b"Pss", 0), fields.get(b"Pss_Anon", 0)


def _not_yet_executed(pid: int, ppid: int) -> bool:
    """Whether `pid` still runs its parent's image in its parent's memory (between vfork and exec)."""
    try:
        if os.readlink(f"/proc/{pid}/exe") != os.readlink(f"/proc/{ppid}/exe"):
            return False
        with open(f"/proc/{pid}/statm", "rb") as child, open(f"/proc/{ppid}/statm", "rb") as parent:
            return child.read() == parent.read()
    except OSError:
        return False


def breakdown(rss_by_pid: dict[int, int]) -> dict[str, tuple[int, int]]:
    """Processes and RSS per command name ("git-receive-pack", "python3.11", ...)."""
    out: dict[str, tuple[int, int]] = {}
    for pid, rss in rss_by_pid.items():
        try:
            with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
                name = handle.read().strip()
        except OSError:
            name = "?"
        count, total = out.get(name, (0, 0))
        out[name] = (count + 1, total + rss)
    return out


def tree_memory(root: int) -> tuple[int, int, int]:
    """(RSS sum, PSS sum, anonymous PSS sum) in bytes of a process tree now."""
    reader = TreeReader(root, pss=True)
    rss = reader.read()[0]
    return rss, reader.pss_total, reader.anon_total


class PeakSampler:
    """`with PeakSampler(pid) as peak: ...` then `peak.peak_bytes` (RSS sum), `peak.peak_pss_bytes` (PSS sum,
    with `pss=True`; its own peak, which need not be the same sample's; `peak.peak_anon_bytes` that of its
    anonymous part), `peak.max_processes`, `peak.samples`,
    and `peak.cpu_seconds` (CPU the tree used meanwhile, read a moment after the block so that the
    server has reaped its git children)."""

    def __init__(self, root_pid: int | None, interval: float = 0.02, pss: bool = False):
        self.root = root_pid
        self.interval = interval
        self.peak_bytes = 0
        self.peak_pss_bytes = 0
        self.peak_anon_bytes = 0
        self.peak_breakdown: dict[str, tuple[int, int]] = {}  # command -> (processes, bytes) at the peak
        self.max_processes = 0
        self.samples = 0
        self.cpu_seconds = 0.0
        self._reader = TreeReader(root_pid, pss=pss) if root_pid is not None else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        total, count = self._reader.read()
        self.samples += 1
        self.peak_pss_bytes = max(self.peak_pss_bytes, self._reader.pss_total)
        self.peak_anon_bytes = max(self.peak_anon_bytes, self._reader.anon_total)
        if total > self.peak_bytes:
            self.peak_bytes = total
            self.peak_breakdown = breakdown(self._reader.rss_by_pid)
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
