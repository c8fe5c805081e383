"""apihub core: events, stream names, codec, settings, errors and the HubClient.

Services meet only through the streams named in :class:`Keys`, carrying the events defined here.
"""

from ._client import HubClient, Response, raise_for_failure
from ._codec import EntryDecodeError, decode_any, decode_outcome, decode_request, encode_entry
from ._consumer import Delivery, StreamConsumer, consumer_name, ensure_group
from ._dead_letter import dead_letter_event
from ._embedded_redis import (
    EmbeddedRedis,
    EmbeddedRedisError,
    RedisServerNotFound,
    discover_redis_url,
    find_redis_server,
    redis_server_version,
)
from ._errors import (
    ConfigurationError,
    ErrorClass,
    HubError,
    HubUnavailable,
    OutcomeUnknown,
    RequestInvalid,
    RequestTimeout,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTransient,
    error_type_for,
)
from ._events import (
    SCHEMA_VERSION,
    AnyEvent,
    DeadLettered,
    Event,
    Outcome,
    RequestFailed,
    RequestSubmitted,
    ResponseReceived,
    now_ms,
)
from ._keys import Keys
from ._providers import PRIORITIES, Priority, Provider
from ._secret import Secret
from ._settings import AccountConfig, DispatcherSettings, Settings, load_settings
from ._sync_client import SyncHubClient

__all__ = [
    "PRIORITIES",
    "SCHEMA_VERSION",
    "AccountConfig",
    "AnyEvent",
    "ConfigurationError",
    "DeadLettered",
    "Delivery",
    "DispatcherSettings",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "EntryDecodeError",
    "ErrorClass",
    "Event",
    "HubClient",
    "HubError",
    "HubUnavailable",
    "Keys",
    "Outcome",
    "OutcomeUnknown",
    "Priority",
    "Provider",
    "RedisServerNotFound",
    "RequestFailed",
    "RequestInvalid",
    "RequestSubmitted",
    "RequestTimeout",
    "Response",
    "ResponseReceived",
    "Secret",
    "Settings",
    "StreamConsumer",
    "SyncHubClient",
    "UpstreamAuthError",
    "UpstreamError",
    "UpstreamRateLimited",
    "UpstreamRejected",
    "UpstreamTransient",
    "consumer_name",
    "dead_letter_event",
    "decode_any",
    "decode_outcome",
    "decode_request",
    "discover_redis_url",
    "encode_entry",
    "ensure_group",
    "error_type_for",
    "find_redis_server",
    "load_settings",
    "now_ms",
    "raise_for_failure",
    "redis_server_version",
]
