"""Turns among the writers of one ref (storage/ref_turns.py), between threads and between processes."""
from __future__ import annotations

import subprocess
import threading
import time

from storage.ref_turns import ref_turn, turn_file


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
