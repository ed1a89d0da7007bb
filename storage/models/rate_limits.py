from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class RateWindow(Base):
    """Calls counted for one key of a rate limit in one fixed window (storage/rate_limits.py)."""

    __tablename__ = "rate_windows"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    slot: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # seconds since 1970 // window
    calls: Mapped[int] = mapped_column(default=0)
