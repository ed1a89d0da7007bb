#!/usr/bin/env python3
"""The git benchmark: Driftstone against `git http-backend` behind lighttpd and against git's local
file transport, on a generated repository of 200+ MiB with a long history (bench/gen_repo.py).

Figures (median of --runs runs, after one untimed warm-up round; the order of the targets rotates
from run to run):
  clone, first      git clone --bare of the whole repository, Driftstone's pack cache emptied first
  clone, second     the same clone right after: Driftstone keeps its pack (server/pack_cache.py)
  clone, again      the same clone once that pack is kept: Driftstone sends it
  incremental fetch a client at main~40 fetches main
  full push         push the whole history into an empty repository
  incremental push  push main into a repository at main~40
  peak memory       the server's whole process tree during each operation: RSS in the timed runs,
                    PSS (the verdict) in one more untimed run
  burst             24 agents in parallel, each committing on its own branch and pushing every 3
                    commits, 8 pushes each; every push must land; p50 / p95 push latency

Every repository has the same git config (a Driftstone repository's config file is copied), every
server binds 127.0.0.1 on a free port, and the servers are stopped at the end, also on failure.
Prints a markdown table and writes it to bench/RESULTS.md (a --quick smoke run writes to bench/.work/).

  bash bench/setup.sh                         # installs lighttpd (Debian) if missing
  .venv/bin/python bench/git_bench.py         # full run (repository generated and cached on first use)
  .venv/bin/python bench/git_bench.py --quick # small repository, 2 runs, a small burst
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_burst import run_burst  # noqa: E402
from bench_memory import PeakSampler, tree_memory  # noqa: E402
from bench_report import DRIFT, LOCAL, render  # noqa: E402
from bench_servers import ROOT, Driftstone, HttpBackend, Local, link_or_copy, plain_git  # noqa: E402
from gen_repo import QUICK, WORK_DIR, Params, ensure_repo  # noqa: E402
from results_md import write_section  # noqa: E402

OPS = ("clone_cold", "clone_second", "clone", "fetch", "push_full", "push_incremental")  # the clones in this order
GIT_TIMEOUT = 900


class Client:
    """The git client: its own HOME and config, nothing from the machine's."""

    def __init__(self, home: Path):
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        (home / ".gitconfig").write_text(
            "[user]\n\tname = Bench Agent\n\temail = agent@example.test\n"
            "[gc]\n\tauto = 0\n[maintenance]\n\tauto = false\n[init]\n\tdefaultBranch = main\n"
            "[advice]\n\tdetachedHead = false\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "DRIFTSTONE_"))}
        env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "GIT_CONFIG_NOSYSTEM": "1",
                    "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false", "LC_ALL": "C"})
        self.env = env

    def __call__(self, *args: str, cwd: Path | None = None, env: dict | None = None, check: bool = True,
                 timeout: float = GIT_TIMEOUT) -> subprocess.CompletedProcess:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=timeout,
                                env={**self.env, **(env or {})}, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise RuntimeError(f"git {' '.join(_redact(args))} failed ({result.returncode}):\n"
                               f"{_redact_text(result.stderr.decode(errors='replace'))[-2000:]}")
        return result


def _redact_text(text: str) -> str:
    return re.sub(r"//([^:/@\s]+):[^@\s]+@", r"//\1:***@", text)


def _redact(args) -> list[str]:
    return [_redact_text(str(a)) for a in args]


def bare_copy(source: Path, target: Path) -> Path:
    """A copy of a bare repository whose packs are hard links (git never rewrites a pack in place)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("pack"))
    (target / "objects" / "pack").mkdir(parents=True, exist_ok=True)
    for item in (source / "objects" / "pack").iterdir():
        link_or_copy(item, target / "objects" / "pack" / item.name)
    return target


class Profiler:
    """`py-spy record --gil` of the Driftstone process tree (master, workers) while a block runs: only
    samples of threads holding the GIL, i.e. where the workers spend CPU in Python. Raw collapsed
    stacks land in --py-spy DIR/<operation>.txt. A no-op without --py-spy or for the other targets."""

    def __init__(self, directory: Path | None, target, name: str):
        self.directory, self.target, self.name = directory, target, name
        self.proc: subprocess.Popen | None = None

    def __enter__(self):
        if self.directory is None or self.target.name != DRIFT or self.target.pid is None:
            return self
        exe = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
        if exe is None:
            print("warning: py-spy not found (pip install py-spy); not profiling", file=sys.stderr)
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([exe, "record", "--pid", str(self.target.pid), "--subprocesses", "--rate", "100",
                                      "--gil", "--nonblocking", "--format", "raw", "-o",
                                      str(self.directory / f"{self.name}.txt")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # let it attach
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def export_revision(revision: str) -> tuple[Path, str]:
    """The project at `revision` (git archive) under bench/.work/src-<sha>/, to serve a fixed commit while
    the working tree changes."""
    sha = plain_git("rev-parse", "--verify", "--end-of-options", f"{revision}^{{commit}}", cwd=ROOT)
    target = WORK_DIR / f"src-{sha[:12]}"
    if not (target / "wsgi.py").is_file():
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", "--format=tar", sha], cwd=ROOT, capture_output=True,
                                 check=True, timeout=300).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target, sha


def served_code(revision: str | None, sha: str | None) -> str:
    if revision is not None:
        return f"commit {sha[:12]} ({revision}, exported with git archive)"
    head = plain_git("rev-parse", "--short=12", "HEAD", cwd=ROOT)
    dirty = plain_git("status", "--porcelain", "--", "server", "hooks", "control", "storage", "wsgi.py", cwd=ROOT)
    return f"working tree at {head}" + (" with uncommitted changes" if dirty else "")




def rev(repo: Path, ref: str) -> str:
    return plain_git("rev-parse", "--verify", "--quiet", ref, cwd=repo)


class Bench:
    def __init__(self, args, repo_dir: Path, meta: dict, work: Path):
        self.args = args
        self.full = repo_dir / "full.git"
        self.base = repo_dir / "base.git"
        self.meta = meta
        self.tip, self.base_sha = meta["tip"], meta["base"]
        self.work = work
        self.git = Client(work / "home")
        self.targets = []
        self.times = {op: {} for op in OPS}
        self.memory = {op: {} for op in OPS}  # op -> target -> RSS peaks of the timed runs
        self.memory_pss = {op: {} for op in OPS}  # op -> target -> PSS peak of the untimed memory run
        self.memory_anon = {op: {} for op in OPS}  # op -> target -> the peak of its anonymous part
        self.cpu = {op: {} for op in OPS}
        self.idle: dict[str, tuple[int, int, int]] = {}  # target -> (RSS, PSS, anonymous PSS) before the runs
        self.idle_after: dict[str, tuple[int, int, int]] = {}  # the same once every transfer has run
        self.burst: dict[str, dict] = {}
        self.source: Path | None = None

    # -- set-up ------------------------------------------------------------------------------------

    def start_servers(self) -> None:
        drift = Driftstone(self.work, source=self.source)
        self.targets.append(drift)  # registered before start: stopped even if start fails
        drift.start(workers=self.args.workers, threads=self.args.threads)
        template = self.work / "repo-config"
        drift.create_repo("serve")
        shutil.copyfile(drift.repo_path("serve") / "config", template)
        ref = HttpBackend(self.work, template)
        self.targets.append(ref)
        ref.start()
        local = Local(self.work, template)
        self.targets.insert(0, local)
        for target in (ref, local):
            target.create_repo("serve")
        for target in self.targets:
            target.populate("serve", self.full, self.tip)

    def prepare_push_repos(self, rounds: int) -> None:
        """Every push goes to its own fresh repository: empty for a full push, at the base for an
        incremental one. All are made before the timing starts."""
        for target in self.targets:
            for i in range(rounds):
                target.create_repo(f"push-full-{i}")
                target.create_repo(f"push-inc-{i}")
                target.populate(f"push-inc-{i}", self.base, self.base_sha)
        self.push_client = bare_copy(self.full, self.work / "push-client.git")

    def stop_servers(self) -> None:
        for target in reversed(self.targets):
            try:
                target.stop()
            except Exception as error:  # keep stopping the others
                print(f"warning: stopping {target.name}: {error}", file=sys.stderr)

    # -- one timed operation ------------------------------------------------------------------------

    def _timed(self, target, *args: str, cwd: Path | None = None, pss: bool = False) -> tuple[float, PeakSampler]:
        # The local target has no server: sample our own tree (client git and its local upload-pack or
        # receive-pack) so that every target pays the sampler's small cost; that figure is not reported.
        with PeakSampler(target.pid or os.getpid(), pss=pss) as peak:
            started = time.perf_counter()
            self.git(*args, cwd=cwd)
            elapsed = time.perf_counter() - started
        return elapsed, peak

    def run_op(self, op: str, target, i: int, pss: bool = False) -> tuple[float, PeakSampler]:
        scratch = self.work / "scratch"
        scratch.mkdir(exist_ok=True)
        if op in ("clone_cold", "clone_second", "clone"):
            if op == "clone_cold" and hasattr(target, "forget_kept_packs"):
                target.forget_kept_packs("serve")
            dest = scratch / f"clone-{i}-{target.name.replace(' ', '_')}"
            extra = ["--no-local"] if target.name == LOCAL else []
            result = self._timed(target, "clone", "--bare", "--quiet", *extra, target.url("serve"), str(dest), pss=pss)
            if op == "clone_second" and hasattr(target, "wait_for_kept_pack"):
                target.wait_for_kept_pack("serve")  # its fsync, after the client has its pack: not on the next
            got = rev(dest, "refs/heads/main")
            shutil.rmtree(dest)
        elif op == "fetch":
            client = bare_copy(self.base, scratch / f"fetch-{i}-{target.name.replace(' ', '_')}")
            result = self._timed(target, "fetch", "--quiet", "--no-tags", target.url("serve"),
                                 "+refs/heads/main:refs/remotes/origin/main", cwd=client, pss=pss)
            got = rev(client, "refs/remotes/origin/main")
            shutil.rmtree(client)
        else:
            name = f"push-full-{i}" if op == "push_full" else f"push-inc-{i}"
            result = self._timed(target, "push", "--quiet", target.url(name), "refs/heads/main:refs/heads/main",
                                 cwd=self.push_client, pss=pss)
            got = rev(target.repo_path(name), "refs/heads/main")
        if got != self.tip:
            raise RuntimeError(f"{op} against {target.name}: main is {got}, expected {self.tip}")
        return result

    def rounds(self) -> None:
        runs = self.args.runs
        for i in range(runs + 1):  # round 0 warms caches and code paths; it is not recorded
            label = "warm-up" if i == 0 else f"run {i}/{runs}"
            order = self.targets[i % 3:] + self.targets[:i % 3]
            for op in OPS:
                for target in order:
                    profile = self.args.py_spy if i == runs else None  # profile the last run only
                    with Profiler(profile, target, op):
                        seconds, peak = self.run_op(op, target, i)
                    memory = (f"peak RSS {peak.peak_bytes / 2**20:5.0f} MiB, cpu {peak.cpu_seconds:6.2f} s"
                              if target.pid is not None else "")
                    print(f"  {label:9} {op:17} {target.name:17} {seconds:7.2f} s  {memory}", flush=True)
                    if i == 0:
                        continue
                    self.times[op].setdefault(target.name, []).append(seconds)
                    if target.pid is not None:
                        self.memory[op].setdefault(target.name, []).append(peak.peak_bytes)
                        self.cpu[op].setdefault(target.name, []).append(peak.cpu_seconds)

    def memory_round(self) -> None:
        """One more run of each operation against each server, untimed, sampling PSS as well."""
        i = self.args.runs + 1
        for op in OPS:
            for target in self.targets:
                if target.pid is None:
                    continue
                _, peak = self.run_op(op, target, i, pss=True)
                print(f"  memory    {op:17} {target.name:17} peak RSS {peak.peak_bytes / 2**20:5.0f} MiB, "
                      f"PSS {peak.peak_pss_bytes / 2**20:5.0f} MiB "
                      f"(anonymous {peak.peak_anon_bytes / 2**20:4.0f} MiB)", flush=True)
                self.memory_pss[op][target.name] = peak.peak_pss_bytes
                self.memory_anon[op][target.name] = peak.peak_anon_bytes

    def run_bursts(self) -> None:
        """--burst-rounds bursts per server, in the order D R, R D, D R, ... (fresh repositories each
        round); latencies, failures and CPU are pooled over the rounds. Then one more burst per server,
        sampling PSS, whose latencies are not counted."""
        conf = self.burst_conf()
        servers = [t for t in self.targets if t.pid is not None]
        for target in servers:
            for k in range(conf["rounds"] + 1):
                target.create_repo(f"burst-{k}")
                target.populate(f"burst-{k}", self.full, self.tip)
        for k in range(conf["rounds"]):
            for target in (servers if k % 2 == 0 else servers[::-1]):
                self._burst_once(target, k, conf)
        for target in servers:
            self._burst_once(target, conf["rounds"], conf, pss=True)

    def _burst_once(self, target, k: int, conf: dict, pss: bool = False) -> None:
        name = f"burst-{k}"
        label = "memory burst (untimed)" if pss else f"burst {k + 1}/{conf['rounds']}"
        print(f"  {label} against {target.name}: {conf['agents']} agents x {conf['pushes']} pushes ...", flush=True)
        repo = target.repo_path(name)

        def server_refs() -> dict[str, str]:
            lines = plain_git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/", cwd=repo)
            return dict(line.split(" ", 1) for line in lines.splitlines())

        profile = self.args.py_spy if k == 0 else None
        with Profiler(profile, target, "burst"):
            result = run_burst(target, name, self.full, self.work / f"{name}-{target.name.replace(' ', '_')}",
                               self.git, conf["agents"], conf["pushes"], conf["commits_per_push"], server_refs,
                               pss=pss)
        lat = sorted(result.latencies)
        pss_text = f"PSS {result.peak_pss_bytes / 2**20:.0f} MiB, " if pss else ""
        print(f"    {result.pushes} pushes in {result.wall:.1f} s, p50 {statistics.median(lat):.3f} s, "
              f"max {lat[-1]:.3f} s, {len(result.failures)} failures, peak RSS {result.peak_bytes / 2**20:.0f} MiB, "
              f"{pss_text}server cpu {result.cpu_seconds:.1f} s", flush=True)
        print("    at the peak: " + ", ".join(f"{name} {count}x {size / 2**20:.0f} MiB" for name, (count, size) in
                                            sorted(result.peak_breakdown.items(), key=lambda kv: -kv[1][1])), flush=True)
        pooled = self.burst.setdefault(target.name, {"latencies": [], "failures": [], "pushes": 0, "walls": [],
                                                     "peak_bytes": 0, "peak_pss_bytes": 0, "peak_anon_bytes": 0,
                                                     "cpu_seconds": 0.0})
        pooled["failures"] += result.failures
        if pss:
            pooled["peak_pss_bytes"] = result.peak_pss_bytes
            pooled["peak_anon_bytes"] = result.peak_anon_bytes
            return
        pooled["latencies"] += result.latencies
        pooled["pushes"] += result.pushes
        pooled["walls"].append(result.wall)
        pooled["wall"] = statistics.median(pooled["walls"])
        pooled["peak_bytes"] = max(pooled["peak_bytes"], result.peak_bytes)
        pooled["cpu_seconds"] += result.cpu_seconds

    def burst_conf(self) -> dict:
        return {"agents": self.args.agents, "pushes": self.args.pushes, "commits_per_push": self.args.commits_per_push,
                "rounds": self.args.burst_rounds}

    def measure_idle(self, into: dict[str, tuple[int, int, int]]) -> None:
        time.sleep(1.0)
        for target in self.targets:
            if target.pid is not None:
                into[target.name] = tree_memory(target.pid)


def machine_info() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"nproc {os.cpu_count()}, {mem:.0f} GiB RAM, {cpu or platform.processor()}, Linux {platform.release()}"


def _version(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, timeout=30).stdout.decode().splitlines()[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, help="timed runs per figure (default 5; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small repository, 2 runs, 6x3 burst")
    parser.add_argument("--agents", type=int, help="burst: parallel agents (default 24)")
    parser.add_argument("--pushes", type=int, help="burst: pushes per agent (default 8)")
    parser.add_argument("--commits-per-push", type=int, default=3, help="burst: commits per push (default 3)")
    parser.add_argument("--burst-rounds", type=int, default=2,
                        help="bursts per server, alternating which server goes first (default 2)")
    parser.add_argument("--skip-burst", action="store_true")
    parser.add_argument("--skip-transfers", action="store_true", help="only the burst")
    parser.add_argument("--workers", type=int, help="Driftstone gunicorn workers (default: its own default)")
    parser.add_argument("--threads", type=int, help="Driftstone threads per worker (default: its own default)")
    parser.add_argument("--output", type=Path, help="markdown report (default bench/RESULTS.md; "
                                                    "bench/.work/RESULTS-quick.md with --quick)")
    parser.add_argument("--driftstone-rev", metavar="REV",
                        help="serve this git revision of the project (exported to bench/.work/src-SHA) instead of "
                             "the working tree")
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="profile Driftstone with py-spy (last run of each operation, and the burst) into DIR; "
                             "profiling slows it down, so the figures of such a run are not comparable")
    parser.add_argument("--keep", action="store_true", help="keep the run's work directory (servers' data, logs)")
    args = parser.parse_args(argv)
    args.runs = args.runs or (2 if args.quick else 5)
    args.agents = args.agents or (6 if args.quick else 24)
    args.pushes = args.pushes or (3 if args.quick else 8)
    args.output = args.output or (WORK_DIR / "RESULTS-quick.md" if args.quick else BENCH / "RESULTS.md")
    if min(args.runs, args.agents, args.pushes, args.commits_per_push, args.burst_rounds) < 1:
        parser.error("counts must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below stops the servers
    started = time.monotonic()
    params = QUICK if args.quick else Params()
    print("preparing the repository (generated once, then cached) ...", flush=True)
    repo_dir, meta = ensure_repo(params)
    print(f"  {repo_dir}: {meta['packed_bytes'] / 2**20:.0f} MiB packed, {meta['commits_total']} commits, "
          f"{meta['objects']} objects", flush=True)
    work = WORK_DIR / f"run-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    work.mkdir(parents=True)
    bench = Bench(args, repo_dir, meta, work)
    sha = None
    if args.driftstone_rev:
        bench.source, sha = export_revision(args.driftstone_rev)
    code = served_code(args.driftstone_rev, sha)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    max_load = os.getloadavg()[0]  # other work on the machine (the load after includes our own burst)
    try:
        print("starting servers and preparing repositories ...", flush=True)
        bench.start_servers()
        bench.measure_idle(bench.idle)
        if not args.skip_transfers:
            bench.prepare_push_repos(args.runs + 2)
            print(f"timing {', '.join(OPS)} ({args.runs} runs after a warm-up round) ...", flush=True)
            bench.rounds()
            print("memory: one more untimed run of each, sampling PSS too ...", flush=True)
            bench.memory_round()
            bench.measure_idle(bench.idle_after)
        if not args.skip_burst:
            print("burst of small pushes ...", flush=True)
            bench.run_bursts()
    finally:
        bench.stop_servers()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")

    notes = [
        "Clone is `git clone --bare` (no checkout: the transport is measured, not the file system); local "
        "is `git clone --no-local` from a bare repository on the same disk.",
        "Driftstone keeps the pack it makes for the second clone of a state within 10 minutes and sends it to "
        "the clones of that state after it (server/pack_cache.py): \"first of its state\" empties that cache "
        "before each run, so git makes the pack and nothing is written; \"second\" makes it and keeps it (a "
        "copy through one more pipe; the fsync comes after the client has its pack, and the next clone starts "
        "once it is done); \"again\" is sent the kept pack. git http-backend and the "
        "local clone make the pack every time. "
        "A kept pack is read through the page cache rather than mapped, so the lower PSS of a clone served from "
        "it is mostly page cache no process maps (the machine holds those pages either way); what it saves is "
        "pack-objects' CPU and what pack-objects allocates.",
        "Local push is `git push /path/to/bare.git` (file transport). Full push goes into an empty repository, "
        f"incremental push into one at main~{meta['params']['increment']}; each push gets a fresh repository.",
        "All repositories share Driftstone's repository config (receive.fsckObjects, core.fsync, ...), so every "
        "push is fsck'd and fsync'd on all three targets.",
        "Both servers bind 127.0.0.1 and ask for Basic credentials. lighttpd streams responses "
        "(server.stream-response-body = 2) but buffers a push body to a temporary file before it starts "
        "the CGI (its default; with streamed request bodies mod_cgi answers git's chunked pushes with 411).",
        "Client and servers share the machine's cores; figures from a busy machine are noisier "
        "(see the load averages above).",
    ]
    info = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "git": _version(["git", "--version"]),
        "lighttpd": _version(["lighttpd", "-v"]).split(" - ")[0],
        "commit": code,
        "driftstone": f"gunicorn gthread, workers={args.workers or 'default'}, threads={args.threads or 'default'}",
        "repo": (f"{meta['packed_bytes'] / 2**20:.0f} MiB packed, {meta['commits_total']} commits, "
                 f"{meta['objects']} objects; increment {meta['commits_increment']} commits "
                 f"({(meta['packed_bytes'] - meta['base_packed_bytes']) / 2**20:.1f} MiB)"),
        "runs": args.runs,
        "load_before": load_before,
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "busy": max_load > (os.cpu_count() or 1) * 1.5,
        "command": (f"nice -n {os.nice(0)} " if os.nice(0) else "") + "python bench/git_bench.py "
                   + " ".join(sys.argv[1:] if argv is None else argv),
        "notes": notes,
    }
    times = {} if args.skip_transfers else bench.times
    memory = {} if args.skip_transfers else bench.memory
    memory_pss = {} if args.skip_transfers else bench.memory_pss
    memory_anon = {} if args.skip_transfers else bench.memory_anon
    cpu = {} if args.skip_transfers else bench.cpu
    report = render(info, times, memory, memory_pss, cpu, bench.idle, bench.idle_after, bench.burst,
                    bench.burst_conf(), memory_anon)
    print()
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_section(args.output, "git_bench", report)
    raw = WORK_DIR / f"results-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    raw.write_text(json.dumps({"info": info, "times": times, "memory": memory, "memory_pss": memory_pss,
                               "memory_anon": memory_anon, "cpu": cpu,
                               "idle": bench.idle, "idle_after": bench.idle_after,
                               "burst": bench.burst, "meta": meta}, indent=1))
    print(f"wrote {args.output} and {raw} in {(time.monotonic() - started) / 60:.1f} min")
    failed = any(d["failures"] for d in bench.burst.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
