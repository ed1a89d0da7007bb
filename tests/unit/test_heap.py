"""A worker gives back the memory a large transfer left in malloc's free lists (glibc only)."""
import threading

import pytest

from server import heap
from tests.support import commit_in, in_process_app

pytestmark = pytest.mark.skipif(heap._malloc_trim is None, reason="the C library has no malloc_trim (not glibc)")


def _private_dirty_kib() -> int:
    with open("/proc/self/smaps_rollup") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("Private_Dirty:"))


def _leave_freed_memory_in_a_thread_arena() -> list[bytes]:
    """Buffers of a streamed pack's size freed in a thread's own arena, under one still alive at the top so
    that glibc cannot give them back on its own."""
    kept = []

    def stream():
        buffers = [b"x" * (100 * 1024) for _ in range(300)]  # written, so resident
        kept.append(buffers[-1])
        del buffers

    thread = threading.Thread(target=stream)
    thread.start()
    thread.join()
    return kept


def test_a_large_transfer_returns_freed_memory():
    kept = _leave_freed_memory_in_a_thread_arena()
    before = _private_dirty_kib()
    heap.after_transfer(heap.LARGE_TRANSFER)
    assert before - _private_dirty_kib() > 15 * 1024
    assert kept


def test_a_small_transfer_does_not_trim():
    kept = _leave_freed_memory_in_a_thread_arena()
    before = _private_dirty_kib()
    heap.after_transfer(heap.LARGE_TRANSFER - 1)
    assert before - _private_dirty_kib() < 5 * 1024
    assert kept


@pytest.fixture
def served_repo(tmp_path):
    client, auth, path = in_process_app(tmp_path, "heap", "read")
    return client, auth, commit_in(path, "main")


def _fetch(client, auth, commit) -> bytes:
    want = f"want {commit}\n".encode()
    body = b"%04x" % (len(want) + 4) + want + b"0000" + b"0009done\n"
    response = client.post("/heap/r.git/git-upload-pack", data=body, headers={
        **auth, "Content-Type": "application/x-git-upload-pack-request"})
    assert response.status_code == 200
    return response.get_data()


@pytest.mark.parametrize("threshold, trims", [(1, 1), (1 << 40, 0)])
def test_the_git_app_trims_after_a_transfer_past_the_threshold(served_repo, monkeypatch, threshold, trims):
    client, auth, commit = served_repo
    calls = []
    monkeypatch.setattr(heap, "LARGE_TRANSFER", threshold)
    monkeypatch.setattr(heap, "_malloc_trim", calls.append)
    assert b"PACK" in _fetch(client, auth, commit)
    assert len(calls) == trims
