"""Repack a repository and drop the objects nothing needs any more, as `git gc` does with cruft packs, keeping
the objects the database names.

What no ref reaches goes into a cruft pack that records when each object was last written; an object written
less than `expire_seconds` ago stays, an older one is dropped (git's `gc.pruneExpire`, two weeks by default).
That grace covers a writer that stored an object and has not yet written the row naming it (a writer that finds
its object already stored refreshes its time: `git_objects.store_object`). The objects the database names are
made reachable for the run through one ref, `PIN_REF`, to a commit made for it: blobs and trees in its tree
(named by their ids), commits as its parents, tags each by a ref of their own. git has no other way to be told
of them before 2.42 (`gc.recentObjectsHook`); this machine's git is 2.39.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .git_env import GitFailed, run_git

log = logging.getLogger(__name__)

PIN_NAMESPACE = "refs/driftstone/housekeeping/"
PIN_REF = PIN_NAMESPACE + "pins"
_TAG_PIN_PREFIX = PIN_REF + "-tag-"
EXCLUDE_PINS = f"--exclude={PIN_NAMESPACE}*"  # before `--all`: the pins are not refs a client made
HOLD_DIR = "driftstone-prune-hold"
BARRIER_FILE = "driftstone-ref-changes.flock"
REFLOG_DAYS = 90  # git's gc.reflogExpire
HEX = frozenset("0123456789abcdef")
_REPACK_TIMEOUT = 6 * 3600
_PIN_MESSAGE = b"Driftstone housekeeping: the objects its database names, kept through a repack\n"


def repack_and_prune(repo_path: Path, pinned: Callable[[], Iterable[str]], expire_seconds: int) -> list[str]:
    """Returns the objects found missing after the run and put back (none, unless one was written again or named
    again while it ran: git's race, which the API makes likelier by reusing stored objects)."""
    now = int(time.time())
    expire = f"@{now - int(expire_seconds)}"  # git reads 9+ digit "N.seconds.ago" as a date
    hold = repo_path / HOLD_DIR
    undo_killed_run(repo_path)
    _expire_reflogs(repo_path, now, expire)
    refs_before = _ref_values(repo_path)  # read before the rows: a branch deleted meanwhile has no event row yet
    pin_refs = _pin(repo_path, _object_kinds(repo_path, [*pinned(), *refs_before]))
    checked = False
    try:
        if not _link_every_object(repo_path, hold):
            log.warning("housekeeping of %s cannot set objects aside: repacking without dropping any", repo_path)
            repack_keeping_everything(repo_path)
            checked = True
            return []
        run_git(repo_path, ["repack", "--cruft", f"--cruft-expiration={expire}", "-d", "-l", "-q",
                            "--write-bitmap-index"], timeout=_REPACK_TIMEOUT)
        if _has_loose_objects(repo_path):
            # expired loose objects are left where they are by the repack; prune walks the history once more and
            # looks at each one's time again as it removes it
            run_git(repo_path, ["prune", f"--expire={expire}"], timeout=_REPACK_TIMEOUT)
        with ref_changes_held(repo_path):  # an API change past its checks has moved its ref before this looks
            missing = _missing(repo_path, pinned(), hold)
        if missing:
            log.error("housekeeping of %s dropped %d objects a ref or row names now (%s...): putting them back",
                      repo_path, len(missing), missing[0])
            _put_back(hold, repo_path)
        checked = True
        return missing
    finally:
        if not checked and hold.exists():  # the run failed after the repack may have dropped something
            _put_back(hold, repo_path)
        shutil.rmtree(hold, ignore_errors=True)
        _unpin_if_possible(repo_path, pin_refs)


def undo_killed_run(repo_path: Path) -> None:
    """What a run killed before its check left: what it set aside comes back (to be judged again at the next
    repack), the second copy of every pack goes, and its pins, which would keep what the rows no longer name, go.
    Only under the housekeeping lock: a run that holds it is not killed."""
    hold = repo_path / HOLD_DIR
    if hold.exists():
        _put_back(hold, repo_path)
        shutil.rmtree(hold, ignore_errors=True)
    _unpin_if_possible(repo_path, leftover_pins(repo_path))


def repack_keeping_everything(repo_path: Path) -> None:
    run_git(repo_path, ["repack", "-a", "-d", "-k", "-l", "-q", "--write-bitmap-index"], timeout=_REPACK_TIMEOUT)


@contextlib.contextmanager
def ref_changes_held(repo_path: Path) -> Iterator[None]:
    """Held by a run while it checks what it dropped: it waits for the API changes between their checks and
    their ref's move (`ref_change_window`), and the next ones wait for it."""
    with _barrier(repo_path, fcntl.LOCK_EX):
        yield


@contextlib.contextmanager
def ref_change_window(repo_path: Path) -> Iterator[None]:
    """Held by an API change from its checks (which read its history whole) to its ref's move."""
    with _barrier(repo_path, fcntl.LOCK_SH):
        yield


@contextlib.contextmanager
def _barrier(repo_path: Path, mode: int) -> Iterator[None]:
    with open(repo_path / BARRIER_FILE, "a") as barrier:
        fcntl.flock(barrier, mode)
        yield


def _unpin_if_possible(repo_path: Path, refs: dict[str, str]) -> None:
    """The pins go; where git cannot take the refs' locks now, the next run removes them (`leftover_pins`)."""
    try:
        _unpin(repo_path, refs)
    except GitFailed as error:
        log.warning("housekeeping pins left in %s for the next run: %s", repo_path, error)


def housekeeping_runs(repo_path: Path) -> bool:
    """Whether a run may be dropping objects now (its set-aside copies exist from before its repack until after
    its check): a change reusing a stored object checks that the object is still there before its ref moves."""
    return (repo_path / HOLD_DIR).exists()


def _expire_reflogs(repo_path: Path, now: int, expire: str) -> None:
    """As `git gc`: reflog entries naming a commit no ref reaches go after the grace (a force-push's old commit
    is kept that long after it), the others after REFLOG_DAYS; entries that never expired kept every such commit.
    Best effort: a reflog git cannot lock (a killed run's lock) must not stop the repack."""
    result = run_git(repo_path, ["reflog", "expire", "--all", f"--expire=@{now - REFLOG_DAYS * 24 * 3600}",
                                 f"--expire-unreachable={expire}"], check=False, timeout=_REPACK_TIMEOUT)
    if result.returncode != 0:
        said = [line for line in result.stderr.decode("utf-8", "replace").splitlines() if "lock" in line.lower()]
        log.warning("reflog expiry in %s failed (%s): %s", repo_path, result.returncode, "; ".join(said[:3]))


def _ref_values(repo_path: Path) -> list[str]:
    """What the refs point at, an annotated tag by what it tags: a pin per tag object costs a ref each (5,000
    tags: 0.9 s a run), for the moment between reading the refs and the rows."""
    output = run_git(repo_path, ["for-each-ref", "--format=%(objectname) %(*objectname)"])
    return sorted({peeled or value for value, _, peeled in
                   (line.partition(" ") for line in output.stdout.decode().splitlines())})


_HELD_PACK_FILES = (".pack", ".mtimes", ".idx")  # put back in this order: git sees a pack once its .idx is in


def _link_every_object(repo_path: Path, hold: Path) -> bool:
    """A hard link to every pack and loose object as they are before the run, to put back what it should not
    have dropped (links: no copy, and the files stay whole whatever git deletes). False when the file system
    refuses links (fs.protected_hardlinks and another account's files): nothing is set aside then."""
    objects = repo_path / "objects"
    (hold / "pack").mkdir(parents=True)
    try:
        for name in os.listdir(objects / "pack"):
            if name.startswith("pack-") and name.endswith(_HELD_PACK_FILES):
                _link(objects / "pack" / name, hold / "pack" / name)
        for fan in fan_out_dirs(objects):
            (hold / fan.name).mkdir(exist_ok=True)
            for name in _names_in(fan):
                _link(fan / name, hold / fan.name / name)
    except OSError:
        shutil.rmtree(hold, ignore_errors=True)
        return False
    return True


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except FileNotFoundError:  # a push's or merge's pack being replaced: what it held is in its replacement
        pass


def _missing(repo_path: Path, pinned: Iterable[str], hold: Path) -> list[str]:
    """Objects that every ref and every object the rows name now should reach, but which are not there (a row
    may name an object never stored here: only those there now or before the run count)."""
    pinned = set(pinned)
    there = set(_object_kinds(repo_path, pinned))
    missing = sorted(set(_object_kinds(repo_path, pinned, objects_dir=hold)) - there)
    tips = "".join(f"{sha}\n" for sha in sorted(there))
    result = run_git(repo_path, ["rev-list", "--objects", "--no-object-names", "--missing=print", "--all",
                                 "--stdin"], input=tips.encode(), check=False, timeout=_REPACK_TIMEOUT)
    missing += [line[1:] for line in result.stdout.decode().splitlines() if line.startswith("?")]
    if result.returncode != 0 and not missing:  # a ref's own object gone: rev-list stops at it
        missing = [result.stderr.decode("utf-8", "replace").strip()[:200] or "?"]
    return missing


def _put_back(hold: Path, repo_path: Path) -> None:
    """Every set-aside file the repository no longer has (a cruft pack with its .mtimes, so its objects keep
    their own times); one a writer has put there meanwhile is left as it is."""
    objects = repo_path / "objects"
    held_packs = os.listdir(hold / "pack") if (hold / "pack").is_dir() else []  # a kill may have cut it short
    packs = sorted(held_packs, key=lambda name: _HELD_PACK_FILES.index(Path(name).suffix))
    places = [(hold / "pack" / name, objects / "pack" / name) for name in packs]
    for fan in fan_out_dirs(hold):
        (objects / fan.name).mkdir(exist_ok=True)
        places += [(fan / name, objects / fan.name / name) for name in _names_in(fan)]
    for held, place in places:
        try:
            os.link(held, place)
        except FileExistsError:
            pass


def _pin(repo_path: Path, kinds: dict[str, str]) -> dict[str, str]:
    """Make every object of `kinds` (id: type) reachable from a ref; returns the refs made, each with its value."""
    refs = {f"{_TAG_PIN_PREFIX}{sha}": sha for sha, kind in kinds.items() if kind == "tag"}
    entries = [f"{'040000' if kind == 'tree' else '100644'} {kind} {sha}\t{sha}\n"
               for sha, kind in kinds.items() if kind in ("blob", "tree")]
    parents = [sha for sha, kind in kinds.items() if kind == "commit"]
    if entries or parents:
        # objects of this run alone: writing one already stored would freshen the pack holding it (git's freshen),
        # and with it every unreachable object in that pack
        nonce = f"housekeeping run {time.time_ns()} {os.getpid()} {os.urandom(8).hex()}\n".encode()
        marker = run_git(repo_path, ["hash-object", "-w", "--stdin"], input=nonce).stdout.decode().strip()
        entries.append(f"100644 blob {marker}\trun\n")
        tree = run_git(repo_path, ["mktree"], input="".join(entries).encode()).stdout.decode().strip()
        now = int(time.time())
        commit = b"".join([f"tree {tree}\n".encode(), *(f"parent {sha}\n".encode() for sha in parents),
                           f"author Driftstone <driftstone@localhost> {now} +0000\n".encode(),
                           f"committer Driftstone <driftstone@localhost> {now} +0000\n\n".encode(), _PIN_MESSAGE])
        refs[PIN_REF] = run_git(repo_path, ["hash-object", "-t", "commit", "-w", "--stdin"],
                                input=commit).stdout.decode().strip()
    if refs:
        commands = "".join(f"update {ref} {sha}\n" for ref, sha in refs.items())
        run_git(repo_path, ["update-ref", "-m", "driftstone housekeeping", "--stdin"], input=commands.encode())
    return refs


def _unpin(repo_path: Path, refs: dict[str, str]) -> None:
    if refs:
        commands = "".join(f"delete {ref} {sha}\n" for ref, sha in refs.items())
        run_git(repo_path, ["update-ref", "--stdin"], input=commands.encode())


def _object_kinds(repo_path: Path, shas: Iterable[str], objects_dir: Path | None = None) -> dict[str, str]:
    """The type of each object that exists (a row may name one already gone, or never stored here), in the
    repository or in another object directory."""
    shas = sorted(set(shas))
    if not shas:
        return {}
    env = {"GIT_OBJECT_DIRECTORY": str(objects_dir)} if objects_dir else None
    output = run_git(repo_path, ["cat-file", "--batch-check=%(objectname) %(objecttype)"], env=env,
                     input="".join(f"{sha}\n" for sha in shas).encode()).stdout.decode()
    kinds = {}
    for line in output.splitlines():
        sha, _, kind = line.partition(" ")
        if kind in ("blob", "tree", "commit", "tag"):
            kinds[sha] = kind
    return kinds


def leftover_pins(repo_path: Path) -> dict[str, str]:
    """The pin refs a killed run left (they keep their objects until the next run replaces them)."""
    output = run_git(repo_path, ["for-each-ref", "--format=%(refname) %(objectname)", "--",
                                 PIN_NAMESPACE]).stdout.decode()
    return dict(line.split(" ", 1) for line in output.splitlines() if line)


def _has_loose_objects(repo_path: Path) -> bool:
    return any(_names_in(fan) for fan in fan_out_dirs(repo_path / "objects"))


def fan_out_dirs(objects: Path) -> list[Path]:
    """The loose objects' directories (`objects/00` .. `objects/ff`) there now."""
    with os.scandir(objects) as found:
        return [Path(entry.path) for entry in found
                if len(entry.name) == 2 and HEX.issuperset(entry.name) and entry.is_dir(follow_symlinks=False)]


def _names_in(fan: Path) -> list[str]:
    try:
        return os.listdir(fan)
    except FileNotFoundError:  # emptied and removed by a repack's prune-packed
        return []
