"""Merge strategies on the object store: what a branch head becomes when a source commit is merged into it.

`plan_merge` computes everything in memory (merged trees, new commits) and moves no ref; `MergePlan.persist()`
writes the new objects into the repository. The caller moves the ref by compare-and-swap from `target_head`.

  merge   a merge commit with parents [target, source] ("a true merge commit", seed 003); with
          `fast_forward=True` a target that is an ancestor of the source just moves to the source
  squash  one commit on top of the target with the merged tree; the target is its only parent
  rebase  the source's commits that the target lacks are replayed onto the target one by one, oldest first
          (three-way merges against each commit's parent, like `git rebase` / cherry-pick): authors, dates and
          messages are kept, merge commits are skipped, commits whose change the target already has and
          commits that become empty are dropped (git's defaults); a target that is an ancestor of the source
          simply moves to the source
A source the target already contains is `already_merged` for every strategy. Conflicts produce no commits.
"""
from __future__ import annotations

import codecs
import heapq
import time
from dataclasses import dataclass, field

from dulwich.objects import Commit, Tree

from .git_merge import MergeResult, MergeStore, merge_bases_in, merge_commits, merge_trees
from .merge_store import EMPTY_TREE
from .git_objects import Identity
from .intent import without_intent_trailers

STRATEGIES = ("merge", "squash", "rebase")


class UnrelatedHistories(Exception):
    """The source and the target share no commit."""


@dataclass
class MergePlan:
    strategy: str
    target_head: str | None
    source_head: str
    new_head: str | None  # None when the merge conflicts
    already_merged: bool = False
    fast_forward: bool = False
    new_commits: list[str] = field(default_factory=list)  # oldest first
    conflicts: list[str] = field(default_factory=list)
    conflict_messages: list[str] = field(default_factory=list)
    stopped_at: str | None = None  # rebase: the source commit that did not apply
    dropped: list[str] = field(default_factory=list)  # rebase: commits that became empty
    store: MergeStore | None = field(default=None, repr=False)

    @property
    def clean(self) -> bool:
        return self.new_head is not None

    @property
    def moves_target(self) -> bool:
        return self.new_head is not None and self.new_head != self.target_head

    def persist(self) -> None:
        if self.store is not None and self.new_head is not None:
            self.store.persist(self.new_head.encode())


def _identity_bytes(identity: Identity) -> bytes:
    return identity.encoded()


def _new_commit(store: MergeStore, tree: bytes, parents: list[bytes], author: bytes, author_time: int,
                author_tz: int, committer: bytes, commit_time: int, message: bytes) -> bytes:
    commit = Commit()
    commit.tree = tree
    commit.parents = parents
    commit.author, commit.committer = author, committer
    commit.author_time, commit.author_timezone = author_time, author_tz
    commit.commit_time, commit.commit_timezone = commit_time, 0
    commit.encoding = b"UTF-8"
    commit.message = message
    return store.add(commit)


def _in_utf8(commit: Commit) -> tuple[bytes, bytes]:
    """The commit's author and message in UTF-8, as git rebase writes them: the commits written here say UTF-8, and
    a message kept in its legacy encoding (`encoding ISO-8859-1`) was then misread."""
    encoding = (commit.encoding or b"UTF-8").decode("ascii", "replace")
    try:
        if codecs.lookup(encoding).name == "utf-8":
            return commit.author, commit.message
    except LookupError:  # an encoding this Python does not know: the bytes as they are
        return commit.author, commit.message
    try:
        return (commit.author.decode(encoding, "replace").encode(), commit.message.decode(encoding, "replace").encode())
    except LookupError:  # a codec that is no text encoding (`encoding base64`): the bytes as they are
        return commit.author, commit.message


def _is_ancestor(store: MergeStore, ancestor: bytes, descendant: bytes) -> bool:
    return ancestor in merge_bases_in(store, ancestor, descendant)


def _commit(store: MergeStore, oid: bytes) -> Commit:
    obj = store[oid]
    if not isinstance(obj, Commit):
        raise KeyError(oid)
    return obj


def commits_to_replay(store: MergeStore, upstream: bytes | None, head: bytes, limit: int | None = None
                      ) -> list[bytes] | None:
    """Commits reachable from `head` but not from `upstream` (git rev-list upstream..head), parents first; None
    once more than `limit` are found.

    Walks newest first and stops once everything still queued is reachable from `upstream`."""
    flags: dict[bytes, bool] = {}  # commit -> reachable from upstream
    queued: dict[bytes, int] = {}
    queue: list[tuple[int, int, bytes]] = []
    counter = 0
    interesting_queued = 0

    def push(oid: bytes) -> None:
        nonlocal counter, interesting_queued
        counter += 1
        heapq.heappush(queue, (-_commit(store, oid).commit_time, counter, oid))
        queued[oid] = queued.get(oid, 0) + 1
        if not flags[oid]:
            interesting_queued += 1

    def mark_uninteresting(oid: bytes) -> None:
        nonlocal interesting_queued
        stack = [oid]
        while stack:
            current = stack.pop()
            if current not in flags or flags[current]:
                continue
            flags[current] = True
            interesting_queued -= queued.get(current, 0)
            stack.extend(p for p in _commit(store, current).parents if p in flags)

    flags[head] = False
    push(head)
    if upstream is not None:
        if upstream in flags:
            return []
        flags[upstream] = True
        push(upstream)
    visited: list[bytes] = []
    while interesting_queued > 0:
        _, _, oid = heapq.heappop(queue)
        queued[oid] -= 1
        uninteresting = flags[oid]
        if not uninteresting:
            interesting_queued -= 1
            visited.append(oid)
            if limit is not None and len(visited) > limit:
                return None
        for parent in _commit(store, oid).parents:
            if parent not in flags:
                flags[parent] = uninteresting
                push(parent)
            elif uninteresting and not flags[parent]:
                mark_uninteresting(parent)
    wanted = {oid for oid in visited if not flags[oid]}
    order: list[bytes] = []
    done: set[bytes] = set()
    for start in sorted(wanted, key=lambda oid: _commit(store, oid).commit_time):
        stack = [(start, False)]
        while stack:
            oid, expanded = stack.pop()
            if oid in done:
                continue
            if expanded:
                done.add(oid)
                order.append(oid)
                continue
            stack.append((oid, True))
            stack.extend((p, False) for p in _commit(store, oid).parents if p in wanted and p not in done)
    return order


def _message(commit: Commit) -> str:
    return _in_utf8(commit)[1].decode("utf-8", "replace").strip()


def _subject(commit: Commit) -> str:
    return _message(commit).split("\n", 1)[0]


def plan_merge(object_store, target_head: str | None, source_head: str, strategy: str, *, target_name: str,
               source_name: str, committer: Identity, message: str | None = None, fast_forward: bool = False,
               when: int | None = None, since: str | None = None, title: str | None = None) -> MergePlan:
    """`message`: the new commit's whole message; else one made with `title` (a pull request's) as its first line.
    `since`: an ancestor of `source_head` whose later commits alone are the source's own work, which a squash
    takes and a rebase replays (a stack's base: a stack submitted after an earlier squash of the same line of
    work holds only what came since, but git's merge base is older and would apply the squashed changes a
    second time). One that is not an ancestor of the source is not used: taken as the merge base, it made a
    squash put the source's tree over the target's."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    store = MergeStore(object_store)
    now = int(when if when is not None else time.time())
    plan = MergePlan(strategy=strategy, target_head=target_head, source_head=source_head, new_head=None,
                     store=store)
    source = source_head.encode()
    committer_bytes = _identity_bytes(committer)
    if target_head is None:
        if strategy == "squash":
            commit = _commit(store, source)
            text = message or _squash_message(store, [source], source_name, target_name, title)
            plan.new_head = _new_commit(store, commit.tree, [], _in_utf8(commit)[0], now, 0, committer_bytes, now,
                                        _text(text)).decode()
            plan.new_commits = [plan.new_head]
        else:
            plan.new_head, plan.fast_forward = source_head, True
        return plan
    target = target_head.encode()
    bases = merge_bases_in(store, target, source)
    if not bases:
        raise UnrelatedHistories(f"{source_name} and {target_name} share no history")
    if since is not None and (since == source_head or not _is_ancestor(store, since.encode(), source)):
        since = None  # the source itself (a stack on an empty repository), or no ancestor of it
    if source in bases:
        plan.new_head, plan.already_merged = target_head, True
        return plan
    target_is_base = target in bases
    if strategy == "merge":
        if target_is_base and fast_forward:
            plan.new_head, plan.fast_forward = source_head, True
            return plan
        result = merge_commits(store, target_head, source_head, target_name, source_name,
                               merge_bases=[b.decode() for b in bases])
        if not result.clean:
            return _conflicted(plan, result)
        text = message or title or (f"Merge branch '{source_name}' into {target_name}" if source_name != source_head
                                    else f"Merge commit '{source_head}' into {target_name}")
        plan.new_head = _new_commit(store, result.tree.encode(), [target, source], committer_bytes, now, 0,
                                    committer_bytes, now, _text(text)).decode()
        plan.new_commits = [plan.new_head]
        return plan
    if strategy == "squash":
        squash_bases = [since] if since else [b.decode() for b in bases]
        result = merge_commits(store, target_head, source_head, target_name, source_name, merge_bases=squash_bases)
        if not result.clean:
            return _conflicted(plan, result)
        if result.tree.encode() == _commit(store, target).tree:
            plan.new_head, plan.already_merged = target_head, True
            return plan
        squashed = commits_to_replay(store, since.encode() if since else target, source)
        first = _commit(store, squashed[0]) if squashed else _commit(store, source)
        text = message or _squash_message(store, squashed, source_name, target_name, title)
        plan.new_head = _new_commit(store, result.tree.encode(), [target], _in_utf8(first)[0], now, 0, committer_bytes,
                                    now, _text(text)).decode()
        plan.new_commits = [plan.new_head]
        return plan
    # rebase
    if target_is_base:
        plan.new_head, plan.fast_forward = source_head, True
        return plan
    own = commits_to_replay(store, since.encode() if since else target, source)  # git rebase --onto target since
    if since is None:  # git rebase target: what the target already has is skipped (--onto compares with none)
        own = _not_yet_upstream(store, plan, own, target, source)
    return _replay(store, plan, target, own, target_name, committer_bytes, now)


UPSTREAM_COMPARED = 2_000  # target commits a rebase compares its own with; past that, all of its own are replayed


def _not_yet_upstream(store: MergeStore, plan: MergePlan, own: list[bytes], target: bytes, source: bytes
                      ) -> list[bytes]:
    """`own` less the commits whose change the target already has since the fork (the same files from the same
    contents to the same contents: an earlier rebase merge of the same branch, a cherry-pick), as git rebase skips
    previously applied commits; those are `dropped`. Replayed, they conflicted with their own earlier copies."""
    if not own:
        return own
    upstream = commits_to_replay(store, source, target, limit=UPSTREAM_COMPARED)
    if upstream is None:
        return own
    landed: dict[frozenset, list[bytes]] = {}
    for oid in upstream:
        change = _change_of(store, oid)
        if change:
            landed.setdefault(change, []).append(oid)
    kept = []
    for oid in own:
        # the walk's cut-off is by commit time: a commit it took for the target's own is checked to be no
        # ancestor of the source as well (commits of one second, skewed clocks)
        if any(not _is_ancestor(store, copy, source) for copy in landed.get(_change_of(store, oid), ())):
            plan.dropped.append(oid.decode())
        else:
            kept.append(oid)
    return kept


def _change_of(store: MergeStore, oid: bytes) -> frozenset:
    """What a commit changes against its first parent, file by file (empty for a merge commit: not compared)."""
    commit = _commit(store, oid)
    if len(commit.parents) > 1:
        return frozenset()
    parent_tree = _commit(store, commit.parents[0]).tree if commit.parents else None
    return frozenset(store.tree_changes(parent_tree, commit.tree))


def replay_commits(object_store, onto: str | None, commits: list[str], committer: Identity, *,
                   onto_name: str = "target", when: int | None = None) -> MergePlan:
    """Cherry-pick `commits` (oldest first) one by one onto commit `onto` (None: start a new root), as a rebase
    does: authorship and messages kept, merge commits skipped, commits that become empty dropped; stops at the
    first commit that conflicts (`clean` is false, nothing written). `new_head` is the last replayed commit."""
    store = object_store if isinstance(object_store, MergeStore) else MergeStore(object_store)
    now = int(when if when is not None else time.time())
    plan = MergePlan(strategy="rebase", target_head=onto, source_head=commits[-1] if commits else (onto or ""),
                     new_head=None, store=store)
    head = onto.encode() if onto else None
    return _replay(store, plan, head, [c.encode() for c in commits], onto_name, _identity_bytes(committer), now)


def _replay(store: MergeStore, plan: MergePlan, head: bytes | None, commits: list[bytes], target_name: str,
            committer_bytes: bytes, now: int) -> MergePlan:
    head_tree = _commit(store, head).tree if head else store.add(Tree())
    for oid in commits:
        commit = _commit(store, oid)
        if len(commit.parents) > 1:
            continue
        parent_tree = _commit(store, commit.parents[0]).tree.decode() if commit.parents else None
        label = f"{oid.decode()[:7]} ({_subject(commit)})"
        result = merge_trees(store, parent_tree, head_tree.decode(), commit.tree.decode(), target_name, label,
                             ancestor=f"parent of {label}")
        if not result.clean:
            plan.stopped_at = oid.decode()
            plan.new_commits = []
            return _conflicted(plan, result)
        started_empty = commit.tree.decode() == (parent_tree or EMPTY_TREE.decode())
        if result.tree.encode() == head_tree and not started_empty:  # git rebase drops what became empty only
            plan.dropped.append(oid.decode())
            continue
        author, message = _in_utf8(commit)
        head = _new_commit(store, result.tree.encode(), [head] if head else [], author, commit.author_time,
                           commit.author_timezone, committer_bytes, now, message)
        head_tree = result.tree.encode()
        plan.new_commits.append(head.decode())
    plan.new_head = head.decode() if head else None
    plan.already_merged = not plan.new_commits
    return plan


def _conflicted(plan: MergePlan, result: MergeResult) -> MergePlan:
    plan.new_head = None
    plan.conflicts = list(result.conflicts) or sorted({m.path for m in result.messages})
    plan.conflict_messages = [m.message for m in result.messages if m.message.startswith("CONFLICT")]
    return plan


def _text(message: str) -> bytes:
    return (message if message.endswith("\n") else message + "\n").encode("utf-8")


def _squash_message(store: MergeStore, commits: list[bytes], source_name: str, target_name: str,
                    title: str | None) -> str:
    """As GitHub writes a squash: the title, then each commit's message as an item of a list; the intent trailers
    the commits carried (storage/intent.py) as the squash's own, as they were written (a later commit's over an
    earlier one's of the same name)."""
    items, trailers = [], {}
    for oid in commits:
        text, intent_lines = without_intent_trailers(_message(_commit(store, oid)))
        items.append(f"* {text}" if text else "*")
        for line in intent_lines:
            name = line.split(":", 1)[0].lower()
            trailers.pop(name, None)
            trailers[name] = line
    paragraphs = [title or f"Squashed commit of branch '{source_name}' into {target_name}", *items]
    if trailers:
        paragraphs.append("\n".join(trailers.values()))
    return "\n\n".join(paragraphs) + "\n"
