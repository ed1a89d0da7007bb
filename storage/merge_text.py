"""Line-level three-way merge of file contents, the way git's merge-ort does it (`ll_merge` -> `xdl_merge`).

A faithful port of the parts of git's xdiff that decide a merge result: histogram diff (with the classic Myers
diff as its fallback for ranges made only of very frequent lines), change compaction (sliding change groups,
without the indent heuristic, as merges run it), the edit script, and `xdl_do_merge` at level ZEALOUS with the
default "merge" conflict style. A clean merge therefore produces byte-for-byte the blob git would write, and a
conflicting merge produces git's conflict markers (used for virtual merge bases of criss-cross merges).
"""
from __future__ import annotations

from dataclasses import dataclass

from .line_diff import mark_changed

MAX_XDIFF_SIZE = 1024 * 1024 * 1023
DEFAULT_MARKER_SIZE = 7
_BINARY_PROBE = 8000

_MAX_CHAIN_LENGTH = 64


def is_binary(data: bytes) -> bool:
    """git's buffer_is_binary: a NUL byte in the first 8000 bytes."""
    return b"\0" in data[:_BINARY_PROBE]


def split_lines(data: bytes) -> list[bytes]:
    """Records as xdiff cuts them: each line with its '\\n'; a last line without one stays as it is."""
    if not data:
        return []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
        return [line + b"\n" for line in lines]
    return [line + b"\n" for line in lines[:-1]] + [lines[-1]]


class _File:
    """One side of a diff: records, their equivalence classes and the changed-lines map (with sentinels)."""

    __slots__ = ("recs", "ha", "nrec", "rchg")

    def __init__(self, recs: list[bytes], ha: list[int]):
        self.recs = recs
        self.ha = ha
        self.nrec = len(recs)
        self.rchg = bytearray(self.nrec + 2)  # index i+1 is line i; 0 and nrec+1 are sentinels

    def changed(self, i: int) -> int:
        return self.rchg[i + 1]

    def set_changed(self, i: int, value: int) -> None:
        self.rchg[i + 1] = value


class _Env:
    __slots__ = ("f1", "f2", "classes")

    def __init__(self, lines1: list[bytes], lines2: list[bytes]):
        classes: dict[bytes, int] = {}
        ha1 = [classes.setdefault(line, len(classes)) for line in lines1]
        ha2 = [classes.setdefault(line, len(classes)) for line in lines2]
        self.f1 = _File(lines1, ha1)
        self.f2 = _File(lines2, ha2)
        self.classes = classes


# --- histogram diff (xdiff/xhistogram.c) ---------------------------------------------------------------------

class _Rec:
    __slots__ = ("ptr", "cnt")

    def __init__(self, ptr: int, cnt: int):
        self.ptr = ptr
        self.cnt = cnt


def _find_lcs(env: _Env, line1: int, count1: int, line2: int, count2: int):
    """Returns (status, lcs): status -1 error, 1 fall back to classic diff, 0 use lcs (begin1, end1, begin2, end2)."""
    ha1, ha2 = env.f1.ha, env.f2.ha
    end1, end2 = line1 + count1 - 1, line2 + count2 - 1
    records: dict[int, _Rec] = {}
    next_ptrs = [0] * count1
    line_map: list[_Rec | None] = [None] * count1
    shift = line1
    for ptr in range(end1, line1 - 1, -1):
        key = ha1[ptr - 1]
        rec = records.get(key)
        if rec is not None:
            next_ptrs[ptr - shift] = rec.ptr
            rec.ptr = ptr
            rec.cnt += 1
        else:
            rec = records[key] = _Rec(ptr, 1)
        line_map[ptr - shift] = rec

    cnt = _MAX_CHAIN_LENGTH + 1
    has_common = False
    begin1 = lcs_end1 = begin2 = lcs_end2 = 0
    b_ptr = line2
    while b_ptr <= end2:
        b_next = b_ptr + 1
        rec = records.get(ha2[b_ptr - 1])
        if rec is not None:
            if rec.cnt > cnt:
                has_common = True
            else:
                as_ = rec.ptr
                has_common = True
                while True:
                    np = next_ptrs[as_ - shift]
                    bs = b_ptr
                    ae = as_
                    be = bs
                    rc = rec.cnt
                    while line1 < as_ and line2 < bs and ha1[as_ - 2] == ha2[bs - 2]:
                        as_ -= 1
                        bs -= 1
                        if 1 < rc:
                            rc = min(rc, line_map[as_ - shift].cnt)
                    while ae < end1 and be < end2 and ha1[ae] == ha2[be]:
                        ae += 1
                        be += 1
                        if 1 < rc:
                            rc = min(rc, line_map[ae - shift].cnt)
                    if b_next <= be:
                        b_next = be + 1
                    if lcs_end1 - begin1 < ae - as_ or rc < cnt:
                        begin1, begin2, lcs_end1, lcs_end2 = as_, bs, ae, be
                        cnt = rc
                    if np == 0:
                        break
                    stop = False
                    while np <= ae:
                        np = next_ptrs[np - shift]
                        if np == 0:
                            stop = True
                            break
                    if stop:
                        break
                    as_ = np
        b_ptr = b_next
    if has_common and _MAX_CHAIN_LENGTH < cnt:
        return 1, None
    return 0, (begin1, lcs_end1, begin2, lcs_end2)


def _histogram(env: _Env, line1: int, count1: int, line2: int, count2: int) -> None:
    stack = [(line1, count1, line2, count2)]
    while stack:
        line1, count1, line2, count2 = stack.pop()
        while True:
            if count1 <= 0 and count2 <= 0:
                break
            if not count1:
                for i in range(line2, line2 + count2):
                    env.f2.set_changed(i - 1, 1)
                break
            if not count2:
                for i in range(line1, line1 + count1):
                    env.f1.set_changed(i - 1, 1)
                break
            status, lcs = _find_lcs(env, line1, count1, line2, count2)
            if status == 1:
                _fall_back_to_classic(env, line1, count1, line2, count2)
                break
            begin1, end1, begin2, end2 = lcs
            if begin1 == 0 and begin2 == 0:
                for i in range(line1, line1 + count1):
                    env.f1.set_changed(i - 1, 1)
                for i in range(line2, line2 + count2):
                    env.f2.set_changed(i - 1, 1)
                break
            # the left part first (git recurses), then the right part (git's loop)
            right = (end1 + 1, line1 + count1 - 1 - end1, end2 + 1, line2 + count2 - 1 - end2)
            stack.append(right)
            line1, count1, line2, count2 = line1, begin1 - line1, line2, begin2 - line2
        # order of processing does not matter: each range marks its own lines only


def _fall_back_to_classic(env: _Env, line1: int, count1: int, line2: int, count2: int) -> None:
    sub = _Env(env.f1.recs[line1 - 1:line1 - 1 + count1], env.f2.recs[line2 - 1:line2 - 1 + count2])
    mark_changed(sub.f1.ha, sub.f2.ha, sub.f1.rchg, sub.f2.rchg)
    for i in range(count1):
        env.f1.set_changed(line1 - 1 + i, sub.f1.changed(i))
    for i in range(count2):
        env.f2.set_changed(line2 - 1 + i, sub.f2.changed(i))


# --- compaction and the edit script (xdiff/xdiffi.c) ---------------------------------------------------------

def _change_compact(xdf: _File, xdfo: _File) -> None:
    rchg, ha, nrec = xdf.rchg, xdf.ha, xdf.nrec
    orchg, onrec = xdfo.rchg, xdfo.nrec
    # groups: start/end are line indexes; rchg index is line + 1

    def g_init(r):
        end = 0
        while r[end + 1]:
            end += 1
        return [0, end]

    def g_next(r, n, g):
        if g[1] == n:
            return False
        g[0] = g[1] + 1
        g[1] = g[0]
        while r[g[1] + 1]:
            g[1] += 1
        return True

    def g_prev(r, g):
        if g[0] == 0:
            return False
        g[1] = g[0] - 1
        g[0] = g[1]
        while r[g[0]]:  # rchg[start - 1]
            g[0] -= 1
        return True

    def slide_down(g):
        if g[1] < nrec and ha[g[0]] == ha[g[1]]:
            rchg[g[0] + 1] = 0
            g[0] += 1
            rchg[g[1] + 1] = 1
            g[1] += 1
            while rchg[g[1] + 1]:
                g[1] += 1
            return True
        return False

    def slide_up(g):
        if g[0] > 0 and ha[g[0] - 1] == ha[g[1] - 1]:
            g[0] -= 1
            rchg[g[0] + 1] = 1
            g[1] -= 1
            rchg[g[1] + 1] = 0
            while rchg[g[0]]:
                g[0] -= 1
            return True
        return False

    g = g_init(rchg)
    go = g_init(orchg)
    while True:
        if g[1] != g[0]:
            while True:
                groupsize = g[1] - g[0]
                end_matching_other = -1
                while slide_up(g):
                    if not g_prev(orchg, go):
                        raise AssertionError("group sync broken sliding up")
                earliest_end = g[1]
                if go[1] > go[0]:
                    end_matching_other = g[1]
                while True:
                    if not slide_down(g):
                        break
                    if not g_next(orchg, onrec, go):
                        raise AssertionError("group sync broken sliding down")
                    if go[1] > go[0]:
                        end_matching_other = g[1]
                if groupsize == g[1] - g[0]:
                    break
            if g[1] != earliest_end and end_matching_other != -1:
                while go[1] == go[0]:
                    if not slide_up(g):
                        raise AssertionError("match disappeared")
                    if not g_prev(orchg, go):
                        raise AssertionError("group sync broken sliding to match")
        if not g_next(rchg, nrec, g):
            break
        if not g_next(orchg, onrec, go):
            raise AssertionError("group sync broken moving to next group")


def _build_script(env: _Env) -> list[tuple[int, int, int, int]]:
    """Changes (i1, i2, chg1, chg2) in file order."""
    r1, r2 = env.f1.rchg, env.f2.rchg
    script = []
    i1, i2 = env.f1.nrec, env.f2.nrec
    while i1 >= 0 or i2 >= 0:
        if r1[i1] or r2[i2]:  # rchg[i - 1]
            l1, l2 = i1, i2
            while r1[i1]:
                i1 -= 1
            while r2[i2]:
                i2 -= 1
            script.append((i1, i2, l1 - i1, l2 - i2))
        i1 -= 1
        i2 -= 1
    script.reverse()
    return script


def diff_script(lines1: list[bytes], lines2: list[bytes]) -> tuple[_Env, list[tuple[int, int, int, int]]]:
    """git's histogram diff plus compaction: the environment and the edit script."""
    env = _Env(lines1, lines2)
    _histogram(env, 1, env.f1.nrec, 1, env.f2.nrec)
    _change_compact(env.f1, env.f2)
    _change_compact(env.f2, env.f1)
    return env, _build_script(env)


# --- three-way merge (xdiff/xmerge.c) ------------------------------------------------------------------------

class _Hunk:
    __slots__ = ("mode", "i0", "chg0", "i1", "chg1", "i2", "chg2")

    def __init__(self, mode, i0, chg0, i1, chg1, i2, chg2):
        self.mode, self.i0, self.chg0, self.i1, self.chg1, self.i2, self.chg2 = mode, i0, chg0, i1, chg1, i2, chg2


def _append(hunks: list[_Hunk], mode, i0, chg0, i1, chg1, i2, chg2) -> None:
    m = hunks[-1] if hunks else None
    if m is not None and (i1 <= m.i1 + m.chg1 or i2 <= m.i2 + m.chg2):
        if mode != m.mode:
            m.mode = 0
        m.chg0 = i0 + chg0 - m.i0
        m.chg1 = i1 + chg1 - m.i1
        m.chg2 = i2 + chg2 - m.i2
    else:
        hunks.append(_Hunk(mode, i0, chg0, i1, chg1, i2, chg2))


def _refine_conflicts(side1: list[bytes], side2: list[bytes], hunks: list[_Hunk]) -> list[_Hunk]:
    out: list[_Hunk] = []
    for m in hunks:
        if m.mode or m.chg1 == 0 or m.chg2 == 0:
            out.append(m)
            continue
        _env, script = diff_script(side1[m.i1:m.i1 + m.chg1], side2[m.i2:m.i2 + m.chg2])
        if not script:
            m.mode = 4
            out.append(m)
            continue
        i1, i2 = m.i1, m.i2
        for n, (s1, s2, c1, c2) in enumerate(script):
            h = m if n == 0 else _Hunk(0, m.i0, m.chg0, 0, 0, 0, 0)
            h.mode = 0
            h.i1, h.chg1, h.i2, h.chg2 = s1 + i1, c1, s2 + i2, c2
            out.append(h)
    return out


def _simplify_non_conflicts(hunks: list[_Hunk]) -> list[_Hunk]:
    if not hunks:
        return hunks
    out = [hunks[0]]
    for next_m in hunks[1:]:
        m = out[-1]
        begin, end = m.i1 + m.chg1, next_m.i1
        if m.mode != 0 or next_m.mode != 0 or end - begin > 3:
            out.append(next_m)
        else:
            m.chg1 = next_m.i1 + next_m.chg1 - m.i1
            m.chg2 = next_m.i2 + next_m.chg2 - m.i2
    return out


def _copy(lines: list[bytes], i: int, count: int, add_nl: bool, needs_cr: bool) -> list[bytes]:
    if count < 1:
        return []
    chunk = lines[i:i + count]
    if add_nl and not chunk[-1].endswith(b"\n"):
        chunk = chunk[:-1] + [chunk[-1] + (b"\r\n" if needs_cr else b"\n")]
    return chunk


def _is_eol_crlf(lines: list[bytes], i: int) -> int:
    n = len(lines)
    if i < n - 1:
        return int(len(lines[i]) > 1 and lines[i][-2:] == b"\r\n")
    if not n:
        return -1
    if lines[i].endswith(b"\n"):
        return int(len(lines[i]) > 1 and lines[i][-2:] == b"\r\n")
    if not i:
        return -1
    return int(len(lines[i - 1]) > 1 and lines[i - 1][-2:] == b"\r\n")


def _needs_cr(base: list[bytes], side1: list[bytes], side2: list[bytes], m: _Hunk) -> bool:
    needs = _is_eol_crlf(side1, m.i1 - 1 if m.i1 else 0)
    if needs:
        needs = _is_eol_crlf(side2, m.i2 - 1 if m.i2 else 0)
    if needs:
        needs = _is_eol_crlf(base, 0)
    return needs > 0


@dataclass(frozen=True)
class TextMerge:
    content: bytes
    conflicts: int  # number of conflicting hunks; 0 means clean


def merge_lines(base: bytes, ours: bytes, theirs: bytes, name1: str | None = None, name2: str | None = None,
                marker_size: int = DEFAULT_MARKER_SIZE) -> TextMerge:
    """xdl_merge(orig=base, mf1=ours, mf2=theirs) at level ZEALOUS, "merge" conflict style."""
    lines0, lines1, lines2 = split_lines(base), split_lines(ours), split_lines(theirs)
    _e1, xscr1 = diff_script(lines0, lines1)
    _e2, xscr2 = diff_script(lines0, lines2)
    if not xscr1:
        return TextMerge(theirs, 0)
    if not xscr2:
        return TextMerge(ours, 0)
    hunks: list[_Hunk] = []
    a = b = 0
    while a < len(xscr1) and b < len(xscr2):
        s1, s2 = xscr1[a], xscr2[b]  # (i1 in base, i2 in side, chg1 in base, chg2 in side)
        if s1[0] + s1[2] < s2[0]:
            _append(hunks, 1, s1[0], s1[2], s1[1], s1[3], s2[1] - s2[0] + s1[0], s1[2])
            a += 1
            continue
        if s2[0] + s2[2] < s1[0]:
            _append(hunks, 2, s2[0], s2[2], s1[1] - s1[0] + s2[0], s2[2], s2[1], s2[3])
            b += 1
            continue
        if (s1[0] != s2[0] or s1[2] != s2[2] or s1[3] != s2[3]
                or lines1[s1[1]:s1[1] + s1[3]] != lines2[s2[1]:s2[1] + s2[3]]):
            off = s1[0] - s2[0]
            ffo = off + s1[2] - s2[2]
            i0, i1, i2 = s1[0], s1[1], s2[1]
            if off > 0:
                i0 -= off
                i1 -= off
            else:
                i2 += off
            chg0 = s1[0] + s1[2] - i0
            chg1 = s1[1] + s1[3] - i1
            chg2 = s2[1] + s2[3] - i2
            if ffo < 0:
                chg0 -= ffo
                chg1 -= ffo
            else:
                chg2 += ffo
            _append(hunks, 0, i0, chg0, i1, chg1, i2, chg2)
        e1, e2 = s1[0] + s1[2], s2[0] + s2[2]
        if e1 >= e2:
            b += 1
        if e2 >= e1:
            a += 1
    while a < len(xscr1):
        s1 = xscr1[a]
        _append(hunks, 1, s1[0], s1[2], s1[1], s1[3], s1[0] + len(lines2) - len(lines0), s1[2])
        a += 1
    while b < len(xscr2):
        s2 = xscr2[b]
        _append(hunks, 2, s2[0], s2[2], s2[0] + len(lines1) - len(lines0), s2[2], s2[1], s2[3])
        b += 1
    hunks = _simplify_non_conflicts(_refine_conflicts(lines1, lines2, hunks))

    out: list[bytes] = []
    i = 0
    conflicts = 0
    for m in hunks:
        if m.mode == 0:
            conflicts += 1
            needs_cr = _needs_cr(lines0, lines1, lines2, m)
            eol = b"\r\n" if needs_cr else b"\n"
            out.extend(lines1[i:m.i1])
            out.append(b"<" * marker_size + (b" " + name1.encode() if name1 else b"") + eol)
            out.extend(_copy(lines1, m.i1, m.chg1, True, needs_cr))
            out.append(b"=" * marker_size + eol)
            out.extend(_copy(lines2, m.i2, m.chg2, True, needs_cr))
            out.append(b">" * marker_size + (b" " + name2.encode() if name2 else b"") + eol)
        elif m.mode & 3:
            out.extend(lines1[i:m.i1])
            if m.mode & 1:
                out.extend(_copy(lines1, m.i1, m.chg1, bool(m.mode & 2), _needs_cr(lines0, lines1, lines2, m)))
            if m.mode & 2:
                out.extend(lines2[m.i2:m.i2 + m.chg2])
        else:
            continue
        i = m.i1 + m.chg1
    out.extend(lines1[i:])
    return TextMerge(b"".join(out), conflicts)
