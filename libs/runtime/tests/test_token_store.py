"""Fenced refresh lock and the encrypted token store, against a real Redis."""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from apihub_core import Keys
from apihub_runtime import (
    FencedLock,
    Secret,
    StoredToken,
    TokenKeyError,
    TokenStore,
    load_token_key,
)
from apihub_testing import redis_strings

pytestmark = pytest.mark.anyio

TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.payload-that-must-never-be-seen-in-clear"


def _lock(aredis: aioredis.Redis, keys: Keys) -> FencedLock:
    return FencedLock(
        aredis,
        keys.token_lock("KIS", "main"),
        keys.token_fence("KIS", "main"),
        keys.lock_contention,
    )


def _token(fence: int, value: str = TOKEN) -> StoredToken:
    return StoredToken(Secret(value), expires_at_ms=2_000, issued_at_ms=1_000, fence=fence)


async def test_only_one_holder_and_fences_increase(
    aredis: aioredis.Redis, hub_namespace: str
) -> None:
    keys = Keys(hub_namespace)
    lock = _lock(aredis, keys)
    first = await lock.try_acquire(ttl_ms=10_000)
    assert first is not None
    assert await lock.try_acquire(ttl_ms=10_000) is None, "held: a second caller is refused"
    assert await lock.contention() == 1
    assert await lock.release(first)
    second = await lock.try_acquire(ttl_ms=10_000)
    assert second is not None
    assert second.fence > first.fence


async def test_a_lost_fence_counter_never_hands_out_a_fence_below_the_guarded_one(
    aredis: aioredis.Redis, hub_namespace: str
) -> None:
    keys = Keys(hub_namespace)
    lock = _lock(aredis, keys)
    lease = await lock.try_acquire(ttl_ms=10_000, above=41)
    assert lease is not None
    assert lease.fence == 42
    assert await lock.release(lease)
    following = await lock.try_acquire(ttl_ms=10_000, above=3)
    assert following is not None
    assert following.fence == 43, "an older floor changes nothing"


async def test_an_expired_holder_cannot_release_its_successor(
    aredis: aioredis.Redis, hub_namespace: str
) -> None:
    keys = Keys(hub_namespace)
    lock = _lock(aredis, keys)
    stale = await lock.try_acquire(ttl_ms=10_000)
    assert stale is not None
    await aredis.delete(lock.key)  # the stale holder's lease ran out
    current = await lock.try_acquire(ttl_ms=10_000)
    assert current is not None
    assert not await lock.release(stale)
    assert not await lock.extend(stale, 10_000)
    assert await aredis.get(lock.key) == current.owner.encode()
    assert await lock.extend(current, 20_000)
    assert 10_000 < await aredis.pttl(lock.key) <= 20_000


async def test_a_stale_writer_loses_to_a_newer_fence(
    aredis: aioredis.Redis, hub_namespace: str
) -> None:
    store = TokenStore(aredis, secrets.token_bytes(32))
    key = Keys(hub_namespace).token("KIS", "main")
    assert await store.put(key, _token(fence=2, value="new-token-from-fence-2"))
    assert not await store.put(key, _token(fence=1, value="old-token-from-fence-1"))
    assert not await store.put(key, _token(fence=2, value="same-fence-again"))
    stored = await store.get(key)
    assert stored is not None
    assert stored.value.reveal() == "new-token-from-fence-2"
    assert stored.fence == 2
    assert await store.put(key, _token(fence=3, value="newer"))


async def test_the_raw_redis_value_never_holds_the_token(
    aredis: aioredis.Redis, hub_namespace: str, redis_url: str
) -> None:
    store = TokenStore(aredis, secrets.token_bytes(32))
    key = Keys(hub_namespace).token("KIS", "main")
    assert await store.put(key, _token(fence=1))
    written = list(redis_strings(redis_url))
    assert key in {name for name, _text in written}, "the scan saw the stored token"
    for _key, text in written:
        assert TOKEN not in text
        assert "payload-that-must-never" not in text
    stored = await store.get(key)
    assert stored is not None
    assert stored.value.reveal() == TOKEN
    assert (stored.expires_at_ms, stored.issued_at_ms, stored.token_type) == (
        2_000,
        1_000,
        "Bearer",
    )


async def test_a_ciphertext_moved_to_another_account_does_not_decrypt(
    aredis: aioredis.Redis, hub_namespace: str
) -> None:
    keys = Keys(hub_namespace)
    store = TokenStore(aredis, secrets.token_bytes(32))
    await store.put(keys.token("KIS", "a"), _token(fence=1))
    await aredis.copy(keys.token("KIS", "a"), keys.token("KIS", "b"))
    with pytest.raises(TokenKeyError, match="does not decrypt"):
        await store.get(keys.token("KIS", "b"))


async def test_a_wrong_key_is_a_clear_error(aredis: aioredis.Redis, hub_namespace: str) -> None:
    key = Keys(hub_namespace).token("KIS", "main")
    await TokenStore(aredis, secrets.token_bytes(32)).put(key, _token(fence=1))
    with pytest.raises(TokenKeyError) as caught:
        await TokenStore(aredis, secrets.token_bytes(32)).get(key)
    assert TOKEN not in str(caught.value)


async def test_no_token_yet(aredis: aioredis.Redis, hub_namespace: str) -> None:
    store = TokenStore(aredis, secrets.token_bytes(32))
    assert await store.get(Keys(hub_namespace).token("KIS", "none")) is None


def test_the_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    first = load_token_key(tmp_path / "data", env={})
    path = tmp_path / "data" / "token.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_token_key(tmp_path / "data", env={}) == first
    assert len(first) == 32


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_token_key(tmp_path, env={})
    os.chmod(tmp_path / "token.key", 0o644)
    with pytest.raises(TokenKeyError, match="chmod 600"):
        load_token_key(tmp_path, env={})


def test_the_environment_key_wins(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    env = {"APIHUB_TOKEN_KEY": base64.urlsafe_b64encode(key).decode().rstrip("=")}
    assert load_token_key(tmp_path, env=env) == key
    assert not (tmp_path / "token.key").exists()


@pytest.mark.parametrize("bad", ["not base64 !!", base64.urlsafe_b64encode(b"short").decode()])
def test_a_malformed_environment_key_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(TokenKeyError):
        load_token_key(tmp_path, env={"APIHUB_TOKEN_KEY": bad})
