"""Objects on dulwich, in-process and without a checkout: read paths and trees, write blobs, edit trees, commit.

Editing a tree rewrites only the subtrees on the changed paths, so its cost follows the change, not the repo.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Mapping

from dulwich.file import FileLocked
from dulwich.object_store import DiskObjectStore
from dulwich.pack import PackFileDisappeared
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from .errors import Conflict, Invalid, StorageFailure
from .git_env import GIT, clean_git_env
from .git_names import fsck_reads_specially
from .object_checks import objects_problem

FILE_MODE = 0o100644
EXEC_MODE = 0o100755
LINK_MODE = 0o120000
TREE_MODE = 0o040000
GITLINK_MODE = 0o160000


@dataclass(frozen=True)
class TreeEntry:
    path: str
    mode: int
    sha: str

    @property
    def kind(self) -> str:
        if stat.S_ISDIR(self.mode):
            return "tree"
        if self.mode == GITLINK_MODE:
            return "commit"
        return "symlink" if self.mode == LINK_MODE else "blob"


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    def encoded(self) -> bytes:
        clean = lambda text: " ".join(text.replace("<", "").replace(">", "").split())  # noqa: E731
        return f"{clean(self.name) or 'unknown'} <{clean(self.email)}>".encode("utf-8")


MISS_RETRY_DELAYS = (0, 0.01, 0.05)


class _RepackSafeStore(DiskObjectStore):
    """A lookup that missed may have raced a repack: git packs a loose object and deletes the file between
    dulwich's look at the packs and its look at the loose objects. Look again, as git does (reprepare_packed_git);
    each look rescans the packs. Seen as a 404 for a branch's own head during a housekeeping repack; one more look
    was not always enough beside repacks one after another (a 500 in 1 of ~20 PostgreSQL CI runs), so a miss is
    looked for three more times over ~60 ms before it is one."""

    def get_raw(self, name):
        for delay in MISS_RETRY_DELAYS:
            try:
                return super().get_raw(name)
            except KeyError:
                time.sleep(delay)
        return super().get_raw(name)


def open_repo(repo_path: Path) -> Repo:
    repo = Repo(str(repo_path))
    if type(repo.object_store) is DiskObjectStore:
        repo.object_store.__class__ = _RepackSafeStore  # adds the method above only; dulwich builds the store itself
    repo.object_store.fsync_object_files = True  # dulwich ignores core.fsync: objects are durable before refs
    return repo


def store_object(repo: Repo, obj) -> None:
    """Add an object unless present, and then give it the time of now as git does: housekeeping drops an
    unreachable object by the time it was last written, and the row about to name this one is not written yet.
    A repack's `prune-packed` removes empty `objects/xx/` directories, also the one just made for this object
    (FileNotFoundError): then it is made again."""
    for _ in range(200):
        try:
            if obj.id in repo.object_store and _freshened(repo.object_store, obj.id):
                return
            try:
                repo.object_store.add_object(obj)
            except FileLocked:
                _write_past_a_lock(repo.object_store, obj)
            return
        except FileNotFoundError:
            continue
        except OSError as error:  # read-only, full, no permission
            raise StorageFailure(f"object {obj.id.decode()} could not be written: {error}") from error
    raise StorageFailure(f"object {obj.id.decode()} could not be written (its directory kept going)")


def _freshened(store: DiskObjectStore, sha: bytes) -> bool:
    """git's freshen: the loose file's time, else the time of the pack holding it; an object of a cruft pack
    has its own time in the pack's .mtimes, so it needs a loose copy (False: write one)."""
    try:
        os.utime(store._get_shafile_path(sha))
        return True
    except FileNotFoundError:
        pass
    except PermissionError:  # another account's file: it is there, as dulwich alone would have left it
        return True
    try:
        for pack in store.packs:
            if sha in pack:
                if os.path.exists(pack._basename + ".mtimes"):
                    return False
                os.utime(pack._data_path)
                return True
    except (OSError, PackFileDisappeared):  # a repack replaced the packs (and may have dropped it): a loose copy
        return False
    return False


def _write_past_a_lock(store: DiskObjectStore, obj) -> None:
    """The object's lock file is taken: by a writer of these same bytes still at work, or left by one that was
    killed, and then for good (dulwich never takes a lock over: every later write of the object failed). Write it
    as git does, through a temporary file of its own moved into place; a live writer's rename lands the same
    bytes."""
    path = store._get_shafile_path(obj.id)
    fd, temporary = tempfile.mkstemp(prefix="tmp_obj_", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(obj.as_legacy_object(compression_level=store.loose_compression_level))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o444)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _commit(repo: Repo, commit_sha: str) -> Commit:
    obj = repo.object_store[commit_sha.encode()]
    if not isinstance(obj, Commit):
        raise KeyError(commit_sha)
    return obj


def commit_tree(repo: Repo, commit_sha: str) -> bytes:
    return _commit(repo, commit_sha).tree


def commit_parents(repo: Repo, commit_sha: str) -> list[str]:
    return [parent.decode() for parent in _commit(repo, commit_sha).parents]


def commit_message(repo: Repo, commit_sha: str) -> str:
    return _commit(repo, commit_sha).message.decode("utf-8", "replace")


def _walk_to(repo: Repo, tree_sha: bytes, path: str) -> tuple[int, bytes] | None:
    mode, sha = TREE_MODE, tree_sha
    for part in [p for p in path.split("/") if p]:
        if not stat.S_ISDIR(mode):
            return None
        tree = repo.object_store[sha]
        try:
            mode, sha = tree[part.encode("utf-8", "surrogateescape")]
        except KeyError:
            return None
    return mode, sha


def lookup(repo: Repo, commit_sha: str, path: str) -> TreeEntry | None:
    found = _walk_to(repo, commit_tree(repo, commit_sha), path)
    return TreeEntry(path.strip("/"), found[0], found[1].decode()) if found else None


class PathLookup:
    """Many path lookups in one commit, reading each tree object once."""

    def __init__(self, repo: Repo, commit_sha: str | None):
        self.repo = repo
        self.root = commit_tree(repo, commit_sha) if commit_sha else None
        self._trees: dict[bytes, Tree] = {}

    def _tree(self, sha: bytes) -> Tree:
        tree = self._trees.get(sha)
        if tree is None:
            tree = self._trees[sha] = self.repo.object_store[sha]
        return tree

    def __call__(self, path: str) -> TreeEntry | None:
        if self.root is None:
            return None
        mode, sha = TREE_MODE, self.root
        for part in [p for p in path.split("/") if p]:
            if not stat.S_ISDIR(mode):
                return None
            try:
                mode, sha = self._tree(sha)[part.encode("utf-8", "surrogateescape")]
            except KeyError:
                return None
        return TreeEntry(path.strip("/"), mode, sha.decode())


def read_blob(repo: Repo, commit_sha: str, path: str) -> bytes | None:
    entry = lookup(repo, commit_sha, path)
    if entry is None or entry.kind not in ("blob", "symlink"):
        return None
    return repo.object_store[entry.sha.encode()].as_raw_string()


def list_tree(repo: Repo, commit_sha: str, path: str = "", recursive: bool = False) -> list[TreeEntry]:
    found = _walk_to(repo, commit_tree(repo, commit_sha), path)
    if found is None or not stat.S_ISDIR(found[0]):
        return []
    return list(_entries(repo, found[1], path.strip("/"), recursive))


def tree_entries(repo: Repo, tree_sha: bytes, prefix: str) -> Iterator[TreeEntry]:
    """Every entry that is not a directory below a tree, its path under `prefix`, read lazily."""
    return _entries(repo, tree_sha, prefix, True)


def _entries(repo: Repo, tree_sha: bytes, prefix: str, recursive: bool) -> Iterator[TreeEntry]:
    for item in repo.object_store[tree_sha].iteritems():
        name = item.path.decode("utf-8", "surrogateescape")
        full = f"{prefix}/{name}" if prefix else name
        if recursive and stat.S_ISDIR(item.mode):
            yield from _entries(repo, item.sha, full, True)
        else:
            yield TreeEntry(full, item.mode, item.sha.decode())


def write_blob(repo: Repo, data: bytes) -> str:
    blob = Blob.from_string(data)
    store_object(repo, blob)
    return blob.id.decode()


def write_blob_stream(repo_path: Path, source: BinaryIO) -> str:
    """Write a blob of any size from a stream (C git hashes and compresses it without holding it in memory)."""
    process = subprocess.Popen([GIT, "-C", str(repo_path), "hash-object", "-w", "--stdin", "--no-filters"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=clean_git_env())
    try:
        shutil.copyfileobj(source, process.stdin, 1024 * 1024)
    except BaseException:  # a body too large or cut off: git must neither wait for the rest nor store a part
        process.kill()
        process.communicate()
        raise
    process.stdin.close()
    sha = process.stdout.read().decode().strip()
    if process.wait() != 0:
        raise StorageFailure(f"git hash-object failed: {process.stderr.read().decode('utf-8', 'replace')[:500]}")
    return sha


Change = tuple[int, str] | None  # (mode, blob sha) to write, None to delete


class PathClash(Conflict):
    """A change would write a file where another change, or a file that stays, needs a directory (or the
    reverse): applying it would silently drop one of them."""


class _Dir(dict):
    """Changes below one directory; `replaces`: the path's old entry is deleted first (a file becoming a
    directory, or a directory rebuilt from scratch); `becomes`: a file written at the path once these changes,
    deletions only, have emptied the directory."""
    replaces = False
    becomes: Change = None

    def deletes_only(self) -> bool:
        return all(change is None or (isinstance(change, _Dir) and change.deletes_only() and change.becomes is None)
                   for change in self.values())


def edit_tree(repo: Repo, base_tree: bytes | None, changes: Mapping[str, Change]) -> bytes:
    """A new tree: `base_tree` with `changes` applied (paths use '/'); empty directories disappear.

    Raises PathClash rather than let one change overwrite another: a file and a path inside it both written, a
    path written inside a file that stays (deleting the file in the same changes makes way for it), or a file
    written over a directory."""
    _refuse_what_fsck_refuses(repo, changes)
    nested = _Dir()
    for path, change in sorted(changes.items(), key=lambda item: item[1] is not None):  # deletions first
        parts = [p.encode("utf-8", "surrogateescape") for p in path.split("/") if p]
        node = nested
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part, _Dir())
            if child is None:  # a deleted file becomes this directory
                child = _Dir()
                child.replaces = True
            if not isinstance(child, _Dir):
                raise PathClash(f"{path!r} cannot be written: {_joined(parts[:depth + 1])!r} is written as a file",
                                {"path": path, "file": _joined(parts[:depth + 1])})
            node[part] = node = child
        leaf = parts[-1]
        below = node.get(leaf)
        if isinstance(below, _Dir):
            if change is None or not below.deletes_only():
                raise PathClash(f"{path!r} cannot be written as a file: paths inside it are written too",
                                {"path": path})
            below.becomes = change
            continue
        node[leaf] = change
    new_sha = _apply(repo, base_tree, nested, b"")
    return new_sha if new_sha is not None else _empty_tree(repo)


def _refuse_what_fsck_refuses(repo: Repo, changes: Mapping[str, Change]) -> None:
    """A `.gitmodules` or `.gitattributes` git's fsck refuses (CVE-2018-11235 and friends; also a directory so
    named) is refused before any tree names it: the ref change's own fsck check came after the trees were
    written, and a refused one stayed in the repository (repacks keep unreachable objects), failing `git fsck`
    for good. Entries of such a name are put, each in a tree of its own, before git in one scratch pack."""
    empty = Tree()
    trees, named = {}, []
    for path, change in changes.items():
        if change is None:  # a deletion names nothing new (also inside a directory git would refuse now)
            continue
        parts = path.split("/")
        for depth, part in enumerate(parts):
            if not fsck_reads_specially(part):
                continue
            mode, sha = change if depth == len(parts) - 1 else (TREE_MODE, empty.id.decode())
            tree = Tree()
            tree[part.encode("utf-8", "surrogateescape")] = (mode, sha.encode())
            trees[tree.id] = tree
            named.append("/".join(parts[:depth + 1]))
    if not trees:
        return
    problem = objects_problem(Path(repo.path), [*trees.values(), empty], repo.object_store.object_format)
    if problem is not None:
        raise Invalid(problem, {"paths": named})


def _joined(parts: list[bytes]) -> str:
    return b"/".join(parts).decode("utf-8", "surrogateescape")


def _apply(repo: Repo, tree_sha: bytes | None, nested: _Dir, prefix: bytes) -> bytes | None:
    tree = repo.object_store[tree_sha].copy() if tree_sha else Tree()
    for name, change in nested.items():
        existing = tree[name] if name in tree else None
        if isinstance(change, _Dir):
            is_dir = existing is not None and stat.S_ISDIR(existing[0])
            if existing is not None and not is_dir and not change.replaces:
                path = (prefix + name).decode("utf-8", "surrogateescape")
                raise PathClash(f"{path!r} is a file: nothing can be written inside it unless it is deleted",
                                {"path": path})
            sub_base = existing[1] if is_dir and not change.replaces else None
            sub = _apply(repo, sub_base, change, prefix + name + b"/")
            if change.becomes is not None:
                if sub is not None:
                    path = (prefix + name).decode("utf-8", "surrogateescape")
                    raise PathClash(f"{path!r} is a directory: a file cannot replace it while files stay in it",
                                    {"path": path})
                mode, sha = change.becomes
                tree[name] = (mode, sha.encode())
            elif sub is None:
                if name in tree:
                    del tree[name]
            else:
                tree[name] = (TREE_MODE, sub)
        elif change is None:
            if name in tree:
                del tree[name]
        else:
            if existing is not None and stat.S_ISDIR(existing[0]):
                path = (prefix + name).decode("utf-8", "surrogateescape")
                raise PathClash(f"{path!r} is a directory: a file cannot replace it", {"path": path})
            mode, sha = change
            tree[name] = (mode, sha.encode())
    if not len(tree):
        return None
    store_object(repo, tree)
    return tree.id


def _empty_tree(repo: Repo) -> bytes:
    tree = Tree()
    store_object(repo, tree)
    return tree.id


def write_commit(repo: Repo, tree: bytes, parents: list[str], author: Identity, message: str,
                 committer: Identity | None = None, when: int | None = None) -> str:
    commit = Commit()
    commit.tree = tree
    commit.parents = [p.encode() for p in parents]
    commit.author = author.encoded()
    commit.committer = (committer or author).encoded()
    commit.author_time = commit.commit_time = int(when if when is not None else time.time())
    commit.author_timezone = commit.commit_timezone = 0
    commit.encoding = b"UTF-8"
    commit.message = message.encode("utf-8")
    store_object(repo, commit)
    return commit.id.decode()
