"""The markdown report of the git benchmark: medians, ratios and targets."""
from __future__ import annotations

import statistics

MiB = 1024 * 1024
LOCAL, REF, DRIFT = "local", "git http-backend", "Driftstone"

# operation -> (label, max Driftstone/local, max Driftstone/reference); None: no target
TIME_TARGETS = {
    "clone_cold": ("clone (whole repository), first of its state", 1.10, 1.00),
    "clone_second": ("clone (whole repository), second of its state", 1.10, 1.00),
    "clone": ("clone (whole repository), again", 1.10, 1.00),
    "fetch": ("incremental fetch", None, 1.00),
    "push_full": ("full push (into an empty repo)", 1.10, 1.00),
    "push_incremental": ("incremental push", 1.10, 1.00),
}
MEMORY_TARGET = 1.5
BURST_TARGET = 1.25


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (the 'inclusive' method)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def _fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _verdict(checks: list[tuple[float | None, float | None]]) -> str:
    relevant = [(value, limit) for value, limit in checks if limit is not None]
    if not relevant:
        return "—"
    if any(value is None for value, _ in relevant):
        return "n/a"
    return "ok" if all(value <= limit for value, limit in relevant) else "**MISS**"


def _time_cell(samples: list[float]) -> str:
    if not samples:
        return "—"
    return f"{statistics.median(samples):.2f} s ({min(samples):.2f}–{max(samples):.2f})"


def _mib(value: int | None) -> str:
    return "—" if value is None else f"{value / MiB:.0f} MiB"


def _peaks(memory: dict, memory_pss: dict, op: str, target: str) -> tuple[int | None, int | None]:
    """(the highest RSS peak over the timed runs, the PSS peak of the untimed run)."""
    return max(memory[op].get(target, []), default=None), memory_pss.get(op, {}).get(target)


def _burst_peaks(pooled: dict | None) -> tuple[int, int] | None:
    return None if not pooled else (pooled.get("peak_bytes"), pooled.get("peak_pss_bytes"))


def _anon(idle: tuple | None) -> int | None:
    """The anonymous PSS of an idle reading (RSS, PSS, anonymous PSS); None from a reading without it."""
    return idle[2] if idle and len(idle) > 2 else None


def _anonymous_memory(memory_anon: dict, idle: dict, idle_after: dict, burst: dict) -> list[str]:
    out = ["The anonymous part of those PSS peaks (heaps and stacks: what the processes allocated). The rest of a "
           "PSS figure is files the processes map, above all the pack files git reads through mmap: page cache, "
           "which the kernel holds for a clone whether a process maps it or not. Not a target:", "",
           f"| operation | {REF} | {DRIFT} | ratio |", "| --- | ---: | ---: | ---: |"]
    rows = [("idle (before the runs)", _anon(idle.get(REF)), _anon(idle.get(DRIFT)))]
    if idle_after:
        rows.append(("idle (after the transfers)", _anon(idle_after.get(REF)), _anon(idle_after.get(DRIFT))))
    rows += [(TIME_TARGETS[op][0], memory_anon[op].get(REF), memory_anon[op].get(DRIFT))
             for op in TIME_TARGETS if memory_anon.get(op)]
    if burst:
        rows.append(("burst of small pushes", burst.get(REF, {}).get("peak_anon_bytes"),
                     burst.get(DRIFT, {}).get("peak_anon_bytes")))
    for label, ref, drift in rows:
        out.append(f"| {label} | {_mib(ref)} | {_mib(drift)} | {_fmt_ratio(_ratio(drift, ref))} |")
    return out + [""]


def render(info: dict, times: dict, memory: dict, memory_pss: dict, cpu: dict, idle: dict, idle_after: dict,
           burst: dict, burst_conf: dict, memory_anon: dict | None = None) -> str:
    """times[op][target] -> list of seconds; memory[op][target] -> list of RSS peak bytes (timed runs);
    memory_pss[op][target] -> PSS peak bytes (the untimed run), memory_anon[op][target] -> its anonymous part;
    cpu[op][target] -> list of server CPU seconds; idle[target] / idle_after[target] -> (RSS, PSS, anonymous
    PSS) bytes before the runs / after the transfers; burst[target] -> dict with latencies, failures, pushes,
    wall, peak_bytes, peak_pss_bytes, peak_anon_bytes."""
    out = ["## Git transport (`bench/git_bench.py`)", ""]
    out += [f"- date: {info['date']}", f"- machine: {info['machine']}", f"- git: {info['git']}",
            f"- reference server: {info['lighttpd']} + git http-backend (CGI)",
            f"- Driftstone: {info['commit']}; {info['driftstone']}",
            f"- repository: {info['repo']}",
            f"- runs: {info['runs']} per figure (median, min–max in parentheses), after one warm-up round",
            f"- load average (1, 5, 15 min) before / after: {info['load_before']} / {info['load_after']} (after "
            "includes the burst's own 24 agents; other work is judged from the load before the run)"
            + (" — **the machine was busy with other work: the figures are noisy**" if info.get("busy") else ""),
            f"- command: `{info['command']}`", ""]
    if times:
        out += ["### Wall time", "",
                f"| operation | {LOCAL} | {REF} | {DRIFT} | Driftstone / http-backend | Driftstone / local "
                "| target | verdict |",
                "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
        for op, (label, max_local, max_ref) in TIME_TARGETS.items():
            row = times.get(op, {})
            med = {t: statistics.median(v) if v else None for t, v in row.items()}
            vs_ref, vs_local = _ratio(med.get(DRIFT), med.get(REF)), _ratio(med.get(DRIFT), med.get(LOCAL))
            target = ", ".join(x for x in (f"≤ {max_local:.2f}× local" if max_local else "",
                                           f"≤ {max_ref:.2f}× http-backend" if max_ref else "") if x)
            out.append(f"| {label} | {_time_cell(row.get(LOCAL, []))} | {_time_cell(row.get(REF, []))} "
                       f"| {_time_cell(row.get(DRIFT, []))} | {_fmt_ratio(vs_ref)} | {_fmt_ratio(vs_local)} "
                       f"| {target} | {_verdict([(vs_local, max_local), (vs_ref, max_ref)])} |")
        out += ["", "The same ratios from each target's fastest run (less sensitive to other work on the machine; "
                "the verdicts above use the medians):", "",
                "| operation | Driftstone / http-backend | Driftstone / local |", "| --- | ---: | ---: |"]
        for op, (label, _, _) in TIME_TARGETS.items():
            best = {t: min(v) for t, v in times.get(op, {}).items() if v}
            out.append(f"| {label} | {_fmt_ratio(_ratio(best.get(DRIFT), best.get(REF)))} "
                       f"| {_fmt_ratio(_ratio(best.get(DRIFT), best.get(LOCAL)))} |")
        out.append("")
    if memory:
        out += ["### Peak server memory", "",
                "The whole server process tree (Driftstone: gunicorn master + workers + git children; reference: "
                "lighttpd + git http-backend + git children), sampled every 20 ms. RSS counts a page once per "
                "process that maps it (pages forked workers share, a pack mmapped by two git processes): the "
                "highest peak over the timed runs. PSS divides each shared page among the processes that share it, "
                "so its sum is the memory the tree really holds; reading it costs the kernel a page-table walk per "
                "process, more for Driftstone's tree than for lighttpd's, so it is sampled in one more, untimed run "
                "of each operation (and one more burst per server). The verdict is on PSS.", "",
                f"| operation | {REF} RSS | {DRIFT} RSS | ratio | {REF} PSS | {DRIFT} PSS | ratio | target "
                "| verdict |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
        rows = [("idle (before the runs)", idle.get(REF), idle.get(DRIFT), False)]
        if idle_after:
            rows.append(("idle (after the transfers)", idle_after.get(REF), idle_after.get(DRIFT), False))
        rows += [(TIME_TARGETS[op][0], _peaks(memory, memory_pss, op, REF), _peaks(memory, memory_pss, op, DRIFT), True)
                 for op in TIME_TARGETS if op in memory]
        if burst:
            rows.append(("burst of small pushes", _burst_peaks(burst.get(REF)), _burst_peaks(burst.get(DRIFT)), True))
        for label, ref, drift, judged in rows:
            ref, drift = ref or (None, None), drift or (None, None)
            rss_ratio, pss_ratio = _ratio(drift[0], ref[0]), _ratio(drift[1], ref[1])
            out.append(f"| {label} | {_mib(ref[0])} | {_mib(drift[0])} | {_fmt_ratio(rss_ratio)} | {_mib(ref[1])} "
                       f"| {_mib(drift[1])} | {_fmt_ratio(pss_ratio)} "
                       + (f"| ≤ {MEMORY_TARGET:.2f}× | {_verdict([(pss_ratio, MEMORY_TARGET)])} |" if judged
                          else "| — | — |"))
        out += ["", "What each operation adds to its server idling after the transfers (peak PSS minus that idle "
                "PSS; not a target: it separates the cost of the operation from the server's fixed size):", "",
                f"| operation | {REF} | {DRIFT} | ratio |", "| --- | ---: | ---: | ---: |"]
        idle_pss = {t: (idle_after.get(t) or (None, None))[1] for t in (REF, DRIFT)}
        for label, ref, drift, judged in rows:
            if not judged:
                continue
            added = {t: (peak[1] - idle_pss[t] if peak and peak[1] is not None and idle_pss[t] is not None else None)
                     for t, peak in ((REF, ref), (DRIFT, drift))}
            out.append(f"| {label} | {_mib(added[REF])} | {_mib(added[DRIFT])} "
                       f"| {_fmt_ratio(_ratio(added[DRIFT], added[REF]))} |")
        out.append("")
        if memory_anon:
            out += _anonymous_memory(memory_anon, idle, idle_after, burst)
    if cpu or burst:
        out += ["### Server CPU time", "",
                "CPU seconds (user + system) used by the server's whole process tree, git children included: "
                "median over the runs. Not a target; it shows where a server spends more than the other "
                "(client and server share the machine's cores).", "",
                f"| operation | {REF} | {DRIFT} | Driftstone / http-backend |",
                "| --- | ---: | ---: | ---: |"]
        for op, (label, _, _) in TIME_TARGETS.items():
            row = cpu.get(op, {})
            if not row:
                continue
            ref = statistics.median(row[REF]) if row.get(REF) else None
            drift = statistics.median(row[DRIFT]) if row.get(DRIFT) else None
            out.append(f"| {label} | {ref or 0:.2f} s | {drift or 0:.2f} s | {_fmt_ratio(_ratio(drift, ref))} |")
        if burst:
            ref, drift = burst.get(REF, {}).get("cpu_seconds"), burst.get(DRIFT, {}).get("cpu_seconds")
            pushes = {t: max(1, d["pushes"]) for t, d in burst.items()}
            out.append(f"| burst, per push | {(ref or 0) * 1000 / pushes.get(REF, 1):.0f} ms "
                       f"| {(drift or 0) * 1000 / pushes.get(DRIFT, 1):.0f} ms | {_fmt_ratio(_ratio(drift, ref))} |")
        out.append("")
    if burst:
        out += ["### Burst of small pushes", "",
                f"{burst_conf['agents']} agents in parallel, each on its own branch: {burst_conf['pushes']} pushes "
                f"of {burst_conf['commits_per_push']} commits each (one small file per commit), "
                f"{burst_conf['rounds']} burst(s) per server in alternating order, each into a fresh copy of the "
                "repository; latency is the wall time of one `git push` as the agent sees it, pooled over the "
                "bursts.", "",
                f"| figure | {REF} | {DRIFT} | Driftstone / http-backend | target | verdict |",
                "| --- | ---: | ---: | ---: | --- | --- |"]
        stats = {}
        for target, data in burst.items():
            lat = data["latencies"]
            stats[target] = {"p50": percentile(lat, 0.5), "p95": percentile(lat, 0.95), "max": max(lat, default=0),
                             "wall": data["wall"]}
        for key, label, limit in (("p50", "push latency p50", BURST_TARGET), ("p95", "push latency p95", BURST_TARGET),
                                  ("max", "push latency max", None), ("wall", "one burst, wall time (median)", None)):
            ref, drift = stats.get(REF, {}).get(key), stats.get(DRIFT, {}).get(key)
            ratio = _ratio(drift, ref)
            target = f"≤ {limit:.2f}×" if limit else "—"
            out.append(f"| {label} | {ref:.3f} s | {drift:.3f} s | {_fmt_ratio(ratio)} | {target} "
                       f"| {_verdict([(ratio, limit)])} |")
        landed = {t: d["pushes"] - len(d["failures"]) for t, d in burst.items()}
        expected = burst_conf["agents"] * burst_conf["pushes"] * burst_conf["rounds"]
        ok = all(not d["failures"] and d["pushes"] == expected for d in burst.values())
        out.append(f"| pushes landed | {landed.get(REF, 0)}/{expected} | {landed.get(DRIFT, 0)}/{expected} | — "
                   f"| all | {'ok' if ok else '**MISS**'} |")
        out.append("")
        for target, data in burst.items():
            for failure in data["failures"][:10]:
                out.append(f"- {target} failure: {failure}")
        out.append("")
    if info.get("notes"):
        out += ["### Notes", ""] + [f"- {note}" for note in info["notes"]] + [""]
    return "\n".join(out)
