"""SharedTokenSource against a real Redis, with the test playing the token-keeper's part
(the keeper is another service: here only its events and its store writes matter)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
import redis.asyncio as aioredis

from apihub_core import (
    ErrorClass,
    HubError,
    HubUnavailable,
    Keys,
    Provider,
    RequestTimeout,
    TokenDeferred,
    TokenFailed,
    TokenInvalidated,
    TokenIssued,
    TokenRefreshed,
    TokenRequested,
    UpstreamRateLimited,
    UpstreamRejected,
    decode_token_event,
    encode_entry,
    now_ms,
)
from apihub_runtime import (
    AccessToken,
    AccountConfig,
    FencedLock,
    Secret,
    SharedTokenSource,
    StoredToken,
    TokenKeeperSettings,
    TokenStore,
    load_settings,
    load_token_key,
)
from apihub_testing import async_wait_until, redis_strings

pytestmark = pytest.mark.anyio

HOUR_MS = 3_600_000


class FakeKeeper:
    """Writes tokens the way the token-keeper does: under a fresh fence, then announces."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, store: TokenStore) -> None:
        self.redis = redis
        self.keys = keys
        self.store = store
        self.lock = FencedLock(
            redis, keys.token_lock("KIS", "default"), keys.token_fence("KIS", "default"), "c"
        )

    async def write(self, value: str, *, life_ms: int = HOUR_MS, announce: bool = True) -> int:
        lease = await self.lock.try_acquire(5_000)
        assert lease is not None
        stored = StoredToken(Secret(value), now_ms() + life_ms, now_ms(), lease.fence)
        assert await self.store.put(self.keys.token("KIS", "default"), stored)
        await self.lock.release(lease)
        if announce:
            await self.announce(
                TokenIssued(
                    provider="KIS",
                    account="default",
                    fence=lease.fence,
                    expires_at_ms=stored.expires_at_ms,
                    issued_at_ms=stored.issued_at_ms,
                )
            )
        return lease.fence

    async def announce(
        self, event: TokenIssued | TokenRefreshed | TokenDeferred | TokenFailed
    ) -> None:
        await self.redis.xadd(self.keys.tokens, encode_entry(event))

    async def events(self) -> list[object]:
        entries = await self.redis.xrange(self.keys.tokens)
        return [decode_token_event(fields) for _id, fields in entries]

    async def requests(self) -> list[TokenRequested]:
        return [e for e in await self.events() if isinstance(e, TokenRequested)]

    async def fail_when_asked(
        self, error_class: ErrorClass, code: str, retry_in_ms: int | None, message: str = ""
    ) -> None:
        """Wait for a ``token.requested``, then answer it with a ``token.failed``."""
        await async_wait_until(self.requests, timeout=10)
        await self.announce(
            TokenFailed(
                provider="KIS",
                account="default",
                error_class=error_class,
                code=code,
                message=message,
                retry_in_ms=retry_in_ms,
            )
        )


@pytest.fixture
def keys(hub_namespace: str) -> Keys:
    return Keys(hub_namespace)


@pytest.fixture
def store(aredis: aioredis.Redis, tmp_path: Path) -> TokenStore:
    return TokenStore(aredis, load_token_key(tmp_path))


@pytest.fixture
def keeper(aredis: aioredis.Redis, keys: Keys, store: TokenStore) -> FakeKeeper:
    return FakeKeeper(aredis, keys, store)


@pytest.fixture
def account() -> AccountConfig:
    settings = load_settings(env={})
    return replace(settings.account(Provider.KIS), base_url="http://127.0.0.1:9")


def make_source(
    redis: aioredis.Redis, keys: Keys, store: TokenStore, **tuning: float
) -> SharedTokenSource:
    settings = TokenKeeperSettings(block_ms=50, token_wait_s=tuning.pop("token_wait_s", 10.0))
    return SharedTokenSource(redis, keys, store, settings, member="dispatcher-test")


@pytest.fixture
async def source(
    aredis: aioredis.Redis, keys: Keys, store: TokenStore
) -> AsyncIterator[SharedTokenSource]:
    """A source with its watcher running; stopped at teardown."""
    running = make_source(aredis, keys, store)
    async with anyio.create_task_group() as tg:
        await tg.start(running.run)
        yield running
        running.stop()


async def _answer_first_request(keeper: FakeKeeper, value: str) -> int:
    await async_wait_until(keeper.requests, timeout=10, message="no token.requested")
    return await keeper.write(value)


async def _get_error(
    source: SharedTokenSource, account: AccountConfig, keeper_side: Callable[[], Awaitable[None]]
) -> HubError:
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(keeper_side)
            with pytest.raises(HubError) as caught:
                await source.get(account)
    return caught.value


async def test_a_cold_herd_in_one_process_sends_one_request(
    source: SharedTokenSource, keeper: FakeKeeper, account: AccountConfig
) -> None:
    tokens = []

    async def one() -> None:
        tokens.append(await source.get(account))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for _ in range(256):
                tg.start_soon(one)
            fence = await _answer_first_request(keeper, "the-shared-token")

    assert len(tokens) == 256
    assert {(t.value.reveal(), t.fence) for t in tokens} == {("the-shared-token", fence)}
    assert len(await keeper.requests()) == 1
    assert source.requests_sent == 1
    (request,) = await keeper.requests()
    assert request.requested_by == "dispatcher-test"


async def test_a_cached_token_is_served_without_reading_the_store(
    source: SharedTokenSource, keeper: FakeKeeper, account: AccountConfig, aredis: aioredis.Redis
) -> None:
    await keeper.write("cached-token")
    first = await source.get(account)
    await aredis.delete(keeper.keys.token("KIS", "default"))
    assert await source.get(account) == first
    assert source.cached(account) == first
    assert source.requests_sent == 0


async def test_an_expiring_token_is_not_used(
    source: SharedTokenSource, keeper: FakeKeeper, account: AccountConfig
) -> None:
    await keeper.write("nearly-expired", life_ms=5_000, announce=False)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_answer_first_request, keeper, "fresh-token")
        token = await source.get(account)
    assert token.value.reveal() == "fresh-token"


async def test_no_keeper_means_hub_unavailable_within_the_wait(
    aredis: aioredis.Redis, keys: Keys, store: TokenStore, account: AccountConfig
) -> None:
    source = make_source(aredis, keys, store, token_wait_s=0.3)
    with anyio.fail_after(10), pytest.raises(HubUnavailable) as caught:
        await source.get(account)
    assert "about the KIS token of account 'default' within 0.3 s" in str(caught.value)
    assert "token-keeper running" in str(caught.value)


async def test_a_keeper_that_gave_up_raises_the_typed_error(
    source: SharedTokenSource, keeper: FakeKeeper, account: AccountConfig
) -> None:
    async def give_up() -> None:
        message = "유효하지 않은 AppSecret입니다."
        await keeper.fail_when_asked("permanent", "EGW00105", None, message)

    error = await _get_error(source, account, give_up)
    assert isinstance(error, UpstreamRejected)
    assert error.code == "EGW00105"
    assert "gave up" in str(error)


async def test_a_keeper_still_retrying_is_waited_for(
    source: SharedTokenSource, keeper: FakeKeeper, account: AccountConfig
) -> None:
    async def fail_then_issue() -> None:
        # The retry comes sooner than the source gives up: worth waiting for.
        await keeper.fail_when_asked("rate_limited", "EGW00201", 300)
        await keeper.write("after-the-retry")

    async with anyio.create_task_group() as tg:
        tg.start_soon(fail_then_issue)
        token = await source.get(account)
    assert token.value.reveal() == "after-the-retry"


async def test_without_a_deadline_a_keeper_still_retrying_ends_the_wait_with_its_error(
    aredis: aioredis.Redis,
    keys: Keys,
    store: TokenStore,
    keeper: FakeKeeper,
    account: AccountConfig,
) -> None:
    source = make_source(aredis, keys, store, token_wait_s=1.0)

    async def fail() -> None:
        # A retry within the wait, which then never delivers: token_wait_s answers, since the
        # caller set no deadline of its own (none encloses this call: pytest's timeout bounds).
        await keeper.fail_when_asked("rate_limited", "EGW00201", 500)

    async with anyio.create_task_group() as tg:
        tg.start_soon(fail)
        with pytest.raises(UpstreamRateLimited) as caught:
            await source.get(account)
    assert caught.value.code == "EGW00201"
    assert "within 1 s: the token-keeper is still retrying" in str(caught.value)


async def test_a_caller_with_a_deadline_waits_past_token_wait_s_for_an_announced_token(
    aredis: aioredis.Redis,
    keys: Keys,
    store: TokenStore,
    keeper: FakeKeeper,
    account: AccountConfig,
) -> None:
    # The keeper is waiting out the issuance window (it says so), longer than token_wait_s:
    # a caller whose deadline allows it waits instead of being told the keeper is not running.
    source = make_source(aredis, keys, store, token_wait_s=0.2)

    async def defer_then_issue() -> None:
        await async_wait_until(keeper.requests, timeout=10)
        await keeper.announce(
            TokenDeferred(
                provider="KIS", account="default", not_before_ms=now_ms() + 600, at_ms=now_ms()
            )
        )
        # The keeper waits out the window it announced: more than token_wait_s passes before
        # the token comes (the passing of time is the behaviour under test here).
        await anyio.sleep(0.6)
        await keeper.write("after-the-window")

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(defer_then_issue)
            token = await source.get(account)
    assert token.value.reveal() == "after-the-window"
    assert source.requests_sent == 1


async def test_a_window_reopening_after_the_deadline_is_refused_at_once(
    source: SharedTokenSource, keeper: FakeKeeper, account: AccountConfig
) -> None:
    async def defer() -> None:
        await async_wait_until(keeper.requests, timeout=10)
        await keeper.announce(
            TokenDeferred(
                provider="KIS", account="default", not_before_ms=now_ms() + 50_000, at_ms=now_ms()
            )
        )

    with anyio.fail_after(5):  # the caller's deadline: far sooner than the window reopens
        async with anyio.create_task_group() as tg:
            tg.start_soon(defer)
            with pytest.raises(RequestTimeout) as caught:
                await source.get(account)
    assert "issuance window reopens in" in str(caught.value)

    # A caller whose deadline lies past the window is not refused: it waits, and is served
    # the token the keeper writes. (No deadline may enclose it but its own, so the wait for
    # it is bounded from the host task, outside the caller's scopes.)
    served: list[AccessToken] = []
    done = anyio.Event()

    async def patient() -> None:
        with anyio.CancelScope(deadline=anyio.current_time() + 120):
            served.append(await source.get(account))
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(patient)
        await anyio.wait_all_tasks_blocked()  # it got past the refusal check and waits
        fence = await keeper.write("after-the-window")
        with anyio.move_on_after(10):
            await done.wait()
        tg.cancel_scope.cancel()
    assert [(t.value.reveal(), t.fence) for t in served] == [("after-the-window", fence)]


async def test_a_retry_beyond_the_wait_fails_fast_until_its_time(
    source: SharedTokenSource, keeper: FakeKeeper, account: AccountConfig
) -> None:
    # EGW00133: the keeper cannot try again for a minute, so waiting token_wait_s is useless;
    # callers get the broker's refusal at once, and later callers without asking again.
    async def refuse() -> None:
        await keeper.fail_when_asked("rate_limited", "EGW00133", 60_000)

    first = await _get_error(source, account, refuse)
    assert isinstance(first, UpstreamRateLimited)
    assert first.code == "EGW00133"
    asked = source.requests_sent
    with pytest.raises(UpstreamRateLimited, match="EGW00133"):
        await source.get(account)
    assert source.requests_sent == asked, "no new request while the keeper cannot retry"


async def test_a_missed_announcement_is_found_in_the_store(
    source: SharedTokenSource, keeper: FakeKeeper, account: AccountConfig
) -> None:
    async def write_silently() -> None:
        await async_wait_until(keeper.requests, timeout=10)
        await keeper.write("stored-but-never-announced", announce=False)

    async with anyio.create_task_group() as tg:
        tg.start_soon(write_silently)
        token = await source.get(account)
    assert token.value.reveal() == "stored-but-never-announced"


async def test_invalidate_reports_once_and_never_reuses_the_token(
    source: SharedTokenSource, keeper: FakeKeeper, account: AccountConfig
) -> None:
    await keeper.write("rejected-token")
    token = await source.get(account)
    await source.invalidate(account, token, code="EGW00121")
    await source.invalidate(account, token, code="EGW00121")
    assert source.cached(account) is None

    reports = [e for e in await keeper.events() if isinstance(e, TokenInvalidated)]
    assert len(reports) == 1
    assert (reports[0].fence, reports[0].code, reports[0].reported_by) == (
        token.fence,
        "EGW00121",
        "dispatcher-test",
    )
    # The store still holds the rejected token until the keeper replaces it: not used again.
    async with anyio.create_task_group() as tg:
        tg.start_soon(_answer_first_request, keeper, "replacement")
        renewed = await source.get(account)
    assert renewed.value.reveal() == "replacement"
    assert renewed.fence > token.fence


async def test_the_watcher_drops_a_replaced_token_and_stops(
    aredis: aioredis.Redis,
    keys: Keys,
    store: TokenStore,
    keeper: FakeKeeper,
    account: AccountConfig,
) -> None:
    source = make_source(aredis, keys, store)
    async with anyio.create_task_group() as tg:
        await tg.start(source.run)
        await keeper.write("first")
        first = await source.get(account)
        await keeper.announce(
            TokenRefreshed(
                provider="KIS",
                account="default",
                fence=first.fence,  # the same fence: nothing to drop
                expires_at_ms=0,
                issued_at_ms=0,
            )
        )
        second_fence = await keeper.write("second")
        await async_wait_until(lambda: source.cached(account) is None, timeout=10)
        assert source.switches == 1
        assert (await source.get(account)).fence == second_fence
        source.stop()


async def test_redis_down_is_hub_unavailable(
    keys: Keys, store: TokenStore, account: AccountConfig
) -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    try:
        source = make_source(dead, keys, store)
        with anyio.fail_after(10), pytest.raises(HubUnavailable, match="could not read"):
            await source.get(account)
    finally:
        await dead.aclose()


async def test_no_token_reaches_the_stream(
    source: SharedTokenSource, keeper: FakeKeeper, account: AccountConfig, redis_url: str
) -> None:
    await keeper.write("a-token-that-must-stay-encrypted")
    token = await source.get(account)
    await source.invalidate(account, token, code="8005")
    texts = [text for _key, text in redis_strings(redis_url)]
    assert any("token.invalidated" in text for text in texts)
    assert not any("a-token-that-must-stay-encrypted" in text for text in texts)
