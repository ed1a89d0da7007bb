"""An extension run on a 5,000-file repository, from `POST /v1/extensions/run` to a completed poll, against what an
agent platform does without server-side runs: clone, run the same agent program there, commit, push a branch.

    .venv/bin/python bench/extension_bench.py [--files 5000] [--runs 7] [--output FILE]
    .venv/bin/python bench/extension_bench.py --quick     # smoke run (1,000 files, 3 runs), prints only

Two `driftstone serve` (production gunicorn settings) on scratch data dirs under bench/.work/, one running agents in
bubblewrap (the default), one with DRIFTSTONE_EXTENSION_SANDBOX=none, each with the same generated repository
pushed with git. The agent program (written to the scratch dir) appends a line to 10 files, writes one artifact and
prints "done". Rounds alternate between the ways:

- run: `POST /v1/extensions/run`, then `GET /v1/extensions/poll/{runId}` every 20 ms until it is not running,
  timed from the POST to the poll that reads `completed` (so up to 20 ms of polling are in the figure);
- git: `git clone --depth 1`, the same agent program in the clone with the same prompt, `git add -A`,
  `git commit`, `git push origin HEAD:refs/heads/local/<n>`, timed end to end.

Every round checks its result: the run's (or the push's) commit has the base as its only parent and changes
exactly the 10 files. Writes the section "Extension run vs clone + agent + push" of bench/RESULTS.md (between
`<!-- extension_bench: start -->` and `<!-- extension_bench: end -->`).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_commit_bench import REPO, client_env, git, make_repo, ms  # noqa: E402
from bench_report import percentile  # noqa: E402
from bench_servers import HOST, Driftstone  # noqa: E402
from results_md import load_average, write_section  # noqa: E402

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work"
CHANGED = 10
POLL_SECONDS = 0.02
AGENT = '''import os, sys
prompt = sys.stdin.read()
for line in prompt.splitlines():
    if line.startswith("append "):
        with open(line.split(" ", 1)[1], "a") as handle:
            handle.write("# reviewed\\n")
artifacts = os.environ.get("DRIFTSTONE_ARTIFACTS_DIR")
if artifacts:
    with open(os.path.join(artifacts, "review.md"), "w") as handle:
        handle.write("# Review\\n")
print("done")
'''


def prompt_for(files: int) -> str:
    from api_commit_bench import file_path

    step = files // CHANGED
    return "Review these modules.\n" + "".join(f"append {file_path(k * step)}\n" for k in range(CHANGED))


class Server:
    def __init__(self, scratch: Path, name: str, agent: Path, files: int, sandbox: str):
        self.name = name
        self.driftstone = Driftstone(scratch / name)
        self.driftstone.env.update({"DRIFTSTONE_EXTENSION_COMMAND": f"{sys.executable} -u {agent}",
                                    "DRIFTSTONE_EXTENSION_SANDBOX": sandbox})
        self.driftstone.start()
        self.base = make_repo(self.driftstone, files, scratch / name)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.driftstone.key}"
        self.api = f"http://{HOST}:{self.driftstone.port}/v1"
        made = self.session.post(f"{self.api}/extensions/create", timeout=60,
                                 json={"type": "agent", "name": "bench", "prompt": prompt_for(files)})
        made.raise_for_status()
        self.extension = made.json()["data"]["extensionId"]
        self.path = f"organizations/{self.driftstone.org}/repositories/{REPO}/main"
        self.times: list[float] = []

    def run_round(self) -> None:
        start = time.perf_counter()
        started = self.session.post(f"{self.api}/extensions/run", timeout=60,
                                    json={"extensionId": self.extension, "path": self.path})
        if started.status_code != 202:
            raise RuntimeError(f"run refused: {started.status_code} {started.text[:300]}")
        run_id = started.json()["data"]["runId"]
        while True:
            data = self.session.get(f"{self.api}/extensions/poll/{run_id}", timeout=60).json()["data"]
            if data["status"] != "running":
                break
            time.sleep(POLL_SECONDS)
        elapsed = time.perf_counter() - start
        result = data["result"] or {}
        if data["status"] != "completed" or len(result.get("changes", [])) != CHANGED or not result.get("artifacts"):
            raise RuntimeError(f"run {run_id} ended {data['status']}: {data.get('error')} {str(result)[:300]}")
        if result["baseCommit"] != self.base:
            raise RuntimeError(f"run {run_id} worked on {result['baseCommit']}, not {self.base}")
        self.times.append(elapsed)


class GitWay:
    def __init__(self, server: Server, agent: Path, files: int, scratch: Path):
        self.server, self.agent, self.prompt, self.scratch = server, agent, prompt_for(files), scratch
        self.env = client_env(scratch / "home")
        (scratch / "home").mkdir(exist_ok=True)
        self.times: list[float] = []

    def run_round(self, round_: int) -> None:
        work = self.scratch / f"clone-{round_}"
        start = time.perf_counter()
        git(self.env, "clone", "-q", "--depth", "1", "--branch", "main", self.server.driftstone.url(REPO), str(work))
        subprocess.run([sys.executable, "-u", str(self.agent)], cwd=work, input=self.prompt.encode(), check=True,
                       capture_output=True, env={k: v for k, v in self.env.items() if k != "DRIFTSTONE_ARTIFACTS_DIR"})
        git(self.env, "add", "-A", cwd=work)
        git(self.env, "commit", "-q", "-m", "review", cwd=work)
        git(self.env, "push", "-q", "origin", f"HEAD:refs/heads/local/round{round_ + 1}", cwd=work)
        elapsed = time.perf_counter() - start
        changed = git(self.env, "diff", "--name-only", "HEAD^", "HEAD", cwd=work).splitlines()
        if len(changed) != CHANGED or git(self.env, "rev-parse", "HEAD^", cwd=work) != self.server.base:
            raise RuntimeError(f"git round {round_}: unexpected commit ({changed})")
        shutil.rmtree(work)
        self.times.append(elapsed)


def row(name: str, values: list[float]) -> str:
    return (f"| {name} | {ms(statistics.median(values))} | {ms(min(values))} | {ms(max(values))} "
            f"| {ms(percentile(values, 0.9))} |")


def render(args, sandboxed: Server, bare: Server, way: GitWay, load: tuple[str, str]) -> str:
    ratio = statistics.median(sandboxed.times) / statistics.median(way.times)
    lines = [
        f"## Extension run vs clone + agent + push ({args.files:,} files, {CHANGED} changed; "
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)",
        "",
        f"`.venv/bin/python bench/extension_bench.py --files {args.files} --runs {args.runs}` — two `driftstone "
        f"serve` (default gunicorn workers/threads; in-process jobs), the same agent program (appends to {CHANGED} "
        f"files, writes one artifact) every way, rounds alternating, each checked (base commit, exactly the "
        f"{CHANGED} files changed), after one untimed warm-up round of each; {args.runs} timed runs of each. A run "
        f"is timed from its POST to the poll (every {POLL_SECONDS * 1000:.0f} ms) that reads `completed`.",
        "",
        "| way | median | min | max | p90 |",
        "| --- | ---: | ---: | ---: | ---: |",
        row("extension run, agent in bubblewrap (default)", sandboxed.times),
        row("extension run, `DRIFTSTONE_EXTENSION_SANDBOX=none`", bare.times),
        row("git: clone --depth 1 + the agent + add + commit + push a branch", way.times),
        "",
        f"Run / git (medians, sandboxed): **{ratio:.2f}×**; the sandbox costs "
        f"{ms(statistics.median(sandboxed.times) - statistics.median(bare.times))} a run.",
        "",
        f"Load average before / after: {load[0]} / {load[1]} (client, servers and agents share the cores).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="1,000 files, 3 runs, print only")
    parser.add_argument("--output", type=Path, help="markdown file for the section (default bench/RESULTS.md)")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.runs = 1000, 3
    if shutil.which("bwrap") is None:
        raise SystemExit("bubblewrap (bwrap) is needed: bash tests/install-clients.sh installs it")
    WORK.mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="extbench-", dir=WORK))
    agent = scratch / "agent.py"
    agent.write_text(AGENT)
    servers: list[Server] = []
    try:
        sandboxed = Server(scratch, "sandboxed", agent, args.files, "bwrap")
        servers.append(sandboxed)
        bare = Server(scratch, "bare", agent, args.files, "none")
        servers.append(bare)
        way = GitWay(sandboxed, agent, args.files, scratch)
        sandboxed.run_round(), bare.run_round(), way.run_round(-1)  # warm-up, untimed
        sandboxed.times, bare.times, way.times = [], [], []
        before = load_average()
        for round_ in range(args.runs):
            order = [sandboxed.run_round, bare.run_round, lambda: way.run_round(round_)]
            for step in (order if round_ % 2 == 0 else order[::-1]):
                step()
        section = render(args, sandboxed, bare, way, (before, load_average()))
    finally:
        for server in servers:
            server.driftstone.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(section)
    if not args.quick:
        write_section(args.output or BENCH / "RESULTS.md", "extension_bench", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
