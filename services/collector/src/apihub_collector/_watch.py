"""The watchlist as targets: ``Settings.watchlist`` is ``[[collector.watch]]``, or
``apihub_runtime.DEMO_WATCHLIST`` when the KIS default account is the simulator's demo account
(five large KOSPI names in swing mode, 005930 in scalp mode)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from apihub_core import Provider
from apihub_runtime import CollectorMode, WatchEntry

from ._scalp import SCALP_TRS


@dataclass(frozen=True, slots=True)
class Target:
    """One symbol of one provider (and account) polled in one mode."""

    provider: Provider
    symbol: str
    mode: CollectorMode
    account: str | None = None

    @property
    def key(self) -> str:
        """``<provider>:<symbol>``: how the collector's hashes name the symbol."""
        return f"{self.provider.value}:{self.symbol}"


def targets(entries: Iterable[WatchEntry]) -> tuple[tuple[Target, ...], tuple[Target, ...]]:
    """The symbols to poll as ``(polled, unsupported)``, each once per mode (the first entry
    naming it decides the account), in watchlist order.
    ``unsupported`` are scalp symbols of a provider scalp mode cannot read yet."""
    seen: set[tuple[str, CollectorMode]] = set()
    polled: list[Target] = []
    unsupported: list[Target] = []
    for entry in entries:
        for symbol in entry.symbols:
            target = Target(entry.provider, symbol, entry.mode, entry.account)
            if (target.key, entry.mode) in seen:
                continue
            seen.add((target.key, entry.mode))
            if entry.mode == "scalp" and entry.provider not in SCALP_TRS:
                unsupported.append(target)
            else:
                polled.append(target)
    return tuple(polled), tuple(unsupported)
