"""A push whose checks cannot run is refused ref by ref with the reason, not "not applied: * was refused".

In-process (werkzeug's test client on the real application, real git and its real pre-receive hook): the
checks are made to fail with a spy, since nothing a client sends makes them crash.
"""
from __future__ import annotations

import pytest

from server import hook_channel
from tests.support import commit_in, in_process_app

ZERO = "0" * 40


def _deletes(*branches_and_shas: tuple[str, str]) -> bytes:
    lines = []
    for index, (branch, sha) in enumerate(branches_and_shas):
        line = f"{sha} {ZERO} refs/heads/{branch}" + ("\0report-status" if index == 0 else "") + "\n"
        lines.append(b"%04x" % (len(line.encode()) + 4) + line.encode())
    return b"".join(lines) + b"0000"


def _database_gone() -> Exception:
    from sqlalchemy.exc import OperationalError

    return OperationalError("select", {}, Exception("the database went away"))


@pytest.mark.parametrize("failure,reason", [
    (lambda: RuntimeError("the database went away"), "internal error while checking the push"),
    (_database_gone, "the server's database is unavailable: nothing was applied, try again shortly"),
])
def test_every_ref_reads_why_the_push_was_refused(tmp_path, monkeypatch, failure, reason):
    """A database outage read as "internal error while checking the push" (failure-injection sweep)."""
    client, auth, path = in_process_app(tmp_path, "whole", "admin")
    commit_in(path, "main")
    shas = [(branch, commit_in(path, branch)) for branch in ("one", "two")]

    def broken(*_args, **_kwargs):
        raise failure()

    monkeypatch.setattr(hook_channel, "run_checks", broken)
    response = client.post("/whole/r.git/git-receive-pack", data=_deletes(*shas), headers={
        **auth, "Content-Type": "application/x-git-receive-pack-request"})
    report = response.get_data()
    assert response.status_code == 200
    for branch, _sha in shas:
        assert f"ng refs/heads/{branch} {reason}".encode() in report
    assert b"*" not in report
    assert b"the database went away" not in report

