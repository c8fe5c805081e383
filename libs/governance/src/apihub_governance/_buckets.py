"""Budgets as the gatekeeper sees them: sliding windows, buckets and permits.

A :class:`Bucket` is one budget of the broker (an app key, or one api-id of an app key) with one
or more sliding :class:`Window`\\ s. A call charges every bucket :func:`buckets_for` returns and is
granted a :class:`Permit` only when all of them have room.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from apihub_runtime import AccountConfig

SECOND_MS: Final = 1_000
"""Length of a per-second window."""

MINUTE_MS: Final = 60_000
"""Length of a per-minute window; a wait on a window this long or longer is ``per_minute``."""


@dataclass(frozen=True, slots=True)
class Window:
    """One sliding-window rule: at most ``limit`` permits in any ``window_ms`` milliseconds."""

    limit: int
    window_ms: int

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_ms < 1:
            raise ValueError(f"a window needs limit >= 1 and window_ms >= 1, got {self}")


@dataclass(frozen=True, slots=True)
class Bucket:
    """One budget of the broker. ``name`` (e.g. ``KIS:default`` or ``KIWOOM:default:ka10081``)
    is part of the bucket's Redis keys and of every rate-limit event about it."""

    name: str
    provider: str
    account: str
    windows: tuple[Window, ...]


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to make one call (or ``cost`` calls) that charges ``buckets``.

    ``granted_at_ms`` is on the limiter Redis's clock (the gatekeeper) or this machine's wall
    clock (:class:`~apihub_governance.LocalLimiter`); ``requested_at`` is ``anyio.current_time()``
    when the granting request left this process: the start of the jitter sample that
    ``observe()`` completes.
    """

    buckets: tuple[Bucket, ...]
    granted_at_ms: float
    waited_ms: float
    margin_ms: float
    requested_at: float


def buckets_for(account: AccountConfig, api_id: str) -> tuple[Bucket, ...]:
    """The buckets a call of ``api_id`` on ``account`` charges.

    KIS: one account bucket (``per_second`` / ``per_minute`` windows). Kiwoom: the account bucket
    (if ``per_second`` or ``per_minute`` is set) plus one bucket per api-id
    (``per_api_id_per_second``). An account with no limit at all charges nothing.
    """
    provider = str(account.provider)
    rate = account.rate
    buckets: list[Bucket] = []
    account_windows = tuple(
        Window(limit, length)
        for limit, length in ((rate.per_second, SECOND_MS), (rate.per_minute, MINUTE_MS))
        if limit is not None
    )
    if account_windows:
        buckets.append(
            Bucket(f"{provider}:{account.name}", provider, account.name, account_windows)
        )
    if rate.per_api_id_per_second is not None:
        buckets.append(
            Bucket(
                f"{provider}:{account.name}:{api_id}",
                provider,
                account.name,
                (Window(rate.per_api_id_per_second, SECOND_MS),),
            )
        )
    return tuple(buckets)
