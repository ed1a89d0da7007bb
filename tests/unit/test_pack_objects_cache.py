"""The pack cache's program (server/git/pack-objects-cache) run as git runs it, on a real repository, and the
server's choice of the requests it serves (server/pack_cache.py)."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from server.pack_cache import PROGRAM, PackCache, is_fetch_from_nothing, packed_size
from server.pktline import encode
from storage.repo_store import RepoStore
from storage.settings import Settings

PACK_OBJECTS = ["git", "pack-objects", "--revs", "--stdout", "--delta-base-offset"]
REPO_ID = "repo_" + "0" * 22 + "ab"


@pytest.fixture
def repo(tmp_path) -> Path:
    path = tmp_path / "repo.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    for i in range(3):
        (work / f"file{i}.txt").write_text(f"content {i}\n" * 50)
        subprocess.run(["git", "-C", str(work), "add", "."], check=True)
        subprocess.run(["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", f"c{i}"],
                       check=True)
    subprocess.run(["git", "-C", str(work), "push", "-q", str(path), "main"], check=True)
    return path


@pytest.fixture
def counted(tmp_path) -> tuple[list[str], Path]:
    """A command that runs git pack-objects and notes each run in a log."""
    log = tmp_path / "runs.log"
    wrapper = tmp_path / "counted-pack-objects"
    wrapper.write_text(f'#!/bin/bash\necho run >> "{log}"\nexec "$@"\n')
    wrapper.chmod(0o755)
    return [str(wrapper), *PACK_OBJECTS], log


def hook_env(cache: Path, minutes: int = 10, max_bytes: int = 2**30, min_free: int = 0, repository_size: int = 0,
             min_occurrences: int = 0, path: str | None = None) -> dict[str, str]:
    """The program's settings; by default it keeps the pack of a state's first clone."""
    return {"PATH": path or os.environ["PATH"], "DRIFTSTONE_PACK_CACHE_DIR": str(cache), "GIT_DIR": ".",
            "DRIFTSTONE_PACK_CACHE_REPOSITORY": REPO_ID, "DRIFTSTONE_PACK_CACHE_MINUTES": str(minutes),
            "DRIFTSTONE_PACK_CACHE_MAX_BYTES": str(max_bytes), "DRIFTSTONE_PACK_CACHE_MIN_FREE": str(min_free),
            "DRIFTSTONE_PACK_CACHE_REPOSITORY_SIZE": str(repository_size),
            "DRIFTSTONE_PACK_CACHE_MIN_OCCURRENCES": str(min_occurrences)}


def run_hook(repo: Path, cache: Path, command: list[str], stdin: bytes, **settings):
    return subprocess.run([str(PROGRAM), *command], cwd=repo, env=hook_env(cache, **settings), input=stdin,
                          capture_output=True, timeout=60)


def wanted(repo: Path, *refs: str) -> bytes:
    """pack-objects' input as upload-pack writes it for a clone: the wanted objects, --not, an empty line."""
    oids = [subprocess.check_output(["git", "-C", str(repo), "rev-parse", ref]).strip() for ref in refs]
    return b"".join(oid + b"\n" for oid in oids) + b"--not\n\n"


def path_with_wrapped(tmp_path: Path, tool: str, first: str) -> str:
    """A PATH on which `tool` runs the shell line `first`, then the real tool."""
    real = subprocess.check_output(["bash", "-c", f"command -v {tool}"]).decode().strip()
    tools = tmp_path / "wrapped"
    tools.mkdir(exist_ok=True)
    (tools / tool).write_text(f'#!/bin/bash\n{first}\nexec {real} "$@"\n')
    (tools / tool).chmod(0o755)
    return f"{tools}:{os.environ['PATH']}"


def runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def wait_for_kept(cache: Path, count: int = 1) -> list[Path]:
    """The kept packs, once `count` are there (a pack is moved into place after the client has it)."""
    deadline = time.monotonic() + 10
    while len(kept := sorted(cache.glob("*.pack"))) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return kept


def test_the_same_input_is_answered_from_the_first_run(repo, tmp_path, counted):
    command, log = counted
    cache = tmp_path / "cache"
    first = run_hook(repo, cache, command, wanted(repo, "main"))
    assert first.returncode == 0 and first.stdout.startswith(b"PACK")
    assert len(wait_for_kept(cache)) == 1
    second = run_hook(repo, cache, command, wanted(repo, "main"))
    assert second.returncode == 0
    assert second.stdout == first.stdout
    assert runs(log) == 1
    index = subprocess.run(["git", "index-pack", "--stdin", "--fix-thin", str(tmp_path / "check.pack")],
                           input=second.stdout, cwd=repo, capture_output=True)
    assert index.returncode == 0, index.stderr


def test_other_input_or_arguments_make_a_pack_of_their_own(repo, tmp_path, counted):
    command, log = counted
    cache = tmp_path / "cache"
    whole = run_hook(repo, cache, command, wanted(repo, "main"))
    wait_for_kept(cache)
    older = run_hook(repo, cache, command, wanted(repo, "main~1"))
    wait_for_kept(cache, 2)
    filtered = run_hook(repo, cache, [*command, "--filter=blob:none"], wanted(repo, "main"))
    assert runs(log) == 3
    assert len({whole.stdout, older.stdout, filtered.stdout}) == 3
    assert len(wait_for_kept(cache, 3)) == 3


def test_a_shallow_file_counts_by_what_it_holds_not_its_name(repo, tmp_path, counted):
    """upload-pack writes the shallow boundary to a temporary file whose name changes with every request."""
    command, log = counted
    cache = tmp_path / "cache"
    tip = subprocess.check_output(["git", "-C", str(repo), "rev-parse", "main"]).strip()
    outputs = []
    for name, content in (("one", tip), ("two", tip), ("three", b"")):
        shallow = tmp_path / name
        shallow.write_bytes(content + b"\n" if content else b"")
        outputs.append(run_hook(repo, cache, ["git", "--shallow-file", str(shallow), *PACK_OBJECTS[1:]],
                                wanted(repo, "main")))
        wait_for_kept(cache, 1 if name != "three" else 2)
    assert [o.returncode for o in outputs] == [0, 0, 0]
    assert outputs[0].stdout == outputs[1].stdout
    assert len(wait_for_kept(cache, 2)) == 2  # the same boundary once, the empty one again


def test_a_failed_run_keeps_nothing_and_fails_as_git_did(repo, tmp_path):
    cache = tmp_path / "cache"
    failing = ["bash", "-c", "printf 'PACK-cut-off'; exit 3"]
    result = run_hook(repo, cache, failing, wanted(repo, "main"))
    assert result.returncode != 0
    assert result.stdout == b"PACK-cut-off"  # what git wrote still reaches upload-pack, which reports the failure
    time.sleep(0.2)
    assert list(cache.glob("*.pack")) == [] and list(cache.glob("*partial*")) == []


def test_a_pack_older_than_the_limit_is_removed_and_made_again(repo, tmp_path, counted):
    command, log = counted
    cache = tmp_path / "cache"
    run_hook(repo, cache, command, wanted(repo, "main"))
    [kept] = wait_for_kept(cache)
    eleven_minutes_ago = time.time() - 11 * 60
    os.utime(kept, (eleven_minutes_ago, eleven_minutes_ago))
    leftovers = {}  # of packs of other states: a writer may count objects for long before it writes
    for name in ("e.partial.11", "f.partial.12", "f.made.13", "f.opening.14"):
        key, _, rest = name.partition(".")
        leftovers[name] = cache / f"{REPO_ID}.{key * 64}.{rest}"
        leftovers[name].write_bytes(b"PACK")
        os.utime(leftovers[name], (eleven_minutes_ago, eleven_minutes_ago))
    import fcntl
    with open(cache / f"{REPO_ID}.{'e' * 64}.lock", "a") as writing:  # its writer is still at work
        fcntl.flock(writing, fcntl.LOCK_EX)
        run_hook(repo, cache, command, wanted(repo, "main"))
    assert runs(log) == 2
    assert {name for name, path in leftovers.items() if path.exists()} == {"e.partial.11"}
    [again] = wait_for_kept(cache)
    assert again.stat().st_mtime > eleven_minutes_ago + 60


@pytest.mark.parametrize("min_occurrences", [1, 2])
def test_a_pack_is_kept_only_once_its_state_was_asked_for_before(repo, tmp_path, counted, min_occurrences):
    """With DRIFTSTONE_PACK_CACHE_MIN_OCCURRENCES=n the first n clones of a state are sent a pack made for each
    and nothing is written; the next keeps its pack, and the ones after are sent that pack."""
    command, log = counted
    cache = tmp_path / "cache"
    outputs = []
    for _ in range(min_occurrences):
        outputs.append(run_hook(repo, cache, command, wanted(repo, "main"), min_occurrences=min_occurrences))
        assert list(cache.glob("*.pack")) == [] and list(cache.glob("*.partial.*")) == []
    outputs.append(run_hook(repo, cache, command, wanted(repo, "main"), min_occurrences=min_occurrences))
    assert len(wait_for_kept(cache)) == 1
    outputs.append(run_hook(repo, cache, command, wanted(repo, "main"), min_occurrences=min_occurrences))
    assert runs(log) == min_occurrences + 1
    assert all(output.returncode == 0 and output.stdout == outputs[0].stdout for output in outputs)
    assert outputs[0].stdout.startswith(b"PACK")


def test_clones_of_a_state_count_only_within_the_minutes(repo, tmp_path, counted):
    """A clone of a state last asked for longer ago than DRIFTSTONE_PACK_CACHE_MINUTES counts as its first, and
    a clone of another state counts for that state alone."""
    command, log = counted
    cache = tmp_path / "cache"
    run_hook(repo, cache, command, wanted(repo, "main"), min_occurrences=1)
    [tally] = cache.glob("*.seen")
    eleven_minutes_ago = time.time() - 11 * 60
    os.utime(tally, (eleven_minutes_ago, eleven_minutes_ago))
    run_hook(repo, cache, command, wanted(repo, "main~1"), min_occurrences=1)
    run_hook(repo, cache, command, wanted(repo, "main"), min_occurrences=1)
    assert list(cache.glob("*.pack")) == [] and list(cache.glob("*.partial.*")) == []
    run_hook(repo, cache, command, wanted(repo, "main"), min_occurrences=1)
    assert len(wait_for_kept(cache)) == 1
    assert runs(log) == 4


def test_a_state_cloned_all_along_keeps_its_pack_when_the_kept_one_ages_out(repo, tmp_path, counted):
    """Clones sent the kept pack count too: the clone after that pack ages out keeps the next one at once
    (the tally had aged out with the pack, and that clone made a pack it did not keep)."""
    command, log = counted
    cache = tmp_path / "cache"
    for _ in range(2):
        run_hook(repo, cache, command, wanted(repo, "main"), min_occurrences=1)
    [kept] = wait_for_kept(cache)
    [tally] = cache.glob("*.seen")
    nine_minutes_ago = time.time() - 9 * 60
    for path in (kept, tally):
        os.utime(path, (nine_minutes_ago, nine_minutes_ago))
    run_hook(repo, cache, command, wanted(repo, "main"), min_occurrences=1)  # sent the kept pack
    assert runs(log) == 2
    refreshed_two_minutes_ago = tally.stat().st_mtime - 2 * 60  # the pack is older than the limit, the tally not
    os.utime(tally, (refreshed_two_minutes_ago, refreshed_two_minutes_ago))
    os.utime(kept, (nine_minutes_ago - 2 * 60, nine_minutes_ago - 2 * 60))
    run_hook(repo, cache, command, wanted(repo, "main"), min_occurrences=1)
    assert runs(log) == 3
    [again] = wait_for_kept(cache)
    assert again.stat().st_mtime > nine_minutes_ago + 60


def test_the_newest_packs_are_kept_within_the_budget(repo, tmp_path, counted):
    """Each new pack pushes the oldest out once all of them together pass DRIFTSTONE_PACK_CACHE_MAX_BYTES."""
    command, log = counted
    cache = tmp_path / "cache"
    sizes = {ref: len(run_hook(repo, tmp_path / "sizes", PACK_OBJECTS, wanted(repo, ref)).stdout)
             for ref in ("main~2", "main~1", "main")}
    for i, ref in enumerate(("main~2", "main~1")):
        run_hook(repo, cache, command, wanted(repo, ref))
        wait_for_kept(cache, i + 1)
        time.sleep(0.05)  # distinct modification times
    budget = sizes["main~1"] + sizes["main"]  # room for the two newest only
    run_hook(repo, cache, command, wanted(repo, "main"), max_bytes=budget)
    expected = sorted([sizes["main~1"], sizes["main"]])
    deadline = time.monotonic() + 10
    while (kept := sorted(p.stat().st_size for p in cache.glob("*.pack"))) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert kept == expected
    assert runs(log) == 3
    run_hook(repo, cache, command, wanted(repo, "main"), max_bytes=budget)
    run_hook(repo, cache, command, wanted(repo, "main~1"), max_bytes=budget)
    assert runs(log) == 3  # both survived
    run_hook(repo, cache, command, wanted(repo, "main~2"), max_bytes=budget)
    assert runs(log) == 4  # the oldest did not


def test_the_budget_removes_packs_never_tallies(repo, tmp_path, counted):
    """A state's tally holds no pack: removed by the budget, a state never kept would count from its first clone
    again."""
    command, log = counted
    cache = tmp_path / "cache"
    run_hook(repo, cache, command, wanted(repo, "main~1"), min_occurrences=1)  # a tally, no pack
    size = len(run_hook(repo, tmp_path / "sizes", PACK_OBJECTS, wanted(repo, "main")).stdout)
    for _ in range(2):
        run_hook(repo, cache, command, wanted(repo, "main"), min_occurrences=1, max_bytes=size)
    wait_for_kept(cache)
    for lock in cache.glob(f"{REPO_ID}.*.lock"):  # held until the keeping's background step (budget too) ends
        subprocess.run(["flock", "-w", "10", str(lock), "true"], check=True)
    assert len(list(cache.glob("*.pack"))) == 1
    assert len(list(cache.glob("*.seen"))) == 2


def start_hooks(repo: Path, cache: Path, command: list[str], count: int, stderr=None,
                **settings) -> list[subprocess.Popen]:
    """`count` runs of the program asking for main's pack at once (small packs: no pipe fills up meanwhile)."""
    procs = [subprocess.Popen([str(PROGRAM), *command], cwd=repo, env=hook_env(cache, **settings),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr) for _ in range(count)]
    for proc in procs:
        proc.stdin.write(wanted(repo, "main"))
        proc.stdin.close()
    return procs


def finish(procs: list[subprocess.Popen]) -> list[tuple[int, bytes]]:
    outputs = [proc.stdout.read() for proc in procs]
    return [(proc.wait(timeout=60), output) for proc, output in zip(procs, outputs)]


def slow_tool(tmp_path: Path, log: Path, before: str = "sleep 1") -> Path:
    """A command that notes its run, runs the shell line `before`, then runs the rest of its arguments."""
    tool = tmp_path / "slow-pack-objects"
    tool.write_text(f'#!/bin/bash\necho run >> "{log}"\n{before}\nexec "$@"\n')
    tool.chmod(0o755)
    return tool


def test_simultaneous_runs_of_one_input_make_one_pack_that_each_is_sent(repo, tmp_path):
    """A swarm of agents cloning a new state: one pack-objects run, its pack sent to all of them as it is
    written (it was one run each: 50 clones of a 200 MiB repository held 8 GB)."""
    log = tmp_path / "runs.log"
    cache = tmp_path / "cache"
    results = finish(start_hooks(repo, cache, [str(slow_tool(tmp_path, log)), *PACK_OBJECTS], 6))
    assert [code for code, _ in results] == [0] * 6
    assert len({output for _, output in results}) == 1 and results[0][1].startswith(b"PACK")
    assert runs(log) == 1
    assert len(wait_for_kept(cache)) == 1
    time.sleep(0.2)
    assert list(cache.glob("*partial*")) == [] and list(cache.glob("*.made.*")) == []


def test_a_pack_that_fails_midway_fails_every_clone_it_was_sent_to(repo, tmp_path):
    """Its clients got the part written: each must end in an error (upload-pack then aborts the clone), not in
    success with a cut-off pack."""
    log = tmp_path / "runs.log"
    failing = slow_tool(tmp_path, log, "printf 'PACK-half'; sleep 1; exit 3")
    cache = tmp_path / "cache"
    procs = start_hooks(repo, cache, [str(failing), *PACK_OBJECTS], 4, stderr=subprocess.PIPE)
    results = finish(procs)
    assert all(code != 0 for code, _ in results)
    assert {output for _, output in results} == {b"PACK-half"}
    for proc in procs:  # said before upload-pack's "possible repository corruption", without the server's paths
        message = proc.stderr.read()
        assert b"could not be finished; clone again" in message and str(cache).encode() not in message
    time.sleep(0.2)
    assert list(cache.glob("*.pack")) == [] and list(cache.glob("*partial*")) == []


def test_a_pack_whose_writer_was_killed_is_not_sent_as_whole_and_is_made_again(repo, tmp_path):
    """A writer killed midway (the OOM killer): the clones sending its pack fail, its file goes, and the next
    clone of the state makes the pack again."""
    log = tmp_path / "runs.log"
    armed = tmp_path / "kill-the-writer"
    armed.touch()
    killing = slow_tool(tmp_path, log,
                        f'if [ -e "{armed}" ]; then printf PACK-half; sleep 0.5; kill -9 $PPID; exit 0; fi')
    cache = tmp_path / "cache"
    command = [str(killing), *PACK_OBJECTS]
    results = finish(start_hooks(repo, cache, command, 3))
    assert all(code != 0 for code, _ in results) and {output for _, output in results} == {b"PACK-half"}
    time.sleep(0.2)
    assert list(cache.glob("*.partial.*")) == [] and list(cache.glob("*.pack")) == []
    armed.unlink()
    again = run_hook(repo, cache, command, wanted(repo, "main"))
    assert again.returncode == 0 and again.stdout.startswith(b"PACK") and again.stdout != b"PACK-half"
    assert len(wait_for_kept(cache)) == 1


def test_a_pack_left_by_a_killed_writer_is_never_sent(repo, tmp_path, counted):
    """The writer and its keeper both killed leave the partial file where it was, no lock held: a clone of the
    state makes the pack again (following that file, it sent the stale bytes, and hung while the pid in the
    file's name belonged to another process)."""
    command, log = counted
    cache = tmp_path / "cache"
    run_hook(repo, cache, command, wanted(repo, "main"))
    [kept] = wait_for_kept(cache)
    whole = kept.read_bytes()
    stem = kept.name.removesuffix(".pack")
    kept.unlink()
    stale = {cache / f"{stem}.partial.{os.getpid()}": b"PACKstale", cache / f"{stem}.made.1": b"PACKstale-made"}
    for path, content in stale.items():
        path.write_bytes(content)
    result = run_hook(repo, cache, command, wanted(repo, "main"))
    assert result.returncode == 0 and result.stdout == whole
    assert runs(log) == 2
    assert not any(path.exists() for path in stale)


def test_a_clone_that_goes_away_leaves_the_pack_to_the_others(repo, tmp_path):
    """The clone whose run writes the pack disconnects (upload-pack and this program end): the pack is still
    written to its end, sent whole to the other clones and kept."""
    log = tmp_path / "runs.log"
    cache = tmp_path / "cache"
    command = [str(slow_tool(tmp_path, log)), *PACK_OBJECTS]
    [writer] = start_hooks(repo, cache, command, 1)
    deadline = time.monotonic() + 10
    while runs(log) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    others = start_hooks(repo, cache, command, 2)
    writer.kill()
    writer.stdout.close()
    writer.wait(timeout=10)
    results = finish(others)
    assert [code for code, _ in results] == [0, 0] and results[0][1] == results[1][1]
    assert results[0][1] == run_hook(repo, tmp_path / "fresh", PACK_OBJECTS, wanted(repo, "main")).stdout
    assert runs(log) == 1
    assert len(wait_for_kept(cache)) == 1


def test_the_budget_leaves_packs_being_made_to_their_clones(repo, tmp_path, counted):
    """Packs kept beyond the budget go as one more is kept, not the ones still being written: clones are reading
    them as they grow."""
    command, log = counted
    cache = tmp_path / "cache"
    [slow] = start_hooks(repo, cache, [str(slow_tool(tmp_path, tmp_path / "slow.log", "sleep 2")), *PACK_OBJECTS], 1,
                         max_bytes=1)
    deadline = time.monotonic() + 10
    while not list(cache.glob("*.partial.*")) and time.monotonic() < deadline:
        time.sleep(0.02)
    other = run_hook(repo, cache, command, wanted(repo, "main~1"), max_bytes=1)  # kept, then over the budget
    assert other.returncode == 0
    [(code, output)] = finish([slow])
    assert code == 0 and output == run_hook(repo, tmp_path / "fresh", PACK_OBJECTS, wanted(repo, "main")).stdout


def test_a_client_that_reads_slowly_holds_up_no_other(repo, tmp_path, counted):
    command, log = counted
    cache = tmp_path / "cache"
    big = tmp_path / "work" / "big.bin"
    big.write_bytes(os.urandom(4 * 1024 * 1024))  # more than the pipes between git and its client hold
    subprocess.run(["git", "-C", str(big.parent), "add", "."], check=True)
    subprocess.run(["git", "-C", str(big.parent), "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "big"],
                   check=True)
    subprocess.run(["git", "-C", str(big.parent), "push", "-q", str(repo), "main"], check=True)
    stalled = subprocess.Popen([str(PROGRAM), *command], cwd=repo, env=hook_env(cache), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE)
    stalled.stdin.write(wanted(repo, "main"))
    stalled.stdin.close()
    deadline = time.monotonic() + 10
    while runs(log) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        started = time.monotonic()
        other = run_hook(repo, cache, command, wanted(repo, "main"))
        assert other.returncode == 0 and other.stdout.startswith(b"PACK")
        assert time.monotonic() - started < 8  # not held until the stalled one reads on (no timing target)
    finally:
        whole = stalled.stdout.read()
        stalled.wait(timeout=60)
    assert stalled.returncode == 0 and whole == other.stdout
    assert runs(log) == 1  # the other was sent the stalled one's pack as it was written, at its own pace
    assert len(wait_for_kept(cache)) == 1


@pytest.mark.parametrize("spec", ["sparse:oid=main:file0.txt", "combine:blob:none+sparse%3Aoid=main:file0.txt"])
def test_a_filter_whose_result_the_refs_decide_is_never_answered_from_a_kept_pack(repo, tmp_path, counted, spec):
    """sparse:oid names a revision, which the refs of the moment resolve: the same request may mean other files
    (combine: may spell it percent-encoded). Only filters known to follow from the objects asked for are kept."""
    command, log = counted
    cache = tmp_path / "cache"
    for _ in range(2):
        run_hook(repo, cache, [*command, f"--filter={spec}"], wanted(repo, "main"))
    assert runs(log) == 2
    assert not cache.exists() or list(cache.glob("*.pack")) == []
    for _ in range(2):
        assert run_hook(repo, cache, [*command, "--filter=blob:limit=1k"], wanted(repo, "main")).returncode == 0
        wait_for_kept(cache)
    assert runs(log) == 3


def test_a_tag_made_since_a_pack_was_kept_comes_with_the_next_clone(repo, tmp_path, counted):
    """--include-tag adds the tags that point into the pack as the refs stand: a shallow or single-branch clone
    after a new annotated tag must get it, not the pack kept before it."""
    command, log = counted
    cache = tmp_path / "cache"
    tagging = [*command, "--include-tag"]
    run_hook(repo, cache, tagging, wanted(repo, "main"))
    wait_for_kept(cache)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@e", "tag", "-a", "v9", "-m", "v9",
                    "main"], check=True)
    tag = subprocess.check_output(["git", "-C", str(repo), "rev-parse", "v9"]).strip()
    after = run_hook(repo, cache, tagging, wanted(repo, "main"))
    assert runs(log) == 2
    listed = subprocess.run(["git", "index-pack", "--stdin", str(tmp_path / "t.pack")], input=after.stdout, cwd=repo,
                            capture_output=True)
    assert listed.returncode == 0
    objects = subprocess.check_output(["git", "show-index"], stdin=open(tmp_path / "t.idx", "rb"))
    assert tag in objects
    run_hook(repo, cache, tagging, wanted(repo, "main"))
    assert runs(log) == 2  # and that one is kept in its turn


def test_a_failing_tool_keeps_nothing_and_shows_the_client_nothing(repo, tmp_path, counted):
    """Without sha256sum every request had one empty key, and one repository's requests were answered with one
    another's pack; the shell's messages (naming the server's paths) reached the client as "remote:" lines."""
    command, log = counted
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("find", "mkdir", "cat", "git", "flock", "stat", "mktemp", "tee", "sync", "mv", "rm", "sort"):
        found = subprocess.check_output(["bash", "-c", f"command -v {name}"]).decode().strip()
        (tools / name).symlink_to(found)
    env = hook_env(tmp_path / "cache", path=str(tools))
    outputs = []
    for ref in ("main", "main~2"):
        result = subprocess.run([str(PROGRAM), *command], cwd=repo, env=env, input=wanted(repo, ref),
                                capture_output=True, timeout=60)
        assert result.returncode == 0 and result.stderr == b""
        outputs.append(result.stdout)
    assert outputs[0] != outputs[1] and runs(log) == 2
    assert list((tmp_path / "cache").glob("*.pack")) == []


def test_git_s_own_messages_still_reach_the_client(repo, tmp_path):
    result = run_hook(repo, tmp_path / "cache", [*PACK_OBJECTS, "--progress"], wanted(repo, "main"))
    assert result.returncode == 0 and b"Enumerating objects" in result.stderr


def test_the_client_does_not_wait_for_the_pack_to_be_made_durable(repo, tmp_path, counted):
    """upload-pack reads the program's output and messages to their end: a background step holding either
    would hold the clone's answer until the pack is on disk."""
    command, _ = counted
    cache = tmp_path / "cache"
    result = subprocess.run([str(PROGRAM), *command], cwd=repo, input=wanted(repo, "main"), capture_output=True,
                            env=hook_env(cache, path=path_with_wrapped(tmp_path, "sync", "sleep 3")), timeout=60)
    assert result.returncode == 0
    assert list(cache.glob("*.pack")) == []  # still being made durable: the client had its pack before
    assert len(wait_for_kept(cache)) == 1


def test_nothing_is_kept_while_every_keeper_slot_is_taken_or_the_disk_lacks_room(repo, tmp_path, counted):
    """At most four packs are written at once, server-wide, and only with room for four of the repository's size
    above the floor: concurrent clones with distinct keys could otherwise fill the disk pushes need."""
    import fcntl

    command, log = counted
    cache = tmp_path / "cache"
    cache.mkdir()
    held = [open(cache / f"keeper.{n}.lock", "a") for n in range(1, 5)]
    for handle in held:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        assert run_hook(repo, cache, command, wanted(repo, "main")).returncode == 0
    finally:
        for handle in held:
            handle.close()
    assert run_hook(repo, cache, command, wanted(repo, "main"), repository_size=2**60).returncode == 0
    assert runs(log) == 2
    time.sleep(0.2)
    assert list(cache.glob("*.pack")) == []


def test_nothing_is_kept_while_the_disk_is_short_of_its_floor(repo, tmp_path, counted):
    command, log = counted
    cache = tmp_path / "cache"
    first = run_hook(repo, cache, command, wanted(repo, "main"), min_free=2**62)
    second = run_hook(repo, cache, command, wanted(repo, "main"), min_free=2**62)
    assert first.returncode == second.returncode == 0 and first.stdout == second.stdout
    assert runs(log) == 2
    assert list(cache.glob("*.pack")) == [] and list(cache.glob("*partial*")) == []


def test_the_program_says_nothing_of_its_own_to_the_client(repo, tmp_path, counted):
    """What it prints goes to the client as "remote:" lines; a kept pack whose name is gone meanwhile is made
    again, not answered with cat's error naming the server's paths."""
    command, _ = counted
    cache = tmp_path / "cache"
    first = run_hook(repo, cache, command, wanted(repo, "main"))
    [kept] = wait_for_kept(cache)
    kept.unlink()
    (cache / f"{REPO_ID}.unreadable.pack").mkdir()  # and a name the budget's sweep cannot remove as a file
    again = run_hook(repo, cache, command, wanted(repo, "main"))
    assert again.returncode == 0 and again.stdout == first.stdout
    assert first.stderr == again.stderr == b""


def test_only_fetches_without_objects_the_client_has_are_cached():
    oid = b"a" * 40
    clone_v0 = [encode(b"want " + oid + b" side-band-64k ofs-delta\n"), b"0000", encode(b"done\n")]
    fetch_v0 = [encode(b"want " + oid + b"\n"), b"0000", encode(b"have " + b"b" * 40 + b"\n"), encode(b"done\n")]
    clone_v2 = [encode(b"command=fetch\n"), b"0001", encode(b"thin-pack\n"), encode(b"want " + oid + b"\n"),
                encode(b"deepen 1\n"), encode(b"done\n"), b"0000"]
    fetch_v2 = [*clone_v2[:4], encode(b"have " + b"c" * 40 + b"\n"), encode(b"done\n"), b"0000"]
    ls_refs = [encode(b"command=ls-refs\n"), b"0000"]
    assert is_fetch_from_nothing(clone_v0) and is_fetch_from_nothing(clone_v2)
    split = b"".join(clone_v0)
    assert is_fetch_from_nothing([split[:7], split[7:60], split[60:]])
    assert not is_fetch_from_nothing(fetch_v0) and not is_fetch_from_nothing(fetch_v2)
    assert not is_fetch_from_nothing(ls_refs)
    assert not is_fetch_from_nothing([b"zzzz"])  # not pkt-lines: left to git, which refuses it
    assert not is_fetch_from_nothing([b"0000"]) and not is_fetch_from_nothing([])


def test_the_server_uses_the_cache_only_where_it_can(repo, tmp_path):
    cache_dir = tmp_path / ".kept-packs"
    clone = [encode(b"want " + b"a" * 40 + b"\n"), b"0000", encode(b"done\n")]
    on = PackCache(PROGRAM, minutes=5, min_free_bytes=7, max_bytes=1000, min_repository_bytes=0, min_occurrences=2)
    args, env = on.git_options(cache_dir, repo, REPO_ID, clone)
    assert args == ["-c", f"uploadpack.packObjectsHook={PROGRAM}"]
    assert env == {"DRIFTSTONE_PACK_CACHE_DIR": str(cache_dir), "DRIFTSTONE_PACK_CACHE_REPOSITORY": REPO_ID,
                   "DRIFTSTONE_PACK_CACHE_MINUTES": "5", "DRIFTSTONE_PACK_CACHE_MAX_BYTES": "1000",
                   "DRIFTSTONE_PACK_CACHE_MIN_FREE": "7",
                   "DRIFTSTONE_PACK_CACHE_REPOSITORY_SIZE": str(packed_size(repo)),
                   "DRIFTSTONE_PACK_CACHE_MIN_OCCURRENCES": "2"}
    assert on.git_options(cache_dir, repo, REPO_ID, iter(clone)) == ([], {})  # a body too large to read first
    assert PackCache(None).git_options(cache_dir, repo, REPO_ID, clone) == ([], {})
    small = PackCache(PROGRAM, minutes=5, min_repository_bytes=10 * 1024 * 1024)  # the repository: a few KiB
    assert small.git_options(cache_dir, repo, REPO_ID, clone) == ([], {})
    assert PackCache(None, minutes=0, max_bytes=1000).install(tmp_path / "programs").program is None
    assert PackCache(None, minutes=10, max_bytes=0).install(tmp_path / "programs").program is None
    installed = PackCache(None, minutes=10, max_bytes=1000).install(tmp_path / "programs").program
    assert installed is not None and os.access(installed, os.X_OK)


def test_a_program_path_with_spaces_and_quotes_reaches_git_whole(repo, tmp_path):
    """git runs uploadpack.packObjectsHook through the shell: a data dir's name must not split it."""
    cache = PackCache(None, minutes=10, min_free_bytes=0, max_bytes=2**30, min_repository_bytes=0,
                      min_occurrences=0).install(tmp_path / "data dir's $HOME" / "git-programs")
    clone = [encode(b"want " + subprocess.check_output(["git", "-C", str(repo), "rev-parse", "main"]).strip()
                    + b"\n"), b"0000", encode(b"done\n")]
    kept = tmp_path / "kept"
    args, env = cache.git_options(kept, repo, REPO_ID, clone)
    result = subprocess.run(["git", *args, "upload-pack", "--stateless-rpc", "."], cwd=repo,
                            env={**os.environ, **env}, input=b"".join(clone), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert b"PACK" in result.stdout
    assert len(wait_for_kept(kept)) == 1


def test_deleting_a_repository_deletes_its_kept_packs_only(tmp_path):
    store = RepoStore(tmp_path)
    other = "repo_" + "1" * 22 + "ab"
    for repo_id in (REPO_ID, other):
        store.create(repo_id)
    store.kept_packs.mkdir()
    for name in (f"{REPO_ID}.1234.pack", f"{REPO_ID}.1234.lock", f"{REPO_ID}.1234.seen", f"{other}.1234.pack"):
        (store.kept_packs / name).write_bytes(b"PACK")
    store.delete(REPO_ID)
    assert not store.path_for(REPO_ID).exists()
    assert sorted(p.name for p in store.kept_packs.iterdir()) == [f"{other}.1234.pack"]


def test_an_old_keeper_slot_in_use_still_counts(repo, tmp_path, counted):
    """The age sweep removed slot files a keeper still held, so a fifth keeper could start (and pass the free-disk
    floor, which counts four)."""
    import fcntl

    command, log = counted
    cache = tmp_path / "cache"
    cache.mkdir()
    long_ago = time.time() - 11 * 60
    held = []
    for n in range(1, 5):
        handle = open(cache / f"keeper.{n}.lock", "a")
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.utime(cache / f"keeper.{n}.lock", (long_ago, long_ago))
        held.append(handle)
    try:
        assert run_hook(repo, cache, command, wanted(repo, "main")).returncode == 0
        time.sleep(0.2)
        assert list(cache.glob("*.pack")) == []
        assert sorted(p.name for p in cache.glob("keeper.*")) == [f"keeper.{n}.lock" for n in range(1, 5)]
    finally:
        for handle in held:
            handle.close()


def test_a_run_that_keeps_nothing_lets_the_next_keep(repo, tmp_path):
    """A run that found no keeper slot made its pack at its client's pace while holding the key's lock, so the
    next identical clone kept nothing either."""
    import fcntl

    log = tmp_path / "runs.log"
    slow = tmp_path / "slow-pack-objects"
    slow.write_text(f'#!/bin/bash\necho run >> "{log}"\nsleep 2\nexec "$@"\n')
    slow.chmod(0o755)
    cache = tmp_path / "cache"
    cache.mkdir()
    held = [open(cache / f"keeper.{n}.lock", "a") for n in range(1, 5)]
    for handle in held:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    first = subprocess.Popen([str(PROGRAM), str(slow), *PACK_OBJECTS], cwd=repo, env=hook_env(cache),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    first.stdin.write(wanted(repo, "main"))
    first.stdin.close()
    deadline = time.monotonic() + 10
    while runs(log) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    for handle in held:
        handle.close()
    second = run_hook(repo, cache, [str(slow), *PACK_OBJECTS], wanted(repo, "main"))  # the same key
    first.stdout.read()
    assert first.wait(timeout=60) == 0 and second.returncode == 0
    assert len(wait_for_kept(cache)) == 1


def test_a_part_of_the_key_that_cannot_be_read_keeps_nothing(repo, tmp_path, counted):
    """The tags (with --include-tag) or the shallow file that could not be read made a key of their own for
    every request, and a clone after a new tag was sent the pack kept before it."""
    command, log = counted
    env = hook_env(tmp_path / "cache", path=path_with_wrapped(tmp_path, "git", '[ "$1" = for-each-ref ] && exit 128'))
    for _ in range(2):
        result = subprocess.run([str(PROGRAM), *command, "--include-tag"], cwd=repo, env=env, input=wanted(repo, "main"),
                                capture_output=True, timeout=60)
        assert result.returncode == 0 and result.stdout.startswith(b"PACK")
    missing = tmp_path / "gone"
    result = run_hook(repo, tmp_path / "cache", ["git", "--shallow-file", str(missing), *PACK_OBJECTS[1:]],
                      wanted(repo, "main"))
    assert runs(log) == 2
    time.sleep(0.2)
    assert list((tmp_path / "cache").glob("*.pack")) == []


@pytest.mark.parametrize("setting", ["DRIFTSTONE_PACK_CACHE_MIN_FREE", "DRIFTSTONE_PACK_CACHE_MAX_BYTES",
                                     "DRIFTSTONE_PACK_CACHE_MIN_OCCURRENCES"])
@pytest.mark.parametrize("value", ["09", "99999999999999999999", "1e9", ""])
def test_a_setting_that_is_no_plain_number_leaves_git_alone(repo, tmp_path, counted, setting, value):
    """Bash reads 09 as a bad octal number and stops the program, after it had taken git's input. An empty
    setting is the program's default."""
    command, log = counted
    env = {**hook_env(tmp_path / "cache"), setting: value}
    result = subprocess.run([str(PROGRAM), *command], cwd=repo, env=env, input=wanted(repo, "main"),
                            capture_output=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith(b"PACK") and result.stderr == b""
    assert runs(log) == 1
    assert (tmp_path / "cache").exists() == (value == "")  # git alone: the cache is not even looked at


def test_settings_refuse_a_tally_the_program_could_not_read(tmp_path):
    """A number of 19 digits or more fails the program's check, which would then leave every clone to git: the
    kept packs would no longer be sent nor removed. Settings stop at 1,000."""
    assert Settings(data_dir=tmp_path, pack_cache_min_occurrences=1000).pack_cache_min_occurrences == 1000
    for value in (1001, 10**19, -1):
        with pytest.raises(ValidationError):
            Settings(data_dir=tmp_path, pack_cache_min_occurrences=value)


def test_git_s_own_form_of_a_shallow_clone_is_kept_and_sent_again(repo, tmp_path, counted):
    """git 2.39 passes --shallow-file "" and the boundary on the input as --shallow lines."""
    command, log = counted
    cache = tmp_path / "cache"
    tip = subprocess.check_output(["git", "-C", str(repo), "rev-parse", "main"]).strip()
    shallow_command = [command[0], "git", "--shallow-file", "", "pack-objects", "--revs", "--stdout", "--shallow"]
    request = tip + b"\n--not\n--shallow " + tip + b"\n\n"
    first = run_hook(repo, cache, shallow_command, request)
    wait_for_kept(cache)
    second = run_hook(repo, cache, shallow_command, request)
    assert first.returncode == second.returncode == 0 and first.stdout == second.stdout
    assert runs(log) == 1
