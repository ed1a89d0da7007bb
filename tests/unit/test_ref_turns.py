"""Turns among the writers of one ref (storage/ref_turns.py), between threads and between processes."""
from __future__ import annotations

import subprocess
import threading
import time

from storage.ref_turns import TURNS_DIR, ref_turn, remove_idle_turns, turn_file


def test_a_writer_waits_for_the_turn_another_thread_holds(tmp_path):
    events = []
    holding = threading.Event()

    def first():
        with ref_turn(tmp_path, "refs/heads/main", time.monotonic() + 5) as got:
            events.append(("first in", got))
            holding.set()
            time.sleep(0.3)
            events.append(("first out", True))

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait(5)
    with ref_turn(tmp_path, "refs/heads/main", time.monotonic() + 5) as got:
        events.append(("second in", got))
    thread.join()
    assert events == [("first in", True), ("first out", True), ("second in", True)]


def test_a_writer_waits_for_the_turn_another_process_holds(tmp_path):
    path = turn_file(tmp_path, "refs/heads/main")
    path.parent.mkdir()
    holder = subprocess.Popen(["flock", str(path), "-c", "echo held; sleep 0.5"], stdout=subprocess.PIPE)
    assert holder.stdout.readline() == b"held\n"
    with ref_turn(tmp_path, "refs/heads/main", time.monotonic() + 5) as got:
        assert got and holder.poll() is not None  # it had ended (and let the turn go) first
    holder.wait()


def test_past_its_deadline_a_writer_goes_on_without_the_turn(tmp_path):
    with ref_turn(tmp_path, "refs/heads/main", time.monotonic() + 5) as first:
        started = time.monotonic()
        with ref_turn(tmp_path, "refs/heads/main", started + 0.2) as second:
            assert first and not second
            assert time.monotonic() - started >= 0.2


def test_writers_of_other_refs_do_not_wait(tmp_path):
    with ref_turn(tmp_path, "refs/heads/main", time.monotonic() + 5) as first:
        with ref_turn(tmp_path, "refs/heads/other", time.monotonic()) as second:
            assert first and second
    assert turn_file(tmp_path, "refs/heads/main") != turn_file(tmp_path, "refs/heads/other")


def test_without_a_repository_directory_the_block_runs_without_a_turn(tmp_path):
    ran = []
    with ref_turn(tmp_path / "gone.git", "refs/heads/main", time.monotonic() + 5) as got:
        ran.append(got)
    assert ran == [False]
    assert not (tmp_path / "gone.git").exists()


def test_idle_turn_files_are_removed_and_held_ones_stay(tmp_path):
    with ref_turn(tmp_path, "refs/heads/main", time.monotonic() + 5):
        with ref_turn(tmp_path, "refs/heads/deleted-long-ago", time.monotonic() + 5):
            pass
        assert remove_idle_turns(tmp_path) == 1
        assert turn_file(tmp_path, "refs/heads/main").exists()
        assert not turn_file(tmp_path, "refs/heads/deleted-long-ago").exists()
    assert remove_idle_turns(tmp_path) == 1
    assert list((tmp_path / TURNS_DIR).iterdir()) == []
    with ref_turn(tmp_path, "refs/heads/main", time.monotonic() + 5) as got:  # made again on the next write
        assert got
    assert remove_idle_turns(tmp_path / "gone.git") == 0


def test_turns_stay_one_at_a_time_while_idle_files_are_removed(tmp_path):
    """A writer that opened a turn file just before it was removed as idle would hold a turn nobody else can
    see: it must notice and take the new file's."""
    inside, most, stop = [0], [0], threading.Event()
    guard = threading.Lock()

    def writer():
        for _ in range(60):
            with ref_turn(tmp_path, "refs/heads/main", time.monotonic() + 10) as got:
                assert got
                with guard:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                time.sleep(0.0005)
                with guard:
                    inside[0] -= 1

    def remover():
        while not stop.is_set():
            remove_idle_turns(tmp_path)

    cleaner = threading.Thread(target=remover)
    cleaner.start()
    writers = [threading.Thread(target=writer) for _ in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    cleaner.join()
    assert most[0] == 1
