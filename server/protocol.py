"""Small HTTP-level pieces of the smart protocol: headers, the Git-Protocol value, plain-text errors."""
from __future__ import annotations

import re

NO_CACHE = [
    ("Cache-Control", "no-cache, max-age=0, must-revalidate"),
    ("Pragma", "no-cache"),
    ("Expires", "Fri, 01 Jan 1980 00:00:00 GMT"),
]
_PROTOCOL_ITEM = re.compile(r"^[A-Za-z0-9._-]+(=[A-Za-z0-9._-]*)?$")


def git_protocol(header: str | None) -> str | None:
    """The Git-Protocol header made safe to hand to git as GIT_PROTOCOL (colon-separated key[=value])."""
    if not header:
        return None
    items = [item for item in header.strip().split(":") if _PROTOCOL_ITEM.match(item)]
    return ":".join(items) or None


def is_v2(protocol: str | None) -> bool:
    return bool(protocol) and "version=2" in protocol.split(":")


def advertisement_prefix(service: str, protocol: str | None) -> bytes:
    """The `# service=` preamble of info/refs; protocol v2 responses go without it, like git http-backend."""
    if is_v2(protocol):
        return b""
    line = f"# service={service}\n".encode()
    return b"%04x" % (len(line) + 4) + line + b"0000"


def text_response(start_response, status: str, message: str, headers=()):
    body = (message.rstrip("\n") + "\n").encode("utf-8")
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *NO_CACHE, *headers],
    )
    return [body]
