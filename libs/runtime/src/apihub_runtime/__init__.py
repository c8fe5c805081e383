"""apihub runtime: what every apihub service is built from.

Settings and credentials, the consumer-group loop, the atomic committer, dead-lettering,
lifecycle (logging, tracing, signals and drain), the encrypted token store, the fenced lock and
the shared token reader. A service is a thin composition root over these (see
``docs/writing-a-service.md``); the wire contract they speak is ``apihub_core``.
"""

from ._catalog import Catalog, TrSpec
from ._commit import COMMIT_NOTE_FIELD, Append, Committer
from ._consumer import (
    Delivery,
    DeliveryReleased,
    DrainReport,
    StreamConsumer,
    consumer_name,
    ensure_group,
)
from ._dead_letter import dead_letter_event
from ._exit_codes import ExitCode, exit_code_for
from ._fenced_lock import FencedLock, Lease
from ._lifecycle import (
    Service,
    StopSignals,
    configure_logging,
    run_process,
    serve,
)
from ._market_clock import MarketClock
from ._market_settings import (
    DEMO_WATCHLIST,
    ArchiveSettings,
    BackfillSettings,
    CollectorMode,
    CollectorSettings,
    MarketSettings,
    SentinelSettings,
    WatchEntry,
)
from ._secret import Secret
from ._service_main import service_main
from ._settings import (
    AccountConfig,
    AccountRate,
    BreakerSettings,
    CatalogSettings,
    DispatcherSettings,
    RateLimiterSettings,
    Settings,
    TokenKeeperSettings,
    default_rate,
    load_settings,
)
from ._shared_tokens import SharedTokenSource
from ._token_store import StoredToken, TokenKeyError, TokenStore, load_token_key
from ._tokens import AccessToken, TokenSource
from ._tracing import configure_tracing

__all__ = [
    "COMMIT_NOTE_FIELD",
    "DEMO_WATCHLIST",
    "AccessToken",
    "AccountConfig",
    "AccountRate",
    "Append",
    "ArchiveSettings",
    "BackfillSettings",
    "BreakerSettings",
    "Catalog",
    "CatalogSettings",
    "CollectorMode",
    "CollectorSettings",
    "Committer",
    "Delivery",
    "DeliveryReleased",
    "DispatcherSettings",
    "DrainReport",
    "ExitCode",
    "FencedLock",
    "Lease",
    "MarketClock",
    "MarketSettings",
    "RateLimiterSettings",
    "Secret",
    "SentinelSettings",
    "Service",
    "Settings",
    "SharedTokenSource",
    "StopSignals",
    "StoredToken",
    "StreamConsumer",
    "TokenKeeperSettings",
    "TokenKeyError",
    "TokenSource",
    "TokenStore",
    "TrSpec",
    "WatchEntry",
    "configure_logging",
    "configure_tracing",
    "consumer_name",
    "dead_letter_event",
    "default_rate",
    "ensure_group",
    "exit_code_for",
    "load_settings",
    "load_token_key",
    "run_process",
    "serve",
    "service_main",
]
