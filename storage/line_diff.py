"""Line diff that gives the same answer as `git diff` with its defaults (Myers, indent heuristic, 3 lines of context).

Git's xdiff does not simply return a minimal edit script: it discards lines that have no match on the other side
(and runs of lines with very many matches), cuts expensive searches short with heuristics, and then slides each
group of changed lines to the position its indent heuristic prefers. Counts and hunk positions follow from those
choices, so this module makes the same ones, step by step:

1. classify lines (a line includes its '\\n'; the last line may lack one), trim the common head and tail;
2. discard lines without a match in the other file, and "multimatch" lines that sit inside runs of such lines;
3. Myers' divide-and-conquer O(ND) search on the rest, with xdiff's cost limits (20-line snakes, cost cap);
4. compact: slide change groups up/down, align them with the other side's changes, else apply the indent
   heuristic;
5. group changes into hunks with 3 lines of context (changes at most 6 unchanged lines apart share a hunk).

Pure functions over lists of `bytes` lines; no git objects here.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

CONTEXT = 3
_SNAKE_CNT = 20
_HEUR_MIN_COST = 256
_MAX_COST_MIN = 256
_K_HEUR = 4
_MAX_EQLIMIT = 1024
_SIMSCAN_WINDOW = 100
_KPDIS_RUN = 4
_LINE_MAX = (1 << 62) - 1
_WHITESPACE = frozenset(b" \t\n\v\f\r")


def split_lines(data: bytes) -> list[bytes]:
    """Lines as git sees them: split after each '\\n', a last line without one kept as it is."""
    if not data:
        return []
    lines = data.split(b"\n")
    last = lines.pop()
    result = [line + b"\n" for line in lines]
    if last:
        result.append(last)
    return result


@dataclass(frozen=True)
class Change:
    """`old_count` lines from old line index `old_index` became `new_count` lines at new index `new_index`."""

    old_index: int
    new_index: int
    old_count: int
    new_count: int


@dataclass(frozen=True)
class Hunk:
    old_start: int
    old_lines: int
    new_start: int
    new_lines: int
    lines: list[tuple[str, bytes]]  # ("context" | "remove" | "add", the line with its '\n' if it has one)


def _bogosqrt(n: int) -> int:
    root = 1
    while n > 0:
        root <<= 1
        n >>= 2
    return root


# --- 1 and 2: classify, trim, discard ---------------------------------------------------------------------------

def _classify(old: list[bytes], new: list[bytes]) -> tuple[list[int], list[int]]:
    classes: dict[bytes, int] = {}
    old_cls = [classes.setdefault(line, len(classes)) for line in old]
    new_cls = [classes.setdefault(line, len(classes)) for line in new]
    return old_cls, new_cls


def _trimmed_range(old_cls: list[int], new_cls: list[int]) -> tuple[int, int, int]:
    """(start, old_end, new_end): lines before start and after the ends (inclusive) are common."""
    limit = min(len(old_cls), len(new_cls))
    start = 0
    while start < limit and old_cls[start] == new_cls[start]:
        start += 1
    tail = 0
    while tail < limit - start and old_cls[-1 - tail] == new_cls[-1 - tail]:
        tail += 1
    return start, len(old_cls) - tail - 1, len(new_cls) - tail - 1


def _multimatch_is_discardable(dis: list[int], i: int, start: int, end: int) -> bool:
    """A line with many matches is dropped only when it sits inside a run of lines that have none."""
    start = max(start, i - _SIMSCAN_WINDOW)
    end = min(end, i + _SIMSCAN_WINDOW)
    nomatch_before, multi_before = 0, 1
    r = 1
    while i - r >= start:
        if dis[i - r] == 0:
            nomatch_before += 1
        elif dis[i - r] == 2:
            multi_before += 1
        else:
            break
        r += 1
    if nomatch_before == 0:
        return False
    nomatch_after, multi_after = 0, 1
    r = 1
    while i + r <= end:
        if dis[i + r] == 0:
            nomatch_after += 1
        elif dis[i + r] == 2:
            multi_after += 1
        else:
            break
        r += 1
    if nomatch_after == 0:
        return False
    nomatch, multi = nomatch_before + nomatch_after, multi_before + multi_after
    return multi * _KPDIS_RUN < multi + nomatch


def _kept_records(cls: list[int], other_counts: Counter, start: int, end: int,
                  changed: bytearray) -> list[int]:
    """Indexes of the lines in [start, end] that the search considers; the others are marked changed now."""
    limit = min(_bogosqrt(len(cls)), _MAX_EQLIMIT)
    dis = [0] * (len(cls) + 1)
    for i in range(start, end + 1):
        matches = min(other_counts.get(cls[i], 0), limit)
        dis[i] = 0 if matches == 0 else 2 if matches >= limit else 1
    kept = []
    for i in range(start, end + 1):
        if dis[i] == 1 or (dis[i] == 2 and not _multimatch_is_discardable(dis, i, start, end)):
            kept.append(i)
        else:
            changed[i + 1] = 1
    return kept


# --- 3: Myers with xdiff's heuristics --------------------------------------------------------------------------

def _split(h1: list[int], h2: list[int], off1: int, lim1: int, off2: int, lim2: int, kvdf: list[int],
           kvdb: list[int], base: int, need_min: bool, max_cost: int) -> tuple[int, int, bool, bool]:
    """Where to cut the box (off1, off2)-(lim1, lim2): the middle snake, or a good-enough point when costly."""
    dmin, dmax = off1 - lim2, lim1 - off2
    fmid, bmid = off1 - off2, lim1 - lim2
    odd = (fmid - bmid) & 1
    fmin = fmax = fmid
    bmin = bmax = bmid
    kvdf[fmid + base] = off1
    kvdb[bmid + base] = lim1
    cost = 0
    while True:
        cost += 1
        got_snake = False
        if fmin > dmin:
            fmin -= 1
            kvdf[fmin - 1 + base] = -1
        else:
            fmin += 1
        if fmax < dmax:
            fmax += 1
            kvdf[fmax + 1 + base] = -1
        else:
            fmax -= 1
        for d in range(fmax, fmin - 1, -2):
            below, above = kvdf[d - 1 + base], kvdf[d + 1 + base]
            i1 = below + 1 if below >= above else above
            prev1 = i1
            i2 = i1 - d
            while i1 < lim1 and i2 < lim2 and h1[i1] == h2[i2]:
                i1 += 1
                i2 += 1
            if i1 - prev1 > _SNAKE_CNT:
                got_snake = True
            kvdf[d + base] = i1
            if odd and bmin <= d <= bmax and kvdb[d + base] <= i1:
                return i1, i2, True, True

        if bmin > dmin:
            bmin -= 1
            kvdb[bmin - 1 + base] = _LINE_MAX
        else:
            bmin += 1
        if bmax < dmax:
            bmax += 1
            kvdb[bmax + 1 + base] = _LINE_MAX
        else:
            bmax -= 1
        for d in range(bmax, bmin - 1, -2):
            below, above = kvdb[d - 1 + base], kvdb[d + 1 + base]
            i1 = below if below < above else above - 1
            prev1 = i1
            i2 = i1 - d
            while i1 > off1 and i2 > off2 and h1[i1 - 1] == h2[i2 - 1]:
                i1 -= 1
                i2 -= 1
            if prev1 - i1 > _SNAKE_CNT:
                got_snake = True
            kvdb[d + base] = i1
            if not odd and fmin <= d <= fmax and i1 <= kvdf[d + base]:
                return i1, i2, True, True

        if need_min:
            continue

        if got_snake and cost > _HEUR_MIN_COST:
            best, cut = 0, None
            for d in range(fmax, fmin - 1, -2):
                dd = d - fmid if d > fmid else fmid - d
                i1 = kvdf[d + base]
                i2 = i1 - d
                v = (i1 - off1) + (i2 - off2) - dd
                if (v > _K_HEUR * cost and v > best and off1 + _SNAKE_CNT <= i1 < lim1
                        and off2 + _SNAKE_CNT <= i2 < lim2):
                    k = 1
                    while h1[i1 - k] == h2[i2 - k]:
                        if k == _SNAKE_CNT:
                            best, cut = v, (i1, i2)
                            break
                        k += 1
            if cut is not None:
                return cut[0], cut[1], True, False
            best, cut = 0, None
            for d in range(bmax, bmin - 1, -2):
                dd = d - bmid if d > bmid else bmid - d
                i1 = kvdb[d + base]
                i2 = i1 - d
                v = (lim1 - i1) + (lim2 - i2) - dd
                if (v > _K_HEUR * cost and v > best and off1 < i1 <= lim1 - _SNAKE_CNT
                        and off2 < i2 <= lim2 - _SNAKE_CNT):
                    k = 0
                    while h1[i1 + k] == h2[i2 + k]:
                        if k == _SNAKE_CNT - 1:
                            best, cut = v, (i1, i2)
                            break
                        k += 1
            if cut is not None:
                return cut[0], cut[1], False, True

        if cost >= max_cost:
            fbest = fbest1 = -1
            for d in range(fmax, fmin - 1, -2):
                i1 = min(kvdf[d + base], lim1)
                i2 = i1 - d
                if lim2 < i2:
                    i1, i2 = lim2 + d, lim2
                if fbest < i1 + i2:
                    fbest, fbest1 = i1 + i2, i1
            bbest = bbest1 = _LINE_MAX
            for d in range(bmax, bmin - 1, -2):
                i1 = max(off1, kvdb[d + base])
                i2 = i1 - d
                if i2 < off2:
                    i1, i2 = off2 + d, off2
                if i1 + i2 < bbest:
                    bbest, bbest1 = i1 + i2, i1
            if (lim1 + lim2) - bbest < fbest - (off1 + off2):
                return fbest1, fbest - fbest1, True, False
            return bbest1, bbest - bbest1, False, True


def _compare(h1: list[int], h2: list[int], index1: list[int], index2: list[int], changed1: bytearray,
             changed2: bytearray) -> None:
    """Mark the changed records among the kept ones (divide and conquer over boxes, on an explicit stack)."""
    n1, n2 = len(h1), len(h2)
    ndiags = n1 + n2 + 3
    kvdf = [0] * (ndiags + 1)
    kvdb = [0] * (ndiags + 1)
    base = n2 + 1
    max_cost = max(_bogosqrt(ndiags), _MAX_COST_MIN)
    stack = [(0, n1, 0, n2, False)]
    while stack:
        off1, lim1, off2, lim2, need_min = stack.pop()
        while off1 < lim1 and off2 < lim2 and h1[off1] == h2[off2]:
            off1 += 1
            off2 += 1
        while off1 < lim1 and off2 < lim2 and h1[lim1 - 1] == h2[lim2 - 1]:
            lim1 -= 1
            lim2 -= 1
        if off1 == lim1:
            for i in range(off2, lim2):
                changed2[index2[i] + 1] = 1
        elif off2 == lim2:
            for i in range(off1, lim1):
                changed1[index1[i] + 1] = 1
        else:
            i1, i2, min_lo, min_hi = _split(h1, h2, off1, lim1, off2, lim2, kvdf, kvdb, base, need_min, max_cost)
            stack.append((i1, lim1, i2, lim2, min_hi))
            stack.append((off1, i1, off2, i2, min_lo))


# --- 4: compaction and the indent heuristic -----------------------------------------------------------------------

_MAX_INDENT = 200
_MAX_BLANKS = 20
_START_OF_FILE_PENALTY = 1
_END_OF_FILE_PENALTY = 21
_TOTAL_BLANK_WEIGHT = -30
_POST_BLANK_WEIGHT = 6
_RELATIVE_INDENT_PENALTY = -4
_RELATIVE_INDENT_WITH_BLANK_PENALTY = 10
_RELATIVE_OUTDENT_PENALTY = 24
_RELATIVE_OUTDENT_WITH_BLANK_PENALTY = 17
_RELATIVE_DEDENT_PENALTY = 23
_RELATIVE_DEDENT_WITH_BLANK_PENALTY = 17
_INDENT_WEIGHT = 60
_INDENT_HEURISTIC_MAX_SLIDING = 100


def _indent(line: bytes) -> int:
    """Columns of leading whitespace (tab stops of 8), capped; -1 for a blank line."""
    width = 0
    for byte in line:
        if byte not in _WHITESPACE:
            return width
        if byte == 0x20:
            width += 1
        elif byte == 0x09:
            width += 8 - width % 8
        if width >= _MAX_INDENT:
            return _MAX_INDENT
    return -1


def _split_score(lines: list[bytes], split: int) -> tuple[int, int]:
    """(effective indent, penalty) of cutting `lines` just above line `split`."""
    n = len(lines)
    end_of_file = split >= n
    indent = -1 if end_of_file else _indent(lines[split])
    pre_blank, pre_indent = 0, -1
    for i in range(split - 1, -1, -1):
        pre_indent = _indent(lines[i])
        if pre_indent != -1:
            break
        pre_blank += 1
        if pre_blank == _MAX_BLANKS:
            pre_indent = 0
            break
    post_blank, post_indent = 0, -1
    for i in range(split + 1, n):
        post_indent = _indent(lines[i])
        if post_indent != -1:
            break
        post_blank += 1
        if post_blank == _MAX_BLANKS:
            post_indent = 0
            break

    penalty = 0
    if pre_indent == -1 and pre_blank == 0:
        penalty += _START_OF_FILE_PENALTY
    if end_of_file:
        penalty += _END_OF_FILE_PENALTY
    blank_after = 1 + post_blank if indent == -1 else 0
    total_blank = pre_blank + blank_after
    penalty += _TOTAL_BLANK_WEIGHT * total_blank + _POST_BLANK_WEIGHT * blank_after
    effective = indent if indent != -1 else post_indent
    any_blanks = total_blank != 0
    if effective != -1 and pre_indent != -1:
        if effective > pre_indent:
            penalty += _RELATIVE_INDENT_WITH_BLANK_PENALTY if any_blanks else _RELATIVE_INDENT_PENALTY
        elif effective < pre_indent:
            if post_indent != -1 and post_indent > effective:
                penalty += _RELATIVE_OUTDENT_WITH_BLANK_PENALTY if any_blanks else _RELATIVE_OUTDENT_PENALTY
            else:
                penalty += _RELATIVE_DEDENT_WITH_BLANK_PENALTY if any_blanks else _RELATIVE_DEDENT_PENALTY
    return effective, penalty


class _Side:
    """One file's changed flags (index i + 1 for line i, zero sentinels at both ends) and a group cursor."""

    def __init__(self, cls: list[int], changed: bytearray):
        self.cls, self.changed, self.n = cls, changed, len(cls)
        self.start = self.end = 0
        while changed[self.end + 1]:
            self.end += 1

    def next(self) -> bool:
        if self.end == self.n:
            return False
        self.start = self.end = self.end + 1
        while self.changed[self.end + 1]:
            self.end += 1
        return True

    def previous(self) -> bool:
        if self.start == 0:
            return False
        self.end = self.start = self.start - 1
        while self.changed[self.start]:
            self.start -= 1
        return True

    def slide_down(self) -> bool:
        if self.end < self.n and self.cls[self.start] == self.cls[self.end]:
            self.changed[self.start + 1] = 0
            self.start += 1
            self.changed[self.end + 1] = 1
            self.end += 1
            while self.changed[self.end + 1]:
                self.end += 1
            return True
        return False

    def slide_up(self) -> bool:
        if self.start > 0 and self.cls[self.start - 1] == self.cls[self.end - 1]:
            self.start -= 1
            self.changed[self.start + 1] = 1
            self.end -= 1
            self.changed[self.end + 1] = 0
            while self.changed[self.start]:
                self.start -= 1
            return True
        return False


def _compact(side: _Side, other: _Side, lines: list[bytes]) -> None:
    while True:
        if side.end != side.start:
            while True:
                size = side.end - side.start
                end_matching_other = -1
                while side.slide_up():
                    other.previous()
                earliest_end = side.end
                if other.end > other.start:
                    end_matching_other = side.end
                while side.slide_down():
                    other.next()
                    if other.end > other.start:
                        end_matching_other = side.end
                if size == side.end - side.start:
                    break
            if side.end == earliest_end:
                pass
            elif end_matching_other != -1:
                while other.end == other.start:
                    side.slide_up()
                    other.previous()
            else:
                shift = max(earliest_end, side.end - size - 1, side.end - _INDENT_HEURISTIC_MAX_SLIDING)
                best_shift, best = -1, (0, 0)
                while shift <= side.end:
                    top_indent, top_penalty = _split_score(lines, shift)
                    bottom_indent, bottom_penalty = _split_score(lines, shift - size)
                    score = (top_indent + bottom_indent, top_penalty + bottom_penalty)
                    if best_shift == -1 or _INDENT_WEIGHT * ((score[0] > best[0]) - (score[0] < best[0])) \
                            + (score[1] - best[1]) <= 0:
                        best, best_shift = score, shift
                    shift += 1
                while side.end > best_shift:
                    side.slide_up()
                    other.previous()
        if not side.next():
            break
        other.next()


# --- putting it together ---------------------------------------------------------------------------------------

def mark_changed(old_cls: list[int], new_cls: list[int], changed1: bytearray, changed2: bytearray) -> None:
    """Steps 2 and 3 (xdiff's xdl_do_diff) on lines given as class ids: sets changed[i + 1] for each line i of
    either side that the edit script removes or adds. Also the fallback of the merge's histogram diff."""
    start, end1, end2 = _trimmed_range(old_cls, new_cls)
    kept1 = _kept_records(old_cls, Counter(new_cls), start, end1, changed1)
    kept2 = _kept_records(new_cls, Counter(old_cls), start, end2, changed2)
    _compare([old_cls[i] for i in kept1], [new_cls[i] for i in kept2], kept1, kept2, changed1, changed2)


def diff(old: list[bytes], new: list[bytes]) -> list[Change]:
    """git's edit script from `old` to `new` (lines from `split_lines`), in file order."""
    old_cls, new_cls = _classify(old, new)
    changed1 = bytearray(len(old) + 2)
    changed2 = bytearray(len(new) + 2)
    mark_changed(old_cls, new_cls, changed1, changed2)
    _compact(_Side(old_cls, changed1), _Side(new_cls, changed2), old)
    _compact(_Side(new_cls, changed2), _Side(old_cls, changed1), new)

    changes: list[Change] = []
    i1, i2 = len(old), len(new)
    while i1 >= 0 or i2 >= 0:
        if changed1[i1] or changed2[i2]:  # line i1 - 1 / i2 - 1
            l1, l2 = i1, i2
            while changed1[i1]:
                i1 -= 1
            while changed2[i2]:
                i2 -= 1
            changes.append(Change(i1, i2, l1 - i1, l2 - i2))
        i1 -= 1
        i2 -= 1
    changes.reverse()
    return changes


def hunks(old: list[bytes], new: list[bytes], changes: list[Change], context: int = CONTEXT) -> list[Hunk]:
    """Unified-diff hunks as `git diff -U<context>` groups them, with its header numbers."""
    result = []
    i = 0
    while i < len(changes):
        j = i
        while j + 1 < len(changes) and \
                changes[j + 1].old_index - (changes[j].old_index + changes[j].old_count) <= 2 * context:
            j += 1
        first, last = changes[i], changes[j]
        s1, s2 = max(first.old_index - context, 0), max(first.new_index - context, 0)
        after = min(context, len(old) - (last.old_index + last.old_count), len(new) - (last.new_index + last.new_count))
        e1 = last.old_index + last.old_count + after
        e2 = last.new_index + last.new_count + after
        lines: list[tuple[str, bytes]] = [("context", line) for line in old[s1:first.old_index]]
        for k in range(i, j + 1):
            change = changes[k]
            if k > i:
                previous = changes[k - 1]
                lines.extend(("context", line)
                             for line in old[previous.old_index + previous.old_count:change.old_index])
            lines.extend(("remove", line) for line in old[change.old_index:change.old_index + change.old_count])
            lines.extend(("add", line) for line in new[change.new_index:change.new_index + change.new_count])
        lines.extend(("context", line) for line in old[last.old_index + last.old_count:e1])
        result.append(Hunk(old_start=s1 + 1 if e1 > s1 else s1, old_lines=e1 - s1,
                           new_start=s2 + 1 if e2 > s2 else s2, new_lines=e2 - s2, lines=lines))
        i = j + 1
    return result
