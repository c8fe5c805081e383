"""The brokers apihub speaks to and the request priority classes."""

from __future__ import annotations

import enum
from typing import Literal


class Provider(enum.StrEnum):
    """A broker. The value is what travels on the wire (``provider`` field)."""

    KIS = "KIS"
    KIWOOM = "KIWOOM"

    @classmethod
    def parse(cls, value: str) -> Provider:
        """Case-insensitive lookup; raises ``ValueError`` naming the known providers."""
        try:
            return cls(value.strip().upper())
        except ValueError:
            known = ", ".join(p.value for p in cls)
            raise ValueError(f"unknown provider {value!r} (known: {known})") from None


Priority = Literal["order", "interactive", "collector", "backfill"]
"""Request priority classes, highest first; the rate limiter serves them in this order."""

PRIORITIES: tuple[Priority, ...] = ("order", "interactive", "collector", "backfill")
