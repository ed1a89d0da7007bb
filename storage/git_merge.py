"""Three-way merges in-process on the object store, with git's merge-ort semantics (what `git merge`,
`git merge-tree --write-tree` and `git rebase` use since git 2.33).

No temporary clone, no worktree, no git subprocess. Objects a merge creates (merged blobs, trees, virtual merge
bases) go to an in-memory overlay first; `persist()` copies the ones reachable from a result into the repository,
so a dry run writes nothing at all.

What is covered, with git's rules:
  * merge bases in-process (paint-down-to-common + removal of redundant bases); no common ancestor merges
    against the empty tree; several bases (criss-cross) are merged recursively into a virtual base, like ort;
  * per-path resolution (one side changed, both changed identically, add/add, modify/delete, delete/delete);
  * line-level content merges via a port of git's xdiff merge (storage/merge_text.py), so clean results are
    byte-identical to git's; binary files conflict when both sides changed them; executable-bit changes merge
    like git (conflict only when both sides set different modes);
  * renames on each side (storage/merge_renames.py: exact, basename-guided, 50% similarity), so a rename on one
    side plus edits on the other merges cleanly at the new path; rename/delete, rename/rename (1to2, 2to1),
    rename/add collisions conflict;
  * directory renames in git's default "conflict" mode: a file added into a directory the other side renamed is
    placed in the new directory and reported as a conflict (CONFLICT (file location));
  * file/directory and distinct-type (file vs symlink vs submodule) conflicts, moving the file aside to
    `path~branch` like git; submodule (gitlink) changes on both sides conflict (the server has no submodule
    repositories to find a fast-forward in).
Not honoured, like `git merge-tree` on a bare repository: .gitattributes merge drivers, renormalisation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from dulwich.objects import Commit, Tree

from .merge_ort import OrtMerge
from .merge_ort_renames import _decode
from .merge_store import MergeStore, _commit, canon_mode, merge_bases_in

__all__ = ["ConflictMessage", "ConflictStage", "MergeResult", "MergeStore", "canon_mode", "is_ancestor",
           "merge_bases", "merge_bases_in", "merge_commits", "merge_trees"]


@dataclass(frozen=True)
class ConflictMessage:
    kind: str
    path: str
    message: str


@dataclass(frozen=True)
class ConflictStage:
    path: str
    stage: int  # 1 base, 2 ours, 3 theirs (index stages)
    mode: int
    oid: str


@dataclass
class MergeResult:
    tree: str  # the merged tree; with conflict markers (like git merge-tree) when not clean
    clean: bool
    conflicts: list[str]  # every conflicted path, sorted (git merge-tree --name-only)
    stages: list[ConflictStage]
    messages: list[ConflictMessage]
    bases: list[str] = field(default_factory=list)
    store: MergeStore | None = field(default=None, repr=False)

    def persist(self) -> None:
        if self.store is not None:
            self.store.persist(self.tree.encode())


def _run_nonrecursive(store: MergeStore, base_tree: bytes, tree1: bytes, tree2: bytes, branch1: str, branch2: str,
                      ancestor: str, call_depth: int) -> OrtMerge:
    merge = OrtMerge(store, branch1, branch2, ancestor, call_depth)
    merge.tree, merge.clean = merge.run(base_tree, tree1, tree2)
    return merge


def _virtual_commit(store: MergeStore, tree: bytes, parents: list[bytes]) -> bytes:
    commit = Commit()
    commit.tree = tree
    commit.parents = parents
    commit.author = commit.committer = b"virtual <virtual>"
    commit.author_time = commit.commit_time = 0
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"merged tree\n"
    return store.add(commit)


def _merge_recursive(store: MergeStore, bases: list[bytes] | None, h1: bytes, h2: bytes, branch1: str,
                     branch2: str, call_depth: int) -> OrtMerge:
    if bases is None:
        bases = list(reversed(merge_bases_in(store, h1, h2)))
    bases = list(bases)
    if not bases:
        merged_base = _virtual_commit(store, store.add(Tree()), [])
        ancestor = "empty tree"
    else:
        merged_base = bases.pop(0)
        ancestor = "merged common ancestors" if bases else merged_base.decode()[:7]
    for following in bases:
        inner = _merge_recursive(store, None, merged_base, following, "Temporary merge branch 1",
                                 "Temporary merge branch 2", call_depth + 1)
        merged_base = _virtual_commit(store, inner.tree, [merged_base, following])
    return _run_nonrecursive(store, _commit(store, merged_base).tree, _commit(store, h1).tree,
                             _commit(store, h2).tree, branch1, branch2, ancestor, call_depth)


def _result(merge: OrtMerge, store: MergeStore, bases: list[bytes]) -> MergeResult:
    stages = []
    for path, ci in merge.conflicted.items():
        for i in range(3):
            if ci.filemask & (1 << i):
                mode, oid = ci.stages[i]
                stages.append(ConflictStage(_decode(path), i + 1, mode, oid.decode() if oid else "0" * 40))
    stages.sort(key=lambda s: (s.path.encode("utf-8", "surrogateescape"), s.stage))
    conflicts = sorted({_decode(p) for p in merge.conflicted}, key=lambda p: p.encode("utf-8", "surrogateescape"))
    messages = [ConflictMessage(kind, _decode(path), text) for kind, path, text in merge.messages]
    return MergeResult(tree=merge.tree.decode(), clean=merge.clean, conflicts=conflicts, stages=stages,
                       messages=messages, bases=[b.decode() for b in bases], store=store)


def merge_commits(object_store, ours: str, theirs: str, branch1: str = "ours", branch2: str = "theirs",
                  merge_bases: list[str] | None = None) -> MergeResult:
    """Merge commit `theirs` into commit `ours` (git merge-tree --write-tree ours theirs, with ort's recursion
    over several merge bases, and the empty tree as the base of unrelated histories). `object_store` is a
    repository's object store (nothing is written to it until `persist`) or a MergeStore to share."""
    store = _store(object_store)
    one, two = ours.encode(), theirs.encode()
    bases = ([b.encode() for b in merge_bases] if merge_bases is not None else merge_bases_in(store, one, two))
    merge = _merge_recursive(store, list(reversed(bases)), one, two, branch1, branch2, 0)
    return _result(merge, store, bases)


def merge_trees(object_store, base_tree: str | None, ours_tree: str, theirs_tree: str, branch1: str = "ours",
                branch2: str = "theirs", ancestor: str = "base") -> MergeResult:
    """One non-recursive merge of three trees (what cherry-pick and rebase do: base = the picked commit's parent)."""
    store = _store(object_store)
    base = base_tree.encode() if base_tree else store.add(Tree())
    merge = _run_nonrecursive(store, base, ours_tree.encode(), theirs_tree.encode(), branch1, branch2, ancestor, 0)
    return _result(merge, store, [])


def _store(object_store) -> MergeStore:
    """A repository object store gets a fresh overlay; a MergeStore is shared (a sequence of merges, e.g. a
    rebase, sees the objects the earlier steps created)."""
    return object_store if isinstance(object_store, MergeStore) else MergeStore(object_store)


def merge_bases(object_store, one: str, two: str) -> list[str]:
    return [b.decode() for b in merge_bases_in(_store(object_store), one.encode(), two.encode())]


def is_ancestor(object_store, ancestor: str, descendant: str) -> bool:
    if ancestor == descendant:
        return True
    return merge_bases(object_store, ancestor, descendant) == [ancestor]
