"""The rules for repository URLs the server itself reads (DESIGN.md), on hostile URLs. Resolution is real (the
names used resolve on any machine: IP literals and localhost); nothing is fetched."""
from __future__ import annotations

import pytest

from storage.git_remote import RemoteRefused, checked_remote, shown


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/x.git", "https://[::1]/x.git", "https://localhost/x.git", "https://10.1.2.3/x.git",
    "https://192.168.0.1/x.git", "https://169.254.169.254/latest/meta-data", "https://[fe80::1]/x.git",
    "https://0.0.0.0/x.git", "https://224.0.0.1/x.git", "https://[::ffff:127.0.0.1]/x.git",
    # IPv6 addresses carrying a private IPv4 one that a NAT64 gateway or a 6to4 relay delivers to
    "https://[64:ff9b::7f00:1]/x.git", "https://[64:ff9b::a9fe:a9fe]/latest", "https://[2002:a00:1::1]/x.git",
    "https://[2002:7f00:1::]/x.git", "https://[::127.0.0.1]/x.git", "https://[::ffff:10.0.0.1]/x.git",
    # NAT64's local-use prefix, deprecated site-local, Teredo, documentation
    "https://[64:ff9b:1::808:808]/x.git", "https://[fec0::1]/x.git", "https://[2001:0:4136:e378::1]/x.git",
    "https://[2001:db8::1]/x.git",
])
def test_addresses_that_are_not_public_are_refused(url):
    with pytest.raises(RemoteRefused, match="not public"):
        checked_remote(url)
    assert checked_remote(url, allow_private=True).address


@pytest.mark.parametrize("url, says", [
    ("http://8.8.8.8/x.git", "only https"), ("file:///etc/passwd", "only https"), ("ext::sh -c id", "only https"),
    ("ssh://git@8.8.8.8/x.git", "only https"), ("git://8.8.8.8/x.git", "only https"),
    ("https://u:p@8.8.8.8/x.git", "credentials"), ("https:///x.git", "no host"), ("https://[/x", "not a URL"),
    ("https://8.8.8.8:99999/x", "not a URL"),
])
def test_other_transports_credentials_and_malformed_urls_are_refused(url, says):
    with pytest.raises(RemoteRefused, match=says):
        checked_remote(url)


@pytest.mark.parametrize("url", [
    "https://[64:ff9b::808:808]/x.git", "https://[2002:808:808::1]/x.git", "https://[2606:4700:4700::1111]/x.git",
    "https://[::ffff:8.8.8.8]/x.git",
])
def test_ipv6_addresses_of_public_hosts_are_allowed(url):
    assert checked_remote(url).address


def test_a_public_address_is_pinned_as_resolved():
    remote = checked_remote("https://8.8.8.8:8443/x.git")
    assert (remote.host, remote.port, remote.address) == ("8.8.8.8", 8443, "8.8.8.8")
    assert checked_remote("http://8.8.8.8/x.git", allow_http=True).port == 80


def test_credentials_are_never_shown_back():
    assert shown("https://user:s3cret@example.com/x.git") == "https://***@example.com/x.git"
    assert shown("https://example.com/x.git") == "https://example.com/x.git"


@pytest.mark.parametrize("url", ["https://u:s3cret@example.com:99999/x.git", "https://u:s3cret@[::1/x.git",
                                 "https://u:s3/cr?e#t@example.com:99999/x", "https://u:s3@cr@et@h:70000/",
                                 "https://u:s3cret\n@example.com:99999/x"])
def test_credentials_in_a_url_that_does_not_parse_are_never_shown_back(url):
    assert "s3" not in shown(url) and shown(url).startswith("https://***@")
