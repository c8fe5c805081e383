"""apihub embedded: a real ``redis-server`` started as a child process, and finding it again.

``apihub up`` starts one when no ``REDIS_URL`` is given and advertises it in
``<data dir>/hub.json``; ``apihub call`` and friends find it there; the test fixtures start one
when no Docker engine answers. Only the CLI and the tests depend on this package.
"""

from ._embedded import (
    DISCOVERY_FILE,
    EmbeddedRedis,
    EmbeddedRedisError,
    RedisServerNotFound,
    discover_redis_url,
    find_redis_server,
    redis_server_version,
)

__all__ = [
    "DISCOVERY_FILE",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "RedisServerNotFound",
    "discover_redis_url",
    "find_redis_server",
    "redis_server_version",
]
