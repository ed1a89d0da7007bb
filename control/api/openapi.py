"""OpenAPI 3.1 document generated from the declared routes and their pydantic models."""
from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, TypeAdapter

from .endpoint import IDENT, ROUTES, RouteSpec
from .envelope import BARE_STATUSES, HOODY_STATUSES

REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")

ERROR_SCHEMA = {
    "type": "object",
    "required": ["success", "error", "code", "details"],
    "properties": {
        "success": {"const": False},
        "error": {"type": "string"},
        "code": {"type": "string"},
        "details": {"type": "object"},
    },
}
ERROR_STATUSES = {"400": "Malformed request", "401": "Missing or invalid API key", "403": "Not allowed",
                  "404": "Not found", "409": "Conflict", "413": "Too large", "414": "URI too long (the server's limit)",
                  "415": "Unsupported media type", "422": "Invalid input", "423": "Locked", "429": "Rate limited",
                  "503": "Database unavailable or busy: nothing changed, retry (Retry-After)"}


BARE_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "code", "details"],
    "properties": {"error": {"type": "string"}, "code": {"type": "string"}, "details": {"type": "object"}},
}


DATA_ERROR_SCHEMA = {  # agirunner
    "type": "object",
    "required": ["error", "meta"],
    "properties": {
        "error": {"type": "object", "required": ["code", "message"],
                  "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}},
        "meta": {"type": "object", "required": ["request_id", "timestamp"],
                 "properties": {"request_id": {"type": "string"}, "timestamp": {"type": "string"}}},
    },
}
HOODY_ERROR_SCHEMAS = {  # by status (control.api.envelope._hoody_error)
    "HoodyError": {"type": "object", "required": ["success", "errors", "data"], "properties": {
        "success": {"const": False}, "data": {"type": "null"},
        "errors": {"type": "array", "items": {"type": "object", "required": ["message"],
                                              "properties": {"message": {"type": "string"}}}}}},
    "HoodyNotFound": {"type": "object", "required": ["name", "data"], "properties": {
        "name": {"const": "NotFoundError"},
        "data": {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}}}},
    "HoodyRateLimited": {"type": "object", "required": ["error", "retryAfterMs"], "properties": {
        "error": {"type": "string"}, "retryAfterMs": {"type": "integer"}}},
}
ERROR_MODELS = {"driftstone": "Error", "bare": "BareError", "data": "DataError", "hoody": "HoodyError"}
HOODY_STATUS_MODELS = {"404": "HoodyNotFound", "429": "HoodyRateLimited"}


class _Schemas:
    def __init__(self):
        self.components: dict[str, Any] = {"Error": ERROR_SCHEMA, "BareError": BARE_ERROR_SCHEMA,
                                           "DataError": DATA_ERROR_SCHEMA, **HOODY_ERROR_SCHEMAS}

    def of(self, annotation: Any, mode: str) -> dict:
        schema = TypeAdapter(annotation).json_schema(ref_template=REF, mode=mode)
        for name, definition in schema.pop("$defs", {}).items():
            self._add(name, definition)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and "title" in schema:
            name = annotation.__name__
            self._add(name, schema)
            return {"$ref": REF.format(model=name)}
        return schema

    def _add(self, name: str, definition: dict) -> None:
        """Components are named by class: two surfaces' models of one name would silently share a schema."""
        if self.components.get(name, definition) != definition:
            raise ValueError(f"two different models are both named {name!r} in the OpenAPI document")
        self.components[name] = definition


def _parameters(spec: RouteSpec, schemas: _Schemas) -> tuple[str, list[dict]]:
    params = []
    for converter, name in _PARAM.findall(spec.path):
        pattern = {"path": None, "ident": f"^{IDENT}$"}.get(converter, "^[^/]+$")
        params.append({"name": name, "in": "path", "required": True,
                       "schema": {"type": "string", "minLength": 1, **({"pattern": pattern} if pattern else {}),
                                  **dict(spec.params).get(name, {})}})
    if spec.query is not None:
        query_schema = spec.query.model_json_schema(ref_template=REF)
        required = set(query_schema.get("required", []))
        for name, prop in query_schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    return _PARAM.sub(r"{\2}", spec.path), params


def _needs_fields(model) -> bool:
    extra = model.model_config.get("json_schema_extra") or {}
    return isinstance(extra, dict) and any(key in extra for key in ("anyOf", "allOf", "minProperties"))


def build_openapi(title: str = "Driftstone API", version: str = "1") -> dict:
    schemas = _Schemas()
    paths: dict[str, dict] = {}
    for spec in ROUTES:
        path, params = _parameters(spec, schemas)
        operation: dict[str, Any] = {"summary": spec.summary, "tags": [spec.tag],
                                     "operationId": f"{spec.method.lower()}_{re.sub(r'[^a-zA-Z0-9]+', '_', path).strip('_')}"}
        if params:
            operation["parameters"] = params
        if spec.body is not None:
            # a missing body is read as {} (endpoint.parse_body): required only where {} is not a valid body
            needed = bool(spec.body.model_json_schema().get("required")) or _needs_fields(spec.body)
            operation["requestBody"] = {"required": needed, "content": {
                "application/json": {"schema": schemas.of(spec.body, "validation")}}}
        elif spec.raw_body:
            operation["requestBody"] = {"required": False, "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
        data_schema = schemas.of(spec.response, "serialization") if spec.response is not None else {}
        envelope = {"type": "object", "required": ["success", "data"],
                    "properties": {"success": {"const": True}, "data": data_schema}}
        if spec.envelope in ("bare", "hoody"):
            envelope = data_schema
        elif spec.envelope == "data":
            envelope = {"type": "object", "required": ["data"], "properties": {"data": data_schema}}
            if spec.paginated:
                envelope["required"].append("meta")
                envelope["properties"]["meta"] = {"$ref": REF.format(model="PageMeta")}
                schemas.components["PageMeta"] = {
                    "type": "object", "required": ["total", "page", "per_page", "pages"],
                    "properties": {name: {"type": "integer"} for name in ("total", "page", "per_page", "pages")}}
        if spec.paginated and spec.envelope == "driftstone":
            envelope["properties"]["pagination"] = {"$ref": REF.format(model="Pagination")}
            schemas.components["Pagination"] = {
                "type": "object", "required": ["page", "perPage", "hasMore"],
                "properties": {"page": {"type": "integer"}, "perPage": {"type": "integer"},
                               "hasMore": {"type": "boolean"}}}
        responses = {str(spec.status): {"description": "OK", "content": {"application/json": {"schema": envelope}}}}
        if spec.status == 204:
            responses = {"204": {"description": "Done (no content)"}}
        elif spec.produces != "application/json":
            responses = {str(spec.status): {"description": "OK", "content": {
                spec.produces: {"schema": {"type": "string", "format": "binary"}}}}}
        for status, description in [*ERROR_STATUSES.items(), *((str(code), text) for code, text in spec.errors)]:
            if int(status) in {"bare": BARE_STATUSES, "hoody": HOODY_STATUSES}.get(spec.envelope, {}):
                continue  # answered with another status on that surface
            model = ERROR_MODELS[spec.envelope]
            if spec.envelope == "hoody":
                model = HOODY_STATUS_MODELS.get(status, model)
            responses[status] = {"description": description,
                                 "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}}}
        operation["responses"] = responses
        if spec.scope:
            operation["security"] = [{"bearer": []}]
        paths.setdefault(path, {})[spec.method.lower()] = operation
    paths["/openapi.json"] = {"get": {
        "summary": "This document (no auth)", "tags": ["meta"], "operationId": "get_openapi_json",
        "responses": {"200": {"description": "The OpenAPI 3.1 document of this server",
                              "content": {"application/json": {"schema": {"type": "object",
                                                                          "required": ["openapi", "paths"]}}}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": schemas.components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
