"""Slugs for organizations and repositories."""
from __future__ import annotations

import re

from storage.errors import Invalid

_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
# First path segments the control plane owns; an org with one of these slugs would shadow its routes.
RESERVED_ORG_SLUGS = {"v1", "api", "healthz", "readyz", "openapi.json", "static", "admin", "internal"}


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.strip().lower()).strip("-.")
    return slug[:100]


def checked_slug(value: str, what: str) -> str:
    if not _SLUG.match(value) or ".." in value or value.endswith((".git", ".lock", ".")):
        raise Invalid(f"invalid {what} slug {value!r}", {"field": what})
    return value


def checked_org_slug(value: str) -> str:
    checked_slug(value, "organization")
    if value in RESERVED_ORG_SLUGS:
        raise Invalid(f"organization slug {value!r} is reserved", {"field": "organization"})
    return value
