"""What a token job needs from the store, so every replica can tell when it is already met."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from apihub_runtime import StoredToken

Reason = Literal["requested", "expiring", "invalidated", "startup"]
"""Why the keeper looks at an account (the ``reason`` of ``token.issued``/``token.refreshed``)."""


@dataclass(frozen=True, slots=True)
class Need:
    """A job's condition on the stored token.

    ``stale_fence`` is set for an invalidation: the token written under that fence was rejected
    by the broker, so any token with a greater fence satisfies the job (it has been replaced
    already, by this replica or another). Otherwise the job wants a token that is not due for
    refresh: more than ``refresh_before_ms`` of life left.
    """

    reason: Reason
    stale_fence: int | None = None

    def met_by(self, stored: StoredToken | None, *, now_ms: int, refresh_before_ms: int) -> bool:
        """Whether ``stored`` already gives the job what it wants (so nothing is issued)."""
        if stored is None or stored.expires_at_ms <= now_ms:
            return False
        if self.stale_fence is not None:
            return stored.fence > self.stale_fence
        return stored.expires_at_ms - now_ms > refresh_before_ms
