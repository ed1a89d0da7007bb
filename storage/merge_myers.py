"""git's classic xdiff (Myers) diff: what the histogram diff falls back to for a range whose common lines all
occur more than 64 times (xdl_fall_back_diff -> xdl_do_diff: trim common ends, discard lines with no or too many
matches, then divide and conquer with git's cost heuristics). Marks changed lines in the two files of `env`
(storage/merge_text.py's diff environment)."""
from __future__ import annotations

_XDL_MAX_COST_MIN = 256
_XDL_HEUR_MIN_COST = 256
_XDL_SNAKE_CNT = 20
_XDL_K_HEUR = 4
_XDL_LINE_MAX = (1 << 63) - 1
_XDL_KPDIS_RUN = 4
_XDL_MAX_EQLIMIT = 1024
_XDL_SIMSCAN_WINDOW = 100


def _bogosqrt(n: int) -> int:
    i = 1
    while n > 0:
        n >>= 2
        i <<= 1
    return i


def _clean_mmatch(dis: list[int], i: int, s: int, e: int) -> bool:
    if i - s > _XDL_SIMSCAN_WINDOW:
        s = i - _XDL_SIMSCAN_WINDOW
    if e - i > _XDL_SIMSCAN_WINDOW:
        e = i + _XDL_SIMSCAN_WINDOW
    r, rdis0, rpdis0 = 1, 0, 1
    while i - r >= s:
        if not dis[i - r]:
            rdis0 += 1
        elif dis[i - r] == 2:
            rpdis0 += 1
        else:
            break
        r += 1
    if rdis0 == 0:
        return False
    r, rdis1, rpdis1 = 1, 0, 1
    while i + r <= e:
        if not dis[i + r]:
            rdis1 += 1
        elif dis[i + r] == 2:
            rpdis1 += 1
        else:
            break
        r += 1
    if rdis1 == 0:
        return False
    rdis1 += rdis0
    rpdis1 += rpdis0
    return rpdis1 * _XDL_KPDIS_RUN < rpdis1 + rdis1


def classic_diff(env) -> None:
    f1, f2 = env.f1, env.f2
    # xdl_trim_ends
    lim = min(f1.nrec, f2.nrec)
    i = 0
    while i < lim and f1.ha[i] == f2.ha[i]:
        i += 1
    dstart = i
    lim -= i
    i = 0
    while i < lim and f1.ha[f1.nrec - 1 - i] == f2.ha[f2.nrec - 1 - i]:
        i += 1
    dend1, dend2 = f1.nrec - i - 1, f2.nrec - i - 1
    # xdl_cleanup_records
    count1: dict[int, int] = {}
    count2: dict[int, int] = {}
    for h in f1.ha:
        count1[h] = count1.get(h, 0) + 1
    for h in f2.ha:
        count2[h] = count2.get(h, 0) + 1

    def reduce(f, dend: int, other_counts: dict[int, int]):
        mlim = min(_bogosqrt(f.nrec), _XDL_MAX_EQLIMIT)
        dis = [0] * (f.nrec + 1)
        for j in range(dstart, dend + 1):
            nm = other_counts.get(f.ha[j], 0)
            dis[j] = 0 if nm == 0 else 2 if nm >= mlim else 1
        ha, rindex = [], []
        for j in range(dstart, dend + 1):
            if dis[j] == 1 or (dis[j] == 2 and not _clean_mmatch(dis, j, dstart, dend)):
                rindex.append(j)
                ha.append(f.ha[j])
            else:
                f.set_changed(j, 1)
        return ha, rindex

    ha1, rindex1 = reduce(f1, dend1, count2)
    ha2, rindex2 = reduce(f2, dend2, count1)
    n1, n2 = len(ha1), len(ha2)
    ndiags = n1 + n2 + 3
    kvdf = [0] * (2 * ndiags + 2)
    kvdb = [0] * (2 * ndiags + 2)
    base = n2 + 1
    mxcost = max(_bogosqrt(ndiags), _XDL_MAX_COST_MIN)
    _recs_cmp(ha1, rindex1, f1, 0, n1, ha2, rindex2, f2, 0, n2, kvdf, kvdb, base, False, mxcost)


def _recs_cmp(ha1, rindex1, f1, off1, lim1, ha2, rindex2, f2, off2, lim2, kvdf, kvdb, base, need_min, mxcost):
    stack = [(off1, lim1, off2, lim2, need_min)]
    while stack:
        off1, lim1, off2, lim2, need_min = stack.pop()
        while off1 < lim1 and off2 < lim2 and ha1[off1] == ha2[off2]:
            off1 += 1
            off2 += 1
        while off1 < lim1 and off2 < lim2 and ha1[lim1 - 1] == ha2[lim2 - 1]:
            lim1 -= 1
            lim2 -= 1
        if off1 == lim1:
            for k in range(off2, lim2):
                f2.set_changed(rindex2[k], 1)
        elif off2 == lim2:
            for k in range(off1, lim1):
                f1.set_changed(rindex1[k], 1)
        else:
            i1, i2, min_lo, min_hi = _split(ha1, off1, lim1, ha2, off2, lim2, kvdf, kvdb, base, need_min, mxcost)
            stack.append((i1, lim1, i2, lim2, min_hi))
            stack.append((off1, i1, off2, i2, min_lo))


def _split(ha1, off1, lim1, ha2, off2, lim2, kvdf, kvdb, base, need_min, mxcost):
    dmin, dmax = off1 - lim2, lim1 - off2
    fmid, bmid = off1 - off2, lim1 - lim2
    odd = (fmid - bmid) & 1
    fmin = fmax = fmid
    bmin = bmax = bmid
    kvdf[base + fmid] = off1
    kvdb[base + bmid] = lim1
    ec = 0
    while True:
        ec += 1
        got_snake = False
        if fmin > dmin:
            fmin -= 1
            kvdf[base + fmin - 1] = -1
        else:
            fmin += 1
        if fmax < dmax:
            fmax += 1
            kvdf[base + fmax + 1] = -1
        else:
            fmax -= 1
        for d in range(fmax, fmin - 1, -2):
            if kvdf[base + d - 1] >= kvdf[base + d + 1]:
                i1 = kvdf[base + d - 1] + 1
            else:
                i1 = kvdf[base + d + 1]
            prev1 = i1
            i2 = i1 - d
            while i1 < lim1 and i2 < lim2 and ha1[i1] == ha2[i2]:
                i1 += 1
                i2 += 1
            if i1 - prev1 > _XDL_SNAKE_CNT:
                got_snake = True
            kvdf[base + d] = i1
            if odd and bmin <= d <= bmax and kvdb[base + d] <= i1:
                return i1, i2, True, True
        if bmin > dmin:
            bmin -= 1
            kvdb[base + bmin - 1] = _XDL_LINE_MAX
        else:
            bmin += 1
        if bmax < dmax:
            bmax += 1
            kvdb[base + bmax + 1] = _XDL_LINE_MAX
        else:
            bmax -= 1
        for d in range(bmax, bmin - 1, -2):
            if kvdb[base + d - 1] < kvdb[base + d + 1]:
                i1 = kvdb[base + d - 1]
            else:
                i1 = kvdb[base + d + 1] - 1
            prev1 = i1
            i2 = i1 - d
            while i1 > off1 and i2 > off2 and ha1[i1 - 1] == ha2[i2 - 1]:
                i1 -= 1
                i2 -= 1
            if prev1 - i1 > _XDL_SNAKE_CNT:
                got_snake = True
            kvdb[base + d] = i1
            if not odd and fmin <= d <= fmax and i1 <= kvdf[base + d]:
                return i1, i2, True, True
        if need_min:
            continue
        if got_snake and ec > _XDL_HEUR_MIN_COST:
            best = 0
            spl = None
            for d in range(fmax, fmin - 1, -2):
                dd = d - fmid if d > fmid else fmid - d
                i1 = kvdf[base + d]
                i2 = i1 - d
                v = (i1 - off1) + (i2 - off2) - dd
                if (v > _XDL_K_HEUR * ec and v > best and off1 + _XDL_SNAKE_CNT <= i1 < lim1
                        and off2 + _XDL_SNAKE_CNT <= i2 < lim2):
                    k = 1
                    while ha1[i1 - k] == ha2[i2 - k]:
                        if k == _XDL_SNAKE_CNT:
                            best = v
                            spl = (i1, i2)
                            break
                        k += 1
            if best > 0:
                return spl[0], spl[1], True, False
            best = 0
            for d in range(bmax, bmin - 1, -2):
                dd = d - bmid if d > bmid else bmid - d
                i1 = kvdb[base + d]
                i2 = i1 - d
                v = (lim1 - i1) + (lim2 - i2) - dd
                if (v > _XDL_K_HEUR * ec and v > best and off1 < i1 <= lim1 - _XDL_SNAKE_CNT
                        and off2 < i2 <= lim2 - _XDL_SNAKE_CNT):
                    k = 0
                    while ha1[i1 + k] == ha2[i2 + k]:
                        if k == _XDL_SNAKE_CNT - 1:
                            best = v
                            spl = (i1, i2)
                            break
                        k += 1
            if best > 0:
                return spl[0], spl[1], False, True
        if ec >= mxcost:
            fbest = fbest1 = -1
            for d in range(fmax, fmin - 1, -2):
                i1 = min(kvdf[base + d], lim1)
                i2 = i1 - d
                if lim2 < i2:
                    i1, i2 = lim2 + d, lim2
                if fbest < i1 + i2:
                    fbest, fbest1 = i1 + i2, i1
            bbest = bbest1 = _XDL_LINE_MAX
            for d in range(bmax, bmin - 1, -2):
                i1 = max(off1, kvdb[base + d])
                i2 = i1 - d
                if i2 < off2:
                    i1, i2 = off2 + d, off2
                if i1 + i2 < bbest:
                    bbest, bbest1 = i1 + i2, i1
            if (lim1 + lim2) - bbest < fbest - (off1 + off2):
                return fbest1, fbest - fbest1, True, False
            return bbest1, bbest - bbest1, False, True
