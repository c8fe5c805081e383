"""The shared circuit breaker: one per (provider, endpoint family), its state in Redis.

Every dispatcher process asks the same Redis hash (``Keys.breaker(provider, family)``), so the
fleet agrees on whether a broker endpoint family is being called at all::

    closed ──── failure_threshold consecutive failures ────▶ open
      ▲         (a success anywhere resets the count)        │  ▲
      │                                               open_s │  │ probe failure
      │                                         (next admit) ▼  │ (the timer restarts)
      └──────── probe success or neutral ──────────────── half_open
                            one probe fleet-wide, leased for probe_timeout_s

Each :meth:`CircuitBreaker.admit` and :meth:`CircuitBreaker.record` is one Lua script, one round
trip, on the Redis server clock (``TIME``). A transition and its ``breaker.state_changed`` event
on ``Keys.breakers`` are written by the same script, so each transition is appended exactly
once however many processes race for it.

Outcomes are counted only in the era they were admitted in: an admission carries the breaker's
generation (bumped on every transition), so a failure landing after the breaker opened — or
after it opened and closed again — neither extends the open timer nor counts towards the next
trip. A probe's outcome counts only while its lease is still the current one.

The breaker is advisory and fails open: when Redis cannot be reached, :meth:`admit` allows the
call and :meth:`record` drops the outcome, with a log line. See ``docs/breaker.md``.

The healthy case costs no round trip: while :meth:`CircuitBreaker.run` watches the breaker
stream, a family this process saw closed with no failure counted is admitted from memory until
an event about it arrives (any transition, anywhere in the fleet) or this process records a
failure for it; then it asks Redis again. A transition therefore reaches this process's
admissions within one stream read.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import anyio
import redis.asyncio as aioredis
from anyio.abc import TaskStatus
from redis.exceptions import RedisError

from apihub_core import (
    BREAKER_STREAM_MAXLEN,
    SCHEMA_VERSION,
    BreakerState,
    BreakerStateChanged,
    ConfigurationError,
    EntryDecodeError,
    Keys,
    StreamBatches,
    decode_any,
)
from apihub_runtime import BreakerSettings

log = logging.getLogger("apihub.breaker")

Outcome = Literal["success", "failure", "neutral"]
"""What a call admitted by the breaker came to.

``success``: the endpoint answered normally. ``failure``: a transient failure (network error,
timeout, 5xx). ``neutral``: the endpoint answered but refused (rate-limited, auth, business
rejection) — it says nothing about the endpoint's health.
"""

_EVENT_TAG: Final = str(BreakerStateChanged.__struct_config__.tag)

# Shared by both scripts. KEYS[1] = the state hash, KEYS[2] = the breaker stream.
# ARGV[1] = provider, ARGV[2] = family, ARGV[3] = event tag, ARGV[4] = schema version,
# ARGV[5] = stream MAXLEN (approximate).
#
# Hash fields: state (absent = closed), gen (bumped on every transition), failures (consecutive
# transient failures), open_until_ms, probe_token / probe_until_ms / probe_member (the current
# half-open probe lease), changed_at_ms.
_PRELUDE: Final = """
redis.replicate_commands()
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function emit(from_state, to_state, reason, failures, at_ms)
  local data = cjson.encode({
    type = ARGV[3], schema = tonumber(ARGV[4]),
    provider = ARGV[1], family = ARGV[2],
    from_state = from_state, to_state = to_state,
    reason = reason, failures = failures, at_ms = at_ms,
  })
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'type', ARGV[3], 'data', data)
end
"""

# ARGV[6] = mode ('admit' | 'peek'), ARGV[7] = probe nonce, ARGV[8] = probe lease ms,
# ARGV[9] = member.
# Returns {allowed, probe, state, retry_after_ms, gen, transition[, failures when closed]}.
_ADMIT_LUA: Final = (
    _PRELUDE
    + """
local f = redis.call('HMGET', KEYS[1], 'state', 'gen', 'open_until_ms', 'probe_token',
                     'probe_until_ms', 'failures')
local state = f[1] or 'closed'
local gen = tonumber(f[2] or '0')
if state == 'closed' then
  return {1, 0, 'closed', 0, gen, '', tonumber(f[6] or '0')}
end
local now = now_ms()
local transition = ''
local probe_token = f[4]
if state == 'open' then
  local open_until = tonumber(f[3] or '0')
  if now < open_until then
    return {0, 0, 'open', open_until - now, gen, ''}
  end
  gen = gen + 1
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'gen', gen, 'changed_at_ms', now)
  redis.call('HDEL', KEYS[1], 'probe_token', 'probe_until_ms', 'probe_member')
  emit('open', 'half_open', 'open_elapsed', tonumber(f[6] or '0'), now)
  state = 'half_open'
  probe_token = false
  transition = 'open>half_open'
end
if probe_token then
  local probe_until = tonumber(f[5] or '0')
  if now < probe_until then
    return {0, 0, 'half_open', probe_until - now, gen, transition}
  end
end
if ARGV[6] ~= 'admit' then
  return {0, 0, 'half_open', 0, gen, transition}
end
redis.call('HSET', KEYS[1], 'probe_token', ARGV[7], 'probe_until_ms', now + tonumber(ARGV[8]),
           'probe_member', ARGV[9])
return {1, 1, 'half_open', 0, gen, transition}
"""
)

# ARGV[6] = outcome ('success' | 'failure' | 'neutral'), ARGV[7] = admission gen,
# ARGV[8] = probe nonce ('' when not a probe), ARGV[9] = failure threshold, ARGV[10] = open ms.
# Returns the transition ('' when none).
_RECORD_LUA: Final = (
    _PRELUDE
    + """
local f = redis.call('HMGET', KEYS[1], 'state', 'gen', 'failures', 'probe_token')
local state = f[1] or 'closed'
local gen = tonumber(f[2] or '0')
local outcome = ARGV[6]
if ARGV[8] ~= '' then
  if state ~= 'half_open' or f[4] ~= ARGV[8] then
    return ''
  end
  local now = now_ms()
  local failures = tonumber(f[3] or '0')
  redis.call('HDEL', KEYS[1], 'probe_token', 'probe_until_ms', 'probe_member')
  if outcome == 'failure' then
    failures = failures + 1
    redis.call('HSET', KEYS[1], 'state', 'open', 'gen', gen + 1, 'failures', failures,
               'open_until_ms', now + tonumber(ARGV[10]), 'changed_at_ms', now)
    emit('half_open', 'open', 'probe_failed', failures, now)
    return 'half_open>open'
  end
  redis.call('HSET', KEYS[1], 'state', 'closed', 'gen', gen + 1, 'failures', 0,
             'changed_at_ms', now)
  redis.call('HDEL', KEYS[1], 'open_until_ms')
  local reason = 'probe_succeeded'
  if outcome ~= 'success' then
    reason = 'probe_answered'
  end
  emit('half_open', 'closed', reason, 0, now)
  return 'half_open>closed'
end
if state ~= 'closed' or tonumber(ARGV[7]) ~= gen then
  return ''
end
if outcome == 'success' then
  if tonumber(f[3] or '0') > 0 then
    redis.call('HSET', KEYS[1], 'failures', 0)
  end
  return ''
end
if outcome ~= 'failure' then
  return ''
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures < tonumber(ARGV[9]) then
  return ''
end
local now = now_ms()
redis.call('HSET', KEYS[1], 'state', 'open', 'gen', gen + 1,
           'open_until_ms', now + tonumber(ARGV[10]), 'changed_at_ms', now)
emit('closed', 'open', 'failure_threshold', failures, now)
return 'closed>open'
"""
)

_OUTCOMES: Final = frozenset({"success", "failure", "neutral"})


@dataclass(frozen=True, slots=True)
class Admission:
    """The breaker's answer to one :meth:`CircuitBreaker.admit`; hand it back to ``record``."""

    allowed: bool
    """Whether the call may go to the broker."""
    probe: bool
    """This call is the single half-open probe: its outcome closes or re-opens the breaker."""
    state: BreakerState
    """The state the script decided in (after a due ``open`` → ``half_open`` transition)."""
    retry_after_s: float
    """When refused: seconds until a probe may be tried (``0`` when allowed)."""
    token: str
    """Opaque: the breaker generation (and probe lease) this admission belongs to."""
    clean: bool = False
    """Closed with no failure counted when admitted: a success then has nothing to reset and
    costs no round trip."""


_ALWAYS: Final = Admission(allowed=True, probe=False, state="closed", retry_after_s=0.0, token="")
"""The admission of a disabled breaker, or of one whose Redis could not be reached."""


_STATES: Final[dict[str, BreakerState]] = {
    "closed": "closed",
    "open": "open",
    "half_open": "half_open",
}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _state(value: Any) -> BreakerState:
    return _STATES[_text(value)]


_WATCH_BLOCK_MS: Final = 1_000
_WATCH_BACKOFF_MAX_S: Final = 2.0

_Family = tuple[str, str]


class CircuitBreaker:
    """A circuit breaker per (provider, endpoint family), shared by every process through Redis.

    ``member`` names this process (the dispatcher's consumer name); it is stored with the probe
    lease it holds so an operator can see who is probing.
    """

    def __init__(
        self, redis: aioredis.Redis, keys: Keys, settings: BreakerSettings, *, member: str
    ) -> None:
        if settings.failure_threshold < 1:
            raise ConfigurationError("[breaker] failure_threshold must be at least 1")
        if settings.open_s <= 0 or settings.probe_timeout_s <= 0:
            raise ConfigurationError("[breaker] open_s and probe_timeout_s must be positive")
        self._redis = redis
        self._keys = keys
        self._settings = settings
        self._member = member
        self._open_ms = max(1, round(settings.open_s * 1000))
        self._probe_ms = max(1, round(settings.probe_timeout_s * 1000))
        self._admit = redis.register_script(_ADMIT_LUA)
        self._record = redis.register_script(_RECORD_LUA)
        self._healthy = True
        # The local view: families known closed with no failure, by the generation they were
        # seen in; trusted only while the watcher reads the stream (see the module docstring).
        self._closed: dict[_Family, int] = {}
        self._epochs: dict[_Family, int] = {}
        self._watching = False
        self._scope: anyio.CancelScope | None = None
        self._stopped = False
        self.local_admissions = 0

    # -- the watcher -----------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Watch the breaker stream until :meth:`stop`, so healthy admissions need no round
        trip. Without it every admission asks Redis."""
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self._stopped or not self._settings.enabled:
                scope.cancel()
            since: bytes | None = None
            backoff = 0.05
            started = False
            while True:
                try:
                    if since is None:
                        last = await self._redis.xrevrange(self._keys.breakers, count=1)
                        since = cast(bytes, last[0][0]) if last else b"0-0"
                        self._watching = True
                    if not started:
                        started = True
                        task_status.started()
                    batches = cast(
                        StreamBatches,
                        await self._redis.xread(
                            {self._keys.breakers: since}, count=100, block=_WATCH_BLOCK_MS
                        ),
                    )
                except (RedisError, OSError) as exc:
                    # Events may be missed while the stream cannot be read: trust nothing.
                    self._forget_all()
                    log.warning("breaker watcher: read failed (%s); retrying", type(exc).__name__)
                    if not started:
                        started = True
                        task_status.started()
                    await anyio.sleep(backoff)
                    backoff = min(backoff * 2, _WATCH_BACKOFF_MAX_S)
                    continue
                backoff = 0.05
                self._watching = True
                for _stream, entries in batches or ():
                    for entry_id, fields in entries:
                        since = entry_id
                        self._changed(fields)
        self._forget_all()
        self._scope = None

    def stop(self) -> None:
        """End :meth:`run`; admissions ask Redis from then on."""
        self._stopped = True
        if self._scope is not None:
            self._scope.cancel()

    def _changed(self, fields: dict[bytes, bytes]) -> None:
        try:
            event = decode_any(fields)
        except EntryDecodeError:
            return
        if isinstance(event, BreakerStateChanged):
            family = (event.provider, event.family)
            self._epochs[family] = self._epochs.get(family, 0) + 1
            self._closed.pop(family, None)

    def _forget_all(self) -> None:
        self._watching = False
        self._closed.clear()

    def _common(self, provider: str, family: str) -> tuple[list[str], list[Any]]:
        keys = [self._keys.breaker(provider, family), self._keys.breakers]
        args: list[Any] = [provider, family, _EVENT_TAG, SCHEMA_VERSION, BREAKER_STREAM_MAXLEN]
        return keys, args

    def _unavailable(self, what: str, provider: str, family: str, exc: RedisError) -> None:
        # One warning per outage, not one per call: the dispatcher may admit hundreds a second.
        level = logging.WARNING if self._healthy else logging.DEBUG
        self._healthy = False
        log.log(level, "breaker %s for %s/%s failed open: %r", what, provider, family, exc)

    def _reachable(self) -> None:
        if not self._healthy:
            self._healthy = True
            log.info("breaker state in Redis is reachable again")

    async def _run_admit(self, provider: str, family: str, mode: str, nonce: str) -> list[Any]:
        keys, args = self._common(provider, family)
        args += [mode, nonce, self._probe_ms, self._member]
        reply: list[Any] = await self._admit(keys=keys, args=args)
        transition = _text(reply[5])
        if transition:
            log.info("breaker %s/%s: %s", provider, family, transition.replace(">", " -> "))
        return reply

    async def admit(self, provider: str, family: str) -> Admission:
        """May a call to ``family`` of ``provider`` go to the broker now?

        Closed: yes. Open: no, until ``open_s`` has passed since it opened; then the breaker is
        half-open and exactly one caller fleet-wide gets ``probe=True``. A probe lease lasts
        ``probe_timeout_s``; once it runs out without a recorded outcome, another caller may
        probe. Fails open (allowed, not a probe) when Redis cannot be reached.
        """
        if not self._settings.enabled:
            return _ALWAYS
        key = (provider, family)
        known = self._closed.get(key)
        if known is not None and self._watching:
            self.local_admissions += 1
            return Admission(
                allowed=True,
                probe=False,
                state="closed",
                retry_after_s=0.0,
                token=str(known),
                clean=True,
            )
        epoch = self._epochs.get(key, 0)
        nonce = secrets.token_hex(8)
        try:
            reply = await self._run_admit(provider, family, "admit", nonce)
        except RedisError as exc:
            self._unavailable("admit", provider, family, exc)
            return _ALWAYS
        self._reachable()
        allowed, probe, gen = bool(reply[0]), bool(reply[1]), int(reply[4])
        clean = len(reply) > 6 and int(reply[6]) == 0
        if clean and self._watching and self._epochs.get(key, 0) == epoch:
            # No event about this family came while the script ran: what it saw still holds.
            self._closed[key] = gen
        return Admission(
            allowed=allowed,
            probe=probe,
            state=_state(reply[2]),
            retry_after_s=0.0 if allowed else int(reply[3]) / 1000,
            token=f"{gen}:{nonce}" if probe else str(gen),
            clean=clean,
        )

    async def record(
        self, provider: str, family: str, admission: Admission, outcome: Outcome
    ) -> None:
        """Report how a call admitted by :meth:`admit` ended.

        Outside a probe, ``failure`` counts towards ``failure_threshold`` and ``success`` resets
        the count — only while the breaker is still in the closed era the call was admitted in.
        ``neutral`` changes nothing (and costs no round trip), nor does a ``success`` of a call
        admitted while closed with no failure counted. A probe's ``failure`` re-opens
        the breaker (the open timer restarts); its ``success`` or ``neutral`` closes it. Refused
        admissions, a disabled breaker and Redis errors record nothing.
        """
        if outcome not in _OUTCOMES:
            raise ValueError(f"unknown breaker outcome {outcome!r}")
        if not self._settings.enabled or not admission.allowed or not admission.token:
            return
        if outcome == "neutral" and not admission.probe:
            return
        if outcome == "success" and admission.clean:
            # The hot path: nothing to reset as of the admission. A failure another process
            # counted since then stays counted, which can only open the breaker sooner.
            return
        if outcome == "failure":
            # A failure is counted now: the family is no longer "closed with none counted".
            self._closed.pop((provider, family), None)
        gen, _, nonce = admission.token.partition(":")
        keys, args = self._common(provider, family)
        args += [outcome, gen, nonce, self._settings.failure_threshold, self._open_ms]
        try:
            transition = _text(await self._record(keys=keys, args=args))
        except RedisError as exc:
            self._unavailable("record", provider, family, exc)
            return
        self._reachable()
        if transition == "closed>open" or transition == "half_open>open":
            log.warning("breaker %s/%s: %s", provider, family, transition.replace(">", " -> "))
        elif transition:
            log.info("breaker %s/%s: %s", provider, family, transition.replace(">", " -> "))

    async def state(self, provider: str, family: str) -> BreakerState:
        """The current state, for tests and the CLI.

        Applies a due ``open`` → ``half_open`` transition (emitting its event) but never takes
        the probe. Unlike :meth:`admit` it does not fail open: Redis errors propagate.
        """
        reply = await self._run_admit(provider, family, "peek", "")
        return _state(reply[2])
