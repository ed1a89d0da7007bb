"""Overlay workspaces (dojo): a per-agent overlay of files on a base commit; commits advance its head.

Overlay contents are blobs in the repository's object store, so a commit only writes the trees along the
changed paths and the commit itself: no checkout, no temp clone.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hooks.locks import active_locks, first_lock_covering, path_lock_refusal
from hooks.pipeline import apply_ref_change
from hooks.refs import ZERO_SHA, RefUpdate, branch_name_problem
from storage import git_objects, git_read, git_refs
from storage.errors import Conflict, Forbidden, Invalid, Locked, NotFound, StaleRef, TooLarge
from storage.ids import new_id
from storage.intent import intent_from_message, message_with_intent, split_intent
from storage.merge_store import EMPTY_TREE
from storage.keys import Principal, key_in_force
from storage.models import PathLock, Repository, Workspace, WorkspaceFile
from storage.repo_writes import serialize_repository_writes, serialize_workspace_writes
from storage.times import as_utc

from . import text_search
from .lock_events import record_lock_event
from .changes import change_context, checked_path, resolve_revision
from .commits import record_commit
from .contents import MAX_CONTENT_BYTES

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")


def workspace_ref(workspace: Workspace) -> str:
    return workspace_ref_of(workspace.id)


def workspace_ref_of(workspace_id: str) -> str:
    return f"refs/driftstone/workspaces/{workspace_id}"


def create_workspace(session: Session, app, repo: Repository, actor: Principal, name: str,
                     agent_name: str | None, base_commit: str | None) -> Workspace:
    if not _NAME.match(name or "") or ".." in name or branch_name_problem(f"stacks/{name}"):
        # the name becomes the branch stacks/<name> when the workspace is submitted: refuse it now, not then
        raise Invalid(f"invalid workspace name {name!r}", {"fields": [{"loc": "name", "msg": "invalid name"}]})
    serialize_repository_writes(session, repo.id)
    taken = session.scalar(select(Workspace.id).where(Workspace.repo_id == repo.id, Workspace.name == name,
                                                      Workspace.status == "active"))
    if taken:
        raise Conflict(f"workspace {name!r} already exists", {"workspace": taken})
    if base_commit:
        base = resolve_revision(app, repo, base_commit, session)
    else:
        base = git_refs.read_ref(app.store.path_for(repo.id), f"refs/heads/{repo.default_branch}")
    workspace = Workspace(id=new_id("ws"), repo_id=repo.id, name=name, agent_name=agent_name, base_commit=base,
                          current_commit=base, status="active", created_by_key_id=actor.key_id)
    session.add(workspace)
    session.flush()
    return workspace


def list_workspaces(session: Session, repo: Repository) -> list[Workspace]:
    return list(session.scalars(select(Workspace).where(Workspace.repo_id == repo.id, Workspace.status == "active")
                                .order_by(Workspace.created_at, Workspace.id)))


def get_workspace(session: Session, repo: Repository, workspace_id: str) -> Workspace:
    """The live workspace. Its writers take their turn on it afterwards and look at it again: a lock taken here
    (FOR UPDATE) would hold on PostgreSQL only."""
    workspace = session.scalar(select(Workspace).where(Workspace.id == workspace_id, Workspace.repo_id == repo.id,
                                                       Workspace.status == "active"))
    if workspace is None:
        raise NotFound(f"workspace {workspace_id!r} not found")
    return workspace


def take_workspace_turn(session: Session, workspace: Workspace) -> None:
    """Wait for the workspace's other writers, then refuse it if one of them deleted it. Its row is locked before
    the repository's, the order a commit or submit takes them in, so two writers never wait for each other."""
    serialize_workspace_writes(session, workspace.id)
    serialize_repository_writes(session, workspace.repo_id)
    status = session.scalar(select(Workspace.status).where(Workspace.id == workspace.id))
    if status != "active":
        raise NotFound(f"workspace {workspace.id!r} not found")


def delete_workspace(session: Session, workspace: Workspace, actor: Principal, now) -> None:
    """The overlay goes, and its locks; commits stay in the graph (the workspace ref keeps them reachable)."""
    take_workspace_turn(session, workspace)
    session.execute(delete(WorkspaceFile).where(WorkspaceFile.workspace_id == workspace.id))
    org_id = session.scalar(select(Repository.org_id).where(Repository.id == workspace.repo_id))
    for lock in session.scalars(select(PathLock).where(PathLock.workspace_id == workspace.id,
                                                       PathLock.released_at.is_(None))):
        lock.released_at = now
        lock.released_by_key_id = actor.key_id
        if as_utc(lock.expires_at) > now:
            record_lock_event(session, org_id, lock, actor.key_id, "released", workspaceDeleted=True)
    workspace.status = "deleted"
    session.flush()


def _overlay(session: Session, workspace: Workspace) -> dict[str, WorkspaceFile]:
    rows = session.scalars(select(WorkspaceFile).where(WorkspaceFile.workspace_id == workspace.id))
    return {row.path: row for row in rows}


def _overlay_entry(session: Session, workspace: Workspace, path: str) -> WorkspaceFile | None:
    return session.scalar(select(WorkspaceFile).where(WorkspaceFile.workspace_id == workspace.id,
                                                      WorkspaceFile.path == path))


def _refuse_if_locked(session: Session, repo: Repository, workspace: Workspace, path: str, now) -> None:
    hit = first_lock_covering(active_locks(session, repo.id, now, excluding_workspace=workspace.id), [path])
    if hit:
        raise Locked(*path_lock_refusal(hit))


class _Counted:
    """Reads through a stream, refusing to go past `limit` bytes."""

    def __init__(self, stream: BinaryIO, limit: int):
        self.stream, self.limit, self.size = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size if size and size > 0 else 1024 * 1024)
        self.size += len(chunk)
        if self.size > self.limit:
            raise TooLarge(f"file is larger than the {self.limit} byte limit")
        return chunk


def _refuse_file_dir_clash(session: Session, app, repo: Repository, workspace: Workspace, path: str) -> None:
    """A file may not go inside something that is a file in this workspace, nor where a directory is: the
    commit could only keep one of the two (git_objects.edit_tree refuses it there too)."""
    parts = path.split("/")
    ancestors = ["/".join(parts[:i]) for i in range(1, len(parts))]
    rows = {row.path: row for row in session.scalars(select(WorkspaceFile).where(
        WorkspaceFile.workspace_id == workspace.id, WorkspaceFile.path.in_(ancestors)))} if ancestors else {}
    with git_objects.open_repo(app.store.path_for(repo.id)) as git_repo:
        in_head = git_objects.PathLookup(git_repo, workspace.current_commit)
        head_visible = True  # until an ancestor is deleted in the overlay: what the base had below it is gone
        for ancestor in ancestors:
            row = rows.get(ancestor)
            if row is not None and row.blob_sha is None:
                head_visible = False
                continue
            found = in_head(ancestor) if head_visible and row is None else None
            if row is not None or (found is not None and found.kind != "tree"):
                raise Conflict(f"{path!r} cannot be written: {ancestor!r} is a file in this workspace",
                               {"path": path, "file": ancestor})
        below = session.scalar(select(WorkspaceFile.path).where(
            WorkspaceFile.workspace_id == workspace.id, WorkspaceFile.blob_sha.is_not(None),
            WorkspaceFile.path.startswith(path + "/", autoescape=True)).limit(1))
        found = in_head(path) if head_visible else None
        if below is not None or (found is not None and found.kind == "tree"
                                 and _files_left_in(session, git_repo, workspace, found)):
            raise Conflict(f"{path!r} is a directory in this workspace: a file cannot replace it",
                           {"path": path})


def _files_left_in(session: Session, git_repo, workspace: Workspace, directory) -> bool:
    """Whether a directory of the base still holds a file in the workspace: one the overlay has not deleted."""
    deleted = set(session.scalars(select(WorkspaceFile.path).where(
        WorkspaceFile.workspace_id == workspace.id, WorkspaceFile.blob_sha.is_(None),
        WorkspaceFile.path.startswith(directory.path + "/", autoescape=True))))
    return any(entry.path not in deleted
               for entry in git_objects.tree_entries(git_repo, directory.sha.encode(), directory.path))


def _take_turn(session: Session, repo: Repository, workspace: Workspace, path: str, now) -> None:
    """One overlay writer at a time (writes of one path, a commit clearing what it took): then the workspace,
    its locks and its overlay row are read as the last writer left them."""
    take_workspace_turn(session, workspace)
    session.refresh(workspace)  # its head as the last writer left it (a commit may have moved it meanwhile)
    _refuse_if_locked(session, repo, workspace, path, now)


def write_file(session: Session, app, repo: Repository, workspace: Workspace, path: str, body: BinaryIO,
               now, actor: Principal) -> WorkspaceFile:
    checked_path(path)
    _refuse_if_locked(session, repo, workspace, path, now)  # both before the body is read, and again in its turn
    _refuse_file_dir_clash(session, app, repo, workspace, path)
    counted = _Counted(body, app.settings.max_object_size)
    blob_sha = git_objects.write_blob_stream(app.store.path_for(repo.id), counted)
    if not key_in_force(session, actor.key_id):  # revoked while the body was on the way
        raise Forbidden("the key was revoked or has expired")
    _take_turn(session, repo, workspace, path, now)
    _refuse_file_dir_clash(session, app, repo, workspace, path)  # a write of 'a' and one of 'a/b' took turns
    entry = _overlay_entry(session, workspace, path)
    mode = _kept_mode(app, repo, workspace, path, entry)
    entry = entry or WorkspaceFile(id=new_id("wf"), workspace_id=workspace.id, path=path)
    entry.blob_sha, entry.size, entry.mode = blob_sha, counted.size, mode
    session.add(entry)
    workspace.updated_at = now
    session.flush()
    return entry


def _kept_mode(app, repo: Repository, workspace: Workspace, path: str, entry: WorkspaceFile | None) -> int:
    """A write changes what a file holds, not what it is: an executable stays one, a symlink a symlink (its
    content is its target). A new file, or one where a directory or a submodule stood, is a plain file."""
    if entry is not None:
        kept = entry.mode if entry.blob_sha else None
    else:
        head = _head_entry(app, repo, workspace, path)
        kept = head.mode if head is not None else None
    return kept if kept in (git_objects.EXEC_MODE, git_objects.LINK_MODE) else git_objects.FILE_MODE


@dataclass
class FileContent:
    path: str
    content: bytes
    source: str  # overlay | base


def read_file(session: Session, app, repo: Repository, workspace: Workspace, path: str) -> FileContent:
    """An overlay or base file, up to the contents API's size limit (it is read into memory and base64'd)."""
    checked_path(path)
    entry = _overlay_entry(session, workspace, path)
    repo_path = app.store.path_for(repo.id)
    if entry is not None:
        if entry.blob_sha is None:
            raise NotFound(f"{path} is deleted in this workspace")
        sha, size, source = entry.blob_sha, entry.size, "overlay"
    else:
        head = _head_entry(app, repo, workspace, path)
        if head is None or head.kind not in ("blob", "symlink"):
            raise NotFound(f"{path} not found")
        sha, source = head.sha, "base"
        size = git_read.object_sizes(repo_path, [sha]).get(sha, 0)
    if size > MAX_CONTENT_BYTES:
        raise TooLarge(f"{path!r} is {size} bytes; files are read up to {MAX_CONTENT_BYTES} bytes here, "
                       "clone for larger ones", {"path": path, "size": size, "limit": MAX_CONTENT_BYTES})
    with git_objects.open_repo(repo_path) as git_repo:
        return FileContent(path, git_repo.object_store[sha.encode()].as_raw_string(), source)


def delete_file(session: Session, app, repo: Repository, workspace: Workspace, path: str, now) -> None:
    """Marks a file of the workspace's commit deleted, or drops one the overlay holds (a file written where that
    commit has a directory: the directory, less the files deleted in it, is back). 404: no such file here."""
    checked_path(path)
    _take_turn(session, repo, workspace, path, now)
    head = _head_entry(app, repo, workspace, path)
    entry = _overlay_entry(session, workspace, path)
    written = entry is not None and entry.blob_sha is not None
    if head is not None and head.kind == "tree" and not written:
        raise Invalid(f"{path!r} is a directory: delete the files in it one by one", {"path": path})
    if head is None or head.kind == "tree":
        if not written:
            raise NotFound(f"{path} not found")
        session.delete(entry)
    else:
        if entry is not None and not written:
            raise NotFound(f"{path} not found: it was deleted in this workspace")
        entry = entry or WorkspaceFile(id=new_id("wf"), workspace_id=workspace.id, path=path)
        entry.blob_sha, entry.size = None, 0
        session.add(entry)
    workspace.updated_at = now
    session.flush()


def _head_entry(app, repo: Repository, workspace: Workspace, path: str):
    if not workspace.current_commit:
        return None
    with git_objects.open_repo(app.store.path_for(repo.id)) as git_repo:
        return git_objects.lookup(git_repo, workspace.current_commit, path)


def status(session: Session, app, repo: Repository, workspace: Workspace) -> dict[str, list[str]]:
    result = {"added": [], "modified": [], "deleted": []}
    overlay = _overlay(session, workspace)
    if not overlay:
        return result
    with git_objects.open_repo(app.store.path_for(repo.id)) as git_repo:
        in_head = git_objects.PathLookup(git_repo, workspace.current_commit)
        for path in sorted(overlay):
            entry = overlay[path]
            head = in_head(path)
            if entry.blob_sha is None:
                if head is not None:
                    result["deleted"].append(path)
            elif head is None or head.kind == "tree":
                result["added"].append(path)
            elif head.sha != entry.blob_sha:
                result["modified"].append(path)
    return result


def changed_paths(session: Session, app, repo: Repository, workspace: Workspace) -> set[str]:
    """Everything this workspace changes against its base: committed changes and the overlay."""

    paths = set(_overlay(session, workspace))
    if workspace.current_commit and workspace.current_commit != workspace.base_commit:
        paths |= set(git_read.changed_paths(app.store.path_for(repo.id), workspace.base_commit,
                                            workspace.current_commit))
    return paths


@dataclass(frozen=True)
class CommitMade:
    sha: str
    parents: list[str]
    message: str
    intent: dict | None


def commit(session: Session, app, repo: Repository, workspace: Workspace, actor: Principal, message: str,
           author_name: str, author_email: str, intent: dict | None) -> CommitMade:
    """Commit the overlay onto the workspace's head; returns the commit, its parents, message and intent.

    Commits of one workspace take turns on its row. A ref found ahead of the row, one commit on, was moved by a
    commit whose request died before its transaction ended (a killed worker): that commit is taken as the head
    and this one built on it; a retry of it that finds its whole overlay there answers with it."""
    serialize_workspace_writes(session, workspace.id)
    session.refresh(workspace)
    if workspace.status != "active":  # deleted while this request waited its turn
        raise NotFound(f"workspace {workspace.id!r} not found")
    overlay = _overlay(session, workspace)
    if not overlay:
        raise Invalid("nothing to commit: the workspace overlay is empty")
    path = app.store.path_for(repo.id)
    ref = workspace_ref(workspace)
    seen = git_refs.read_ref(path, ref)
    author, full_message = git_objects.Identity(author_name, author_email), message_with_intent(message, intent)
    with git_objects.open_repo(path) as git_repo:
        if seen is not None and seen != workspace.current_commit:
            lost_parents = _parents(workspace.current_commit)
            overlay = _take_lost_commit(session, git_repo, workspace, seen, overlay)
            record_commit(session, repo.id, seen, "workspace", actor.key_id)  # its intent is in its trailers
            if not overlay:  # the answer is that commit's: a retry of it answers as it would have, another
                session.flush()  # request with what its message and trailers say
                written = git_objects.commit_message(git_repo, seen)
                if written == full_message:
                    return CommitMade(seen, lost_parents, message, intent)
                return CommitMade(seen, lost_parents, *split_intent(written))
        parents = _parents(workspace.current_commit)
        sha = _commit_overlay(git_repo, workspace.current_commit, overlay, author, full_message)
    ctx = change_context(app, repo, actor, "workspace")
    ctx.workspace_id = workspace.id
    apply_ref_change(ctx, RefUpdate(old=seen or ZERO_SHA, new=sha, ref=ref), session=session)
    record_commit(session, repo.id, sha, "workspace", actor.key_id, intent=intent or None)
    serialize_repository_writes(session, repo.id)  # takes turns with overlay writes (_take_turn)
    for entry in overlay.values():  # only what went into the commit: a write that raced in stays in the overlay
        blob_matches = (WorkspaceFile.blob_sha == entry.blob_sha) if entry.blob_sha else WorkspaceFile.blob_sha.is_(None)
        session.execute(delete(WorkspaceFile).where(WorkspaceFile.id == entry.id, blob_matches))
    workspace.current_commit = sha
    session.flush()
    return CommitMade(sha, parents, message, intent or intent_from_message(full_message))  # as its trailers read


def workspaces_behind_their_refs(session: Session, store, repo_id: str) -> list[str]:
    """The active workspaces whose hidden ref is not where their row says (read without their turns)."""
    path = store.path_for(repo_id)
    rows = session.execute(select(Workspace.id, Workspace.current_commit)
                           .where(Workspace.repo_id == repo_id, Workspace.status == "active")).all()
    refs = git_refs.read_refs(path, [workspace_ref_of(workspace_id) for workspace_id, _ in rows])
    return [workspace_id for workspace_id, current in rows if refs[workspace_ref_of(workspace_id)] not in (None, current)]


def take_up_lost_commit(session: Session, store, workspace_id: str) -> bool:
    """A commit whose request died after it moved the workspace's ref (a killed worker): the row takes it as its
    head and the overlay entries it holds leave the overlay, as its request would have done; until then the
    workspace's status and tree showed the state before it (the next commit took it up, as it still does).
    Whether it was taken; a ref moved any other way is left to the next commit to refuse."""
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        return False
    serialize_workspace_writes(session, workspace.id)
    session.refresh(workspace)
    path = store.path_for(workspace.repo_id)
    seen = git_refs.read_ref(path, workspace_ref(workspace))
    if workspace.status != "active" or seen is None or seen == workspace.current_commit:
        return False
    serialize_repository_writes(session, workspace.repo_id)  # overlay writes wait: an entry is dropped only as held
    with git_objects.open_repo(path) as git_repo:
        try:
            _take_lost_commit(session, git_repo, workspace, seen, _overlay(session, workspace))
        except StaleRef:
            return False
    record_commit(session, workspace.repo_id, seen, "workspace", None)  # its intent is in its trailers
    session.flush()
    return True


def _commit_overlay(git_repo, head: str | None, overlay: dict[str, WorkspaceFile], author, message: str) -> str:
    changes = {p: (e.mode, e.blob_sha) if e.blob_sha else None for p, e in overlay.items()}
    base_tree = git_objects.commit_tree(git_repo, head) if head else None
    tree = git_objects.edit_tree(git_repo, base_tree, changes)
    if tree == (base_tree or EMPTY_TREE):
        raise Invalid("nothing to commit: the overlay holds what the workspace's head already has")
    return git_objects.write_commit(git_repo, tree, _parents(head), author, message)


def _take_lost_commit(session: Session, git_repo, workspace: Workspace, seen: str,
                      overlay: dict[str, WorkspaceFile]) -> dict[str, WorkspaceFile]:
    """Make `seen`, a commit on the workspace's head that the row missed, the head; returns the overlay entries
    it does not hold (those it holds leave the overlay). A ref moved any other way is refused."""
    try:
        parents = git_objects.commit_parents(git_repo, seen)
    except KeyError:
        parents = None
    if parents != _parents(workspace.current_commit):
        raise StaleRef("the workspace moved while committing", {"expected": workspace.current_commit, "actual": seen})
    workspace.current_commit = seen
    in_lost = git_objects.PathLookup(git_repo, seen)
    left = {}
    for file_path, entry in overlay.items():
        held = in_lost(file_path)  # None also where a file stands on the path's way
        if (held and (held.mode, held.sha)) == ((entry.mode, entry.blob_sha) if entry.blob_sha else None):
            session.delete(entry)
        else:
            left[file_path] = entry
    return left


def _parents(head: str | None) -> list[str]:
    return [head] if head else []


@dataclass
class TreeItem:
    path: str
    type: str
    mode: int
    sha: str | None
    size: int | None
    source: str


    @property
    def is_dir(self) -> bool:
        return self.type == "tree"


def tree(session: Session, app, repo: Repository, workspace: Workspace, prefix: str = "",
         recursive: bool = False) -> list[TreeItem]:
    """The base commit's files with the overlay applied, under the directory `prefix`: every file, by path
    (`recursive`), or the directory's own entries, directories first (dojo's Tree Browsing API)."""
    if prefix:
        checked_path(prefix)
    repo_path = app.store.path_for(repo.id)
    overlay = {path: entry for path, entry in _overlay(session, workspace).items()
               if not prefix or path.startswith(prefix + "/")}
    with git_objects.open_repo(repo_path) as git_repo:
        listed = (_every_file(git_repo, workspace, overlay, prefix) if recursive
                  else _one_level(git_repo, workspace, overlay, prefix))
    if prefix and not listed:
        _refuse_missing_directory(session, repo_path, workspace, prefix)
    unsized = [item for item in listed if item.size is None and item.type == "blob"]  # base files: git knows
    sizes = git_read.object_sizes(repo_path, [item.sha for item in unsized])
    for item in unsized:
        item.size = sizes.get(item.sha)
    return listed


def _base_entries(git_repo, workspace: Workspace, path: str, recursive: bool) -> list[git_objects.TreeEntry]:
    if not workspace.current_commit:
        return []
    return git_objects.list_tree(git_repo, workspace.current_commit, path, recursive=recursive)


def _every_file(git_repo, workspace: Workspace, overlay: dict[str, WorkspaceFile], prefix: str) -> list[TreeItem]:
    files = {e.path: TreeItem(e.path, e.kind, e.mode, e.sha, None, "base")
             for e in _base_entries(git_repo, workspace, prefix, recursive=True)}
    for path, entry in overlay.items():
        if entry.blob_sha is None:
            files.pop(path, None)
        else:
            files[path] = TreeItem(path, "blob", entry.mode, entry.blob_sha, entry.size, "overlay")
    return [files[path] for path in sorted(files)]


def _one_level(git_repo, workspace: Workspace, overlay: dict[str, WorkspaceFile], prefix: str) -> list[TreeItem]:
    """The entries directly in `prefix`: its files, and its directories (from the overlay when a file in one
    comes from there). Only a directory the overlay deletes files in is read further down: it is gone when
    they were all its files."""
    depth = len(prefix.split("/")) if prefix else 0
    entries = {}
    for e in _base_entries(git_repo, workspace, prefix, recursive=False):
        entries[e.path] = (TreeItem(e.path, "tree", git_objects.TREE_MODE, None, None, "base") if e.kind == "tree"
                           else TreeItem(e.path, e.kind, e.mode, e.sha, None, "base"))
    deleted_below: dict[str, set[str]] = {}
    for path, entry in overlay.items():
        parts = path.split("/")
        top = "/".join(parts[:depth + 1])
        if len(parts) == depth + 1 and entry.blob_sha is None:
            entries.pop(path, None)
        elif len(parts) == depth + 1:
            entries[path] = TreeItem(path, "blob", entry.mode, entry.blob_sha, entry.size, "overlay")
        elif entry.blob_sha is None:
            deleted_below.setdefault(top, set()).add(path)
        else:
            entries[top] = TreeItem(top, "tree", git_objects.TREE_MODE, None, None, "overlay")
    for top, deleted in deleted_below.items():
        if top in entries and entries[top].source == "base":
            if {e.path for e in _base_entries(git_repo, workspace, top, recursive=True)} <= deleted:
                del entries[top]
    return sorted(entries.values(), key=lambda item: (not item.is_dir, item.path))


def _refuse_missing_directory(session: Session, repo_path, workspace: Workspace, path: str) -> None:
    """Nothing is listed under `path`: it is a file (here or in the base), or there is no such directory (git has
    no empty directories, and one whose files the overlay all deleted is gone too)."""
    overlay = _overlay_entry(session, workspace, path)
    kind = "blob" if overlay is not None and overlay.blob_sha is not None else None
    if overlay is None and workspace.current_commit:
        with git_objects.open_repo(repo_path) as git_repo:
            entry = git_objects.lookup(git_repo, workspace.current_commit, path)
        kind = entry.kind if entry is not None else None
    if kind in (None, "tree"):  # a base directory listed empty: the overlay deleted every file in it
        raise NotFound(f"no directory {path!r} in this workspace", {"path": path})
    if kind == "commit":
        raise Invalid(f"{path!r} is a submodule: its files are in another repository", {"path": path, "type": kind})
    raise Invalid(f"{path!r} is a {kind}, not a directory; read it with GET .../files/{{path}}",
                  {"path": path, "type": kind})


@dataclass
class SearchHit:
    path: str
    snippet: str
    rank: float
    line: int  # the first match's line, and that line
    content: str
    source: str  # overlay | base


MAX_SEARCHED_BYTES = 512 * 1024  # dojo indexes text files up to 512 KB
SEARCH_BUDGET_BYTES = 32 * 1024 * 1024  # read per search at most (~3 s); past it the answer says truncated
# files read per search at most: small files cost their lookup, not their bytes (100,000 of ~27 bytes: 6-33 s)
SEARCH_BUDGET_FILES = 10_000


def search(session: Session, app, repo: Repository, workspace: Workspace, query: str, limit: int = 50,
           path_filter: str | None = None) -> tuple[list[SearchHit], bool]:
    """Files matching `query` (text_search's syntax) across base and overlay, best first; overlay files shadow
    their base versions. The flag says whether more than `limit` matched."""
    if not query or len(query) > 1000:
        raise Invalid("q must be 1 to 1000 characters", {"fields": [{"loc": "q", "msg": "length"}]})
    parsed = text_search.parse(query)
    overlay = _overlay(session, workspace)
    candidates = {path: (entry.blob_sha, "overlay") for path, entry in overlay.items()
                  if entry.blob_sha is not None and entry.size <= MAX_SEARCHED_BYTES}
    repo_path = app.store.path_for(repo.id)
    if workspace.current_commit:
        in_base = git_read.files_containing(repo_path, workspace.current_commit, parsed.fragments,
                                            MAX_SEARCHED_BYTES)
        candidates.update({path: (sha, "base") for path, sha in in_base.items() if path not in overlay})
    hits: list[SearchHit] = []
    budget, files_left, cut_short = SEARCH_BUDGET_BYTES, SEARCH_BUDGET_FILES, False
    with git_objects.open_repo(repo_path) as git_repo:
        for path, (sha, source) in sorted(candidates.items()):
            if path_filter and path_filter not in path:
                continue
            if files_left == 0:
                cut_short = True
                break
            files_left -= 1
            data = git_repo.object_store[sha.encode()].as_raw_string()
            budget -= len(data)
            if budget < 0:
                cut_short = True
                break
            if b"\0" in data[:8000]:
                continue
            found = text_search.match(parsed, data.decode("utf-8", "replace"))
            if found is not None:
                hits.append(SearchHit(path, found.snippet, found.rank, found.line, found.line_text, source))
    hits.sort(key=lambda hit: (hit.rank, hit.path))
    return hits[:limit], cut_short or len(hits) > limit
