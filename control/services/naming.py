"""Slugs for organizations and repositories."""
from __future__ import annotations

import re

from storage.errors import Invalid
from storage.org_slugs import RESERVED_ORG_SLUGS

_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


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
