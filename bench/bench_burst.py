"""A burst of small pushes: N agents in parallel, each committing in a loop on its own branch and pushing
every few commits, against one server. Every push must land: each `git push` must succeed, and at the
end every agent branch on the server must point at the agent's last commit.

The agents' commits are deterministic (fixed contents and dates), so each server receives the same
objects. Agent clones share the generated repository's objects (`git clone --shared`) and have no
checkout (the index is read from HEAD and only the agent's own files are written), so setting up 24 of
them takes seconds and no disk.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench_memory import PeakSampler

PUSH_TIMEOUT = 300


@dataclass
class BurstResult:
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    wall: float = 0.0
    peak_bytes: int = 0
    peak_pss_bytes: int = 0
    peak_anon_bytes: int = 0
    peak_breakdown: dict = field(default_factory=dict)
    cpu_seconds: float = 0.0
    pushes: int = 0


def _note(agent: int, commit: int) -> bytes:
    lines = [f"agent {agent} note {commit} line {i}: " + "x" * (i % 50) for i in range(40)]
    return ("\n".join(lines) + "\n").encode()


class Agent:
    def __init__(self, index: int, directory: Path, run_git):
        self.index = index
        self.dir = directory
        self.branch = f"agent-{index:02d}"
        self.git = run_git
        self.commit_count = 0

    def setup(self, source: Path, url: str) -> None:
        self.git("clone", "--quiet", "--shared", "--no-checkout", str(source), str(self.dir))
        self.git("remote", "set-url", "origin", url, cwd=self.dir)
        self.git("update-ref", f"refs/heads/{self.branch}", "HEAD", cwd=self.dir)
        self.git("symbolic-ref", "HEAD", f"refs/heads/{self.branch}", cwd=self.dir)
        self.git("read-tree", "HEAD", cwd=self.dir)

    def commit(self) -> None:
        self.commit_count += 1
        path = f"agents/{self.branch}/note-{self.commit_count:03d}.txt"
        target = self.dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_note(self.index, self.commit_count))
        stamp = f"{1_700_000_000 + self.index * 1000 + self.commit_count} +0000"
        env = {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
        self.git("add", "--", path, cwd=self.dir)
        self.git("commit", "--quiet", "--no-verify", "-m", f"{self.branch}: note {self.commit_count}",
                 cwd=self.dir, env=env)

    def push(self) -> tuple[float, str | None]:
        started = time.perf_counter()
        result = self.git("push", "--quiet", "--porcelain", "origin", f"refs/heads/{self.branch}", cwd=self.dir,
                          check=False, timeout=PUSH_TIMEOUT)
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            return elapsed, f"{self.branch}: push exited {result.returncode}: {result.stderr.decode(errors='replace')[-300:]}"
        return elapsed, None

    def head(self) -> str:
        return self.git("rev-parse", "HEAD", cwd=self.dir).stdout.decode().strip()


def run_burst(server, repo_name: str, source: Path, work: Path, run_git, agents: int, pushes: int,
              commits_per_push: int, read_server_refs, pss: bool = False) -> BurstResult:
    """Set up `agents` clones, release them together, and check every branch landed."""
    work.mkdir(parents=True, exist_ok=True)
    crew = [Agent(i, work / f"agent-{i:02d}", run_git) for i in range(agents)]
    with ThreadPoolExecutor(max_workers=min(agents, 8)) as pool:
        list(pool.map(lambda a: a.setup(source, server.url(repo_name)), crew))

    result = BurstResult()
    lock = threading.Lock()
    start = threading.Barrier(agents + 1, timeout=120)

    def work_loop(agent: Agent) -> None:
        start.wait()
        for _ in range(pushes):  # bounded: pushes x commits_per_push per agent
            for _ in range(commits_per_push):
                agent.commit()
            elapsed, failure = agent.push()
            with lock:
                result.pushes += 1
                result.latencies.append(elapsed)
                if failure:
                    result.failures.append(failure)

    with ThreadPoolExecutor(max_workers=agents) as pool:
        futures = [pool.submit(work_loop, agent) for agent in crew]
        with PeakSampler(server.pid, pss=pss) as peak:
            start.wait()
            began = time.perf_counter()
            for future in futures:
                try:
                    future.result(timeout=PUSH_TIMEOUT * pushes + 60)
                except Exception as error:  # an agent's git failed outside push: record, keep going
                    with lock:
                        result.failures.append(f"agent error: {error}")
            result.wall = time.perf_counter() - began
    result.peak_bytes = peak.peak_bytes
    result.peak_pss_bytes = peak.peak_pss_bytes
    result.peak_anon_bytes = peak.peak_anon_bytes
    result.peak_breakdown = peak.peak_breakdown
    result.cpu_seconds = peak.cpu_seconds

    server_refs = read_server_refs()
    for agent in crew:
        expected = agent.head()
        landed = server_refs.get(f"refs/heads/{agent.branch}")
        if landed != expected:
            result.failures.append(f"{agent.branch}: server has {landed}, agent pushed {expected}")
    return result
