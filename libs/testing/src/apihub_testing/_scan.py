"""Walk every value in a Redis server, so tests can prove a secret never reached it."""

from __future__ import annotations

from collections.abc import Iterator

import redis

__all__ = ["redis_strings"]

_BATCH = 500


def redis_strings(url: str) -> Iterator[tuple[str, str]]:
    """Yield ``(key, text)`` for every piece of text stored in the server at ``url``.

    Every logical database that holds keys is walked with ``SCAN``, whatever database
    the URL names. For each key it yields the key name itself, then: a string's value;
    each hash field and value; each list, set and sorted-set member; each stream
    entry's fields and values. Bytes are decoded as UTF-8 with ``errors="replace"``.
    Sorted-set scores, stream ids and consumer-group names are not yielded.

    Typical use::

        assert not any(secret in text for _, text in redis_strings(redis_url))
    """
    with redis.Redis.from_url(url, single_connection_client=True) as client:
        for db in _databases(client):
            # single_connection_client pins one connection, so SELECT sticks.
            client.execute_command("SELECT", db)
            for raw_key in client.scan_iter(count=_BATCH):
                key = _text(raw_key)
                yield key, key
                for value in _values(client, raw_key):
                    yield key, _text(value)


def _databases(client: redis.Redis) -> list[int]:
    keyspace = client.info("keyspace")
    # INFO keyspace lists only non-empty databases, as "db0", "db3", ...
    return sorted(int(name[2:]) for name in keyspace if name.startswith("db"))


def _values(client: redis.Redis, key: bytes) -> Iterator[bytes | str]:
    kind = _text(client.type(key))
    if kind == "string":
        value = client.get(key)
        if value is not None:
            yield value
    elif kind == "hash":
        for field, value in client.hscan_iter(key, count=_BATCH):
            yield field
            yield value
    elif kind == "list":
        start = 0
        while True:
            chunk = client.lrange(key, start, start + _BATCH - 1)
            yield from chunk
            if len(chunk) < _BATCH:
                break
            start += _BATCH
    elif kind == "set":
        yield from client.sscan_iter(key, count=_BATCH)
    elif kind == "zset":
        for member, _score in client.zscan_iter(key, count=_BATCH):
            yield member
    elif kind == "stream":
        yield from _stream_values(client, key)


def _stream_values(client: redis.Redis, key: bytes) -> Iterator[bytes | str]:
    start = "-"
    while True:
        entries = client.xrange(key, min=start, max="+", count=_BATCH) or []
        for _entry_id, fields in entries:
            for field, value in (fields or {}).items():
                yield field
                yield value
        last_id = entries[-1][0] if entries else None
        if len(entries) < _BATCH or last_id is None:
            return
        # "(" makes the range exclusive (Redis >= 6.2), so the last entry is not repeated.
        start = "(" + _text(last_id)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
