"""The URL patterns the API documents (and pydantic applies) before a URL reaches the rules for remote URLs
(storage/git_remote.checked_remote: schemes, resolution, public addresses). ASCII classes only: JSON Schema's
classes (ECMAScript's) and Python's differ beyond ASCII. A host is a name or an IPv6 address in brackets."""
from __future__ import annotations

_H = "[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join([  # RFC 3986's IPv6address without the dotted IPv4 tail (::ffff:7f00:1 is the same address)
    f"(?:{_H}:){{7}}{_H}", f"(?:{_H}:){{1,7}}:", f"(?:{_H}:){{1,6}}:{_H}", f"(?:{_H}:){{1,5}}(?::{_H}){{1,2}}",
    f"(?:{_H}:){{1,4}}(?::{_H}){{1,3}}", f"(?:{_H}:){{1,3}}(?::{_H}){{1,4}}", f"(?:{_H}:){{1,2}}(?::{_H}){{1,5}}",
    f"{_H}:(?::{_H}){{1,6}}", f":(?:(?::{_H}){{1,7}}|:)"])
_PORT = "(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_OPTIONAL_PORT = f"(?::{_PORT}?)?"  # `host:` is the default port, as urlsplit reads it
_IPV6_HOST = rf"\[(?:{_IPV6})\]"

# http(s) only; a named host of ASCII (other characters percent-encoded) without : / ? # [ ] @ or backslash: no
# credentials, and a port urlsplit reads
WEBHOOK_URL_PATTERN = (r"^https?://(?:" + _IPV6_HOST + r"|[\x21-\x22\x24-\x2e\x30-\x39\x3b-\x3e\x41-\x5a\x5e-\x7e]+)"
                       + _OPTIONAL_PORT + r"(?:[/?#][\x21-\x7e]*)?$")

# a repository's: http(s) without credentials (every key that reads the workspace sees its URL), ssh with a user
# (its git@), or git
_NAME = r"[^\x00-\x20\x7f/?#\[\]@:]+"
REPOSITORY_URL_PATTERN = (r"^(?:https?://|ssh://(?:" + _NAME + r"@)?|git://)(?:" + _IPV6_HOST + "|" + _NAME + ")"
                          + _OPTIONAL_PORT + r"([/?#][^\x00-\x20\x7f]*)?$")

# what a refusal says instead of pydantic's "String should match pattern '<the regex above>'"
PATTERN_MESSAGES = {
    WEBHOOK_URL_PATTERN: "not a URL this field takes: http(s), without credentials in it (a secret goes apart); "
                         "a host name or an IPv6 address in brackets, a port up to 65535",
    REPOSITORY_URL_PATTERN: "not a URL this field takes: http(s) without credentials in it (a token goes in "
                            "git_token), ssh (a user allowed) or git; a host name or an IPv6 address in brackets, "
                            "a port up to 65535",
}
