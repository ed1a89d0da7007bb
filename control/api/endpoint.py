"""Declarative routes: auth, request parsing and validation with pydantic, the envelope, and the OpenAPI entry.

    @endpoint(bp, "POST", "/v1/repos", body=CreateRepo, response=RepoOut, status=201, scope="admin")
    def create_repo(call: Call, body: CreateRepo) -> RepoOut: ...

The handler gets a `Call` (session, principal, app context) plus path parameters, `body` and `query`.
The session commits when the handler returns, so deferred jobs start only after the commit.
"""
from __future__ import annotations

import functools
import inspect
import json
import math
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes
from typing import Any, Callable

from flask import Blueprint, current_app, request
from pydantic import BaseModel, ValidationError
from werkzeug.routing import BaseConverter

from control.context import AppContext
from storage.errors import DomainError, Invalid, NotFound, TooLarge
from storage.keys import Principal

from .auth import authenticate
from .envelope import bare, data_envelope, success
from .url_patterns import PATTERN_MESSAGES

ROUTES: list["RouteSpec"] = []
IDENT = "[a-z]+_[0-9a-f]{24}"  # storage.ids.new_id's ids: `<ident:...>` in a path takes only such a segment


class IdentConverter(BaseConverter):
    """A path segment that can only be an id, so that a route's literal segment beside it (`files/batch` beside
    `files/<ident:file_id>`) is not also taken for an id (its methods would be advertised on the literal's path)."""

    regex = IDENT


class UnsupportedMediaType(DomainError):
    code, status = "unsupported_media_type", 415


class MalformedJson(DomainError):
    code, status = "invalid_json", 400


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str  # flask syntax
    summary: str
    scope: str | None
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any
    status: int
    tag: str
    raw_body: bool = False
    paginated: bool = False
    errors: tuple[tuple[int, str], ...] = ()  # statuses this route answers beyond the common error set
    # driftstone: {"success", "data"}; data: {"data"} (agirunner); bare: the object itself (dojo); hoody: bare, with
    # hoody's errors
    envelope: str = "driftstone"
    params: tuple[tuple[str, dict], ...] = ()  # JSON Schema keywords for path parameters, e.g. a pattern
    produces: str = "application/json"  # another media type: the handler answers the bytes itself


@dataclass
class Call:
    context: AppContext
    session: Any
    principal: Principal | None

    @property
    def org_id(self) -> str:
        return self.principal.org_id

    def base_url(self) -> str:
        return (self.context.settings.public_url or request.host_url).rstrip("/")


MAX_FIELD_ERRORS = 50
MAX_TEXT_CHARS = 300


def field_errors(fields: list[dict]) -> dict:
    """The `details` of a 422: the first MAX_FIELD_ERRORS problems and how many more there were, so a small
    body with a million bad keys gets a small answer; a location or message quoting a huge key is cut short."""
    shown = [{**field, "loc": _short(field["loc"]), "msg": _short(field["msg"])} for field in fields[:MAX_FIELD_ERRORS]]
    details: dict = {"fields": shown}
    if len(fields) > MAX_FIELD_ERRORS:
        details["omittedFields"] = len(fields) - MAX_FIELD_ERRORS
    return details


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + "..."


def validation_details(error: ValidationError) -> dict:
    return field_errors([{"loc": _location(e["loc"]), "msg": _message(e), "type": e["type"]}
                         for e in error.errors(include_url=False, include_input=False)])


def _message(error: dict) -> str:
    if error["type"] == "string_pattern_mismatch":
        return PATTERN_MESSAGES.get(error.get("ctx", {}).get("pattern"), error["msg"])
    return error["msg"]


def _location(parts: tuple) -> str:
    """The field's path as the client wrote it: pydantic's names of the validators a union tried
    (`function-after[check(), constrained-str]`) are no part of it."""
    return ".".join(str(p) for p in parts if not (isinstance(p, str) and ("[" in p or "(" in p))) or "body"


class _RepeatedKey(Exception):
    def __init__(self, key: str):
        self.key = key


def _normalized_json(raw: bytes) -> bytes:
    """The body for strict validation: standard JSON only (no NaN/Infinity), and integral numbers such as 3.0 as
    integers, because JSON Schema counts 3.0 as an integer while pydantic's strict mode would refuse it."""
    changed = False

    def number(text: str):
        nonlocal changed
        value = float(text)
        if not math.isfinite(value):  # 1e999: stored as Infinity (not JSON), which PostgreSQL refuses
            raise ValueError(f"{text} is out of range")
        if value.is_integer() and abs(value) < 2**53:
            changed = True
            return int(value)
        return value

    def constant(name: str):
        raise ValueError(f"{name} is not JSON")

    def once_each(pairs: list) -> dict:
        seen = set()
        for key, _value in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
        return dict(pairs)

    try:
        document = json.loads(raw, parse_float=number, parse_constant=constant, object_pairs_hook=once_each)
    except _RepeatedKey as repeated:  # a parser keeps the last: {"dry_run": true, "dry_run": false} merged for real
        raise MalformedJson(f"request body gives the key {_short(repeated.key)!r} more than once",
                            {"key": _short(repeated.key)}) from None
    except (ValueError, RecursionError):
        raise MalformedJson("request body is not valid JSON") from None
    return json.dumps(document).encode() if changed else raw


MAX_JSON_BODY = 4 * 1024 * 1024  # JSON requests carry metadata; file contents go through raw-body routes


def read_json_body(limit: int = MAX_JSON_BODY) -> bytes:
    """The request body, refused with 413 beyond `limit` bytes before more than that is read (chunked too)."""
    if (request.content_length or 0) > limit:
        raise TooLarge(f"a JSON request body may be at most {limit} bytes", {"limit": limit})
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise TooLarge(f"a JSON request body may be at most {limit} bytes", {"limit": limit})
    return raw


def _refuse_nul_strings(raw: bytes) -> None:
    """No stored text may hold NUL (PostgreSQL refuses it): name each string that does, like a field error."""
    import json

    try:
        document = json.loads(raw)
    except ValueError:
        return  # not JSON: validation reports it
    found: list[str] = []

    def walk(value, loc: str) -> None:
        if isinstance(value, str) and "\x00" in value:
            found.append(loc or "body")
        elif isinstance(value, dict):
            for key, item in value.items():
                where = f"{loc}.{key}" if loc else str(key)
                if "\x00" in key:
                    found.append(where)
                walk(item, where)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{loc}.{index}" if loc else str(index))

    walk(document, "")
    if found:
        raise Invalid("strings may not contain NUL", field_errors(
            [{"loc": loc, "msg": "may not contain NUL", "type": "string_nul"} for loc in found]))


def parse_body(model: type[BaseModel], limit: int = MAX_JSON_BODY) -> BaseModel:
    mimetype = request.mimetype or ""
    raw = read_json_body(limit)
    if mimetype not in ("application/json", "") and not mimetype.endswith("+json"):
        if not (mimetype == "application/x-www-form-urlencoded" and raw.lstrip().startswith((b"{", b"["))):
            raise UnsupportedMediaType(f"expected application/json, got {mimetype}")
    if b"\\u0000" in raw:
        _refuse_nul_strings(raw)
    try:
        # strict: JSON types as documented (no "1" for an integer, no 1 for a boolean, no number for a date)
        return model.model_validate_json(_normalized_json(raw or b"{}"), strict=True)
    except ValidationError as error:
        if any(e["type"] == "json_invalid" for e in error.errors()):
            raise MalformedJson("request body is not valid JSON") from None
        raise Invalid("request body is invalid", validation_details(error)) from None


def parse_query(model: type[BaseModel]) -> BaseModel:
    if any("\x00" in value for value in request.args.values()):
        raise Invalid("query parameters may not contain NUL", {"fields": [{"loc": "query", "msg": "contains NUL"}]})
    if not _query_is_utf8():
        raise Invalid("the query string is not valid UTF-8 once percent-decoded",
                      {"fields": [{"loc": "query", "msg": "not valid UTF-8"}]})
    repeated = [name for name, values in request.args.lists() if len(values) > 1]
    if repeated:  # one of them would be used and the others dropped without a word
        raise Invalid(f"query parameter {_short(repeated[0])!r} is given more than once",
                      field_errors([{"loc": name, "msg": "given more than once"} for name in repeated]))
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as error:
        raise Invalid("query parameters are invalid", validation_details(error)) from None


def _query_is_utf8() -> bool:
    """werkzeug keeps bytes that are not UTF-8 as their escapes: `?path=%FF` and `?path=%25FF` named one folder."""
    raw = request.environ.get("QUERY_STRING", "").encode("latin-1")
    try:
        for part in raw.replace(b"+", b" ").replace(b";", b"&").split(b"&"):
            unquote_to_bytes(part).decode("utf-8")
    except UnicodeError:
        return False
    return True


def _path_is_utf8() -> bool:
    """werkzeug replaces bytes that are not UTF-8 with U+FFFD, so two different paths would name one file."""
    try:
        request.environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
    except UnicodeError:
        return False
    return True


def _check_request_shape(path_params: dict[str, str], raw_body: bool) -> None:
    if any("\x00" in value for value in path_params.values()):
        raise NotFound("no such resource")  # no stored name contains NUL (PostgreSQL text cannot)
    if any("\ufffd" in value for value in path_params.values()) and not _path_is_utf8():
        raise Invalid("the URL path is not valid UTF-8 once percent-decoded",
                      {"fields": [{"loc": "path", "msg": "not valid UTF-8"}]})
    if raw_body and request.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        raise UnsupportedMediaType("the body is the file's raw bytes; Content-Encoding is not accepted")


def endpoint(bp: Blueprint, method: str, path: str, *, summary: str, scope: str | None = "read",
             body: type[BaseModel] | None = None, query: type[BaseModel] | None = None, response: Any = None,
             status: int = 200, tag: str = "driftstone", raw_body: bool = False, paginated: bool = False,
             errors: dict[int, str] | None = None, envelope: str = "driftstone",
             params: dict[str, dict] | None = None, produces: str = "application/json",
             max_body: int = MAX_JSON_BODY):
    """`path` is the full path (for OpenAPI); the blueprint must have no url_prefix.

    `errors` documents statuses the handler answers (in the error envelope) beyond the common set; `params`
    documents path parameters beyond "a non-empty segment" (e.g. {"sha": {"pattern": ...}})."""

    def register(handler: Callable):
        spec = RouteSpec(method, path, summary, scope, body, query, response, status, tag, raw_body, paginated,
                         tuple(sorted((errors or {}).items())), envelope=envelope,
                         params=tuple(sorted((params or {}).items())), produces=produces)
        ROUTES.append(spec)
        wants = inspect.signature(handler).parameters

        @functools.wraps(handler)
        def view(**path_params):
            context: AppContext = current_app.config["DRIFTSTONE"]
            with context.db.session() as session:
                # first: a caller without a valid key learns nothing else, not even what is wrong with the URL
                principal = authenticate(session, scope) if scope else None
                _check_request_shape(path_params, raw_body)
                kwargs: dict[str, Any] = dict(path_params)
                if body is not None:
                    kwargs["body"] = parse_body(body, max_body)
                if query is not None:
                    kwargs["query"] = parse_query(query)
                if "call" in wants:
                    kwargs["call"] = Call(context=context, session=session, principal=principal)
                result = handler(**kwargs)
            if hasattr(result, "status_code") and hasattr(result, "headers"):
                return result
            data, extra = result if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict) \
                else (result, {})
            if envelope in ("bare", "hoody"):
                return bare(data, status)
            if envelope == "data":
                return data_envelope(data, status, **extra)
            return success(data, status, **extra)

        # No automatic OPTIONS: an undocumented method answers 405 (with Allow) in the envelope, like any other.
        bp.add_url_rule(path, endpoint=handler.__name__, view_func=view, methods=[method],
                        provide_automatic_options=False)
        return handler

    return register
