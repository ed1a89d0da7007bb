"""Moments in UTC. SQLite hands back naive datetimes; they were stored in UTC."""
from __future__ import annotations

from datetime import datetime, timezone


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def iso_z(value: datetime) -> str:
    """As the API's models write a moment: ISO 8601 in UTC with `Z`."""
    return as_utc(value).isoformat().replace("+00:00", "Z")
