"""A wrapper that keeps credentials out of logs, reprs, tracebacks and encoded events."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final, NoReturn

_MASK: Final = "********"


class Secret:
    """A credential (app key, app secret, access token) that refuses to be printed.

    ``str()``/``repr()`` show a mask; only :meth:`reveal` gives the value, so every place that
    sends a secret over the wire is easy to find with grep. It cannot be pickled or encoded by
    accident: msgspec and json reject unknown types, and ``__reduce__`` raises.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value itself. Call only where it is sent to the broker or stored encrypted."""
        return self._value

    def fingerprint(self) -> str:
        """A short, stable, non-reversible identifier safe for logs and metrics."""
        return hashlib.sha256(self._value.encode()).hexdigest()[:10]

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret values cannot be pickled")
