"""storage.push_scans.PushScans.once: one computation per key however many threads ask; an error is kept for
every later caller, except one met by work started ahead of the checks (`tentative()`), which the next caller
computes again."""
from __future__ import annotations

import threading

import pytest

from storage.push_scans import PushScans


class Missing(Exception):
    pass


def test_a_result_is_computed_once_and_shared_with_the_tentative_view():
    scans, calls = PushScans(), []
    ahead = scans.tentative()
    assert ahead.once(("k",), lambda: calls.append(1) or "paths") == "paths"
    assert scans.once(("k",), lambda: calls.append(2) or "other") == "paths"
    assert calls == [1]


def test_an_error_is_kept_for_every_later_caller():
    scans, calls = PushScans(), []

    def fail():
        calls.append(1)
        raise Missing()

    for _ in range(2):
        with pytest.raises(Missing):
            scans.once(("k",), fail)
    assert calls == [1]


def test_an_error_met_ahead_of_the_checks_is_not_kept():
    """The objects a diff lacked when it ran ahead may be in the repository by the time the check asks."""
    scans = PushScans()
    with pytest.raises(Missing):
        scans.tentative().once(("k",), lambda: (_ for _ in ()).throw(Missing()))
    assert scans.once(("k",), lambda: "found now") == "found now"
    with pytest.raises(Missing):  # the check's own error is kept as before
        PushScans().once(("j",), lambda: (_ for _ in ()).throw(Missing()))


def test_a_check_waiting_on_work_ahead_that_fails_computes_again():
    scans = PushScans()
    started, release = threading.Event(), threading.Event()

    def ahead():
        started.set()
        release.wait(10)
        raise Missing()

    failed = []
    runner = threading.Thread(target=lambda: failed.append(_raises(lambda: scans.tentative().once(("k",), ahead))))
    runner.start()
    assert started.wait(10)
    answer = []
    waiter = threading.Thread(target=lambda: answer.append(scans.once(("k",), lambda: "the check's own")))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # waiting on the work ahead, not computing beside it
    release.set()
    runner.join(10)
    waiter.join(10)
    assert failed == [True] and answer == ["the check's own"]


def _raises(call) -> bool:
    try:
        call()
    except Missing:
        return True
    return False
