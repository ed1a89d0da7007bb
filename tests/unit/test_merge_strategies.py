"""storage.merge_strategies: merge / squash / rebase plans on a real repository, compared with git where git has
an answer (merge-tree for the merged tree, rev-list for the replayed range, `git rebase` for the replayed trees)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from dulwich.repo import Repo

from storage.git_objects import Identity
from storage.merge_strategies import UnrelatedHistories, commits_to_replay, plan_merge
from storage.git_merge import MergeStore
from tests.support import NUMBERED_TEXT, edited

BOT = Identity("Merge Bot", "bot@example.test")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@x",
                "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@x"})
    return env


class Work:
    def __init__(self, path: Path):
        self.path = path
        self.env = _env(path.parent)
        self.git("init", "-q", "-b", "main", str(path), cwd=path.parent)
        self.tick = 1_700_000_000

    def git(self, *args: str, cwd: Path | None = None) -> str:
        self.tick = getattr(self, "tick", 1_700_000_000) + 60
        env = {**self.env, "GIT_AUTHOR_DATE": f"{self.tick} +0200", "GIT_COMMITTER_DATE": f"{self.tick} +0000"}
        result = subprocess.run(["git", *args], cwd=cwd or self.path, env=env, capture_output=True)
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode().strip()

    def commit(self, files: dict[str, str | None], message: str) -> str:
        for name, text in files.items():
            target = self.path / name
            if text is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def rev(self, name: str) -> str:
        return self.git("rev-parse", name)


@pytest.fixture
def work(tmp_path) -> Work:
    w = Work(tmp_path / "w")
    w.commit({"a.txt": NUMBERED_TEXT, "b.txt": "b\n"}, "base")
    w.git("checkout", "-q", "-b", "feature")
    w.commit({"a.txt": edited({1: "feature 1"})}, "feature one")
    w.commit({"c.txt": "new file\n"}, "feature two")
    w.git("checkout", "-q", "main")
    w.commit({"a.txt": edited({15: "main 15"})}, "main moves")
    return w


def _plan(work: Work, strategy: str, **kwargs):
    repo = Repo(str(work.path))
    return repo, plan_merge(repo.object_store, work.rev("main"), work.rev("feature"), strategy, target_name="main",
                            source_name="feature", committer=BOT, **kwargs)


def test_merge_commit_has_both_parents_and_gits_tree(work):
    repo, plan = _plan(work, "merge")
    assert plan.clean and not plan.already_merged and len(plan.new_commits) == 1
    assert repo.object_store.contains_loose(plan.new_head.encode()) is False  # nothing written before persist
    plan.persist()
    commit = repo[plan.new_head.encode()]
    assert [p.decode() for p in commit.parents] == [work.rev("main"), work.rev("feature")]
    git_tree = work.git("merge-tree", "--write-tree", "main", "feature").split("\n")[0]
    assert commit.tree.decode() == git_tree
    assert commit.message == b"Merge branch 'feature' into main\n"
    assert commit.committer == b"Merge Bot <bot@example.test>"
    work.git("fsck", "--strict", "--no-dangling")


def test_squash_is_one_commit_on_the_target(work):
    repo, plan = _plan(work, "squash", message="feat: squashed")
    plan.persist()
    commit = repo[plan.new_head.encode()]
    assert [p.decode() for p in commit.parents] == [work.rev("main")]
    assert commit.message == b"feat: squashed\n"
    assert commit.author.startswith(b"Dev <dev@x>")  # credit stays with the branch's author
    assert commit.tree.decode() == work.git("merge-tree", "--write-tree", "main", "feature").split("\n")[0]


def test_a_squash_without_a_message_lists_the_commits_messages_and_keeps_their_intent(work):
    """The squash of a pull request (a stack) was its title alone: the commits' messages and the intent trailers
    they carried were lost from the target's history."""
    from storage.intent import intent_from_message, message_with_intent

    work.git("checkout", "-q", "feature")
    work.commit({"d.txt": "d\n"}, message_with_intent("Implement OAuth flow\n\nWith a callback.",
                                                      {"goal": "Add GitHub OAuth", "confidence": "low"}))
    work.commit({"e.txt": "e\n"}, message_with_intent("Tests", {"confidence": "high", "agent": "claude"}))
    work.git("checkout", "-q", "main")
    repo, plan = _plan(work, "squash", title="Add auth")
    plan.persist()
    message = repo[plan.new_head.encode()].message.decode()
    assert message == ("Add auth\n\n* feature one\n\n* feature two\n\n* Implement OAuth flow\n\nWith a callback.\n\n"
                       "* Tests\n\nIntent-Goal: Add GitHub OAuth\nIntent-Confidence: high\nIntent-Agent: claude\n")
    assert intent_from_message(message) == {"goal": "Add GitHub OAuth", "confidence": "high", "agent": "claude"}
    _, plan = _plan(work, "squash")
    plan.persist()
    assert repo[plan.new_head.encode()].message.decode().startswith("Squashed commit of branch 'feature' into main\n\n")
    _, plan = _plan(work, "merge", title="Add auth")
    plan.persist()
    assert repo[plan.new_head.encode()].message == b"Add auth\n"


def test_a_squash_keeps_other_trailers_in_place_intent_ones_as_written_and_legacy_encodings_readable(work):
    """A review of the squash message: Intent-Plan beside a Signed-off-by was written twice, Intent-Task-Id came
    back as Intent-TaskId (read as `taskid`), and an ISO-8859-1 message was mangled."""
    work.git("checkout", "-q", "feature")
    work.commit({"d.txt": "d\n"}, "Signed\n\nSigned-off-by: Dev <dev@x>\nIntent-Plan: p\nIntent-Task-Id: 42")
    (work.path.parent / "latin-1").write_bytes("Café été".encode("latin-1"))
    work.git("-c", "i18n.commitEncoding=ISO-8859-1", "commit", "-q", "--allow-empty", "-F",
             str(work.path.parent / "latin-1"))
    work.git("checkout", "-q", "main")
    repo, plan = _plan(work, "squash", title="T")
    plan.persist()
    message = repo[plan.new_head.encode()].message.decode()
    assert message.endswith("* Signed\n\nSigned-off-by: Dev <dev@x>\n\n* Café été\n\n"
                            "Intent-Plan: p\nIntent-Task-Id: 42\n"), message
    assert message.count("Intent-Plan") == 1

    work.git("checkout", "-q", "feature")  # a codec that is no text encoding: its bytes as they are, no crash
    work.git("-c", "i18n.commitEncoding=base64", "commit", "-q", "--allow-empty", "-m", "odd")
    work.git("checkout", "-q", "main")
    _, plan = _plan(work, "squash", title="T")
    plan.persist()
    assert repo[plan.new_head.encode()].message.decode().endswith("* odd\n\nIntent-Plan: p\nIntent-Task-Id: 42\n")


def test_rebase_replays_each_commit_like_git_rebase(work):
    repo, plan = _plan(work, "rebase")
    assert len(plan.new_commits) == 2
    plan.persist()
    work.git("checkout", "-q", "-b", "rebased", "feature")
    work.git("rebase", "-q", "main")
    ours = [repo[c.encode()] for c in plan.new_commits]
    theirs = work.git("rev-list", "--reverse", "main..rebased").split()
    assert [c.tree.decode() for c in ours] == [repo[t.encode()].tree.decode() for t in theirs]
    assert [c.message for c in ours] == [repo[t.encode()].message for t in theirs]
    assert [(c.author, c.author_time, c.author_timezone) for c in ours] == \
        [(repo[t.encode()].author, repo[t.encode()].author_time, repo[t.encode()].author_timezone) for t in theirs]
    assert [p.decode() for p in ours[0].parents] == [work.rev("main")]
    assert ours[1].parents == [ours[0].id]


def test_rebase_drops_commits_already_upstream(work):
    work.git("checkout", "-q", "main")
    work.commit({"c.txt": "new file\n"}, "same change landed on main")
    repo, plan = _plan(work, "rebase")
    assert len(plan.new_commits) == 1 and len(plan.dropped) == 1


def test_a_branch_rebase_merged_before_is_already_merged_as_git_rebase_finds_it(work):
    """A branch whose commits were rebased onto main once, then main moved on: its commits replayed again met
    their own copies (one file made, then edited: an add/add conflict); git rebase skips them as applied."""
    work.git("checkout", "-q", "feature")
    work.commit({"f.md": "one\n"}, "make f")
    work.commit({"f.md": "one\ntwo\n"}, "edit f")
    repo, first = _plan(work, "rebase")
    first.persist()
    work.git("update-ref", "refs/heads/main", first.new_head)
    work.git("checkout", "-q", "main")
    work.commit({"b.txt": "b moved on\n"}, "main moves again")
    repo, again = _plan(work, "rebase")
    assert again.clean and again.already_merged and again.new_head == work.rev("main"), again.conflicts
    assert len(again.dropped) == 4
    work.git("checkout", "-q", "-b", "rebased", "feature")
    work.git("rebase", "-q", "main")
    assert work.rev("rebased") == work.rev("main")  # git: every commit previously applied, nothing to replay


def test_a_commit_made_again_on_the_target_but_changed_since_is_still_replayed(work):
    """Only the very same change counts as applied: the branch's edit of a file main changed differently since
    is replayed (here onto main's own text: a conflict, as git rebase finds too)."""
    work.git("checkout", "-q", "main")
    work.commit({"c.txt": "new file\n"}, "same change landed on main")
    work.commit({"c.txt": "main's own text\n"}, "main edits it")
    work.git("checkout", "-q", "feature")
    work.commit({"c.txt": "feature's text\n"}, "feature edits it")
    repo, plan = _plan(work, "rebase")
    assert not plan.clean and plan.conflicts == ["c.txt"] and len(plan.dropped) == 1


def test_a_shared_commit_is_never_taken_for_the_targets_own_in_one_second(tmp_path):
    """Commits of one second (the server's own rebases stamp theirs so): the walk for the target's own commits
    took a commit both sides share for the target's, and the branch's commit making the same change again was
    dropped: a lost change reported as a success. git rebase replays all four."""
    work = Work(tmp_path / "w")
    work.git = _frozen_clock(work)
    work.commit({"f": "A\n", "g": "X\n"}, "base")
    work.commit({"g": "Y\n"}, "S")
    work.git("checkout", "-q", "-b", "feature")
    for files, message in (({"g": "X\n"}, "revert S"), ({"g": "Y\n"}, "S again"), ({"h": "1\n"}, "P2"),
                           ({"h": "2\n"}, "P3")):
        work.commit(files, message)
    work.git("checkout", "-q", "main")
    work.commit({"f": "B\n"}, "V")
    repo, plan = _plan(work, "rebase")
    assert plan.clean and plan.dropped == [] and len(plan.new_commits) == 4
    plan.persist()
    work.git("checkout", "-q", "-b", "rebased", "feature")
    work.git("rebase", "-q", "main")
    assert repo[plan.new_head.encode()].tree.decode() == work.git("rev-parse", "rebased^{tree}")


def _frozen_clock(work: Work):
    def git(*args: str, cwd: Path | None = None) -> str:
        env = {**work.env, "GIT_AUTHOR_DATE": "1700000000 +0000", "GIT_COMMITTER_DATE": "1700000000 +0000"}
        result = subprocess.run(["git", *args], cwd=cwd or work.path, env=env, capture_output=True)
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode().strip()
    return git


def test_a_stack_rebased_onto_its_target_replays_what_the_target_reverted(work):
    """A stack's merge (`since` its base) is git rebase --onto, which compares with nothing upstream: a change
    the target made and reverted since is the stack's to bring again."""
    base = work.rev("feature")
    work.git("checkout", "-q", "main")
    work.commit({"b.txt": "b from the stack\n"}, "main edits b")
    work.commit({"b.txt": "b\n"}, "main reverts it")
    work.git("checkout", "-q", "feature")
    work.commit({"b.txt": "b from the stack\n"}, "stack commit")
    repo, plan = _plan(work, "rebase", since=base)
    assert plan.clean and plan.dropped == [] and len(plan.new_commits) == 1
    assert plan.store[plan.new_head.encode()].tree != repo[work.rev("main").encode()].tree
    _, plain = _plan(work, "rebase")  # git rebase main: the same change is on main already, skipped
    assert len(plain.dropped) == 1


def test_rebase_keeps_a_commit_that_started_empty_as_git_rebase_does(work):
    """git rebase drops the commits that become empty, not the ones that were empty to begin with."""
    work.git("checkout", "-q", "feature")
    work.git("commit", "-q", "--allow-empty", "-m", "an empty marker")
    repo, plan = _plan(work, "rebase")
    plan.persist()
    work.git("checkout", "-q", "-b", "rebased", "feature")
    work.git("rebase", "-q", "main")
    theirs = work.git("rev-list", "--reverse", "main..rebased").split()
    assert len(plan.new_commits) == len(theirs) == 3 and plan.dropped == []
    assert [repo[c.encode()].message for c in plan.new_commits] == [repo[t.encode()].message for t in theirs]


def test_conflicts_list_paths_and_create_nothing(work):
    work.git("checkout", "-q", "main")
    work.commit({"a.txt": edited({1: "main disagrees", 15: "main 15"})}, "conflicting")
    for strategy in ("merge", "squash", "rebase"):
        repo, plan = _plan(work, strategy)
        assert not plan.clean and plan.conflicts == ["a.txt"] and plan.new_commits == []
    assert plan.stopped_at == work.rev("feature~1")


def test_already_merged_and_fast_forward(work):
    repo = Repo(str(work.path))
    main, feature = work.rev("main"), work.rev("feature")
    base = work.rev("main~1")
    for strategy in ("merge", "squash", "rebase"):
        plan = plan_merge(repo.object_store, main, base, strategy, target_name="main", source_name="old",
                          committer=BOT)
        assert plan.already_merged and plan.new_head == main and not plan.moves_target
    ff = plan_merge(repo.object_store, base, feature, "merge", target_name="main", source_name="feature",
                    committer=BOT, fast_forward=True)
    assert ff.fast_forward and ff.new_head == feature
    no_ff = plan_merge(repo.object_store, base, feature, "merge", target_name="main", source_name="feature",
                       committer=BOT)
    assert not no_ff.fast_forward and len(repo_parents(no_ff)) == 2
    rebase = plan_merge(repo.object_store, base, feature, "rebase", target_name="main", source_name="feature",
                        committer=BOT)
    assert rebase.fast_forward and rebase.new_head == feature and rebase.new_commits == []
    empty = plan_merge(repo.object_store, None, feature, "merge", target_name="main", source_name="feature",
                       committer=BOT)
    assert empty.new_head == feature


def repo_parents(plan):
    return plan.store[plan.new_head.encode()].parents


def test_unrelated_histories_are_refused(work):
    work.git("checkout", "-q", "--orphan", "other")
    work.commit({"z.txt": "z\n"}, "root")
    repo = Repo(str(work.path))
    with pytest.raises(UnrelatedHistories):
        plan_merge(repo.object_store, work.rev("main"), work.rev("other"), "merge", target_name="main",
                   source_name="other", committer=BOT)


def test_commit_range_matches_rev_list(work):
    work.git("checkout", "-q", "feature")
    work.git("merge", "-q", "--no-edit", "main")
    work.commit({"d.txt": "d\n"}, "after merging main in")
    repo = Repo(str(work.path))
    store = MergeStore(repo.object_store)
    ours = [c.decode() for c in commits_to_replay(store, work.rev("main").encode(), work.rev("feature").encode())]
    assert sorted(ours) == sorted(work.git("rev-list", "main..feature").split())
    assert ours == work.git("rev-list", "--reverse", "--topo-order", "main..feature").split()


def test_replay_commits_onto_another_base(work):
    """What stacks use to restack a child: the child's own commits, oldest first, onto a new base."""
    from storage.merge_strategies import replay_commits

    repo = Repo(str(work.path))
    commits = work.git("rev-list", "--reverse", "main~1..feature").split()
    plan = replay_commits(repo.object_store, work.rev("main"), commits, BOT, onto_name="main")
    assert plan.clean and len(plan.new_commits) == 2
    plan.persist()
    first, second = (repo[c.encode()] for c in plan.new_commits)
    assert [p.decode() for p in first.parents] == [work.rev("main")] and second.parents == [first.id]
    assert plan.new_head == plan.new_commits[-1]
    work.git("checkout", "-q", "main")
    work.commit({"a.txt": edited({1: "clash", 15: "main 15"})}, "clash")
    stopped = replay_commits(Repo(str(work.path)).object_store, work.rev("main"), commits, BOT)
    assert not stopped.clean and stopped.stopped_at == commits[0] and stopped.conflicts == ["a.txt"]
    assert stopped.new_head is None and stopped.new_commits == []


def test_rebase_writes_a_legacy_encoded_message_in_utf8_as_git_rebase_does(work):
    """A commit made with i18n.commitEncoding=ISO-8859-1 was replayed with its Latin-1 bytes under the header
    `encoding UTF-8`: `git log` showed 'caf\ufffd' (merge sweep)."""
    work.git("checkout", "-q", "feature")
    (work.path / "d.txt").write_text("d\n")
    work.git("add", "-A")
    (work.path.parent / "message").write_bytes(b"caf\xe9\n")  # Latin-1, as such a client writes it
    work.git("-c", "i18n.commitEncoding=ISO-8859-1", "commit", "-q", "-F", str(work.path.parent / "message"))
    work.git("checkout", "-q", "main")
    repo, plan = _plan(work, "rebase")
    plan.persist()
    replayed = repo[plan.new_commits[-1].encode()]
    assert replayed.message == "café\n".encode()
    assert work.git("log", "-1", "--format=%s", plan.new_commits[-1]) == "café"
