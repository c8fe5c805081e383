"""Start-up, shutdown and the process entry point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from redis.exceptions import ResponseError

from apihub_core import (
    Provider,
    TokenDeferred,
    TokenFailed,
    TokenIssued,
    TokenRequested,
    encode_entry,
)
from apihub_testing import async_wait_until
from apihub_token_keeper import IssueWindow, WindowBusy

pytestmark = pytest.mark.anyio


async def test_eager_keeper_issues_for_every_account_at_start(fleet) -> None:
    await fleet.keeper(eager=True)

    async def both() -> bool:
        return len(await fleet.events(TokenIssued)) == 2

    await async_wait_until(both, timeout=20, message="not every account got a token")
    issued = await fleet.events(TokenIssued)
    assert {(e.provider, e.reason) for e in issued} == {("KIS", "startup"), ("KIWOOM", "startup")}
    for provider in Provider:
        assert await fleet.issuances(fleet.account(provider)) == 1


async def test_a_lazy_keeper_issues_nothing_unasked(fleet) -> None:
    keeper = await fleet.keeper()
    assert await keeper.scan_once() == 0
    await fleet.redis.xadd(
        fleet.keys.tokens,
        encode_entry(
            TokenIssued(provider="KIS", account="x", fence=1, expires_at_ms=1, issued_at_ms=1)
        ),
    )
    await fleet.settled()  # its own kind of event is acknowledged and ignored
    assert await fleet.issuances(fleet.account()) == 0


async def test_shutdown_mid_wait_releases_the_lock_and_leaves_the_entry_pending(fleet) -> None:
    keeper = await fleet.keeper(kis_issue_window_s=60.0)
    account = fleet.account()
    # Someone issued a moment ago: the keeper must wait out a minute while holding the lock.
    window = keeper.issuer.window(account)
    await window.restart("elsewhere")
    await fleet.redis.xadd(
        fleet.keys.tokens, encode_entry(TokenRequested(provider="KIS", account="default"))
    )
    lock_key = keeper.issuer.lock(account).key

    async def locked() -> bool:
        return bool(await fleet.redis.exists(lock_key))

    await async_wait_until(locked, timeout=10, message="the keeper never took the lock")
    await async_wait_until(lambda: _only_the_request_in_flight(fleet, TokenDeferred), timeout=10)

    keeper.stop()
    with anyio.fail_after(15):
        await fleet.stopped[id(keeper)].wait()

    # Waiting out the window is only waiting: the drain hands the request back at once rather
    # than sitting out its grace and cancelling the job.
    drain = keeper.consumer.drain
    assert (drain.released, drain.cancelled, drain.finished) == (1, 0, 0)
    assert not await fleet.redis.exists(lock_key)
    pending = await fleet.redis.xpending(fleet.keys.tokens, fleet.settings.token_keeper.group)
    assert pending["pending"] == 1  # another replica takes it over
    assert await fleet.issuances(account) == 0


async def test_a_drain_hands_back_a_request_waiting_out_a_retry(fleet) -> None:
    # Kiwoom: a 1 s window. The first issuance gets a 503; the keeper backs off a minute.
    await fleet.arm({"match": {"path": "/oauth2/token"}, "count": 1, "action": "http_503"})
    first = await fleet.keeper(retry_backoff_s=60.0)
    account = fleet.account(Provider.KIWOOM)
    await fleet.redis.xadd(
        fleet.keys.tokens, encode_entry(TokenRequested(provider="KIWOOM", account="default"))
    )

    await async_wait_until(
        lambda: _only_the_request_in_flight(fleet, TokenFailed),
        timeout=10,
        message="the first issuance never failed",
    )
    first.stop()
    with anyio.fail_after(15):
        await fleet.stopped[id(first)].wait()
    drain = first.consumer.drain
    assert (drain.released, drain.cancelled) == (1, 0), drain

    # The next keeper takes the request over at once (it was handed back with its idle time
    # past the reclaim threshold) and issues the token the first one was waiting to retry.
    await fleet.keeper()
    await fleet.settled()
    assert [e.account for e in await fleet.events(TokenIssued)] == ["default"]
    assert await fleet.issuances(account) == 1
    assert await fleet.store.get(fleet.keys.token("KIWOOM", "default")) is not None


async def test_the_window_waits_for_its_expiry(aredis) -> None:
    window = IssueWindow(aredis, "t:window", 0.2)
    assert await window.reserve("a") == pytest.approx(0.0, abs=0.5)
    assert await window.remaining_ms() > 0
    waited = await window.reserve("b")
    assert waited > 0  # it could not be taken before the first expired
    assert await aredis.get("t:window") == b"b"


async def test_a_window_rearmed_forever_is_reported(aredis) -> None:
    window = IssueWindow(aredis, "t:window", 0.05)
    await aredis.set("t:window", "stuck")  # no expiry: never ours
    with pytest.raises(WindowBusy):
        await window.reserve("a")


@pytest.fixture
def keeper_process(
    redis_url: str, fast_sim_url: str, hub_namespace: str, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m apihub_token_keeper`` on this test's Redis and simulator."""
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "APIHUB_NAMESPACE": hub_namespace,
        "APIHUB_DATA_DIR": str(tmp_path),
        "APIHUB_KIS_BASE_URL": fast_sim_url,
        "APIHUB_KIWOOM_BASE_URL": fast_sim_url,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "apihub_token_keeper"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


async def test_the_entry_point_serves_tokens_and_stops_on_sigterm(fleet, keeper_process) -> None:
    async def group_exists() -> bool:
        try:
            groups = await fleet.redis.xinfo_groups(fleet.keys.tokens)
        except ResponseError:  # no such key: the stream is not there yet
            return False
        return bool(groups)

    await async_wait_until(group_exists, timeout=30, message="the keeper process never started")
    reader = await fleet.source()
    token = await reader.get(fleet.account())
    assert token.fence > 0

    keeper_process.send_signal(signal.SIGTERM)
    code = await anyio.to_thread.run_sync(keeper_process.wait, 20)
    assert code == 0
    stderr = keeper_process.stderr.read().decode() if keeper_process.stderr else ""
    assert "received SIGTERM: draining" in stderr
    assert token.value.reveal() not in stderr
    assert not [key async for key in fleet.redis.scan_iter(f"{fleet.keys.namespace}:token-lock:*")]


async def test_an_undecodable_entry_is_dead_lettered(fleet) -> None:
    await fleet.keeper()
    await fleet.redis.xadd(fleet.keys.tokens, {"type": "token.requested", "data": "{not json"})
    await fleet.settled()
    letters = await fleet.redis.xrange(fleet.keys.dead_letter)
    assert len(letters) == 1
    assert b"bad_encoding" in letters[0][1][b"data"]


async def _only_the_request_in_flight(fleet, announced: type) -> bool:
    """The keeper announced its wait (``announced``) on the stream it reads itself, and has read
    and handled that entry too: the request is the one delivery left in flight (else a stop
    racing that entry counts it as released or finished as well)."""
    if not await fleet.events(announced):
        return False
    group = fleet.settings.token_keeper.group
    last = await fleet.redis.xrevrange(fleet.keys.tokens, count=1)
    (ours,) = await fleet.redis.xinfo_groups(fleet.keys.tokens)
    assert ours["name"] in (group, group.encode())
    return bool(ours["last-delivered-id"] == last[0][0] and ours["pending"] == 1)
