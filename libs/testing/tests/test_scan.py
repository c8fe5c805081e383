"""redis_strings walks every data type, every database and long collections."""

from __future__ import annotations

import redis

from apihub_testing import redis_strings


def test_finds_text_in_every_data_type(redis_url: str, hub_namespace: str) -> None:
    ns = hub_namespace
    with redis.Redis.from_url(redis_url) as client:
        client.set(f"{ns}:string", "secret-string")
        client.hset(f"{ns}:hash", mapping={"secret-field": "secret-hash-value"})
        client.rpush(f"{ns}:list", "a", "secret-list")
        client.sadd(f"{ns}:set", "secret-set")
        client.zadd(f"{ns}:zset", {"secret-zset": 1.5})
        client.xadd(f"{ns}:stream", {"secret-stream-field": "secret-stream-value"})
        client.set(f"{ns}:binary", b"\xffsecret-binary")
        client.set(f"{ns}:secret-in-key-name", "x")

    found = set(redis_strings(redis_url))

    assert {
        (f"{ns}:string", "secret-string"),
        (f"{ns}:hash", "secret-field"),
        (f"{ns}:hash", "secret-hash-value"),
        (f"{ns}:list", "secret-list"),
        (f"{ns}:set", "secret-set"),
        (f"{ns}:zset", "secret-zset"),
        (f"{ns}:stream", "secret-stream-field"),
        (f"{ns}:stream", "secret-stream-value"),
        (f"{ns}:binary", "\ufffdsecret-binary"),
        (f"{ns}:secret-in-key-name", f"{ns}:secret-in-key-name"),
    } <= found


def test_walks_every_database(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        client.execute_command("SELECT", 3)
        client.set("elsewhere", "secret-in-db3")
    assert ("elsewhere", "secret-in-db3") in set(redis_strings(redis_url))


def test_pages_through_long_lists_and_streams(redis_url: str) -> None:
    count = 1234  # more than two pages of 500
    with redis.Redis.from_url(redis_url) as client:
        client.rpush("long-list", *(f"item-{i}" for i in range(count)))
        with client.pipeline(transaction=False) as pipe:
            for i in range(count):
                pipe.xadd("long-stream", {"n": f"entry-{i}"})
            pipe.execute()

    texts = [text for key, text in redis_strings(redis_url) if key != text]
    assert sorted(t for t in texts if t.startswith("item-")) == sorted(
        f"item-{i}" for i in range(count)
    )
    # Exactly once each: the exclusive range does not repeat a page's last entry.
    assert sorted(t for t in texts if t.startswith("entry-")) == sorted(
        f"entry-{i}" for i in range(count)
    )


def test_empty_server_yields_nothing(redis_url: str) -> None:
    assert list(redis_strings(redis_url)) == []
