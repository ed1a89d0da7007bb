"""What an API key looks like, and how to blank keys out of text we did not write (a client's bad header
echoed in an error). Import-light on purpose: gunicorn's master process uses it."""
from __future__ import annotations

import re

KEY_PREFIX = "dk-"
# percent-encoded too (`%64k-`, `d%6B%2D`: the same key once a URL is decoded), and in any case (a key with its
# prefix mistyped `DK-` is refused, but its secret is the real one)
_KEY_LIKE = re.compile(r"(?i)(?:d|%64)(?:k|%6b)(?:-|%2d)(?:[a-z0-9_\-]|%[0-9a-f]{2})+")
_AUTHORIZATION = re.compile(r"(?i)(authorization\W*)[^'\"\r\n]*")  # a whole header line: Basic hides the key
_SIGNATURE = re.compile(r"(?i)((?:^|[?&;\s])signature=)[^&\s\"']*")  # a signed upload URL's: a bearer capability


def redact_keys(text: str) -> str:
    """Keys, Authorization headers and upload URL signatures blanked out."""
    text = _SIGNATURE.sub(r"\1[redacted]", _AUTHORIZATION.sub(r"\1[redacted]", text))
    return _KEY_LIKE.sub(KEY_PREFIX + "[redacted]", text)
