"""The dispatcher's decisions, exhaustively, without Redis or HTTP: ``decide`` is a pure function.

First every rule on its own (a table), then every combination of the inputs that matter, checked
against the invariants the hub promises (an order is never sent twice, nothing waits past the
deadline, a success is answered as one).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from apihub_core import (
    CircuitOpen,
    ConfigurationError,
    HubError,
    HubUnavailable,
    OutcomeUnknown,
    RequestTimeout,
    UpstreamAuthError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTransient,
)
from apihub_dispatcher import (
    Answer,
    Attempt,
    AwaitProbe,
    Decision,
    GiveUp,
    Requeue,
    Retry,
    RetryPolicy,
    Tally,
    decide,
)

POLICY = RetryPolicy(
    max_attempts=3, backoff_base_s=0.05, backoff_cap_s=2.0, max_requeues=5, max_probe_waits=3
)


ONE_CALL = Tally(calls=1)


def run(
    attempt: Attempt,
    tally: Tally = ONE_CALL,
    *,
    once: bool = False,
    time_left_s: float = 10.0,
    jitter: float = 0.5,
) -> Decision:
    return decide(attempt, tally, once=once, time_left_s=time_left_s, policy=POLICY, jitter=jitter)


# -- one rule at a time --------------------------------------------------------------------------


@pytest.mark.parametrize("once", [False, True])
def test_a_success_is_answered(once: bool) -> None:
    assert run(Attempt(sent=True), once=once) == Answer(None)


def test_an_order_an_earlier_delivery_sent_is_given_up() -> None:
    decision = run(Attempt(sent_before=True), Tally(), once=True)
    assert isinstance(decision, GiveUp)
    assert "earlier delivery" in decision.error.message


def test_a_query_failing_transiently_is_retried_with_full_jitter() -> None:
    decision = run(Attempt(UpstreamTransient("reset"), sent=True), Tally(calls=1), jitter=0.5)
    # backoff = jitter * min(cap, base * 2**tries) = 0.5 * 0.05 * 2
    assert decision == Retry(pytest.approx(0.05))


def test_the_backoff_grows_and_is_capped() -> None:
    delays = [
        run(Attempt(UpstreamTransient("x"), sent=True), Tally(calls=n), jitter=1.0) for n in (1, 2)
    ]
    assert delays == [Retry(0.1), Retry(0.2)]
    capped = decide(
        Attempt(UpstreamTransient("x"), sent=True),
        Tally(calls=9),
        once=False,
        time_left_s=100.0,
        policy=RetryPolicy(max_attempts=99, backoff_cap_s=2.0),
        jitter=1.0,
    )
    assert capped == Retry(2.0)


def test_no_retry_past_max_attempts() -> None:
    error = UpstreamTransient("reset")
    assert run(Attempt(error, sent=True), Tally(calls=3)) == Answer(error)


def test_no_retry_whose_backoff_reaches_the_deadline() -> None:
    error = UpstreamTransient("reset")
    assert run(Attempt(error, sent=True), time_left_s=0.04, jitter=0.99) == Answer(error)


def test_rate_misses_do_not_use_up_the_retry_budget() -> None:
    decision = run(Attempt(UpstreamTransient("x"), sent=True), Tally(calls=5, requeues=4))
    assert isinstance(decision, Retry)


@pytest.mark.parametrize("once", [False, True])
def test_a_broker_rate_error_requeues_orders_too(once: bool) -> None:
    error = UpstreamRateLimited("too fast", code="EGW00201")
    assert run(Attempt(error, sent=True), Tally(calls=1, requeues=4), once=once) == Requeue()


def test_requeues_are_bounded() -> None:
    error = UpstreamRateLimited("too fast", code="EGW00201")
    assert run(Attempt(error, sent=True), Tally(calls=6, requeues=5)) == Answer(error)


def test_no_requeue_without_time_left() -> None:
    error = UpstreamRateLimited("too fast", code="EGW00201")
    assert run(Attempt(error, sent=True), time_left_s=0.0) == Answer(error)


def test_an_order_that_may_have_reached_the_broker_is_given_up() -> None:
    decision = run(Attempt(UpstreamTransient("read timeout"), sent=True), once=True)
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, OutcomeUnknown)
    assert "read timeout" in decision.error.message


@pytest.mark.parametrize("once", [False, True])
def test_a_rejected_token_is_retried_even_for_an_order(once: bool) -> None:
    decision = run(Attempt(UpstreamAuthError("expired", code="EGW00123"), sent=True), once=once)
    assert isinstance(decision, Retry)


@pytest.mark.parametrize("once", [False, True])
def test_a_business_rejection_is_answered_as_it_is(once: bool) -> None:
    error = UpstreamRejected("no such stock", code="APBK0919")
    assert run(Attempt(error, sent=True), once=once) == Answer(error)


@pytest.mark.parametrize(
    "error",
    [
        HubUnavailable("no token"),
        UpstreamRateLimited("no permit in time", code="APIHUB-RATE-LIMIT"),
        ConfigurationError("bad URL"),
    ],
)
@pytest.mark.parametrize("once", [False, True])
def test_a_failure_before_the_broker_is_answered(error: HubError, once: bool) -> None:
    assert run(Attempt(error, sent=False), Tally(), once=once) == Answer(error)


def test_an_open_breaker_with_a_probe_before_the_deadline_is_waited_for() -> None:
    refused = Attempt(CircuitOpen("open"), breaker_wait_s=2.5)
    assert run(refused, Tally(), time_left_s=10.0) == AwaitProbe(2.5)
    assert run(Attempt(CircuitOpen("open"), breaker_wait_s=0.0), Tally()) == AwaitProbe(0.01)


def test_an_open_breaker_whose_probe_is_too_late_is_answered() -> None:
    error = CircuitOpen("the circuit is open")
    assert run(Attempt(error, breaker_wait_s=30.0), Tally(), time_left_s=10.0) == Answer(error)


def test_probe_waits_are_bounded() -> None:
    decision = run(Attempt(breaker_wait_s=1.0), Tally(probe_waits=3))
    assert isinstance(decision, Answer)
    assert isinstance(decision.error, CircuitOpen)
    assert "next probe in 1.0 s" in decision.error.message


def test_a_deadline_during_an_orders_call_is_outcome_unknown() -> None:
    decision = run(Attempt(RequestTimeout("late"), sent=True, deadline_passed=True), once=True)
    assert isinstance(decision, GiveUp)
    assert "deadline passed while the order was at the broker" in decision.error.message


@pytest.mark.parametrize(("once", "sent"), [(False, True), (False, False), (True, False)])
def test_a_deadline_otherwise_is_a_timeout(once: bool, sent: bool) -> None:
    error = RequestTimeout("the deadline passed while waiting for a permit")
    attempt = Attempt(error, sent=sent, deadline_passed=True)
    assert run(attempt, once=once, time_left_s=0.0) == Answer(error)
    bare = run(Attempt(sent=sent, deadline_passed=True), once=once, time_left_s=0.0)
    assert isinstance(bare, Answer)
    assert isinstance(bare.error, RequestTimeout)


def test_a_success_that_never_reached_the_broker_is_refused() -> None:
    with pytest.raises(ValueError, match="must carry its error"):
        run(Attempt(error=None, sent=False), Tally())


def test_tries_leave_requeues_out() -> None:
    assert Tally(calls=5, requeues=3).tries == 2


# -- every combination -------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    attempt: Attempt
    tally: Tally
    once: bool
    time_left_s: float
    jitter: float


ERRORS: list[HubError | None] = [
    None,
    UpstreamTransient("reset"),
    UpstreamRateLimited("too fast", code="EGW00201"),
    UpstreamRateLimited("no permit", code="APIHUB-RATE-LIMIT"),
    UpstreamAuthError("expired", code="EGW00123"),
    UpstreamRejected("rejected", code="APBK0919"),
    HubUnavailable("limiter down"),
    CircuitOpen("open"),
    RequestTimeout("late"),
    ConfigurationError("bad URL"),
]


def _cases() -> list[Case]:
    cases = []
    for error, sent, breaker_wait, sent_before, deadline_passed in itertools.product(
        ERRORS, (False, True), (None, 0.0, 5.0), (False, True), (False, True)
    ):
        if breaker_wait is not None and sent:
            continue  # a refused admission is never sent
        attempt = Attempt(error, sent, breaker_wait, sent_before, deadline_passed)
        for tally, once, time_left, jitter in itertools.product(
            (Tally(), Tally(1), Tally(3), Tally(6, 5), Tally(2, 0, 3)),
            (False, True),
            (0.0, 0.01, 10.0),
            (0.0, 0.5, 0.999),
        ):
            cases.append(Case(attempt, tally, once, time_left, jitter))
    return cases


CASES = _cases()


def _impossible(case: Case) -> bool:
    attempt = case.attempt
    plain = attempt.breaker_wait_s is None and not (attempt.sent_before or attempt.deadline_passed)
    return plain and attempt.error is None and not attempt.sent


def _decide(case: Case) -> Decision:
    return decide(
        case.attempt,
        case.tally,
        once=case.once,
        time_left_s=case.time_left_s,
        policy=POLICY,
        jitter=case.jitter,
    )


def test_every_combination_keeps_the_promises() -> None:
    assert len(CASES) > 10_000
    for case in CASES:
        if _impossible(case):
            with pytest.raises(ValueError, match="must carry its error"):
                _decide(case)
            continue
        decision = _decide(case)
        attempt = case.attempt
        where = f"{case} -> {decision}"
        # An order that may have reached the broker is never sent again.
        if case.once and attempt.sent and isinstance(decision, Retry | Requeue):
            assert isinstance(attempt.error, UpstreamAuthError | UpstreamRateLimited), where
            assert not attempt.deadline_passed, where
            assert not attempt.sent_before, where
        # Only a non-idempotent request (or an earlier delivery's send) is given up.
        if isinstance(decision, GiveUp):
            assert attempt.sent_before or (case.once and attempt.sent), where
        # Nothing waits past the deadline, and only within the bounds of the policy.
        if isinstance(decision, Retry):
            assert decision.delay_s < case.time_left_s, where
            assert case.tally.tries < POLICY.max_attempts, where
            assert decision.delay_s <= POLICY.backoff_cap_s, where
        if isinstance(decision, AwaitProbe):
            assert decision.delay_s < case.time_left_s or decision.delay_s == 0.01, where
            assert case.tally.probe_waits < POLICY.max_probe_waits, where
        if isinstance(decision, Requeue):
            assert case.time_left_s > 0, where
            assert case.tally.requeues < POLICY.max_requeues, where
            assert isinstance(attempt.error, UpstreamRateLimited), where
            assert attempt.sent, where
        # A success is an answer, and only a success answers without an error.
        if isinstance(decision, Answer) and decision.error is None:
            assert attempt.error is None, where
            assert attempt.sent, where
            assert not attempt.deadline_passed, where
            assert not attempt.sent_before, where
            assert attempt.breaker_wait_s is None, where
        # A refused admission ends as a probe wait or a CircuitOpen answer.
        if attempt.breaker_wait_s is not None and not (
            attempt.sent_before or attempt.deadline_passed
        ):
            assert isinstance(decision, AwaitProbe) or (
                isinstance(decision, Answer) and isinstance(decision.error, CircuitOpen)
            ), where


def _shape(decision: Decision) -> tuple[object, ...]:
    error = getattr(decision, "error", None)
    detail = (type(error).__name__, str(error)) if error is not None else None
    return (type(decision).__name__, getattr(decision, "delay_s", None), detail)


def test_every_combination_is_deterministic() -> None:
    for case in CASES[::7]:
        if not _impossible(case):
            assert _shape(_decide(case)) == _shape(_decide(case))
