"""What an API key looks like, and how to blank keys out of text we did not write (a client's bad header
echoed in an error). Import-light on purpose: gunicorn's master process uses it."""
from __future__ import annotations

import re

KEY_PREFIX = "dk-"
# percent-encoded too (`%64k-`, `d%6B%2D`: the same key once a URL is decoded), and in any case (a key with its
# prefix mistyped `DK-` is refused, but its secret is the real one); a word of its own (after a character that is
# not a letter or digit, or after an escape: `%01`, and `\x01` or `\t` as gunicorn prints a control byte it quotes)
# with a secret's length (keys are `dk-` and 43 characters), so that names such as `sdk-update` or `jdk-17` quoted
# in an error stay as they were; glued to what comes before it (`xdk-...` in a path), a whole secret's length that
# looks like one (upper and lower case letters, as all but one in billions of secrets have: a long branch name
# `jdk-17-upgrade-...` stays)
_KEY_PREFIX_LIKE = r"(?:d|%64)(?:k|%6b)(?:-|%2d)"
_SECRET_CHARACTER = r"(?:[a-z0-9_\-]|%[0-9a-f]{2})"
_KEY_LIKE = re.compile(r"(?i)(?:(?:(?<![a-z0-9])|(?<=%[0-9a-f]{2})|(?<=\\x[0-9a-f]{2})|(?<=\\u[0-9a-f]{4})"
                       r"|(?<=\\U[0-9a-f]{8})|(?<=\\[abfnrtv0]))" + _KEY_PREFIX_LIKE + _SECRET_CHARACTER + "{20,}"
                       r"|" + _KEY_PREFIX_LIKE + "(?P<glued_secret>" + _SECRET_CHARACTER + "{40,}))")
_LIKE_A_SECRET = (re.compile(r"[A-Z]"), re.compile(r"[a-z]"))
_AUTHORIZATION = re.compile(r"(?i)(authorization\W*)[^'\"\r\n]*")  # a whole header line: Basic hides the key
# a signed upload URL's: a bearer capability; its name percent-encoded too (`%73ignature`: werkzeug decodes names)
_SIGNATURE_NAME = "".join(f"(?:{c}|%{ord(c):02x}|%{ord(c.upper()):02x})" for c in "signature")
_SIGNATURE = re.compile(rf"(?i)((?:^|[?&;\s]){_SIGNATURE_NAME}=)[^&\s\"']*")


def redact_keys(text: str) -> str:
    """Keys, Authorization headers and upload URL signatures blanked out (text for the logs)."""
    return blank_keys(_SIGNATURE.sub(r"\1[redacted]", _AUTHORIZATION.sub(r"\1[redacted]", text)))


def blank_keys(text: str) -> str:
    """Keys blanked out, nothing else: for answers that quote what a client sent (a name that merely mentions
    authorization is left whole)."""
    return _KEY_LIKE.sub(_blanked, text)


def _blanked(match: re.Match) -> str:
    secret = match.group("glued_secret")
    if secret is not None and not all(kind.search(secret) for kind in _LIKE_A_SECRET):
        return match.group()
    return KEY_PREFIX + "[redacted]"
