"""/v1/repos/{repo}/webhooks: create (a ping follows), list, get, change, delete, ping, deliveries (admin only;
the secret is never answered)."""
from __future__ import annotations

from flask import Blueprint
from pydantic import Field

from control.services import repos as repo_service
from control.services import webhooks as service

from ..endpoint import Call, endpoint
from ..url_patterns import WEBHOOK_URL_PATTERN
from .common import Timestamp, WholeListQuery, WireModel, whole_or_page

bp = Blueprint("webhooks", __name__)
HOOKS = "/v1/repos/<repo>/webhooks"
ONE = HOOKS + "/<hook_id>"
EVENT_NAMES = {"type": "string", "enum": [*service.EVENTS, "*"]}
URL_REFUSED = {400: "The URL breaks the rules for remote URLs (https, public addresses, no credentials)"}


class CreateWebhook(WireModel):
    url: str = Field(min_length=1, max_length=2048, pattern=WEBHOOK_URL_PATTERN)
    secret: str | None = Field(default=None, max_length=1024)
    events: list[str] = Field(default_factory=lambda: ["push"], min_length=1, max_length=10,
                              json_schema_extra={"items": EVENT_NAMES})
    active: bool = True


class ChangeWebhook(WireModel):
    url: str | None = Field(default=None, min_length=1, max_length=2048, pattern=WEBHOOK_URL_PATTERN)
    secret: str | None = Field(default=None, max_length=1024)
    events: list[str] | None = Field(default=None, min_length=1, max_length=10, json_schema_extra={"items": EVENT_NAMES})
    active: bool | None = None


class WebhookOut(WireModel):
    id: str
    url: str
    events: list[str]
    active: bool
    has_secret: bool
    failures_in_a_row: int
    switched_off_because: str | None
    created_at: Timestamp
    updated_at: Timestamp


class DeliveryOut(WireModel):
    id: str
    event: str
    status: str
    attempts: int
    response_status: int | None
    error: str | None
    duration_ms: int | None
    created_at: Timestamp
    delivered_at: Timestamp | None


class Deleted(WireModel):
    id: str
    deleted: bool = True


def webhook_out(hook) -> WebhookOut:
    return WebhookOut(id=hook.id, url=hook.url, events=hook.events, active=hook.active,
                      has_secret=hook.secret_sealed is not None, failures_in_a_row=hook.failures_in_a_row,
                      switched_off_because=hook.switched_off_because, created_at=hook.created_at,
                      updated_at=hook.updated_at)


def delivery_out(delivery) -> DeliveryOut:
    return DeliveryOut(id=delivery.id, event=delivery.event, status=delivery.status, attempts=delivery.attempts,
                       response_status=delivery.response_status, error=delivery.error,
                       duration_ms=delivery.duration_ms, created_at=delivery.created_at,
                       delivered_at=delivery.delivered_at)


def _repo(call: Call, repo: str):
    return repo_service.visible_repo(call.session, call.principal, repo)


@endpoint(bp, "POST", HOOKS, summary="Create a webhook (a ping delivery follows)", scope="admin", body=CreateWebhook,
          response=WebhookOut, status=201, errors={**URL_REFUSED, 409: "The repository has its most webhooks"})
def create_webhook(call: Call, repo: str, body: CreateWebhook):
    hook, _ = service.create_webhook(call.session, call.context.settings, _repo(call, repo), body.url, body.secret,
                                     body.events, body.active)
    return webhook_out(hook)


@endpoint(bp, "GET", HOOKS, summary="List a repository's webhooks (oldest first)", scope="admin",
          query=WholeListQuery, response=list[WebhookOut], paginated=True)
def list_webhooks(call: Call, repo: str, query: WholeListQuery):
    return whole_or_page(service.list_webhooks(call.session, _repo(call, repo)), query, webhook_out)


@endpoint(bp, "GET", ONE, summary="Get a webhook", scope="admin", response=WebhookOut)
def get_webhook(call: Call, repo: str, hook_id: str):
    return webhook_out(service.get_webhook(call.session, _repo(call, repo), hook_id))


@endpoint(bp, "PATCH", ONE, summary="Change a webhook (secret \"\" or null: none)", scope="admin",
          body=ChangeWebhook, response=WebhookOut, errors=URL_REFUSED)
def change_webhook(call: Call, repo: str, hook_id: str, body: ChangeWebhook):
    changes = body.model_dump(exclude_unset=True)
    for name in ("url", "events", "active"):
        if name in changes and changes[name] is None:
            del changes[name]
    return webhook_out(service.update_webhook(call.session, call.context.settings, _repo(call, repo), hook_id,
                                              changes))


@endpoint(bp, "DELETE", ONE, summary="Delete a webhook and its deliveries", scope="admin", response=Deleted)
def delete_webhook(call: Call, repo: str, hook_id: str):
    service.delete_webhook(call.session, _repo(call, repo), hook_id)
    return Deleted(id=hook_id)


@endpoint(bp, "POST", ONE + "/pings", summary="Send the webhook a ping", scope="admin", response=DeliveryOut,
          status=202)
def ping_webhook(call: Call, repo: str, hook_id: str):
    row = _repo(call, repo)
    return delivery_out(service.ping(call.session, row, service.get_webhook(call.session, row, hook_id)))


@endpoint(bp, "GET", ONE + "/deliveries", summary="A webhook's latest deliveries (newest first, at most 100)",
          scope="admin", response=list[DeliveryOut])
def list_deliveries(call: Call, repo: str, hook_id: str):
    return [delivery_out(d) for d in service.deliveries(call.session, _repo(call, repo), hook_id)]
