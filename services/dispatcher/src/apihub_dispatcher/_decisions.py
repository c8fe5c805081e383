"""What the dispatcher does after each attempt, as data: one pure function, no I/O.

An attempt is one pass through token → permit → breaker → broker call. Whatever it came to is
described by an :class:`Attempt`; :func:`decide` turns it, the request's :class:`Tally` so far,
whether the request is an order and the time left before its deadline into one
:data:`Decision`:

=================  ==========================================================================
decision           when
=================  ==========================================================================
:class:`Answer`    success; a failure that retrying cannot fix; no time or tries left
:class:`Retry`     a retryable failure of a query (or a rejected token, even for an order:
                   the broker's answer proves nothing was executed), after a backoff with
                   full jitter that still ends before the deadline
:class:`Requeue`   the broker said "too fast" (EGW00201, Kiwoom 1700, HTTP 429): nothing was
                   executed, so the request goes back in line for a new permit, orders too
:class:`AwaitProbe` the shared breaker is open and its next probe comes before the deadline
:class:`GiveUp`    an order (or any non-idempotent TR) may have reached the broker: it is
                   never sent again, and the caller is told ``outcome_unknown``
=================  ==========================================================================

The executor (``_executor.py``) does the waiting and the calling; this module only decides,
so every branch is unit-tested without Redis or HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from apihub_core import (
    CircuitOpen,
    HubError,
    OutcomeUnknown,
    RequestTimeout,
    UpstreamAuthError,
    UpstreamRateLimited,
    UpstreamTransient,
)

MAX_PROBE_WAITS: Final = 3
"""A request waits for at most this many half-open probe slots before failing."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds of retrying: calls per request, the backoff curve and re-queues."""

    max_attempts: int = 3
    backoff_base_s: float = 0.05
    backoff_cap_s: float = 2.0
    max_requeues: int = 5
    max_probe_waits: int = MAX_PROBE_WAITS


@dataclass(frozen=True, slots=True)
class Tally:
    """What happened to the request so far: ``calls`` that reached (or may have reached) the
    broker, of which ``requeues`` were answered "too fast", and breaker ``probe_waits``."""

    calls: int = 0
    requeues: int = 0
    probe_waits: int = 0

    @property
    def tries(self) -> int:
        """Calls that count against ``max_attempts`` (re-queued rate misses do not)."""
        return self.calls - self.requeues


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt came to.

    ``error`` is ``None`` for a success. ``sent`` says the call left for the broker (so an
    order may have been executed); ``breaker_wait_s`` is set when the breaker refused the call
    (the time until it may admit a probe); ``sent_before`` when an earlier delivery of this very
    request already handed it to the broker; ``deadline_passed`` when the request's deadline
    cut the attempt short.
    """

    error: HubError | None = None
    sent: bool = False
    breaker_wait_s: float | None = None
    sent_before: bool = False
    deadline_passed: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """Answer the caller now: success when ``error`` is ``None``, else this failure."""

    error: HubError | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """Call again after ``delay_s``."""

    delay_s: float


@dataclass(frozen=True, slots=True)
class Requeue:
    """Get a new permit and call again (the broker counted differently than the limiter)."""


@dataclass(frozen=True, slots=True)
class AwaitProbe:
    """Wait ``delay_s`` for the breaker's half-open probe slot, then try again."""

    delay_s: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """The order may have reached the broker: answer ``outcome_unknown``, never resend."""

    error: OutcomeUnknown


Decision = Answer | Retry | Requeue | AwaitProbe | GiveUp
"""Everything :func:`decide` can return."""


def decide(
    attempt: Attempt,
    tally: Tally,
    *,
    once: bool,
    time_left_s: float,
    policy: RetryPolicy,
    jitter: float,
) -> Decision:
    """What to do after ``attempt``.

    ``once``: the request is an order (or a TR declared non-idempotent) and must reach the
    broker at most once. ``time_left_s``: seconds until the request's deadline. ``jitter``: a
    number in [0, 1) drawn by the caller, which scales the backoff (full jitter), so the
    function itself stays deterministic. ``tally`` already counts this attempt's call.

    Raises:
        ValueError: ``attempt`` claims a success that never reached the broker.
    """
    error = attempt.error
    if attempt.sent_before:
        return GiveUp(
            OutcomeUnknown(
                "this order was already handed to the broker by an earlier delivery; it is not "
                "sent again. The reconciler looks it up (order.reconciled on <ns>:orders); "
                "or run `apihub orders reconcile <request_id>`"
            )
        )
    if attempt.deadline_passed:
        if once and attempt.sent:
            return GiveUp(
                OutcomeUnknown(
                    "the deadline passed while the order was at the broker; it may have been "
                    "executed and is not resent. The reconciler looks it up (order.reconciled on "
                    "<ns>:orders); or run `apihub orders reconcile <request_id>`"
                )
            )
        return Answer(error or RequestTimeout("the deadline passed before an answer came"))
    if attempt.breaker_wait_s is not None:
        return _breaker_refused(attempt.breaker_wait_s, error, tally, time_left_s, policy)
    if error is None:
        if not attempt.sent:
            raise ValueError("an attempt that did not reach the broker must carry its error")
        return Answer()
    if not attempt.sent:
        # Stopped before the broker (no token, no permit in time, limiter down): each of
        # those already waited as long as the deadline allowed.
        return Answer(error)
    if isinstance(error, UpstreamRateLimited):
        if tally.requeues < policy.max_requeues and time_left_s > 0:
            return Requeue()
        return Answer(error)
    if once and isinstance(error, UpstreamTransient):
        return GiveUp(
            OutcomeUnknown(
                f"the order may have reached the broker ({error.message}); it is not resent. "
                "The reconciler looks it up (order.reconciled on <ns>:orders); or run "
                "`apihub orders reconcile <request_id>`",
                provider=error.provider,
                tr_id=error.tr_id,
            )
        )
    # An order is retried only after an answer proving it was not executed (a rejected
    # token); anything else about an order is reported as it is.
    retryable = error.retryable and (not once or isinstance(error, UpstreamAuthError))
    if not retryable or tally.tries >= policy.max_attempts:
        return Answer(error)
    delay = jitter * min(policy.backoff_cap_s, policy.backoff_base_s * 2**tally.tries)
    if delay >= time_left_s:
        return Answer(error)
    return Retry(delay)


def _breaker_refused(
    wait_s: float,
    error: HubError | None,
    tally: Tally,
    time_left_s: float,
    policy: RetryPolicy,
) -> Decision:
    if wait_s < time_left_s and tally.probe_waits < policy.max_probe_waits:
        return AwaitProbe(max(wait_s, 0.01))
    return Answer(
        error
        if isinstance(error, CircuitOpen)
        else CircuitOpen(
            f"the broker failed repeatedly and its circuit is open; next probe in {wait_s:.1f} s"
        )
    )
