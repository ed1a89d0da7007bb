"""Branch protection patterns, matched as GitHub matches them (Ruby's File.fnmatch with FNM_PATHNAME):
`*` and `?` stop at '/', `**` crosses it (`**/` is any directories, none too), `[...]` is a character class (`[!...]` negated; a ']' first in it
is one of its members) that never matches '/'. "release/*" covers release/v1 but not release/v1/hotfix;
"release/**" covers both."""
from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern:
    out, at = [], 0
    while at < len(pattern):
        char = pattern[at]
        if pattern.startswith("**/", at):  # any directories, none too: `**/main` covers main
            out.append("(?:.*/)?")
            at += 3
        elif pattern.startswith("**", at):
            out.append(".*")
            at += 2
        elif char == "*":
            out.append("[^/]*")
            at += 1
        elif char == "?":
            out.append("[^/]")
            at += 1
        elif char == "[" and (end := pattern.find("]", at + 3 if pattern[at + 1:at + 2] == "!" else at + 2)) > at:
            body = pattern[at + 1:end]
            negated = body.startswith("!")
            members = re.escape(body[1:] if negated else body).replace(r"\-", "-")
            out.append(f"(?!/)[{'^' if negated else ''}{members}]")
            at = end + 1
        else:
            out.append(re.escape(char))
            at += 1
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:  # a class no glob could mean ("[z-a]"): the pattern names itself
        return re.compile(re.escape(pattern))


def branch_matches(pattern: str, branch: str) -> bool:
    return _compiled(pattern).fullmatch(branch) is not None
