"""Wire models shared by the Driftstone /v1 resources (camelCase on the wire)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Callable

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from storage.times import as_utc


Timestamp = Annotated[datetime, AfterValidator(as_utc)]  # SQLite hands back naive UTC datetimes


# git check-ref-format for a branch (refs/heads/<name>), plus: no component starts with '-', not HEAD, at most
# 255 characters (components at most 250 bytes, which a pattern cannot say). The server checks
# names with hooks.refs.branch_name_problem; this is the same rule for the document (a unit test keeps them equal).
BRANCH_NAME_PATTERN = (r"^(?![./-])(?!HEAD$)(?=.{1,255}$)(?!.*(?:\.\.|@\{|//|/[./-]|\.lock/|\.lock$|/$|\.$))"
                       r"[^\x00-\x20\x7f~^:?*\[\\]+$")
# A repository name needs one ASCII letter or digit to make a slug of (see control.services.repos.repo_slug).
REPO_NAME_PATTERN = r"[A-Za-z0-9]"


class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


DEFAULT_PER_PAGE = 50


class PageQuery(WireModel):
    page: int = Field(default=1, ge=1, le=100000)
    per_page: int = Field(default=DEFAULT_PER_PAGE, ge=1, le=200)


def pagination(query: PageQuery, has_more: bool) -> dict:
    return {"pagination": {"page": query.page, "perPage": query.per_page, "hasMore": has_more}}


class WholeListQuery(WireModel):
    """A list the document returns whole: whole unless `page` or `perPage` is given, then one page of it."""

    page: int | None = Field(default=None, ge=1, le=100000)
    per_page: int | None = Field(default=None, ge=1, le=200)


def whole_or_page(items: list, query: WholeListQuery, out: Callable):
    """The whole list, or, when `page` or `perPage` is given, that page with its pagination; `out` makes each
    answered item (those of the page only: a stack's answer runs a dry-run merge)."""
    if query.page is None and query.per_page is None:
        return [out(item) for item in items]
    paged = PageQuery(page=query.page or 1, per_page=query.per_page or DEFAULT_PER_PAGE)
    start = (paged.page - 1) * paged.per_page
    page = items[start:start + paged.per_page]
    return [out(item) for item in page], pagination(paged, len(items) > start + paged.per_page)
