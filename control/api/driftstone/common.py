"""Wire models shared by the Driftstone /v1 resources (camelCase on the wire)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


Timestamp = Annotated[datetime, AfterValidator(_as_utc)]  # SQLite hands back naive UTC datetimes


class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class PageQuery(WireModel):
    page: int = Field(default=1, ge=1, le=100000)
    per_page: int = Field(default=50, ge=1, le=200)


def pagination(query: PageQuery, has_more: bool) -> dict:
    return {"pagination": {"page": query.page, "perPage": query.per_page, "hasMore": has_more}}
