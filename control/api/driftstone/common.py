"""Wire models shared by the Driftstone /v1 resources (camelCase on the wire)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

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


class PageQuery(WireModel):
    page: int = Field(default=1, ge=1, le=100000)
    per_page: int = Field(default=50, ge=1, le=200)


def pagination(query: PageQuery, has_more: bool) -> dict:
    return {"pagination": {"page": query.page, "perPage": query.per_page, "hasMore": has_more}}
