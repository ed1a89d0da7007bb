"""A stack's (pull request's) life on a real server, as GitHub runs a pull request's: opened, reviewed, pushed to
(synchronize), retitled (edited), closed and reopened by PATCH, closed when its branch is deleted, merged by its
own merge, by hoody's merge of its branch or by a push of its head to the base. Each step is told once, in the
project timeline and to a real webhook receiver on 127.0.0.1."""
from __future__ import annotations

import uuid

import pytest

from tests.support import Dojo, api, submit_work, v1


def subscribe(server, tenant, repo: str, receiver, events=("pull_request", "pull_request_review")) -> dict:
    made = api(server, tenant.keys["admin"], "POST", f"/v1/repos/{repo}/webhooks",
               {"url": receiver.url, "events": list(events)})
    assert made.status_code == 201, made.text
    receiver.wait_for("ping")
    return made.json()["data"]


def hoody_workspace(server, tenant, git, tmp_path, prefix: str, receiver=None) -> tuple[str, object]:
    """A workspace (seed 002) with a main branch pushed from a clone: (its slug, the clone); its pull request
    events go to `receiver` if given."""
    slug = f"{prefix}-{uuid.uuid4().hex[:8]}"
    assert api(server, tenant.keys["admin"], "POST", "/api/v1/workspaces", {"name": slug, "slug": slug}).ok
    if receiver is not None:
        subscribe(server, tenant, slug, receiver, events=("pull_request",))
    work = git.new_worktree(tmp_path / "w", {"README.md": "x\n"})
    git("push", "-q", tenant.url(slug), "HEAD:main", cwd=work)
    return slug, work


@pytest.fixture
def seeded(server, tenant, git, tmp_path):
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "seed", {"README.md": "# demo\n"})
    git("push", "-q", tenant.url(repo), "main", cwd=work)
    return repo, work


def actions(receiver, event="pull_request") -> list[tuple]:
    """What the receiver was told, sorted: deliveries run side by side and may arrive in any order (as GitHub's);
    the timeline keeps the order."""
    return sorted((body["action"], body["pullRequest"]["id"], body["pullRequest"]["merged"])
                  for _, body in receiver.events(event))


def stack_of(server, tenant, repo, stack_id) -> dict:
    got = v1(server, tenant, "GET", f"{repo}/stacks/{stack_id}")
    assert got.status_code == 200, got.text
    return got.json()["data"]


def patch(server, tenant, repo, stack_id, body, scope="agent"):
    return v1(server, tenant, "PATCH", f"{repo}/stacks/{stack_id}", body, scope=scope)


def test_a_stacks_life_is_told_once_per_step_to_the_timeline_and_the_webhooks(server, tenant, seeded, receiver):
    repo, _ = seeded
    subscribe(server, tenant, repo, receiver)
    dojo = Dojo(server, tenant, repo)
    ws, stack, first = submit_work(dojo, "life", {"a.txt": "a\n"})
    [(headers, opened)] = receiver.wait_for("pull_request")
    described = opened["pullRequest"]
    assert (opened["action"], opened["number"], opened["repository"]["slug"]) == ("opened", 1, repo)
    assert (described["head"], described["base"]["ref"], described["commits"], described["state"]) == (
        {"ref": stack["bookmark"], "sha": first}, "main", 1, "open")
    assert opened["actorKeyId"] and headers["x-driftstone-event"] == "pull_request"

    reviewed = v1(server, tenant, "POST", f"{repo}/stacks/{stack['id']}/reviews", {"state": "approve", "body": "ok"})
    assert reviewed.status_code == 201, reviewed.text
    [(_, review)] = receiver.wait_for("pull_request_review")
    assert (review["action"], review["review"]["state"], review["review"]["body"], review["pullRequest"]["id"]) == (
        "submitted", "approve", "ok", stack["id"])

    assert dojo("PUT", f"/workspaces/{ws['id']}/files/b.txt", data=b"b\n").status_code == 200
    second = dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "more"}).json()["commit"]["sha"]
    assert dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": "life, retitled"}).status_code == 201
    told = {body["action"]: body for _, body in receiver.wait_for("pull_request", 3)}
    assert set(told) == {"opened", "edited", "synchronize"} and told["edited"]["changes"] == {
        "title": {"from": "life: work"}}
    assert told["synchronize"]["pullRequest"]["head"]["sha"] == second
    assert told["synchronize"]["pullRequest"]["commits"] == 2

    closed = patch(server, tenant, repo, stack["id"], {"status": "closed"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["data"]["status"] == "closed"
    assert patch(server, tenant, repo, stack["id"], {"status": "closed"}).status_code == 200  # nothing to tell
    refused = v1(server, tenant, "POST", f"{repo}/stacks/{stack['id']}/merge", {})
    assert refused.status_code == 409 and "closed" in refused.json()["error"]
    reopened = patch(server, tenant, repo, stack["id"], {"status": "open", "title": "life, again"})
    assert reopened.status_code == 200, reopened.text
    assert (reopened.json()["data"]["status"], reopened.json()["data"]["title"]) == ("open", "life, again")

    merged = v1(server, tenant, "POST", f"{repo}/stacks/{stack['id']}/merge", {"strategy": "squash"})
    assert merged.status_code == 200 and merged.json()["data"]["success"], merged.text
    told = receiver.wait_for("pull_request", 7)
    assert [(action, merged) for action, _, merged in actions(receiver)] == sorted([
        ("opened", False), ("edited", False), ("synchronize", False), ("closed", False), ("reopened", False),
        ("edited", False), ("closed", True)])
    [merge_told] = [body for _, body in told if body["pullRequest"]["merged"]]
    assert merge_told["pullRequest"]["mergedSha"] == merged.json()["data"]["sha"]

    timeline = api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{repo}/timeline")
    assert timeline.status_code == 200, timeline.text
    timeline = timeline.json()["data"]
    kinds = [item["type"] for item in timeline if item["kind"] == "event" and item["type"].startswith("stack.")]
    assert kinds == ["stack.merged", "stack.edited", "stack.reopened", "stack.closed", "stack.synchronize",
                     "stack.edited", "stack.review", "stack.opened"]  # newest first


def test_deleting_its_branch_closes_a_stack_and_the_branch_pushed_back_lets_it_reopen(server, tenant, git, seeded,
                                                                                      receiver, tmp_path):
    """GitHub closes a pull request whose head branch is deleted; merging it then answered 200 ("the branch no
    longer exists") after merging what the deleted branch held."""
    repo, _ = seeded
    subscribe(server, tenant, repo, receiver, events=("pull_request",))
    _, stack, sha = submit_work(Dojo(server, tenant, repo), "gone", {"g.txt": "g\n"})
    work = tmp_path / "clone"
    git("clone", "-q", tenant.url(repo), str(work))
    git("fetch", "-q", "origin", stack["bookmark"], cwd=work)
    assert v1(server, tenant, "DELETE", f"{repo}/branches/{stack['bookmark']}").status_code == 200
    assert stack_of(server, tenant, repo, stack["id"])["status"] == "closed"
    refused = v1(server, tenant, "POST", f"{repo}/stacks/{stack['id']}/merge", {"deleteBranch": True})
    assert refused.status_code == 409 and "closed" in refused.json()["error"]
    gone = patch(server, tenant, repo, stack["id"], {"status": "open"})
    assert gone.status_code == 409 and "deleted" in gone.json()["error"]

    git("push", "-q", "origin", f"{sha}:refs/heads/{stack['bookmark']}", cwd=work)
    assert patch(server, tenant, repo, stack["id"], {"status": "open"}).status_code == 200
    merged = v1(server, tenant, "POST", f"{repo}/stacks/{stack['id']}/merge", {"deleteBranch": True})
    assert merged.status_code == 200 and "deleted" in merged.json()["data"]["message"], merged.text
    assert stack_of(server, tenant, repo, stack["id"])["status"] == "merged"  # its branch's delete closed nothing
    receiver.wait_for("pull_request", 4)
    assert [(action, merged) for action, _, merged in actions(receiver)] == sorted([
        ("opened", False), ("closed", False), ("reopened", False), ("closed", True)])


def test_a_rewritten_branch_does_not_reopen_one_pushed_ahead_brings_its_commits(server, tenant, git, seeded,
                                                                               tmp_path):
    repo, _ = seeded
    _, stack, sha = submit_work(Dojo(server, tenant, repo), "moved", {"m.txt": "m\n"})
    work = tmp_path / "clone"
    git("clone", "-q", "--branch", stack["bookmark"], tenant.url(repo), str(work))
    assert patch(server, tenant, repo, stack["id"], {"status": "closed"}).status_code == 200
    ahead = git.commit(work, {"m.txt": "m2\n"}, "ahead")
    git("push", "-q", "origin", f"HEAD:{stack['bookmark']}", cwd=work)
    reopened = patch(server, tenant, repo, stack["id"], {"status": "open"})
    assert reopened.status_code == 200, reopened.text
    assert (reopened.json()["data"]["headCommit"], reopened.json()["data"]["commits"]) == (ahead, [sha, ahead])

    assert patch(server, tenant, repo, stack["id"], {"status": "closed"}).status_code == 200
    git("reset", "-q", "--hard", "HEAD~2", cwd=work)
    other = git.commit(work, {"other.txt": "o\n"}, "rewritten")
    git("push", "-q", "--force", "origin", f"HEAD:{stack['bookmark']}", cwd=work)
    rewritten = patch(server, tenant, repo, stack["id"], {"status": "open"})
    assert rewritten.status_code == 409 and "rewritten" in rewritten.json()["error"], rewritten.text
    kept = stack_of(server, tenant, repo, stack["id"])
    assert (kept["status"], kept["headCommit"]) == ("closed", ahead) and other != ahead


def test_a_stack_whose_head_is_pushed_to_its_base_is_merged_once_and_stays_merged(server, tenant, git, seeded,
                                                                                  receiver, tmp_path):
    repo, _ = seeded
    subscribe(server, tenant, repo, receiver, events=("pull_request",))
    _, stack, sha = submit_work(Dojo(server, tenant, repo), "landed", {"l.txt": "l\n"})
    work = tmp_path / "clone"
    git("clone", "-q", tenant.url(repo), str(work))
    git("fetch", "-q", "origin", stack["bookmark"], cwd=work)
    git("push", "-q", "origin", f"{sha}:refs/heads/main", cwd=work)
    landed = stack_of(server, tenant, repo, stack["id"])
    assert (landed["status"], landed["mergedSha"]) == ("merged", sha)
    refused = patch(server, tenant, repo, stack["id"], {"status": "open"})
    assert refused.status_code == 409 and "merged" in refused.json()["error"]
    assert patch(server, tenant, repo, stack["id"], {"status": "closed"}).status_code == 409
    retitled = patch(server, tenant, repo, stack["id"], {"title": "landed by a push"})
    assert retitled.status_code == 200 and retitled.json()["data"]["status"] == "merged"
    receiver.wait_for("pull_request", 3)
    assert [(action, merged) for action, _, merged in actions(receiver)] == sorted([
        ("opened", False), ("closed", True), ("edited", True)])

    _, fast, _ = submit_work(Dojo(server, tenant, repo), "fast", {"f.txt": "f\n"}, base_commit=sha)
    merged = v1(server, tenant, "POST", f"{repo}/stacks/{fast['id']}/merge", {"strategy": "merge"})
    assert merged.status_code == 200, merged.text  # a fast-forward: its ref change lands it, the merge tells nothing
    receiver.wait_for("pull_request", 5)
    assert [action for action, stack_id, _ in actions(receiver) if stack_id == fast["id"]] == ["closed", "opened"]


def test_hoodys_merge_of_a_branch_with_its_deletion_leaves_its_pull_request_merged(server, tenant, git, tmp_path,
                                                                                    receiver):
    slug, work = hoody_workspace(server, tenant, git, tmp_path, "hl", receiver)
    branches = f"/api/v1/workspaces/{slug}/branches"
    made = api(server, tenant.keys["agent"], "POST", branches, {"name": "feature", "branch": "feature"}).json()
    git.commit(work, {"f.txt": "f\n"}, "feature")
    git("push", "-q", tenant.url(slug), "HEAD:feature", cwd=work)
    one = f"{branches}/{made['id']}"
    assert api(server, tenant.keys["agent"], "POST", f"{one}/pr").json()["success"] is True
    merged = api(server, tenant.keys["agent"], "POST", f"{one}/merge", {"strategy": "squash", "deleteBranch": True})
    assert merged.status_code == 200 and merged.json()["success"], merged.text
    stacks = v1(server, tenant, "GET", f"{slug}/stacks").json()["data"]
    assert [s["status"] for s in stacks] == ["merged"]
    receiver.wait_for("pull_request", 2)
    assert [(action, merged) for action, _, merged in actions(receiver)] == [("closed", True), ("opened", False)]


def test_a_branchs_pull_request_follows_its_pushes_and_a_reset_closes_it(server, tenant, git, tmp_path, receiver):
    """A GitHub pull request takes what is pushed to its branch (`synchronize`) and is closed when its branch is
    moved back to what its base has; hoody's kept the head of its last POST .../pr, open after a reset."""
    slug, work = hoody_workspace(server, tenant, git, tmp_path, "hf", receiver)
    branches = f"/api/v1/workspaces/{slug}/branches"
    made = api(server, tenant.keys["agent"], "POST", branches, {"name": "follow", "branch": "follow"}).json()
    first = git.commit(work, {"f.txt": "1\n"}, "one")
    git("push", "-q", tenant.url(slug), "HEAD:follow", cwd=work)
    one = f"{branches}/{made['id']}"
    opened = api(server, tenant.keys["agent"], "POST", f"{one}/pr").json()
    stack_id = opened["url"].rpartition("/")[2]
    second = git.commit(work, {"f.txt": "2\n"}, "two")
    git("push", "-q", tenant.url(slug), "HEAD:follow", cwd=work)
    followed = stack_of(server, tenant, slug, stack_id)
    assert (followed["headCommit"], followed["commits"], followed["status"]) == (second, [first, second], "open")
    told = receiver.wait_for("pull_request", 2)
    [synced] = [body for _, body in told if body["action"] == "synchronize"]
    assert synced["pullRequest"]["head"] == {"ref": "follow", "sha": second}

    reset = api(server, tenant.keys["agent"], "POST", f"{one}/reset")
    assert reset.status_code == 200, reset.text
    assert stack_of(server, tenant, slug, stack_id)["status"] == "closed"
    assert api(server, tenant.keys["agent"], "GET", f"{one}/pr").json()["state"] == "closed"
    receiver.wait_for("pull_request", 3)
    assert [(action, merged) for action, _, merged in actions(receiver)] == [
        ("closed", False), ("opened", False), ("synchronize", False)]


def test_a_child_reopened_after_its_parent_merged_waits_on_where_the_parent_went(server, tenant, git, seeded,
                                                                                tmp_path):
    """Reopened, it still waited on its merged parent's branch: its merge landed there, never on main."""
    repo, work = seeded
    dojo = Dojo(server, tenant, repo)
    _, parent, parent_sha = submit_work(dojo, "par", {"p.txt": "p\n"})
    _, child, child_sha = submit_work(dojo, "chi", {"c.txt": "c\n"}, base_commit=parent_sha)
    assert patch(server, tenant, repo, child["id"], {"status": "closed"}).status_code == 200
    git.commit(work, {"main.txt": "m\n"}, "main moves on")
    git("push", "-q", tenant.url(repo), "HEAD:main", cwd=work)
    merged = v1(server, tenant, "POST", f"{repo}/stacks/{parent['id']}/merge", {"strategy": "squash"})
    assert merged.status_code == 200 and merged.json()["data"]["success"], merged.text
    reopened = patch(server, tenant, repo, child["id"], {"status": "open"})
    assert reopened.status_code == 200, reopened.text
    assert (reopened.json()["data"]["baseBranch"], reopened.json()["data"]["parentStackId"]) == ("main", None)
    landed = v1(server, tenant, "POST", f"{repo}/stacks/{child['id']}/merge", {"strategy": "merge"})
    assert landed.status_code == 200 and landed.json()["data"]["target"] == "main", landed.text
    clone = tmp_path / "check"
    git("clone", "-q", tenant.url(repo), str(clone))
    assert (clone / "c.txt").read_text() == "c\n" and (clone / "main.txt").exists()


def test_a_deleted_base_branch_closes_the_stacks_on_it_unless_it_was_merged_on(server, tenant, git, seeded,
                                                                               tmp_path, receiver):
    """GitHub closes a pull request whose base branch is deleted, and retargets it when that base was merged:
    here such a stack stayed open on a branch that no longer was, never mergeable."""
    repo, _ = seeded
    dojo = Dojo(server, tenant, repo)
    _, parent, parent_sha = submit_work(dojo, "base-gone", {"p.txt": "p\n"})
    _, child, _ = submit_work(dojo, "on-gone", {"c.txt": "c\n"}, base_commit=parent_sha)
    assert patch(server, tenant, repo, parent["id"], {"status": "closed"}).status_code == 200
    assert v1(server, tenant, "DELETE", f"{repo}/branches/{parent['bookmark']}").status_code == 200
    assert stack_of(server, tenant, repo, child["id"])["status"] == "closed"

    slug, work = hoody_workspace(server, tenant, git, tmp_path, "hs", receiver)
    branches = f"/api/v1/workspaces/{slug}/branches"
    first = api(server, tenant.keys["agent"], "POST", branches, {"name": "a", "branch": "a"}).json()
    git.commit(work, {"a.txt": "a\n"}, "a")
    git("push", "-q", tenant.url(slug), "HEAD:a", cwd=work)
    second = api(server, tenant.keys["agent"], "POST", branches, {"name": "b", "branch": "b", "baseBranch": "a"})
    assert second.status_code == 201, second.text
    git.commit(work, {"b.txt": "b\n"}, "b")
    git("push", "-q", tenant.url(slug), "HEAD:b", cwd=work)
    for made in (first, second.json()):
        assert api(server, tenant.keys["agent"], "POST", f"{branches}/{made['id']}/pr").json()["success"]
    for made in (first, second.json()):
        merged = api(server, tenant.keys["agent"], "POST", f"{branches}/{made['id']}/merge",
                     {"strategy": "squash", "deleteBranch": True})
        assert merged.status_code == 200 and merged.json()["success"], merged.text
    assert [s["status"] for s in v1(server, tenant, "GET", f"{slug}/stacks").json()["data"]] == ["merged", "merged"]
    receiver.wait_for("pull_request", 5)
    assert [action for action, _, _ in actions(receiver)] == ["closed", "closed", "edited", "opened", "opened"]


def test_a_branchs_pull_request_whose_base_is_deleted_unmerged_is_closed(server, tenant, git, tmp_path):
    """Waiting on the default branch instead, its approvals held while the deleted base's unreviewed commits came
    along into its merge."""
    slug, work = hoody_workspace(server, tenant, git, tmp_path, "hd")
    git.commit(work, {"dev.txt": "unreviewed\n"}, "dev only")
    git("push", "-q", tenant.url(slug), "HEAD:refs/heads/dev", cwd=work)
    branches = f"/api/v1/workspaces/{slug}/branches"
    made = api(server, tenant.keys["agent"], "POST", branches, {"name": "on-dev", "branch": "on-dev",
                                                                "baseBranch": "dev"}).json()
    git.commit(work, {"f.txt": "f\n"}, "feature")
    git("push", "-q", tenant.url(slug), "HEAD:refs/heads/on-dev", cwd=work)
    opened = api(server, tenant.keys["agent"], "POST", f"{branches}/{made['id']}/pr").json()
    stack_id = opened["url"].rpartition("/")[2]
    assert v1(server, tenant, "POST", f"{slug}/stacks/{stack_id}/reviews", {"state": "approve"},
              scope="admin").status_code == 201
    assert v1(server, tenant, "DELETE", f"{slug}/branches/dev").status_code == 200
    closed = stack_of(server, tenant, slug, stack_id)
    assert (closed["status"], closed["baseBranch"]) == ("closed", "dev")


def test_a_stack_whose_branch_moved_since_its_submit_reads_not_mergeable(server, tenant, git, seeded, tmp_path):
    """It read mergeable while its merge answered 409 stale_ref."""
    repo, _ = seeded
    _, stack, _ = submit_work(Dojo(server, tenant, repo), "moved-on", {"m.txt": "m\n"})
    work = tmp_path / "clone"
    git("clone", "-q", "--branch", stack["bookmark"], tenant.url(repo), str(work))
    git.commit(work, {"m.txt": "pushed after\n"}, "after the submit")
    git("push", "-q", "origin", f"HEAD:{stack['bookmark']}", cwd=work)
    shown = stack_of(server, tenant, repo, stack["id"])
    assert shown["mergeable"] is False and "moved since the stack was submitted" in shown["conflicts"][0]


def test_stack_edits_that_break_the_rules_are_refused_in_the_envelope_and_change_nothing(server, tenant, seeded):
    repo, _ = seeded
    _, stack, _ = submit_work(Dojo(server, tenant, repo), "rules", {"r.txt": "r\n"})
    for body in ({"status": "merged"}, {"title": ""}, {"title": "x" * 501}, {"state": "closed"}, {"status": None,
                                                                                                    "x": 1}):
        refused = patch(server, tenant, repo, stack["id"], body)
        assert refused.status_code == 422 and refused.json()["success"] is False, (body, refused.text)
    assert patch(server, tenant, repo, stack["id"], {"status": "closed"}, scope="read").status_code == 403
    assert patch(server, tenant, repo, "stk_missing", {"status": "closed"}).status_code == 404
    other = server.tenant()
    hidden = api(server, other.keys["agent"], "PATCH", f"/v1/repos/{repo}/stacks/{stack['id']}", {"status": "closed"})
    assert hidden.status_code == 404
    kept = stack_of(server, tenant, repo, stack["id"])
    assert (kept["status"], kept["title"]) == ("open", "rules: work")


def test_a_stack_in_a_repository_without_commits_has_no_base_and_a_push_of_its_head_lands_it(server, tenant, git,
                                                                                             tmp_path):
    """Its base commit read its own head (a diff of base..head showed nothing), and a push of its head to the
    default branch never marked it merged: stacks whose head is their base were taken for empty."""
    repo = tenant.repo()
    dojo = Dojo(server, tenant, repo)
    _, stack, sha = submit_work(dojo, "first", {"a.txt": "a\n"})
    assert stack["base_commit"] is None and stack["head_commit"] == sha and stack["commits"] == [sha]
    assert v1(server, tenant, "GET", f"{repo}/stacks/{stack['id']}").json()["data"]["baseCommit"] is None
    work = tmp_path / "clone"
    git("clone", "-q", "-b", stack["bookmark"], tenant.url(repo), str(work))
    git("push", "-q", "origin", f"{sha}:refs/heads/main", cwd=work)
    landed = stack_of(server, tenant, repo, stack["id"])
    assert (landed["status"], landed["mergedSha"]) == ("merged", sha)

    other = tenant.repo()
    _, stack, sha = submit_work(Dojo(server, tenant, other), "squashed", {"b.txt": "b\n"})
    merged = v1(server, tenant, "POST", f"{other}/stacks/{stack['id']}/merge", {"strategy": "squash"})
    assert merged.status_code == 200 and merged.json()["data"]["success"] is True, merged.text
    assert stack_of(server, tenant, other, stack["id"])["status"] == "merged"
