"""apihub testing helpers; the pytest fixtures live in :mod:`apihub_testing.plugin`."""

from ._redis import RedisServer
from ._scan import redis_strings
from ._wait import async_wait_until, wait_until

__all__ = [
    "RedisServer",
    "async_wait_until",
    "redis_strings",
    "wait_until",
]
