"""The exit status of every apihub process, by outcome class: one table for the CLI and the
services, so a script can branch on it (``docs/cli.md``).

====  ====================  ==========================================================  ======
code  name                  when                                                        script
====  ====================  ==========================================================  ======
0     OK                    success (a service: drained and stopped)                    —
1     FAILURE               an unexpected error: a bug (Python's own status, too)       report
2     USAGE                 bad flags or arguments (click's own code)                   fix
3     CONFIGURATION         the configuration is wrong (:class:`ConfigurationError`)    fix
10    INVALID               the hub refused the request (:class:`RequestInvalid`)       never
11    REJECTED              the broker refused it on its merits (``UpstreamRejected``)  never
12    AUTH                  the broker refused the credentials (``UpstreamAuthError``)  never
20    TIMEOUT               no answer within the timeout (:class:`RequestTimeout`)      later
21    RATE_LIMITED          the broker said "too fast" (``UpstreamRateLimited``)        later
22    UPSTREAM_TRANSIENT    network failure or 5xx at the broker (``UpstreamTransient``) later
23    CIRCUIT_OPEN          the broker endpoint's breaker is open (:class:`CircuitOpen`)  later
24    HUB_UNAVAILABLE       Redis unreachable, or no hub running (``HubUnavailable``)   later
30    OUTCOME_UNKNOWN       an order may have reached the broker (``OutcomeUnknown``)   reconcile
====  ====================  ==========================================================  ======

The decades group what a script does next: 10–19 never retry as is, 20–29 retry later, 30
reconcile before anything else. A service stopped by force exits ``128 + signal`` (the shell's
convention); no other code reaches 126.
"""

from __future__ import annotations

import enum
from typing import Final

from apihub_core import (
    CircuitOpen,
    ConfigurationError,
    HubUnavailable,
    OutcomeUnknown,
    RequestInvalid,
    RequestTimeout,
    UpstreamAuthError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTransient,
)


class ExitCode(enum.IntEnum):
    """The exit status of an apihub command or service, one per outcome class.

    See the table in ``docs/cli.md``: 10–19 never retry as is, 20–29 retry later, 30 reconcile.
    """

    OK = 0
    FAILURE = 1
    USAGE = 2
    CONFIGURATION = 3
    INVALID = 10
    REJECTED = 11
    AUTH = 12
    TIMEOUT = 20
    RATE_LIMITED = 21
    UPSTREAM_TRANSIENT = 22
    CIRCUIT_OPEN = 23
    HUB_UNAVAILABLE = 24
    OUTCOME_UNKNOWN = 30

    @property
    def retry_later(self) -> bool:
        """Whether the same command may succeed later, unchanged (20–29)."""
        return 20 <= self.value < 30


_BY_ERROR: Final[dict[type, ExitCode]] = {
    ConfigurationError: ExitCode.CONFIGURATION,
    RequestInvalid: ExitCode.INVALID,
    UpstreamRejected: ExitCode.REJECTED,
    UpstreamAuthError: ExitCode.AUTH,
    RequestTimeout: ExitCode.TIMEOUT,
    UpstreamRateLimited: ExitCode.RATE_LIMITED,
    UpstreamTransient: ExitCode.UPSTREAM_TRANSIENT,
    CircuitOpen: ExitCode.CIRCUIT_OPEN,
    HubUnavailable: ExitCode.HUB_UNAVAILABLE,
    OutcomeUnknown: ExitCode.OUTCOME_UNKNOWN,
}


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit status of a process that ends on ``error``: its nearest class in the table
    (a subclass of :class:`HubUnavailable` other than :class:`CircuitOpen` is
    ``HUB_UNAVAILABLE``); anything unclassified is ``FAILURE``."""
    for kind in type(error).__mro__:
        code = _BY_ERROR.get(kind)
        if code is not None:
            return code
    return ExitCode.FAILURE
