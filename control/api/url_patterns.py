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
_IPV6_HOST = rf"\[(?:{_IPV6})\](?::{_PORT})?"

# http(s) only; no / ? # [ ] @ or backslash in a named host's part (no credentials), other characters percent-encoded
WEBHOOK_URL_PATTERN = (r"^https?://(?:" + _IPV6_HOST + r"|[\x21-\x22\x24-\x2e\x30-\x3e\x41-\x5a\x5e-\x7e]+)"
                       r"(?:[/?#][\x21-\x7e]*)?$")

# a repository's: http(s), ssh or git, a user before the host allowed (ssh's git@)
REPOSITORY_URL_PATTERN = (r"^(https?|ssh|git)://(?:[^\x00-\x20\x7f/?#\[\]]*@)?(?:" + _IPV6_HOST
                          + r"|[^\x00-\x20\x7f/?#\[\]]+)([/?#][^\x00-\x20\x7f]*)?$")
