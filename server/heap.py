"""Give the memory a large transfer left in malloc's free lists back to the system.

Streaming a pack through a worker frees its buffers in several of glibc's per-thread arenas, which keep
the freed pages: a worker that served a 200 MiB push and two clones held 9 MiB more than it needed until
`malloc_trim` returned them (PSS 50 -> 41 MiB, bench/RESULTS.md). Trimming walks every arena, so it runs
only after transfers large enough to have grown them.
"""
from __future__ import annotations

import ctypes
import ctypes.util
LARGE_TRANSFER = 16 * 1024 * 1024


def _load_trim():
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


_malloc_trim = _load_trim()  # None where the C library has no malloc_trim (musl, macOS)
_large_transfers = 0


def after_transfer(size: int) -> None:
    global _large_transfers
    if size < LARGE_TRANSFER:
        return
    _large_transfers += 1  # two at once may count one: the next counts again
    if _malloc_trim is not None:
        _malloc_trim(0)


def large_transfers() -> int:
    """How many transfers of LARGE_TRANSFER or more this process has served (control/worker_memory.py)."""
    return _large_transfers
