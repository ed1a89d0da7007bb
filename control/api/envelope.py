"""The Driftstone envelope: {"success": true, "data": ...} / {"success": false, "error", "code", "details"}."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Any

from flask import jsonify
from pydantic import BaseModel

from storage.key_format import blank_keys


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    return value


def data_envelope(data: Any, status: int = 200, meta: dict | None = None):
    """agirunner's success envelope: {"data": ...} and its `meta` (a list's page, the request's id and time)."""
    return jsonify({"data": to_jsonable(data), "meta": page_meta(**to_jsonable(meta or {}))}), status


def success(data: Any, status: int = 200, **extra: Any):
    body = {"success": True, "data": to_jsonable(data), **{k: to_jsonable(v) for k, v in extra.items()}}
    return jsonify(body), status


def bare(data: Any, status: int = 200):
    return jsonify(to_jsonable(data)), status


BARE_PREFIXES = ("/api/repos/",)  # dojo (seed 004): documented objects without the success envelope
# dojo's API overview (docs.dojo.ninja/api/overview): "400 for bad requests"; /v1 answers field errors with 422
BARE_STATUSES = {422: 400}


AGIRUNNER_PREFIX = "/api/v1/"  # agirunner (seed 002): {"data": ...}; errors {"error": {"code", ...}, "meta": {...}}
# agirunner's codes (its platform API's domain errors); the others are ours, upper-cased alike
AGIRUNNER_CODES = {"invalid": "SCHEMA_VALIDATION_FAILED", "bad_request": "VALIDATION_ERROR",
                   "invalid_json": "VALIDATION_ERROR", "unauthenticated": "UNAUTHORIZED",
                   "too_large": "PAYLOAD_TOO_LARGE", "unavailable": "SERVICE_UNAVAILABLE", "internal": "INTERNAL_ERROR"}


HOODY_PATH = re.compile(r"^/api/v1/workspaces/[^/]+/branches(/|$)")  # hoody (seed 003): its three error shapes
HOODY_STATUSES = {422: 400}  # its schema failures are "Invalid request" (400)


def failure(message: str, code: str, status: int, details: dict | None = None, headers: dict | None = None,
            path: str = ""):
    """An error answer. Its message and details often quote what the client sent (a name, a value, a field): a key
    pasted there is blanked out."""
    body = {"error": blank_keys(message), "code": code, "details": _redacted(details or {})}
    if HOODY_PATH.match(path):
        status = HOODY_STATUSES.get(status, status)
        body = _hoody_error(body, status)
    elif path.startswith(AGIRUNNER_PREFIX):
        body = {"error": {"code": AGIRUNNER_CODES.get(code, code.upper()), **_agirunner_error(body)}, "meta": page_meta()}
    elif path.startswith(BARE_PREFIXES):
        status = BARE_STATUSES.get(status, status)
        body["details"] = _snake_case_keys(body["details"])  # as every other name on that surface
    else:
        body = {"success": False, **body}
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _hoody_error(body: dict, status: int) -> dict:
    """404 {"name": "NotFoundError", "data": {"message"}}; 429 {"error", "retryAfterMs"}; any other
    {"success": false, "errors": [{"message", "code", "details"}], "data": null}. Codes as the document's tables
    write them (REMOTE_NOT_CONFIGURED, INVALID_REMOTE_NAME, REMOTE_RATE_LIMITED, ...)."""
    code = body["code"].upper()
    if status == 404:
        return {"name": "NotFoundError", "data": {"message": body["error"], "code": code}}
    if status == 429:
        return {"error": body["error"], "retryAfterMs": body["details"].get("retryAfterMs", 1000), "code": code}
    return {"success": False, "errors": [{"message": body["error"], "code": code, "details": body["details"]}],
            "data": None}


_CAPITAL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _agirunner_error(body: dict) -> dict:
    """Schema failures as agirunner words them: "Invalid request body: <first problem>", the problems as zod's
    flatten() lists them (details.issues.fieldErrors by field)."""
    details = body["details"]
    if "fields" not in details:
        return {"message": body["error"], "details": _snake_case_keys(details)}
    form_errors, field_errors = [], {}
    for field in details["fields"]:
        if field["loc"] == "body":  # about the body as a whole
            form_errors.append(field["msg"])
        else:
            field_errors.setdefault(field["loc"], []).append(field["msg"])
    first = (form_errors or next(iter(field_errors.values()), [body["error"]]))[0]
    return {"message": f"Invalid request body: {first}",
            "details": {"issues": {"formErrors": form_errors, "fieldErrors": field_errors}}}


def page_meta(**extra: Any) -> dict:
    """agirunner's `meta`, on every answer: the request's id and when it was answered."""
    return {**extra, "request_id": uuid.uuid4().hex, "timestamp": _now_iso()}


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _snake_case_keys(value: Any) -> Any:
    if isinstance(value, list):
        return [_snake_case_keys(item) for item in value]
    if isinstance(value, dict):
        return {_CAPITAL.sub(r"_\1", key).lower(): _snake_case_keys(item) for key, item in value.items()}
    return value


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return blank_keys(value)
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    if isinstance(value, dict):
        return {_redacted(key): _redacted(item) for key, item in value.items()}
    return value
