"""Files without a checkout: read a file or a tree at a revision, diff two revisions, and commit several file
operations atomically on top of a branch head (one commit, moved by compare-and-swap through the hook pipeline).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from hooks.locks import refuse_locked_paths
from hooks.pipeline import apply_ref_change
from hooks.refs import ZERO_SHA, RefUpdate
from storage import git_diff, git_objects, git_read, git_refs
from storage.errors import Conflict, Invalid, NotFound, StaleRef, TooLarge
from storage.intent import intent_from_message, message_with_intent
from storage.keys import Principal
from storage.models import Branch, Repository
from storage.repo_writes import serialize_repository_writes

from .changes import change_context, checked_branch_name, checked_path, first_parent, resolve_revision
from .commits import record_commit
from .writer_race import WriterRace

ACTIONS = ("create", "update", "delete", "rename")
MODES = {"100644": git_objects.FILE_MODE, "100755": git_objects.EXEC_MODE}
DEFAULT_AUTHOR = git_objects.Identity("agent", "agent@driftstone.local")
MAX_CONTENT_BYTES = 32 * 1024 * 1024  # largest file GET /contents answers (base64 in JSON); clone for more
MAX_TREE_ENTRIES = 20_000


class _AnyHead:
    def __repr__(self) -> str:
        return "ANY_HEAD"


ANY_HEAD = _AnyHead()  # no expectation: commit on whatever the head is (a new branch if it has none yet)


@dataclass(frozen=True)
class FileOperation:
    action: str  # create | update | delete | rename
    path: str
    content: bytes | None = None  # required for create and update; optional for rename (keeps the content)
    previous_path: str | None = None  # rename only
    mode: str | None = None  # "100644" | "100755"; create defaults to 100644, the others keep the file's mode


@dataclass
class CommitResult:
    sha: str
    parents: list[str]
    branch: str
    tree: str
    message: str
    intent: dict | None


@dataclass
class FileContent:
    path: str
    ref: str
    commit: str
    blob_sha: str
    mode: str
    type: str  # blob | symlink
    content: bytes


@dataclass
class TreeListing:
    ref: str
    commit: str
    path: str
    entries: list[dict] = field(default_factory=list)  # path, type, mode, sha, size
    truncated: bool = False


# --- reading -------------------------------------------------------------------------------------------------

def _read_path(path: str) -> str | None:
    """A path to look up, without its outer slashes; None when no tree can hold it (NUL, '.', '..', empty parts)."""
    cleaned = (path or "").strip("/")
    if "\0" in cleaned or (cleaned and any(part in ("", ".", "..") for part in cleaned.split("/"))):
        return None
    return cleaned


def _resolve(app, repo: Repository, ref: str | None, session: Session | None = None) -> tuple[str, str]:
    """(ref, commit sha) for any revision resolve_revision reads; a name no ref can have is simply not found."""
    ref = ref or repo.default_branch
    return ref, resolve_revision(app, repo, ref, session)


def _not_found(path: str, ref: str) -> NotFound:
    return NotFound(f"{path!r} not found at {ref}", {"path": path, "ref": ref})


def read_file(app, repo: Repository, path: str, ref: str | None = None, session: Session | None = None
              ) -> FileContent:
    ref, commit = _resolve(app, repo, ref, session)
    wanted = _read_path(path)
    with git_objects.open_repo(app.store.path_for(repo.id)) as git_repo:
        entry = git_objects.lookup(git_repo, commit, wanted) if wanted else None
        if entry is None:
            raise _not_found(path, ref)
        path = wanted
        if entry.kind == "commit":
            raise _submodule(entry)
        if entry.kind == "tree":
            raise Invalid(f"{path!r} is a directory, not a file; list it with GET /v1/repos/{{repo}}/tree?path=",
                          {"path": path, "type": entry.kind})
        size = git_read.object_sizes(app.store.path_for(repo.id), [entry.sha]).get(entry.sha, 0)
        if size > MAX_CONTENT_BYTES:
            raise TooLarge(f"{path!r} is {size} bytes; this API returns files up to {MAX_CONTENT_BYTES} bytes, "
                           "clone for larger ones", {"path": path, "size": size, "limit": MAX_CONTENT_BYTES})
        data = git_repo.object_store[entry.sha.encode()].as_raw_string()
    return FileContent(path=path, ref=ref, commit=commit, blob_sha=entry.sha, mode=f"{entry.mode:06o}",
                       type=entry.kind, content=data)


def _submodule(entry: git_objects.TreeEntry) -> Invalid:
    return Invalid(f"{entry.path!r} is a submodule at commit {entry.sha}: its files are in another repository",
                   {"path": entry.path, "type": "commit", "sha": entry.sha})


def list_tree(app, repo: Repository, path: str = "", ref: str | None = None, recursive: bool = False,
              session: Session | None = None) -> TreeListing:
    ref, commit = _resolve(app, repo, ref, session)
    wanted = _read_path(path)
    if wanted is None:
        raise _not_found(path, ref)
    path = wanted
    repo_path = app.store.path_for(repo.id)
    with git_objects.open_repo(repo_path) as git_repo:
        if path:
            entry = git_objects.lookup(git_repo, commit, path)
            if entry is None:
                raise _not_found(path, ref)
            if entry.kind == "commit":
                raise _submodule(entry)
            if entry.kind != "tree":
                raise Invalid(f"{path!r} is a {entry.kind}, not a directory; read it with "
                              "GET /v1/repos/{repo}/contents/{path}", {"path": path, "type": entry.kind})
        entries = []
        truncated = False
        for entry in git_objects.list_tree(git_repo, commit, path, recursive):
            if len(entries) == MAX_TREE_ENTRIES:
                truncated = True
                break
            entries.append(entry)
    sizes = git_read.object_sizes(repo_path, [e.sha for e in entries if e.kind in ("blob", "symlink")])
    return TreeListing(ref=ref, commit=commit, path=path, truncated=truncated, entries=[
        {"path": e.path, "type": e.kind, "mode": f"{e.mode:06o}", "sha": e.sha,
         "size": sizes.get(e.sha) if e.kind in ("blob", "symlink") else None} for e in entries])


def diff(app, repo: Repository, head: str | None = None, base: str | None = None, full: bool = True,
         path: str | None = None, limits: git_diff.DiffLimits = git_diff.DiffLimits(),
         session: Session | None = None) -> dict:
    """`git diff base head` as seed 003 shapes it; head defaults to the default branch, base to head's parent."""
    _, head_sha = _resolve(app, repo, head, session)
    base_sha = _resolve(app, repo, base, session)[1] if base is not None else None
    if path is not None:
        checked_path(path, "file")
    with git_objects.open_repo(app.store.path_for(repo.id)) as git_repo:
        if base is None:
            parents = git_repo[head_sha.encode()].parents
            base_sha = parents[0].decode() if parents else None
        return git_diff.diff_commits(git_repo, base_sha, head_sha, full=full, path=path, limits=limits)


# --- committing ----------------------------------------------------------------------------------------------

def commit_files(session: Session, app, repo: Repository, actor: Principal, branch: str,
                 operations: list[FileOperation], message: str, author: git_objects.Identity | None = None,
                 intent: dict | None = None, expected_head: str | None | _AnyHead = ANY_HEAD) -> CommitResult:
    """ONE commit on top of `branch` applying `operations` (paths are checked against the head's tree).

    `expected_head`: a sha (the branch must still point there, else StaleRef), None (the branch must have no
    commit yet), or ANY_HEAD (whatever the head is, retried if another writer moves it meanwhile).
    """
    checked_branch_name(branch)
    _check_operations(operations, app.settings.max_object_size)
    full_message = message_with_intent(message, intent)
    repo_path = app.store.path_for(repo.id)
    ref = f"refs/heads/{branch}"
    refuse_locked_paths(session, repo.id, None, lambda: sorted({p for op in operations
                                                                for p in (op.path, op.previous_path) if p}), ref)
    ctx = change_context(app, repo, actor, "api")
    race = WriterRace(session)
    with race.turn(repo_path, ref, racing=expected_head is ANY_HEAD):
        while True:
            head = git_refs.read_ref(repo_path, ref)
            if expected_head is not ANY_HEAD and head != expected_head:
                raise _stale(branch, ref, expected_head, head)
            if head is None:  # a branch's first commit takes turns with its deletion (a record-only branch has no ref)
                serialize_repository_writes(session, repo.id)
            row = session.scalar(select(Branch).where(Branch.repo_id == repo.id, Branch.name == branch))
            if head is None and expected_head is ANY_HEAD and branch != repo.default_branch and row is None:
                raise NotFound(f"branch {branch!r} not found (send \"expectedHeadSha\": null to start it)",
                               {"branch": branch})
            parent = head or first_parent(repo_path, row)
            sha, tree = _write(repo_path, parent, operations, author, full_message)
            try:
                apply_ref_change(ctx, RefUpdate(old=head or ZERO_SHA, new=sha, ref=ref), session=session)
            except StaleRef:
                if expected_head is not ANY_HEAD:
                    raise _stale(branch, ref, expected_head, git_refs.read_ref(repo_path, ref)) from None
                if race.again():
                    continue
                actual = git_refs.read_ref(repo_path, ref)
                raise StaleRef(f"branch {branch!r} kept moving under other writers ({race.tries} tries); retry the "
                               "commit", {"branch": branch, "ref": ref, "actualHeadSha": actual}) from None
            break
    if head is None and row is not None and parent is not None:
        row.base_commit = parent
    record_commit(session, repo.id, sha, "api", actor.key_id, intent=intent or None)
    session.flush()
    # as a read of the commit answers it: trailers the message itself carries are its intent
    return CommitResult(sha=sha, parents=[parent] if parent else [], branch=branch, tree=tree,
                        message=full_message, intent=intent or intent_from_message(full_message))


def _stale(branch: str, ref: str, expected: str | None, actual: str | None) -> StaleRef:
    return StaleRef(f"branch {branch!r} is at {actual or 'no commit'}, not {expected or 'no commit'}",
                    {"branch": branch, "ref": ref, "expectedHeadSha": expected, "actualHeadSha": actual})


def _check_operations(operations: list[FileOperation], max_size: int) -> None:
    """Rules that need no repository: valid fields and paths (422); each path at most once and none inside
    another operation's path (409: the request conflicts with itself)."""
    if not operations:
        raise Invalid("at least one operation is needed", {"fields": [{"loc": "operations", "msg": "empty"}]})
    problems, clashes, touched = [], [], {}
    for index, op in enumerate(operations):
        loc = f"operations.{index}"
        if op.action not in ACTIONS:
            problems.append({"loc": f"{loc}.action", "msg": f"one of {', '.join(ACTIONS)}"})
            continue
        paths = [("path", op.path)] + ([("previousPath", op.previous_path)] if op.action == "rename" else [])
        for name, value in paths:
            try:
                checked_path(value or "", f"{loc}.{name}")
            except Invalid as error:
                problems.extend(error.details["fields"])
                continue
            if value in touched:
                clashes.append((value, touched[value], index))
            touched.setdefault(value, index)
        if op.action in ("create", "update") and op.content is None:
            problems.append({"loc": f"{loc}.content", "msg": f"{op.action} needs content"})
        if op.action == "delete" and (op.content is not None or op.mode is not None):
            problems.append({"loc": f"{loc}.content", "msg": "delete takes no content or mode"})
        if op.action == "rename" and not op.previous_path:
            problems.append({"loc": f"{loc}.previousPath", "msg": "rename needs previousPath"})
        elif op.action == "rename" and op.previous_path == op.path:
            problems.append({"loc": f"{loc}.path", "msg": "a rename moves the file: path is its previousPath"})
        if op.action != "rename" and op.previous_path is not None:
            problems.append({"loc": f"{loc}.previousPath", "msg": "only rename takes previousPath"})
        if op.mode is not None and op.mode not in MODES:
            problems.append({"loc": f"{loc}.mode", "msg": f"one of {', '.join(MODES)}"})
        if op.content is not None and len(op.content) > max_size:
            raise TooLarge(f"operation {index}: content is larger than the {max_size} byte limit",
                           {"limit": max_size, "path": op.path})
    if problems:
        raise Invalid("invalid file operations", {"fields": problems})
    for path, index in touched.items():
        for cut in range(len(path)):
            if path[cut] == "/" and path[:cut] in touched:
                clashes.append((path[:cut], touched[path[:cut]], index))
    if clashes:
        path, first, second = clashes[0]
        if first == second:
            op = operations[first]
            raise Conflict(f"operation {first} renames {op.previous_path!r} to {op.path!r}, a path inside it or one "
                           "it is inside: delete it in one commit and create the new path in the next",
                           {"path": path, "operations": [first]})
        raise Conflict(f"operations {first} and {second} both change {path!r} (or something inside it)",
                       {"path": path, "operations": [first, second]})


def _write(repo_path, parent: str | None, operations: list[FileOperation], author, message: str) -> tuple[str, str]:
    """Write the blobs, the edited tree and the commit; returns (commit sha, tree sha)."""
    with git_objects.open_repo(repo_path) as git_repo:
        find = git_objects.PathLookup(git_repo, parent)
        changes: dict[str, git_objects.Change] = {}
        for index, op in enumerate(operations):
            changes.update(_change_for(git_repo, find, index, op))
        base_tree = find.root
        tree = git_objects.edit_tree(git_repo, base_tree, changes)
        if tree == base_tree:
            raise Conflict("the operations change nothing: the files already have that content and mode",
                           {"head": parent})
        sha = git_objects.write_commit(git_repo, tree, [parent] if parent else [], author or DEFAULT_AUTHOR,
                                       message)
    return sha, tree.decode()


def _change_for(git_repo, find, index: int, op: FileOperation) -> dict[str, git_objects.Change]:
    target = find(op.path)
    if op.action in ("create", "rename"):
        if target is not None:
            what = "directory" if target.kind == "tree" else "file"
            raise Conflict(f"{op.path!r} already exists (a {what})", {"path": op.path, "operation": index})
        blocker = _file_above(find, op.path)
        if blocker is not None:
            raise Conflict(f"{op.path!r} cannot be created: {blocker!r} is a file", {"path": op.path,
                                                                                     "operation": index})
    if op.action == "create":
        mode = MODES[op.mode or "100644"]
        return {op.path: (mode, git_objects.write_blob(git_repo, op.content))}
    source_path = op.previous_path if op.action == "rename" else op.path
    source = target if op.action != "rename" else find(source_path)
    if source is None:
        raise NotFound(f"{source_path!r} not found", {"path": source_path, "operation": index})
    if source.kind in ("tree", "commit"):
        what = "a directory" if source.kind == "tree" else "a submodule"
        raise Conflict(f"{source_path!r} is {what}; operations name files", {"path": source_path,
                                                                              "operation": index})
    if op.action == "delete":
        return {op.path: None}
    mode = MODES[op.mode] if op.mode else source.mode
    blob = git_objects.write_blob(git_repo, op.content) if op.content is not None else source.sha
    if op.action == "update":
        return {op.path: (mode, blob)}
    return {op.previous_path: None, op.path: (mode, blob)}


def _file_above(find, path: str) -> str | None:
    """The nearest existing parent of `path` that is not a directory, if any."""
    parts = path.split("/")
    for depth in range(1, len(parts)):
        entry = find("/".join(parts[:depth]))
        if entry is None:
            return None
        if entry.kind != "tree":
            return entry.path
    return None


