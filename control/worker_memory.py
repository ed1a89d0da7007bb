"""Replace a worker whose memory has grown, once it has nothing in hand (what uWSGI's reload-on-rss and GitLab's
Puma worker killer do for the same reason).

Workers fork from a master that has built the application, and share its pages until they write to them. Serving
writes to them: CPython's reference counts dirty the pages of every object a request touches, and streaming packs
leaves pages in glibc's arenas. A worker holds ~12 MiB of its own once started, 15-16 MiB after small requests,
20-22 MiB after a 200 MiB push and two clones, and the master's own grows with them (the pages they copied are its
alone again): a server that has served large transfers idles ~10-20 MiB above a fresh one (bench/RESULTS.md). A
worker forked anew shares the master's pages again. So a worker that has served a large transfer
(server/heap.py) and then holds more than a limit of its own exits once it has no connection, no request in
flight and no job of the in-process queue queued, running or waiting for a retry; gunicorn's master forks its
replacement at once. Small requests alone never retire a worker: each retirement costs a fork and a start-up
job, and a limit near a warm worker's size would retire it again and again (77 times in 40 s of small clones).
"""
from __future__ import annotations

WATCH_SECONDS = 2.0  # reading smaps_rollup makes the kernel walk the worker's page tables (~1 ms)


def private_bytes() -> int | None:
    """The memory only this process holds (its private clean and dirty pages), or None where /proc cannot tell."""
    total = 0
    try:
        with open("/proc/self/smaps_rollup", "rb") as rollup:
            for line in rollup:
                name, _, rest = line.partition(b":")
                if name in (b"Private_Clean", b"Private_Dirty"):
                    total += int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return total


class MemoryWatch:
    """Whether the process holds more than `limit` bytes of private memory after a large transfer (a warm worker
    holds 13-16 MiB after small requests, a limit near that would replace it again and again): read once idle
    after each, and at most once every WATCH_SECONDS."""

    def __init__(self, limit: int, read=private_bytes):
        self.limit = limit
        self._read = read
        self.last: int | None = None
        self._transfers_seen = 0
        self._next_look = 0.0

    def outgrown(self, now: float, large_transfers: int) -> bool:
        if large_transfers == self._transfers_seen or now < self._next_look:
            return False
        self._next_look = now + WATCH_SECONDS
        self.last = self._read()
        if self.last is not None and self.last > self.limit:
            return True
        self._transfers_seen = large_transfers
        return False
