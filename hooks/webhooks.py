"""Queueing a repository's events for its webhooks: a delivery row per subscribed, active webhook, sent by a job
(control.jobs.deliver_webhook) once the transaction that made the event commits."""
from __future__ import annotations

from typing import Sequence

from sqlalchemy import select

from storage.ids import new_id
from storage.jobs import JobRequest, defer_job
from storage.models import Webhook, WebhookDelivery

DELIVER = "control.jobs.deliver_webhook"
RETRY_DELAYS = (5, 60, 600)  # a receiver down for a deploy gets the event when it is back


def active_webhooks(session, repo_id: str) -> list[Webhook]:
    return list(session.scalars(select(Webhook).where(Webhook.repo_id == repo_id, Webhook.active.is_(True))))


def subscribed(webhooks: Sequence[Webhook], event: str) -> list[Webhook]:
    return [hook for hook in webhooks if event in hook.events or "*" in hook.events]


def queue_event(session, repo_id: str, event: str, payload: dict, webhooks: Sequence[Webhook] | None = None) -> list:
    """Deliveries of `event` to `webhooks`, by default the repository's active ones subscribed to it."""
    if webhooks is None:
        webhooks = subscribed(active_webhooks(session, repo_id), event)
    deliveries = []
    for hook in webhooks:
        delivery = WebhookDelivery(id=new_id("whd"), webhook_id=hook.id, event=event, payload=payload)
        session.add(delivery)
        defer_job(session, delivery_job(delivery.id))
        deliveries.append(delivery)
    return deliveries


DELIVERIES_AT_ONCE = 4  # in each server process: one receiver that never answers holds up no other's


def delivery_job(delivery_id: str) -> JobRequest:
    """In this process, deliveries run on threads of their own: a receiver's seconds hold up no other job."""
    return JobRequest(DELIVER, (delivery_id,), f"deliver-{delivery_id}", RETRY_DELAYS, lane="webhooks",
                      lane_threads=DELIVERIES_AT_ONCE)
