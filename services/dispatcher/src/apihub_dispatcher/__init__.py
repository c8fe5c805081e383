"""The dispatcher service: consumes the request stream and calls the brokers."""

from ._decisions import (
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
from ._dispatcher import Dispatcher
from ._service import open_dispatcher, run_dispatcher

__all__ = [
    "Answer",
    "Attempt",
    "AwaitProbe",
    "Decision",
    "Dispatcher",
    "GiveUp",
    "Requeue",
    "Retry",
    "RetryPolicy",
    "Tally",
    "decide",
    "open_dispatcher",
    "run_dispatcher",
]
