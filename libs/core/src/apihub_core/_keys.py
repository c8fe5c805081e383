"""Every Redis stream and key name apihub uses, in one place.

All names share a namespace prefix (``apihub`` by default, ``APIHUB_NAMESPACE``) so several hubs,
or a test per namespace, can share one Redis. ``docs/wire-format.md`` documents each of them.
"""

from __future__ import annotations

from dataclasses import dataclass

DISPATCHER_GROUP = "dispatcher"
"""Consumer group of the dispatcher service on the request stream."""

REPLY_TTL_S = 600
"""Idle reply streams expire after this long, so abandoned callers leave nothing behind."""

REPLY_MAXLEN = 10_000
"""Approximate cap on one caller's reply stream (its own in-flight answers, never everyone's)."""

REQUEST_STREAM_MAXLEN = 1_000_000
"""Approximate retention of the request stream (the audit log of every call)."""

RESPONSE_STREAM_MAXLEN = 1_000_000
"""Approximate retention of the response stream (the audit log of every outcome)."""

DEAD_LETTER_MAXLEN = 100_000
"""Approximate retention of the dead-letter stream."""

ARCHIVE_STREAM_MAXLEN = 1_000_000
"""Approximate retention of the archive stream (``archive.written``, quarantines)."""

GAP_STREAM_MAXLEN = 200_000
"""Approximate retention of the gap stream (the lifecycle of every gap)."""

COLLECTOR_STREAM_MAXLEN = 100_000
"""Approximate retention of the collector stream (skipped cycles, quarantined snapshots)."""

TOKEN_KEEPER_GROUP = "token-keeper"  # noqa: S105 - a group name
"""Consumer group of the token-keeper service on the token stream."""

TOKEN_STREAM_MAXLEN = 100_000
"""Approximate retention of the token stream (lifecycle events and requests)."""

RATE_LIMIT_STREAM_MAXLEN = 200_000
"""Approximate retention of the rate-limit stream (waits, rejections, upstream misses)."""

BREAKER_STREAM_MAXLEN = 10_000
"""Approximate retention of the breaker stream (state changes only)."""

IDEMPOTENCY_TTL_S = 7 * 24 * 3600
"""How long an idempotency key and its answer are remembered."""

ORDER_MARKER_TTL_S = 7 * 24 * 3600
"""How long the marker of a sent order lives: long past any redelivery of its request."""

REQUEST_ID_TTL_S = 24 * 3600
"""How long a request id is remembered (entry, content fingerprint: about 150 bytes each), so a
second request with the same id is answered with the first's answer or refused, never called."""


@dataclass(frozen=True, slots=True)
class Keys:
    """Stream and key names under one namespace."""

    namespace: str = "apihub"

    def __post_init__(self) -> None:
        if not self.namespace or any(ch.isspace() for ch in self.namespace):
            raise ValueError(f"invalid namespace {self.namespace!r}")

    @property
    def requests(self) -> str:
        """Stream of ``RequestSubmitted``: every call anyone asked for, in arrival order."""
        return f"{self.namespace}:requests"

    @property
    def responses(self) -> str:
        """Stream of ``ResponseReceived`` and ``RequestFailed``: the audit log of outcomes."""
        return f"{self.namespace}:responses"

    @property
    def orders(self) -> str:
        """Stream of ``OrderReconciled``: what the broker's inquiries showed of orders whose
        outcome was unknown."""
        return f"{self.namespace}:orders"

    @property
    def dead_letter(self) -> str:
        """Stream of ``DeadLettered``: entries no consumer could process, with the reason."""
        return f"{self.namespace}:dead-letter"

    @property
    def reply_prefix(self) -> str:
        """Prefix of per-caller reply streams; a ``reply_to`` outside it is refused."""
        return f"{self.namespace}:reply:"

    def reply(self, client_id: str) -> str:
        """The reply stream of one caller: only its own answers land there."""
        return f"{self.reply_prefix}{client_id}"

    def is_reply_stream(self, key: str) -> bool:
        """Whether ``key`` is a well-formed reply stream of this namespace."""
        suffix = key[len(self.reply_prefix) :]
        return (
            key.startswith(self.reply_prefix)
            and 0 < len(suffix) <= 128
            and all(ch.isalnum() or ch in "-_." for ch in suffix)
        )

    def token(self, provider: str, account: str) -> str:
        """Hash holding the encrypted token of one (provider, account) and its fence number."""
        return f"{self.namespace}:token:{provider}:{account}"

    def token_lock(self, provider: str, account: str) -> str:
        """The refresh lock of one (provider, account): ``SET NX PX`` with a random owner."""
        return f"{self.namespace}:token-lock:{provider}:{account}"

    def token_fence(self, provider: str, account: str) -> str:
        """Counter handing out fence numbers, one per acquisition of the refresh lock."""
        return f"{self.namespace}:token-fence:{provider}:{account}"

    def token_issue_window(self, provider: str, account: str) -> str:
        """Set (``NX PX window``) before every issuance: at most one per app key per window,
        across every process of the fleet (KIS EGW00133)."""
        return f"{self.namespace}:token-issue-window:{provider}:{account}"

    @property
    def tokens(self) -> str:
        """Stream of token events: requests, invalidations and the token-keeper's lifecycle
        events (issued, refreshed, failed). Never the token itself."""
        return f"{self.namespace}:tokens"

    @property
    def rate_limits(self) -> str:
        """Stream of rate-limit events: waits, rejections and upstream rate errors."""
        return f"{self.namespace}:rate-limits"

    @property
    def rate_limit_prefix(self) -> str:
        """Prefix of the gatekeeper's keys (``<prefix><bucket>:…``), on the gatekeeper Redis."""
        return f"{self.namespace}:rl:"

    def breaker(self, provider: str, family: str) -> str:
        """Hash holding the shared circuit-breaker state of (provider, endpoint family)."""
        return f"{self.namespace}:breaker:{provider}:{family}"

    @property
    def breakers(self) -> str:
        """Stream of circuit-breaker state changes."""
        return f"{self.namespace}:breakers"

    def idempotency(self, provider: str, account: str, key: str) -> str:
        """Hash of one idempotency key: the request that owns it and, once known, its answer."""
        return f"{self.namespace}:idem:{provider}:{account}:{key}"

    @property
    def lock_contention(self) -> str:
        """Hash counting failed lock acquisitions per lock key (observability)."""
        return f"{self.namespace}:lock-contention"

    def group_progress(self, stream: str, group: str) -> str:
        """The newest entry id ever delivered to consumer group ``group`` of ``stream``: where
        the group is recreated if it vanishes, so nothing delivered is delivered again."""
        return f"{self.namespace}:group-progress:{group}:{stream}"

    def group_members(self, stream: str, group: str) -> str:
        """Hash of the live consumers of ``group`` on ``stream``: consumer → heartbeat expiry
        (server ms). A consumer without one, idle and with nothing pending, is removed."""
        return f"{self.namespace}:group-members:{group}:{stream}"

    def request_record(self, request_id: str) -> str:
        """Hash of one request id: the entry that first used it, its content fingerprint and
        (``outcome``) the response-stream id of its answer once committed."""
        return f"{self.namespace}:request:{request_id}"

    def order_sent(self, request_id: str) -> str:
        """Marker set just before an order leaves for the broker; its presence forbids a resend."""
        return f"{self.namespace}:order-sent:{request_id}"

    # -- market data ---------------------------------------------------------------------------

    @property
    def archive(self) -> str:
        """Stream of archive events: ``archive.written`` after every stored batch, and
        ``archive.quarantined`` for answers that could not be normalised."""
        return f"{self.namespace}:archive"

    @property
    def gaps(self) -> str:
        """Stream of gap events: detected, backfill requested/failed, healed, confirmed empty,
        and inconsistencies the sentinel saw."""
        return f"{self.namespace}:gaps"

    @property
    def collector(self) -> str:
        """Stream of collector events: skipped cycles and quarantined snapshots."""
        return f"{self.namespace}:collector"

    @property
    def simulator(self) -> str:
        """String: the base URL of the broker simulator ``apihub up`` embeds (absent without
        one), so ``apihub market break`` can reach it."""
        return f"{self.namespace}:simulator"

    @property
    def market_clock(self) -> str:
        """Hash describing the market's clock when it is not the wall clock (the simulator's,
        published by ``apihub up``): ``market_ms``, ``wall_ms``, ``rate``, ``frozen``."""
        return f"{self.namespace}:market-clock"

    def gap(self, gap_id: str) -> str:
        """Hash of one open gap: its range, state, request ids and attempts (the sentinel's)."""
        return f"{self.namespace}:gap:{gap_id}"

    @property
    def open_gaps(self) -> str:
        """Sorted set of open gap ids, scored by when they are next due for attention."""
        return f"{self.namespace}:gaps-open"

    def market_chunk(self, provider: str, symbol: str, interval: str, chunk: str) -> str:
        """Claim (``SET NX PX``) on one page of market data in flight, held by the gap or the
        backfill job that asked for it: no page is requested twice at once, whoever asks."""
        return f"{self.namespace}:md-chunk:{provider}:{symbol}:{interval}:{chunk}"

    def coverage(self, provider: str, symbol: str, interval: str, bucket: str) -> str:
        """Bitmap of the bars the archive holds (the sentinel's view, from ``archive.written``):
        one per day of minute bars (bit = minute of the day, ``bucket`` ``YYYYMMDD``) or per
        year of daily bars (bit = day of the year, ``bucket`` ``YYYY``)."""
        return f"{self.namespace}:coverage:{provider}:{symbol}:{interval}:{bucket}"

    def confirmed_empty(self, provider: str, symbol: str, interval: str, bucket: str) -> str:
        """Bitmap (as :meth:`coverage`) of bars the broker confirmed it does not have: not gaps."""
        return f"{self.namespace}:md-empty:{provider}:{symbol}:{interval}:{bucket}"

    def gap_pending(self, provider: str, symbol: str, interval: str, bucket: str) -> str:
        """Bitmap (as :meth:`coverage`) of bars inside an open gap: not detected twice."""
        return f"{self.namespace}:gap-bars:{provider}:{symbol}:{interval}:{bucket}"

    def series_gaps(self, provider: str, symbol: str, interval: str) -> str:
        """Set of the open gap ids of one series (what an ``archive.written`` may heal)."""
        return f"{self.namespace}:series-gaps:{provider}:{symbol}:{interval}"

    def consistency_checked(self, provider: str, symbol: str) -> str:
        """Set of the days (``YYYYMMDD``) whose daily bar the sentinel compared with its minute
        bars."""
        return f"{self.namespace}:md-checked:{provider}:{symbol}"

    def sentinel_lock(self, provider: str, symbol: str, interval: str) -> str:
        """Lock (``SET NX PX``) held while one sentinel replica looks for gaps in a series."""
        return f"{self.namespace}:sentinel-lock:{provider}:{symbol}:{interval}"

    def backfill_job(self, job_id: str) -> str:
        """Hash of one backfill job: its plan, state and progress."""
        return f"{self.namespace}:backfill:job:{job_id}"

    def backfill_done(self, job_id: str) -> str:
        """Set of the chunk ids of a backfill job that are finished (never fetched again)."""
        return f"{self.namespace}:backfill:done:{job_id}"

    @property
    def backfill_jobs(self) -> str:
        """Sorted set of backfill job ids by creation time (``apihub backfill status``)."""
        return f"{self.namespace}:backfill:jobs"
