"""Protected branches set through the API (GitHub's branch protection), on a real server with the real git CLI:
a branch that takes changes only through a stack's merge refuses pushes, API commits and branch merges, and a stack
merges into it only with the approving reviews its rule asks for, never its author's own."""
from __future__ import annotations

import uuid

import pytest
import requests

from tests.support import Dojo, api, at_once, has_object, remote_ref, repo_path, submit_work, v1


def rules_path(repo: str) -> str:
    return f"/v1/repos/{repo}/branch-protections"


def pushed_repo(tenant, git, tmp_path) -> tuple[str, object]:
    """A new repository whose main holds one commit, and the worktree it was pushed from."""
    repo = tenant.repo()
    work = git.new_worktree(tmp_path / "w", {"README.md": "# r\n"})
    git("push", "-q", tenant.url(repo), "HEAD:main", cwd=work)
    return repo, work


def gated_repo(server, tenant, git, tmp_path, approvals: int) -> tuple[str, object]:
    """pushed_repo, its main taking changes only through stacks approved by `approvals` others."""
    repo, work = pushed_repo(tenant, git, tmp_path)
    assert api(server, tenant.keys["admin"], "PUT", rules_path(repo),
               {"pattern": "main", "requirePullRequest": True, "requiredApprovals": approvals}).status_code == 200
    return repo, work


def test_rules_are_put_listed_replaced_and_removed(server, tenant):
    repo = tenant.repo()
    admin = tenant.keys["admin"]
    made = api(server, admin, "PUT", rules_path(repo), {"pattern": "release/**", "requiredApprovals": 2})
    assert made.status_code == 200, made.text
    rule = made.json()["data"]
    assert (rule["pattern"], rule["allowForcePush"], rule["allowDeletion"], rule["requirePullRequest"],
            rule["requiredApprovals"]) == ("release/**", False, False, False, 2)
    again = api(server, admin, "PUT", rules_path(repo), {"pattern": "release/**", "requirePullRequest": True})
    assert again.json()["data"]["id"] == rule["id"] and again.json()["data"]["requiredApprovals"] == 0
    listed = api(server, tenant.keys["read"], "GET", rules_path(repo)).json()["data"]
    assert [(r["pattern"], r["requirePullRequest"]) for r in listed] == [("release/**", True)]
    for body in ({"pattern": "a b"}, {"pattern": ""}, {"pattern": "main", "requiredApprovals": 11},
                 {"pattern": "main", "extra": True}):
        refused = api(server, admin, "PUT", rules_path(repo), body)
        assert refused.status_code == 422 and refused.json()["success"] is False, (body, refused.text)
    assert api(server, tenant.keys["agent"], "PUT", rules_path(repo), {"pattern": "main"}).status_code == 403
    assert api(server, server.tenant().keys["admin"], "GET", rules_path(repo)).status_code == 404
    assert api(server, admin, "DELETE", f"{rules_path(repo)}/{rule['id']}").status_code == 200
    assert api(server, admin, "DELETE", f"{rules_path(repo)}/{rule['id']}").status_code == 404
    assert api(server, admin, "GET", rules_path(repo)).json()["data"] == []


def test_a_branch_taking_changes_only_through_stacks_merges_one_once_others_approved_it(server, tenant, git,
                                                                                      tmp_path):
    repo, work = pushed_repo(tenant, git, tmp_path)
    rule = api(server, tenant.keys["admin"], "PUT", rules_path(repo),
               {"pattern": "main", "requirePullRequest": True, "requiredApprovals": 1})
    assert rule.status_code == 200, rule.text

    git.commit(work, {"direct.txt": "d\n"}, "straight to main")
    pushed = git("push", tenant.url(repo), "HEAD:main", cwd=work, check=False)
    assert pushed.returncode != 0 and b"changes come through a pull request" in pushed.stderr, pushed.stderr
    git("push", "-q", tenant.url(repo), "HEAD:refs/heads/side", cwd=work)  # other branches are not held
    commit = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/commits", {
        "branch": "main", "message": "by the API", "operations": [{"action": "delete", "path": "README.md"}]})
    assert commit.status_code == 403 and "pull request" in commit.text, commit.text
    merged_branch = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/merges", {"source": "side"})
    assert merged_branch.status_code == 403, merged_branch.text
    upload = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/uploads", {  # refused when asked for
        "identifier": "u1", "files": [{"name": "a.txt", "hash": "0" * 64}]})
    assert upload.status_code == 403 and "pull request" in upload.text, upload.text

    _, stack, _ = submit_work(Dojo(server, tenant, repo), "gated", {"g.txt": "g\n"})
    path = f"{repo}/stacks/{stack['id']}"

    def merge():
        return v1(server, tenant, "POST", f"{path}/merge", {"strategy": "squash"})

    unapproved = merge()
    assert unapproved.status_code == 409 and "needs 1 approving review" in unapproved.json()["error"]
    assert unapproved.json()["details"] == {"requiredApprovals": 1, "approvals": 0, "changesRequested": 0}
    shown = v1(server, tenant, "GET", path).json()["data"]
    assert shown["mergeable"] is False and "approving review" in shown["conflicts"][0]
    assert v1(server, tenant, "POST", f"{path}/reviews", {"state": "approve"}).status_code == 201  # its author
    assert merge().status_code == 409
    # the decision shown is the one the merge counts: its author's approval is none (it read 'approved')
    assert v1(server, tenant, "GET", path).json()["data"]["reviewDecision"] == "pending"
    assert v1(server, tenant, "POST", f"{path}/reviews", {"state": "request_changes"}, scope="admin").status_code == 201
    assert "changes were requested" in merge().json()["error"]
    assert v1(server, tenant, "POST", f"{path}/reviews", {"state": "approve"}).status_code == 201  # its author again
    assert v1(server, tenant, "GET", path).json()["data"]["reviewDecision"] == "changes_requested"  # read approved
    assert v1(server, tenant, "POST", f"{path}/reviews", {"state": "approve"}, scope="admin").status_code == 201
    assert v1(server, tenant, "GET", path).json()["data"]["reviewDecision"] == "approved"
    assert v1(server, tenant, "GET", path).json()["data"]["mergeable"] is True
    landed = merge()
    assert landed.status_code == 200 and landed.json()["data"]["success"], landed.text
    clone = tmp_path / "clone"
    git("clone", "-q", tenant.url(repo), str(clone))
    assert (clone / "g.txt").read_text() == "g\n" and not (clone / "direct.txt").exists()


def test_what_a_stack_brings_is_what_its_reviewers_see_and_each_key_approves_once(server, tenant, git, tmp_path):
    """A workspace based on an unreviewed commit off main listed only its own commit, and its approved merge
    brought the other in; one key approving under two names counted twice."""
    repo, work = pushed_repo(tenant, git, tmp_path)
    hidden = git.commit(work, {"hidden.txt": "h\n"}, "not reviewed")
    git("push", "-q", tenant.url(repo), "HEAD:refs/heads/side", cwd=work)
    assert api(server, tenant.keys["admin"], "PUT", rules_path(repo),
               {"pattern": "main", "requirePullRequest": True, "requiredApprovals": 2}).status_code == 200
    _, stack, own = submit_work(Dojo(server, tenant, repo), "off-main", {"ok.txt": "ok\n"}, base_commit=hidden)
    shown = v1(server, tenant, "GET", f"{repo}/stacks/{stack['id']}").json()["data"]
    assert shown["commits"] == [hidden, own] and shown["baseCommit"] != hidden

    path = f"{repo}/stacks/{stack['id']}"
    for name in ("one", "two"):
        assert v1(server, tenant, "POST", f"{path}/reviews", {"state": "approve", "reviewerName": name},
                  scope="admin").status_code == 201
    counted = v1(server, tenant, "POST", f"{path}/merge", {})
    assert counted.status_code == 409 and counted.json()["details"]["approvals"] == 1, counted.text


def test_a_protected_branch_refuses_dry_runs_and_pulls_before_any_work(server, tenant, git, tmp_path):
    """A dry run said "can be merged" where the merge is refused, and a refused pull left what it fetched."""
    upstream = tenant.repo()
    work = git.new_worktree(tmp_path / "up", {"a.txt": "a\n"})
    git("push", "-q", tenant.url(upstream), "HEAD:main", cwd=work)
    remote_commit = git.commit(work, {"b.txt": "b\n"}, "only upstream has it")
    slug = f"pp-{uuid.uuid4().hex[:8]}"
    made = api(server, tenant.keys["admin"], "POST", "/api/v1/workspaces", {
        "name": slug, "slug": slug, "repository_url": tenant.plain_url(upstream),
        "settings": {"credentials": {"git_token": tenant.keys["read"]}}})
    assert made.status_code == 201, made.text
    git("push", "-q", tenant.url(slug), "HEAD~1:refs/heads/main", "HEAD~1:refs/heads/side", cwd=work)
    git("push", "-q", tenant.url(upstream), "HEAD:main", cwd=work)
    assert api(server, tenant.keys["admin"], "PUT", rules_path(slug),
               {"pattern": "main", "requirePullRequest": True}).status_code == 200
    dry = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{slug}/merges", {"source": "side", "dryRun": True})
    assert dry.status_code == 403 and "pull request" in dry.json()["error"], dry.text
    branches = api(server, tenant.keys["agent"], "GET", f"/api/v1/workspaces/{slug}/branches").json()
    main = next(branch for branch in branches if branch["branch"] == "main")
    pulled = api(server, tenant.keys["agent"], "POST", f"/api/v1/workspaces/{slug}/branches/{main['id']}/pull")
    assert pulled.status_code == 403, pulled.text
    assert not has_object(repo_path(server, tenant, slug), remote_commit)


def test_a_hoody_branch_with_an_approved_pull_request_merges_into_a_branch_taking_changes_only_through_them(
        server, tenant, git, tmp_path):
    """Seed 003 merges a branch (and its pull request with it): into such a base that was refused as a direct
    merge, leaving a client of that document no way to land its approved pull request."""
    repo, work = gated_repo(server, tenant, git, tmp_path, approvals=1)
    branches = f"/api/v1/workspaces/{repo}/branches"
    made = api(server, tenant.keys["agent"], "POST", branches, {"name": "Feature"}).json()
    git.commit(work, {"f.txt": "f\n"}, "feature")
    git("push", "-q", tenant.url(repo), f"HEAD:refs/heads/{made['branch']}", cwd=work)
    merge = f"{branches}/{made['id']}/merge"
    without_pr = api(server, tenant.keys["agent"], "POST", merge, {"strategy": "merge"})
    assert without_pr.status_code == 403 and "pull request" in without_pr.text, without_pr.text
    opened = api(server, tenant.keys["agent"], "POST", f"{branches}/{made['id']}/pr").json()
    unapproved = api(server, tenant.keys["agent"], "POST", merge, {"strategy": "merge"})
    assert unapproved.status_code == 409 and "approving review" in unapproved.text, unapproved.text
    assert set(unapproved.json()) == {"success", "errors", "data"}  # hoody's error shape
    stack = opened["url"].removeprefix(server.url)
    assert api(server, tenant.keys["admin"], "POST", f"{stack}/reviews", {"state": "approve"}).status_code == 201
    assert api(server, tenant.keys["agent"], "POST", merge, {"strategy": "merge", "dry_run": True}).json()["success"]
    landed = api(server, tenant.keys["agent"], "POST", merge, {"strategy": "squash", "deleteBranch": True})
    assert landed.status_code == 200 and landed.json()["success"], landed.text
    assert api(server, tenant.keys["read"], "GET", stack).json()["data"]["status"] == "merged"
    clone = tmp_path / "clone"
    git("clone", "-q", tenant.url(repo), str(clone))
    assert (clone / "f.txt").read_text() == "f\n"


def test_a_push_between_a_hoody_merge_s_approval_check_and_its_merge_is_not_merged(
        server, tenant, git, tmp_path, monkeypatch):
    """The merge checks its pull request's approved head, then merges the branch: a commit pushed between the two
    must not land unreviewed. The branch is moved in that window from inside the check, in this process (the
    service is called here on the shared server's database and repositories), as a push landing there would."""
    from control.services import stacks, workspace_branches
    from control.services.repos import get_repo
    from storage.errors import StaleRef
    from storage.keys import find_principal

    repo, work = gated_repo(server, tenant, git, tmp_path, approvals=1)
    branches = f"/api/v1/workspaces/{repo}/branches"
    made = api(server, tenant.keys["agent"], "POST", branches, {"name": "Feature"}).json()
    git.commit(work, {"f.txt": "f\n"}, "feature")
    git("push", "-q", tenant.url(repo), f"HEAD:refs/heads/{made['branch']}", cwd=work)
    opened = api(server, tenant.keys["agent"], "POST", f"{branches}/{made['id']}/pr").json()
    stack = opened["url"].removeprefix(server.url)
    assert api(server, tenant.keys["admin"], "POST", f"{stack}/reviews", {"state": "approve"}).status_code == 201
    main_before = remote_ref(git, tenant.url(repo), "refs/heads/main")

    unreviewed = git.commit(work, {"f.txt": "unreviewed\n"}, "unreviewed")
    git("push", "-q", tenant.url(repo), "HEAD:refs/heads/elsewhere", cwd=work)  # its objects on the server
    checked = stacks.refuse_unmergeable

    def check_then_push(*args):  # the merge holds the repository's turn here, which a push over HTTP waits for
        checked(*args)
        git("update-ref", f"refs/heads/{made['branch']}", unreviewed, cwd=repo_path(server, tenant, repo))

    monkeypatch.setattr(stacks, "refuse_unmergeable", check_then_push)
    with server.context.db.session() as session:
        actor = find_principal(session, tenant.keys["agent"])
        row = get_repo(session, tenant.org_id, repo)
        listed = workspace_branches.branch_by_id(session, server.context, row, made["id"])
        with pytest.raises(StaleRef):
            workspace_branches.merge(session, server.context, row, actor, listed, "merge", None, dry_run=False,
                                     delete_branch=False)
    assert remote_ref(git, tenant.url(repo), "refs/heads/main") == main_before
    assert api(server, tenant.keys["read"], "GET", stack).json()["data"]["status"] == "open"


def test_a_review_racing_the_merge_is_seen_by_it_or_refused(server, tenant, git, tmp_path):
    """A change request sent as the stack merged was taken (201) on a stack already merged: its reviewer believed
    the merge blocked. One of the two now comes second and sees the other."""
    repo, _ = gated_repo(server, tenant, git, tmp_path, approvals=1)
    dojo = Dojo(server, tenant, repo)
    for n in range(5):
        _, stack, _ = submit_work(dojo, f"raced-{n}", {f"r{n}.txt": "r\n"})
        path = f"{repo}/stacks/{stack['id']}"
        assert v1(server, tenant, "POST", f"{path}/reviews", {"state": "approve"}, scope="admin").status_code == 201
        requests_ = [lambda: v1(server, tenant, "POST", f"{path}/merge", {"strategy": "squash"}),
                     lambda: v1(server, tenant, "POST", f"{path}/reviews", {"state": "request_changes"},
                                scope="admin")]
        merged, reviewed = at_once(2, lambda i: requests_[i]())
        assert sorted([merged.status_code, reviewed.status_code]) == [200 if merged.ok else 201, 409], (
            merged.text, reviewed.text)


def test_a_child_stack_reads_unmergeable_until_its_parent_merged(server, tenant, git, tmp_path):
    """It read mergeable while its merge answered 'merge the parent stack first'."""
    repo, _ = pushed_repo(tenant, git, tmp_path)
    dojo = Dojo(server, tenant, repo)
    _, parent, parent_head = submit_work(dojo, "parent", {"p.txt": "p\n"})
    _, child, _ = submit_work(dojo, "child", {"c.txt": "c\n"}, base_commit=parent_head)
    shown = v1(server, tenant, "GET", f"{repo}/stacks/{child['id']}").json()["data"]
    assert shown["parentStackId"] == parent["id"]
    assert shown["mergeable"] is False and shown["conflicts"] == ["merge the parent stack first"], shown
    assert v1(server, tenant, "POST", f"{repo}/stacks/{parent['id']}/merge", {}).status_code == 200
    assert v1(server, tenant, "GET", f"{repo}/stacks/{child['id']}").json()["data"]["mergeable"] is True


def test_mergeable_is_told_for_the_strategy_asked(server, tenant, git, tmp_path):
    """A workspace's second stack after its first was squashed conflicts as a merge commit (git's merge base is
    older than the squash) and lands as a squash: `mergeable` read false either way."""
    repo, _ = pushed_repo(tenant, git, tmp_path)
    dojo = Dojo(server, tenant, repo)
    ws, first, _ = submit_work(dojo, "twice", {"s.txt": "v1\n"})
    assert v1(server, tenant, "POST", f"{repo}/stacks/{first['id']}/merge", {"strategy": "squash"}).status_code == 200
    assert dojo("PUT", f"/workspaces/{ws['id']}/files/s.txt", data=b"v2\n").status_code == 200
    assert dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": "v2"}).status_code == 201
    second = dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": "v2"}).json()["stack"]
    path = f"{repo}/stacks/{second['id']}"
    as_merge = v1(server, tenant, "GET", path).json()["data"]
    assert as_merge["mergeable"] is False and as_merge["conflicts"] == ["s.txt"], as_merge
    squash = requests.get(f"{server.url}/v1/repos/{path}", params={"strategy": "squash"}, timeout=30,
                          headers={"Authorization": f"Bearer {tenant.keys['read']}"}).json()["data"]
    assert squash["mergeable"] is True and squash["conflicts"] == [], squash
    assert v1(server, tenant, "POST", f"{path}/merge", {"strategy": "squash"}).json()["data"]["success"]


def test_a_change_request_holds_across_new_commits_until_its_reviewer_approves(server, tenant, git, tmp_path):
    """GitHub's rule: a change request blocks until its reviewer approves (a push alone answered it: it counted
    only on the head it was given on), while an approval is for the head it saw (a push makes it stale)."""
    repo, _ = gated_repo(server, tenant, git, tmp_path, approvals=1)
    dojo = Dojo(server, tenant, repo)
    ws, stack, _ = submit_work(dojo, "held", {"h.txt": "one\n"})
    path = f"{repo}/stacks/{stack['id']}"

    def push_more(text: str) -> None:
        assert dojo("PUT", f"/workspaces/{ws['id']}/files/h.txt", data=text.encode()).status_code == 200
        assert dojo("POST", f"/workspaces/{ws['id']}/commit", {"message": text}).status_code == 201
        assert dojo("POST", f"/workspaces/{ws['id']}/submit", {"title": "held"}).status_code == 201

    def decision() -> str:
        return v1(server, tenant, "GET", path).json()["data"]["reviewDecision"]

    assert v1(server, tenant, "POST", f"{path}/reviews", {"state": "request_changes"}, scope="admin").status_code == 201
    push_more("two\n")
    assert decision() == "changes_requested"
    assert "changes were requested" in v1(server, tenant, "POST", f"{path}/merge", {}).json()["error"]
    assert v1(server, tenant, "POST", f"{path}/reviews", {"state": "approve"}, scope="admin").status_code == 201
    assert decision() == "approved"
    push_more("three\n")
    assert decision() == "pending"  # the approval was of the head before
    seen = v1(server, tenant, "GET", path).json()["data"]["headCommit"]
    push_more("four\n")  # between the reviewer's look and its approval: named, the approval is refused
    stale = v1(server, tenant, "POST", f"{path}/reviews", {"state": "approve", "headCommit": seen}, scope="admin")
    assert stale.status_code == 409 and stale.json()["code"] == "stale_ref", stale.text
    assert decision() == "pending"
    head = v1(server, tenant, "GET", path).json()["data"]["headCommit"]
    assert v1(server, tenant, "POST", f"{path}/reviews", {"state": "approve", "headCommit": head},
              scope="admin").status_code == 201
    assert v1(server, tenant, "POST", f"{path}/merge", {}).status_code == 200


def test_a_change_request_of_a_key_revoked_since_holds_nothing_back(server, tenant, git, tmp_path):
    """With change requests holding until their reviewer approves, one of a key since revoked would have held the
    stack for ever: reviews of keys revoked or expired count for nothing."""
    repo, _ = gated_repo(server, tenant, git, tmp_path, approvals=1)
    _, stack, _ = submit_work(Dojo(server, tenant, repo), "gone", {"g.txt": "g\n"})
    path = f"/v1/repos/{repo}/stacks/{stack['id']}"
    issued = api(server, tenant.keys["admin"], "POST", "/v1/keys", {"name": "leaving", "scope": "agent"}).json()["data"]
    assert api(server, issued["key"], "POST", f"{path}/reviews", {"state": "request_changes"}).status_code == 201
    assert api(server, tenant.keys["admin"], "POST", f"{path}/reviews", {"state": "approve"}).status_code == 201
    assert api(server, tenant.keys["read"], "GET", path).json()["data"]["reviewDecision"] == "changes_requested"
    assert api(server, tenant.keys["admin"], "DELETE", f"/v1/keys/{issued['id']}").status_code == 200
    assert api(server, tenant.keys["read"], "GET", path).json()["data"]["reviewDecision"] == "approved"
    assert api(server, tenant.keys["agent"], "POST", f"{path}/merge", {}).status_code == 200


def test_an_admin_dismisses_a_change_request_that_would_hold_the_stack_and_it_counts_no_more(server, tenant, git,
                                                                                              tmp_path, receiver):
    """GitHub's dismissal: a change request of a reviewer who is away held the stack for ever (only their own
    approval answered it). An admin key dismisses it, with a message; the reviewer's earlier verdicts go with it,
    their next review counts again. Comments are no verdict; nothing is dismissed twice or on a closed stack."""
    from tests.e2e.test_stack_lifecycle import subscribe

    repo, _ = gated_repo(server, tenant, git, tmp_path, approvals=1)
    subscribe(server, tenant, repo, receiver, events=("pull_request_review",))
    _, stack, _ = submit_work(Dojo(server, tenant, repo), "held", {"d.txt": "d\n"})
    path = f"/v1/repos/{repo}/stacks/{stack['id']}"
    reviewer = api(server, tenant.keys["admin"], "POST", "/v1/keys", {"name": "away", "scope": "agent"}).json()["data"]
    assert api(server, reviewer["key"], "POST", f"{path}/reviews", {"state": "approve"}).status_code == 201
    held = api(server, reviewer["key"], "POST", f"{path}/reviews", {"state": "request_changes", "body": "no"}).json()
    comment = api(server, reviewer["key"], "POST", f"{path}/reviews", {"state": "comment"}).json()["data"]
    assert api(server, tenant.keys["read"], "GET", path).json()["data"]["reviewDecision"] == "changes_requested"

    dismissal = f"{path}/reviews/{held['data']['id']}/dismissals"
    assert api(server, tenant.keys["agent"], "PUT", dismissal, {"message": "stale"}).status_code == 403
    assert api(server, tenant.keys["admin"], "PUT", dismissal, {}).status_code == 422
    assert api(server, tenant.keys["admin"], "PUT", f"{path}/reviews/{comment['id']}/dismissals",
               {"message": "x"}).status_code == 422  # as GitHub answers
    assert api(server, tenant.keys["admin"], "PUT", f"{path}/reviews/rev_nope/dismissals",
               {"message": "x"}).status_code == 404
    assert api(server, server.tenant().keys["admin"], "PUT", dismissal, {"message": "x"}).status_code == 404
    dismissed = api(server, tenant.keys["admin"], "PUT", dismissal, {"message": "the reviewer is away"})
    assert dismissed.status_code == 200, dismissed.text
    assert dismissed.json()["data"]["dismissalMessage"] == "the reviewer is away"
    assert dismissed.json()["data"]["dismissedAt"] is not None
    assert api(server, tenant.keys["admin"], "PUT", dismissal, {"message": "again"}).status_code == 409
    got = api(server, tenant.keys["read"], "GET", path).json()["data"]
    assert got["reviewDecision"] == "pending"  # its earlier approval went with it
    assert [r["dismissedAt"] is not None for r in got["reviews"]] == [False, True, False]
    assert "needs 1 approving" in api(server, tenant.keys["agent"], "POST", f"{path}/merge", {}).json()["error"]
    [payload] = [body for _, body in receiver.wait_for("pull_request_review", 4) if body["action"] == "dismissed"]
    assert (payload["review"]["state"], payload["review"]["dismissalMessage"]) == ("dismissed", "the reviewer is away")
    assert api(server, reviewer["key"], "POST", f"{path}/reviews", {"state": "approve"}).status_code == 201
    assert api(server, tenant.keys["agent"], "POST", f"{path}/merge", {}).status_code == 200
    approval = api(server, tenant.keys["read"], "GET", path).json()["data"]["reviews"][-1]
    assert api(server, tenant.keys["admin"], "PUT", f"{path}/reviews/{approval['id']}/dismissals",
               {"message": "late"}).status_code == 409  # merged


def test_a_review_racing_a_hoody_branch_merge_is_seen_by_it_or_refused(server, tenant, git, tmp_path):
    """The branch's merge read the approvals before taking the repository's turn: a change request answered 201
    while the merge landed without seeing it."""
    repo, work = gated_repo(server, tenant, git, tmp_path, approvals=1)
    branches = f"/api/v1/workspaces/{repo}/branches"
    for n in range(4):
        made = api(server, tenant.keys["agent"], "POST", branches, {"name": f"Raced {n}"}).json()
        git.commit(work, {f"r{n}.txt": "r\n"}, f"raced {n}")
        git("push", "-q", tenant.url(repo), f"HEAD:refs/heads/{made['branch']}", cwd=work)
        stack = api(server, tenant.keys["agent"], "POST", f"{branches}/{made['id']}/pr").json()["url"]
        stack = stack.removeprefix(server.url)
        assert api(server, tenant.keys["admin"], "POST", f"{stack}/reviews", {"state": "approve"}).status_code == 201
        calls = [lambda: api(server, tenant.keys["agent"], "POST", f"{branches}/{made['id']}/merge",
                             {"strategy": "merge"}),
                 lambda: api(server, tenant.keys["admin"], "POST", f"{stack}/reviews", {"state": "request_changes"})]
        merged, reviewed = at_once(2, lambda i: calls[i]())
        assert (merged.status_code, reviewed.status_code) in ((200, 409), (409, 201)), (merged.text, reviewed.text)
        git("fetch", "-q", tenant.url(repo), "main", cwd=work)
        git("reset", "-q", "--hard", "FETCH_HEAD", cwd=work)
