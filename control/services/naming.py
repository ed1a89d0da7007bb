"""Slugs for organizations and repositories."""
from __future__ import annotations

import re

from storage.errors import Invalid
from storage.org_slugs import RESERVED_ORG_SLUGS

_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_ID_SHAPED = re.compile(r"^[a-z]+_[0-9a-f]{24}$")  # storage.ids.new_id's: a slug of that shape could pass for an id
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def folded_slug(text: str) -> str:
    """A slug as a URL may spell it, in the lowercase it is stored in. Only ASCII letters fold: str.lower() turns
    the Kelvin sign into 'k', and `/v1/repos/\u212ax` reached (and deleted) the repository `kx`."""
    return text.translate(_ASCII_LOWER)


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.strip().lower()).strip("-.")
    return slug[:100]


def checked_slug(value: str, what: str, field: str = "slug") -> str:
    """`field`: the request's field the slug came from (a repository's may come from its name)."""
    if not _SLUG.match(value) or ".." in value or value.endswith((".git", ".lock", ".")):
        raise Invalid(f"invalid {what} slug {value!r}", _details(what, field, "not a slug"))
    if _ID_SHAPED.match(value):  # paths take an id or a slug: this one would name another's id
        raise Invalid(f"invalid {what} slug {value!r}: it has the shape of an id",
                      _details(what, field, "the shape of an id"))
    return value


def _details(what: str, field: str, problem: str) -> dict:
    return {"field": what, "fields": [{"loc": field, "msg": problem}]}  # the shape of every other 422's details


def checked_org_slug(value: str) -> str:
    checked_slug(value, "organization")
    if value in RESERVED_ORG_SLUGS:
        raise Invalid(f"organization slug {value!r} is reserved", _details("organization", "slug", "reserved"))
    return value
