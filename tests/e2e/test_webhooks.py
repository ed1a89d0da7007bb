"""Webhooks on a real server: a real HTTP receiver on 127.0.0.1 (allowed on this test server; the small-limits
server keeps the default rules and refuses it) gets the ping, the push events of git pushes and of API commits,
signed with the webhook's secret, and a receiver that fails gets the event again."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest

from control.services.webhooks import SWITCH_OFF_AFTER
from tests.support import WebhookReceiver, api, remote_ref


def hooks_path(repo: str) -> str:
    return f"/v1/repos/{repo}/webhooks"


def create_hook(server, tenant, repo: str, **body):
    made = api(server, tenant.keys["admin"], "POST", hooks_path(repo), body)
    assert made.status_code == 201, made.text
    return made.json()["data"]


def signed(headers: dict, body: bytes, secret: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("x-driftstone-signature-256", ""), expected)


def deliveries(server, tenant, repo: str, hook_id: str) -> list[dict]:
    answer = api(server, tenant.keys["admin"], "GET", f"{hooks_path(repo)}/{hook_id}/deliveries")
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def test_ping_and_push_events_reach_the_receiver_signed(server, tenant, git, tmp_path, receiver):
    repo = tenant.repo()
    secret = f"whsec-{uuid.uuid4().hex}"
    hook = create_hook(server, tenant, repo, url=receiver.url, secret=secret)
    assert hook["hasSecret"] is True and hook["events"] == ["push"] and hook["active"] is True
    assert secret not in json.dumps(hook)
    [(headers, ping)] = receiver.wait_for("ping")
    body = receiver.received[0][1]
    assert signed(headers, body, secret) and headers["user-agent"].startswith("Driftstone-Hookshot/")
    assert ping["hookId"] == hook["id"] and ping["repository"]["slug"] == repo

    work = git.new_worktree(tmp_path / "w", {"a.txt": "a\n"})
    git("push", "-q", tenant.url(repo), "HEAD:main", cwd=work)
    head = remote_ref(git, tenant.url(repo), "refs/heads/main")
    [(headers, push)] = receiver.wait_for("push")
    assert push["source"] == "push" and push["refs"] == [{"ref": "refs/heads/main", "before": "0" * 40,
                                                          "after": head}]
    assert signed(headers, receiver.received[-1][1], secret)
    assert headers["x-driftstone-hook-id"] == hook["id"] and headers["x-driftstone-delivery"].startswith("whd")

    made = api(server, tenant.keys["agent"], "POST", f"/v1/repos/{repo}/commits", {
        "branch": "main", "message": "by the API",
        "operations": [{"action": "create", "path": "b.txt", "content": base64.b64encode(b"b\n").decode()}]})
    assert made.status_code == 201, made.text
    pushes = receiver.wait_for("push", 2)
    assert pushes[1][1]["source"] != "push" and pushes[1][1]["refs"][0]["after"] == made.json()["data"]["sha"]
    listed = deliveries(server, tenant, repo, hook["id"])
    assert [d["event"] for d in listed] == ["push", "push", "ping"]
    assert {d["status"] for d in listed} == {"delivered"} and {d["responseStatus"] for d in listed} == {200}
    assert secret not in server.log_text()


def test_branches_and_tags_made_or_deleted_send_create_and_delete_beside_push(server, tenant, git, tmp_path,
                                                                             receiver):
    repo = tenant.repo()
    create_hook(server, tenant, repo, url=receiver.url, events=["create", "delete"])
    receiver.wait_for("ping")
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a\n"})
    git("tag", "v1", cwd=work)
    git("push", "-q", tenant.url(repo), "HEAD:main", "HEAD:refs/heads/topic", "v1", cwd=work)
    head = remote_ref(git, tenant.url(repo), "refs/heads/main")
    git("commit", "-q", "--allow-empty", "-m", "more", cwd=work)
    git("push", "-q", tenant.url(repo), "HEAD:main", cwd=work)  # moves a branch: no create, no delete
    git("push", "-q", tenant.url(repo), ":topic", cwd=work)
    made = receiver.wait_for("create", 3)
    [(_, deleted)] = receiver.wait_for("delete")
    assert sorted((body["ref"], body["refType"], body["sha"]) for _, body in made) == [
        ("refs/heads/main", "branch", head), ("refs/heads/topic", "branch", head), ("refs/tags/v1", "tag", head)]
    assert (deleted["ref"], deleted["refType"], deleted["sha"], deleted["source"]) == (
        "refs/heads/topic", "branch", head, "push")
    assert receiver.events("push") == [] and len(receiver.events("create")) == 3


def test_a_failing_receiver_gets_the_event_again_and_a_switched_off_hook_gets_none(server, tenant, git, tmp_path,
                                                                                  receiver):
    repo = tenant.repo()
    receiver.answers = [503]
    hook = create_hook(server, tenant, repo, url=receiver.url, events=["*"])
    receiver.wait_for("ping", 2, timeout=40)  # refused once, sent again after its retry delay
    [delivery] = deliveries(server, tenant, repo, hook["id"])
    for _ in range(100):
        if delivery["status"] == "delivered":
            break
        time.sleep(0.1)
        [delivery] = deliveries(server, tenant, repo, hook["id"])
    assert (delivery["status"], delivery["attempts"], delivery["responseStatus"]) == ("delivered", 2, 200)
    assert "x-driftstone-signature-256" not in receiver.received[0][0]  # no secret, no signature

    off = api(server, tenant.keys["admin"], "PATCH", f"{hooks_path(repo)}/{hook['id']}", {"active": False})
    assert off.status_code == 200 and off.json()["data"]["active"] is False
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a\n"})
    git("push", "-q", tenant.url(repo), "HEAD:main", cwd=work)
    pinged = api(server, tenant.keys["admin"], "POST", f"{hooks_path(repo)}/{hook['id']}/pings")
    assert pinged.status_code == 202 and pinged.json()["data"]["event"] == "ping"
    receiver.wait_for("ping", 3)
    assert receiver.events("push") == []  # the push came while it was switched off

    gone = api(server, tenant.keys["admin"], "DELETE", f"{hooks_path(repo)}/{hook['id']}")
    assert gone.status_code == 200
    assert api(server, tenant.keys["admin"], "GET", f"{hooks_path(repo)}/{hook['id']}").status_code == 404


def test_a_webhook_whose_tries_keep_failing_is_switched_off_until_switched_on_again(server, tenant, git, tmp_path,
                                                                                    receiver):
    """A receiver gone for good took a try of every event, and 10 s of the shared delivery threads a try when it
    never answered: after SWITCH_OFF_AFTER failed tries in a row the webhook is switched off (GitLab's rule)."""
    repo = tenant.repo()
    receiver.answers = [500] * (3 * SWITCH_OFF_AFTER)
    hook = create_hook(server, tenant, repo, url=receiver.url)
    one = f"{hooks_path(repo)}/{hook['id']}"
    for _ in range(SWITCH_OFF_AFTER - 1):
        assert api(server, tenant.keys["admin"], "POST", f"{one}/pings").status_code == 202
    deadline = time.monotonic() + 60
    while (shown := api(server, tenant.keys["admin"], "GET", one).json()["data"])["active"]:
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)
    assert shown["failuresInARow"] >= SWITCH_OFF_AFTER
    assert shown["switchedOffBecause"].startswith(f"switched off after {SWITCH_OFF_AFTER} failed tries in a row")
    assert "answered 500" in shown["switchedOffBecause"]
    # the pings' retries fall due while it is off: none is sent (each was, to the receiver that is gone)
    deadline = time.monotonic() + 60
    while any(d["status"] == "pending" for d in deliveries(server, tenant, repo, hook["id"])):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    sent = len(receiver.received)
    assert sent < 2 * SWITCH_OFF_AFTER and {d["status"] for d in deliveries(server, tenant, repo, hook["id"])} == {
        "failed"}
    work = git.new_worktree(tmp_path / "w", {"a.txt": "a\n"})
    git("push", "-q", tenant.url(repo), "HEAD:main", cwd=work)
    assert receiver.events("push") == []

    receiver.answers.clear()
    on = api(server, tenant.keys["admin"], "PATCH", one, {"active": True})
    assert on.status_code == 200, on.text
    switched_on = on.json()["data"]
    assert (switched_on["active"], switched_on["failuresInARow"], switched_on["switchedOffBecause"]) == (True, 0, None)
    git.commit(work, {"b.txt": "b\n"}, "b")
    git("push", "-q", tenant.url(repo), "HEAD:main", cwd=work)
    receiver.wait_for("push")


def test_webhook_refusals(server, tenant, small_limits_server, receiver):
    repo = tenant.repo()
    admin = tenant.keys["admin"]

    def refused(body, status, key=admin, path=hooks_path(repo)):
        answer = api(server, key, "POST", path, body)
        assert answer.status_code == status, answer.text
        assert answer.json()["success"] is False
        return answer.json()

    refused({"url": "http://user:pw@127.0.0.1:9/x"}, 422)  # credentials do not belong in a URL
    assert "resolved" in refused({"url": "https://no-such-host.invalid/x"}, 400)["error"]
    refused({"url": "file:///etc/passwd"}, 422)
    refused({"url": "ftp://127.0.0.1/x"}, 422)
    refused({"url": receiver.url, "events": ["everything"]}, 400)
    refused({"url": receiver.url, "events": []}, 422)
    refused({"url": receiver.url, "secret": "x" * 1025}, 422)
    refused({"url": receiver.url}, 403, key=tenant.keys["agent"])
    other = server.tenant()
    refused({"url": receiver.url}, 404, key=other.keys["admin"])
    assert api(server, admin, "GET", f"{hooks_path(repo)}/wh_nope").status_code == 404
    assert api(server, admin, "GET", hooks_path(repo)).json()["data"] == []

    # the default rules: https and public addresses only
    strict = small_limits_server.tenant()
    strict_repo = strict.repo()
    for url in (receiver.url, "https://127.0.0.1/x", "https://localhost/x", "https://169.254.169.254/latest",
                "https://[::1]/x", "https://[::ffff:7f00:1]:8443/x", "https://[64:ff9b::a9fe:a9fe]/latest",
                "https://[fe80::1]/x", "https://[::]/x"):
        answer = api(small_limits_server, strict.keys["admin"], "POST", hooks_path(strict_repo), {"url": url})
        assert answer.status_code == 400, (url, answer.text)
    for url in ("https://[::1/x", "https://[::1]x/x", "https://[fe80::1%25eth0]/x", "https://u@[::1]/x",
                "https://[::::]/x", "https://[::1]:65536/x", "https://[1:2:3:4:5:6:7:8:9]/x", "https://h:99999/x",
                "https://h:8a/x"):
        answer = api(small_limits_server, strict.keys["admin"], "POST", hooks_path(strict_repo), {"url": url})
        assert answer.status_code == 422 and "not a URL this field takes" in answer.text, (url, answer.text)
    assert receiver.received == []


def test_a_receiver_at_an_ipv6_address_gets_its_events(server, tenant, git, tmp_path):
    """An IPv6 literal in brackets, as GitHub and Gitea take them (the URL pattern refused every one): a receiver
    on ::1, allowed on this test server as 127.0.0.1 is."""
    receiver = WebhookReceiver("::1")
    try:
        repo = tenant.repo()
        assert receiver.url.startswith("http://[::1]:")
        hook = create_hook(server, tenant, repo, url=receiver.url, secret="s3cret")
        assert hook["url"] == receiver.url
        receiver.wait_for("ping")
        work = git.new_worktree(tmp_path / "w", {"a.txt": "a\n"})
        git("push", "-q", tenant.url(repo), "HEAD:main", cwd=work)
        [(headers, push)] = receiver.wait_for("push")
        assert push["refs"][0]["after"] == remote_ref(git, tenant.url(repo), "refs/heads/main")
        assert headers["host"] == receiver.url.split("/")[2]
        assert signed(headers, receiver.received[-1][1], "s3cret")
    finally:
        receiver.close()


def test_a_secret_that_cannot_be_opened_sends_nothing_unsigned(server, tenant, receiver):
    """A secret sealed under another secret key (the operator changed it) fails the delivery instead of sending it
    unsigned, which a receiver that only checks signatures when present would take for genuine."""
    from sqlalchemy import update

    from storage.models import Webhook
    from storage import secret_box

    repo = tenant.repo()
    hook = create_hook(server, tenant, repo, url=receiver.url, secret="s3cret", active=False)
    with server.context.db.session() as session:
        session.execute(update(Webhook).where(Webhook.id == hook["id"]).values(
            secret_sealed=secret_box.seal("another server key", "webhook secret", "s3cret")))
    pinged = api(server, tenant.keys["admin"], "POST", f"{hooks_path(repo)}/{hook['id']}/pings")
    assert pinged.status_code == 202, pinged.text
    for _ in range(200):
        [delivery] = deliveries(server, tenant, repo, hook["id"])
        if delivery["status"] != "pending":
            break
        time.sleep(0.05)
    assert delivery["status"] == "failed" and "secret" in delivery["error"], delivery
    assert receiver.received == []


def test_a_delivery_whose_job_was_lost_is_taken_up_and_a_deleted_repository_is_not_sent_to(server, tenant, receiver):
    """A pending delivery due minutes ago (its job lost to a restart) is what every worker's watch takes up; the
    server's own watch runs every 30 s, so the test asks once itself."""
    from datetime import timedelta

    from control import jobs as job_functions
    from storage.ids import new_id
    from storage.models import WebhookDelivery, utcnow

    repo = tenant.repo()
    hook = create_hook(server, tenant, repo, url=receiver.url, active=False)
    lost = new_id("whd")
    with server.context.db.session() as session:
        session.add(WebhookDelivery(id=lost, webhook_id=hook["id"], event="ping", payload={"event": "ping"},
                                    due_at=utcnow() - timedelta(minutes=5)))
    previous = job_functions._context  # the job functions' context is the last one built in this process
    job_functions.configure(server.context)
    try:
        job_functions.take_up_late_deliveries()
    finally:
        job_functions.configure(previous)
    [(headers, _)] = receiver.wait_for("ping")
    assert headers["x-driftstone-delivery"] == lost

    receiver.answers = [500]
    other = tenant.repo()
    failing = create_hook(server, tenant, other, url=receiver.url)
    receiver.wait_for("ping", 2)
    assert api(server, tenant.keys["admin"], "DELETE", f"/v1/repos/{other}").status_code == 200
    with server.context.db.session() as session:
        for _ in range(300):  # its retry comes after 5 s and finds the repository deleted
            delivery = session.query(WebhookDelivery).filter_by(webhook_id=failing["id"]).one()
            if delivery.status != "pending":
                break
            session.expire_all()
            time.sleep(0.1)
    assert (delivery.status, delivery.attempts, delivery.error) == ("failed", 1, "the repository was deleted")
    assert len(receiver.events("ping")) == 2


def test_a_webhook_keeps_its_latest_hundred_deliveries(server, tenant, receiver):
    """Run here, in the test process, on the server's database: a finished delivery removes the oldest past 100."""
    from datetime import timedelta

    from control.services import webhooks
    from storage.ids import new_id
    from storage.models import WebhookDelivery, utcnow

    repo = tenant.repo()
    hook = create_hook(server, tenant, repo, url=receiver.url, active=False)
    start = utcnow() - timedelta(days=1)
    with server.context.db.session() as session:
        for minute in range(105):
            session.add(WebhookDelivery(id=new_id("whd"), webhook_id=hook["id"], event="ping", payload={},
                                        status="delivered", created_at=start + timedelta(minutes=minute), due_at=None))
        fresh = WebhookDelivery(id=new_id("whd"), webhook_id=hook["id"], event="ping", payload={"event": "ping"})
        session.add(fresh)
    webhooks.deliver(server.context.db, server.context.settings, fresh.id)
    listed = deliveries(server, tenant, repo, hook["id"])
    assert len(listed) == 100 and listed[0]["id"] == fresh.id and listed[0]["status"] == "delivered"
    with server.context.db.session() as session:
        assert session.query(WebhookDelivery).filter_by(webhook_id=hook["id"]).count() == 100


def test_a_url_that_breaks_the_rules_fails_at_once_and_one_that_does_not_resolve_is_tried_again(server, tenant):
    """URLs put in the database directly (a rule that changed, a name that stopped resolving), tried here in the
    test process on the server's database."""
    from control.services import webhooks
    from storage.ids import new_id
    from storage.jobs import TryAgain
    from storage.models import Repository, Webhook, WebhookDelivery

    repo = tenant.repo()
    with server.context.db.session() as session:
        repo_id = session.query(Repository.id).filter_by(org_id=tenant.org_id, slug=repo).scalar()
        ids = {}
        for name, url in (("broken", "ftp://example.com/in"), ("unresolved", "https://no-such-host.invalid/in")):
            hook = Webhook(id=new_id("wh"), org_id=tenant.org_id, repo_id=repo_id, url=url, events=["push"])
            session.add(hook)
            session.flush()
            ids[name] = new_id("whd")
            session.add(WebhookDelivery(id=ids[name], webhook_id=hook.id, event="push", payload={}))
    webhooks.deliver(server.context.db, server.context.settings, ids["broken"])
    with pytest.raises(TryAgain):
        webhooks.deliver(server.context.db, server.context.settings, ids["unresolved"])
    with server.context.db.session() as session:
        broken, unresolved = (session.get(WebhookDelivery, ids[name]) for name in ("broken", "unresolved"))
        assert (broken.status, broken.attempts, broken.due_at) == ("failed", 1, None), broken.error
        assert (unresolved.status, unresolved.attempts) == ("pending", 1) and unresolved.due_at is not None
        assert "could not be resolved" in unresolved.error
