"""Signed upload URLs: round trip, the exact 15-minute expiry on an injected clock, and every kind of tampering."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from control.services import signing
from storage.errors import Forbidden

SECRET = "s3cret-for-tests"
PATH = "organizations/org_1/repositories/demo/main/ver-1/src/app.py"
ISSUED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def signed(**overrides):
    values = {"secret": SECRET, "method": "PUT", "path": PATH, "file_id": "uf_1", "now": ISSUED, **overrides}
    return signing.sign(**values)


def check(sig, now=ISSUED, **overrides):
    values = {"secret": SECRET, "method": "PUT", "path": PATH, "file_id": sig.file_id, "expires": str(sig.expires),
              "signature": sig.signature, "now": now, **overrides}
    signing.verify(**values)


def test_a_fresh_signature_verifies():
    sig = signed()
    assert sig.method == "PUT" and sig.path == PATH and len(sig.signature) == 64
    assert sig.expires == int((ISSUED + timedelta(minutes=15)).timestamp())
    check(sig)


def test_expiry_is_exactly_fifteen_minutes_after_issue():
    sig = signed()
    check(sig, now=ISSUED + timedelta(minutes=15) - timedelta(microseconds=1))
    for later in (timedelta(minutes=15), timedelta(minutes=15, microseconds=1), timedelta(hours=3)):
        with pytest.raises(Forbidden, match="expired"):
            check(sig, now=ISSUED + later)


def test_an_issue_time_with_a_fraction_of_a_second_never_lives_longer():
    issued = ISSUED + timedelta(milliseconds=900)
    sig = signed(now=issued)
    with pytest.raises(Forbidden, match="expired"):
        check(sig, now=issued + timedelta(minutes=15))


@pytest.mark.parametrize("change", [
    {"method": "GET"}, {"method": "POST"}, {"method": "put"},
    {"path": PATH.replace("app.py", "other.py")}, {"path": PATH + "/"}, {"path": "/" + PATH},
    {"path": PATH.replace("main", "feature")}, {"file_id": "uf_2"}, {"secret": SECRET + "x"},
])
def test_a_signature_binds_method_path_file_and_secret(change):
    sig = signed()
    if change.get("method") == "put":
        check(sig, **change)  # methods are compared upper-cased
        return
    with pytest.raises(Forbidden, match="invalid"):
        check(sig, **change)


@pytest.mark.parametrize("expires", ["0", "-1", "", " 1", "1e9", "+1", "1.0", "9" * 13, "0x10"])
def test_malformed_expiry_is_refused(expires):
    with pytest.raises(Forbidden):
        check(signed(), expires=expires)


def test_a_later_expiry_does_not_verify():
    sig = signed()
    with pytest.raises(Forbidden, match="invalid"):
        check(sig, expires=str(sig.expires + 3600))


@pytest.mark.parametrize("mangle", [
    lambda s: s[:-1] + ("0" if s[-1] != "0" else "1"),
    lambda s: s.upper(),
    lambda s: s[:32],
    lambda s: s + "0",
    lambda s: "",
    lambda s: "é" * 64,
    lambda s: s[:63] + "\x00",
])
def test_tampered_signatures_are_refused(mangle):
    sig = signed()
    with pytest.raises(Forbidden):
        check(sig, signature=mangle(sig.signature))


@pytest.mark.parametrize("missing", ["file_id", "expires", "signature"])
def test_unsigned_requests_are_refused(missing):
    with pytest.raises(Forbidden, match="not signed"):
        check(signed(), **{missing: None})


def test_signatures_differ_per_file_and_issue_time():
    assert signed().signature != signed(file_id="uf_2").signature
    assert signed().signature != signed(now=ISSUED + timedelta(seconds=1)).signature
    assert signed().signature == signed().signature
