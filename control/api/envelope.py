"""The Driftstone envelope: {"success": true, "data": ...} / {"success": false, "error", "code", "details"}."""
from __future__ import annotations

import re
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


def success(data: Any, status: int = 200, **extra: Any):
    body = {"success": True, "data": to_jsonable(data), **{k: to_jsonable(v) for k, v in extra.items()}}
    return jsonify(body), status


def bare(data: Any, status: int = 200):
    return jsonify(to_jsonable(data)), status


BARE_PREFIXES = ("/api/repos/",)  # dojo (seed 004): documented objects without the success envelope
# dojo's API overview (docs.dojo.ninja/api/overview): "400 for bad requests"; /v1 answers field errors with 422
BARE_STATUSES = {422: 400}


def failure(message: str, code: str, status: int, details: dict | None = None, headers: dict | None = None,
            path: str = ""):
    """An error answer. Its message and details often quote what the client sent (a name, a value, a field): a key
    pasted there is blanked out."""
    body = {"error": blank_keys(message), "code": code, "details": _redacted(details or {})}
    if path.startswith(BARE_PREFIXES):
        status = BARE_STATUSES.get(status, status)
        body["details"] = _snake_case_keys(body["details"])  # as every other name on that surface
    else:
        body = {"success": False, **body}
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


_CAPITAL = re.compile(r"(?<=[a-z0-9])([A-Z])")


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
