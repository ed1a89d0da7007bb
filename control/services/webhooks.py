"""Webhooks (DESIGN.md: Event -> timeline, webhooks, automation), as GitHub's: URLs a repository tells of its events
by JSON POSTs, each signed with HMAC-SHA256 of the body under the webhook's secret
(`X-Driftstone-Signature-256: sha256=<hex>`, as GitHub's X-Hub-Signature-256), each a delivery recorded with its
tries. A URL follows the rules for remote URLs (https, public addresses only, no credentials; the operator's
DRIFTSTONE_REMOTE_ALLOW_* settings lift them), checked when set and again before each try, which goes to the very
address checked and follows no redirect. The secret is kept sealed and never shown again."""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from hooks.stack_events import PULL_REQUEST, PULL_REQUEST_REVIEW
from hooks.webhooks import RETRY_DELAYS, queue_event
from storage import git_remote, outbound_http, secret_box
from storage.errors import BadRequest, Conflict, NotFound
from storage.ids import new_id
from storage.jobs import TryAgain
from storage.models import Repository, Webhook, WebhookDelivery, utcnow
from storage.repo_writes import serialize_repository_writes

from .extension_runs import WORKFLOW_RUN

# what a webhook may subscribe to ("*": all); `ping` is sent on creation and on request
EVENTS = ("push", "create", "delete", PULL_REQUEST, PULL_REQUEST_REVIEW, WORKFLOW_RUN)
SECRET_PURPOSE = "webhook secret"
MAX_WEBHOOKS = 20  # per repository, as GitHub's
# tries failed in a row (ten events' worth, with their retries) that switch a webhook off, as GitLab does: a
# receiver that is gone or never answers (10 s a try) stops taking the delivery threads every receiver shares
SWITCH_OFF_AFTER = 40
LISTED_DELIVERIES = 100
USER_AGENT = "Driftstone-Hookshot/1"


def _checked_url(settings, url: str) -> str:
    try:
        git_remote.checked_remote(url, settings.remote_allow_http, settings.remote_allow_private)
    except git_remote.RemoteRefused as refused:
        raise BadRequest(f"url: {refused}", {"field": "url", "url": git_remote.shown(url)}) from None
    return url


def _checked_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - {*EVENTS, "*"})
    if unknown or not events:
        raise BadRequest(f"events must be some of {', '.join(EVENTS)} or *", {"field": "events", "unknown": unknown})
    return sorted(set(events))


def _sealed(settings, secret: str | None) -> str | None:
    return secret_box.seal(settings.secret_key, SECRET_PURPOSE, secret) if secret else None


def create_webhook(session: Session, settings, repo: Repository, url: str, secret: str | None, events: list[str],
                   active: bool) -> tuple[Webhook, WebhookDelivery | None]:
    """The webhook, and the `ping` delivery queued to it (when active)."""
    serialize_repository_writes(session, repo.id)  # the count below then sees every concurrent create
    count = session.scalar(select(func.count()).select_from(Webhook).where(Webhook.repo_id == repo.id))
    if count >= MAX_WEBHOOKS:
        raise Conflict(f"a repository has at most {MAX_WEBHOOKS} webhooks", {"limit": MAX_WEBHOOKS})
    hook = Webhook(id=new_id("wh"), org_id=repo.org_id, repo_id=repo.id, url=_checked_url(settings, url),
                   secret_sealed=_sealed(settings, secret), events=_checked_events(events), active=active)
    session.add(hook)
    session.flush()
    return hook, (ping(session, repo, hook) if active else None)


def ping(session: Session, repo: Repository, hook: Webhook) -> WebhookDelivery:
    payload = {"event": "ping", "hookId": hook.id, "events": hook.events,
               "repository": {"id": repo.id, "slug": repo.slug},
               "organization": {"id": repo.org_id}}
    [delivery] = queue_event(session, repo.id, "ping", payload, webhooks=[hook])
    session.flush()
    return delivery


def list_webhooks(session: Session, repo: Repository) -> list[Webhook]:
    return list(session.scalars(select(Webhook).where(Webhook.repo_id == repo.id).order_by(Webhook.created_at,
                                                                                           Webhook.id)))


def get_webhook(session: Session, repo: Repository, hook_id: str) -> Webhook:
    hook = session.get(Webhook, hook_id)
    if hook is None or hook.repo_id != repo.id:
        raise NotFound("webhook not found", {"webhook": hook_id[:100]})
    return hook


def update_webhook(session: Session, settings, repo: Repository, hook_id: str, changes: dict) -> Webhook:
    """`changes`: any of url, secret ("" or null: none), events, active."""
    hook = get_webhook(session, repo, hook_id)
    if "url" in changes:
        hook.url = _checked_url(settings, changes["url"])
        hook.failures_in_a_row = 0  # a new receiver starts afresh
    if "secret" in changes:
        hook.secret_sealed = _sealed(settings, changes["secret"])
    if "events" in changes:
        hook.events = _checked_events(changes["events"])
    if "active" in changes:
        hook.active = changes["active"]
        if hook.active:  # switched on again by hand: the count starts afresh
            hook.failures_in_a_row, hook.switched_off_because = 0, None
    hook.updated_at = utcnow()
    session.flush()
    return hook


def delete_webhook(session: Session, repo: Repository, hook_id: str) -> None:
    session.delete(get_webhook(session, repo, hook_id))
    session.flush()


def deliveries(session: Session, repo: Repository, hook_id: str) -> list[WebhookDelivery]:
    """The webhook's latest deliveries, newest first."""
    hook = get_webhook(session, repo, hook_id)
    return list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)
                                .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
                                .limit(LISTED_DELIVERIES)))


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


LEASE = timedelta(seconds=60)  # a try holds its delivery this long (outbound_http's whole deadline is 10 s)
LATE = timedelta(seconds=60)  # due this long ago and still pending: its job was lost (control.jobs watches)


def late_deliveries(session: Session, now) -> list[str]:
    return list(session.scalars(select(WebhookDelivery.id).where(
        WebhookDelivery.status == "pending", WebhookDelivery.due_at < now - LATE).limit(100)))


def _taken(session: Session, delivery_id: str) -> bool:
    """Take the delivery for one try if it is due (a job sent again, or the watch and a retry at once, find it
    taken and leave it)."""
    now = utcnow()
    taken = session.execute(update(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending",
        WebhookDelivery.due_at <= now + timedelta(seconds=1)).values(due_at=now + LEASE))
    return taken.rowcount == 1


def _forget_old_deliveries(session: Session, hook_id: str) -> None:
    """A webhook keeps its latest LISTED_DELIVERIES deliveries (what `deliveries` shows) and those still pending."""
    kept = (select(WebhookDelivery.id).where(WebhookDelivery.webhook_id == hook_id)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(LISTED_DELIVERIES))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == hook_id,
                                                  WebhookDelivery.status != "pending",
                                                  WebhookDelivery.id.not_in(kept.scalar_subquery())))


def deliver(db, settings, delivery_id: str) -> None:
    """One try of a delivery (a job; storage.jobs.TryAgain asks for the next, hooks.webhooks.RETRY_DELAYS). A
    webhook switched off or a repository deleted meanwhile is not sent to; a URL that now breaks the rules fails
    the delivery at once. At least once: a try cut off after the receiver answered is tried again."""
    with db.session() as session:
        if not _taken(session, delivery_id):
            return
        delivery = session.get(WebhookDelivery, delivery_id)
        hook = session.get(Webhook, delivery.webhook_id)
        repo = session.get(Repository, hook.repo_id)
        stopped = ("the repository was deleted" if repo is None or repo.deleted_at is not None
                   else "the webhook was switched off" if not hook.active and (
                       delivery.event != "ping" or hook.switched_off_because) else None)
        body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "X-Driftstone-Event": delivery.event, "X-Driftstone-Delivery": delivery.id,
                   "X-Driftstone-Hook-ID": hook.id}
        if hook.secret_sealed is not None and stopped is None:
            secret = secret_box.opened(settings.secret_key, SECRET_PURPOSE, hook.secret_sealed)
            if secret is None:  # sealed under another secret key: unsigned, it would pass for a forgery
                stopped = "the secret cannot be opened (the server's secret key changed): set it again"
            else:
                headers["X-Driftstone-Signature-256"] = signature(secret, body)
        if stopped is not None:
            delivery.status, delivery.error, delivery.due_at = "failed", stopped, None
            return
        url = hook.url
    error, answered, give_up = None, None, False
    try:
        remote = git_remote.checked_remote(url, settings.remote_allow_http, settings.remote_allow_private)
        answered = outbound_http.post(remote, body, headers)
    except (git_remote.RemoteRefused, ValueError) as refused:  # ValueError: a URL http.client cannot send
        error = f"not sent: {refused}"[:300]
        give_up = "could not be resolved" not in error  # a name that may resolve again is tried again
    except OSError as failed:
        error = f"no answer: {failed}"[:300]
    ok = answered is not None and 200 <= answered.status < 300
    with db.session() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None:  # its webhook deleted meanwhile
            return
        delivery.attempts += 1
        delivery.response_status = answered.status if answered else None
        delivery.duration_ms = answered.duration_ms if answered else None
        delivery.error = None if ok else (error or f"answered {answered.status}")
        final = ok or give_up or delivery.attempts > len(RETRY_DELAYS)
        delivery.status = "delivered" if ok else ("failed" if final else "pending")
        delivery.delivered_at = utcnow() if ok else None
        delivery.due_at = None if final else utcnow() + timedelta(seconds=RETRY_DELAYS[delivery.attempts - 1])
        error = delivery.error
        _count_the_try(session, delivery.webhook_id, ok, error)
        if final:
            _forget_old_deliveries(session, delivery.webhook_id)
    if not final:
        raise TryAgain(f"webhook delivery {delivery_id}: {error}")


def _count_the_try(session: Session, hook_id: str, ok: bool, error: str | None) -> None:
    """A try that worked clears the count; the SWITCH_OFF_AFTER-th failed in a row switches the webhook off (in
    SQL: tries of one webhook run side by side)."""
    this_hook = Webhook.id == hook_id
    if ok:
        session.execute(update(Webhook).where(this_hook, Webhook.failures_in_a_row != 0).values(failures_in_a_row=0))
        return
    session.execute(update(Webhook).where(this_hook).values(failures_in_a_row=Webhook.failures_in_a_row + 1))
    because = f"switched off after {SWITCH_OFF_AFTER} failed tries in a row; the last: {error}"[:500]
    session.execute(update(Webhook).where(this_hook, Webhook.active.is_(True),
                                          Webhook.failures_in_a_row >= SWITCH_OFF_AFTER)
                    .values(active=False, switched_off_because=because, updated_at=utcnow()))
