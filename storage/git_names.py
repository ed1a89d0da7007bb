"""Names git's fsck gives a meaning to (git's fsck.c and path.c: `is_hfs_dotgitmodules`, `is_ntfs_dotgitmodules`
and the same for `.gitattributes`): a tree entry so named is checked as a submodule or an attributes file, and
refused unless it is a blob git accepts."""
from __future__ import annotations

# (the name without its dot, the hashed NTFS short-name prefix Windows gives when `xxxxxx~1` to `~4` are taken)
GITMODULES = ("gitmodules", "gi7eba")
GITATTRIBUTES = ("gitattributes", "gi7d29")
CHECKED_BY_FSCK = (GITMODULES, GITATTRIBUTES)


def fsck_reads_specially(name: str) -> bool:
    """Whether git's fsck takes `name` for `.gitmodules` or `.gitattributes` on some file system."""
    return any(names(name, *special) for special in CHECKED_BY_FSCK)


def names(name: str, dotless: str, short_prefix: str) -> bool:
    """Whether git takes `name` for `.{dotless}`: in any case, with trailing spaces and dots or an NTFS stream
    (`.gitmodules .`, `.gitmodules::$DATA`), as an NTFS short name (`GITMOD~1`, `GI7EBA~1`, `gi~12345`,
    `~1000000`), or with code points HFS+ ignores. For HFS+ every non-ASCII code point is dropped, not only the
    ignorable ones: a name git would not take is then checked by git, not refused."""
    dotted = "." + dotless
    if "".join(char for char in name if char < "\x80").lower() == dotted:
        return True
    low = name.lower()
    if low.startswith(dotted):
        return _only_spaces_and_dots(low[len(dotted):])
    if low.startswith(dotless[:6] + "~") and low[7:8] in ("1", "2", "3", "4"):
        return _only_spaces_and_dots(low[8:])
    return _fallback_short_name(low, short_prefix)


def _fallback_short_name(name: str, prefix: str) -> bool:
    """git's loop over the first 8 characters: up to 6 of the prefix, `~`, a digit 1-9, then digits only."""
    i, saw_tilde = 0, False
    while i < 8:
        if i >= len(name):
            return False
        char = name[i]
        if saw_tilde:
            if not "0" <= char <= "9":
                return False
        elif char == "~":
            i += 1
            if i >= len(name) or not "1" <= name[i] <= "9":
                return False
            saw_tilde = True
        elif i >= 6 or char != prefix[i]:
            return False
        i += 1
    return _only_spaces_and_dots(name[8:])


def _only_spaces_and_dots(rest: str) -> bool:
    """NTFS drops trailing spaces and dots, and `:` starts a stream name."""
    return all(char in " ." for char in rest.split(":", 1)[0])
