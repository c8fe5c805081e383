"""The exceptions apihub_marketdata raises: one small tree, all of them fatal for their input.

::

    MarketDataError        base of the library's errors
    ├── NormaliseError     a broker answer that cannot become market data as a whole; the
    │                      archiver quarantines the answer with ``reason`` and ``detail``
    │                      (retrying the same bytes gives the same error)
    └── CalendarError      a trading-calendar override file that cannot be read or is wrong

Neither is retryable: the same answer or the same file fails the same way. A ``NormaliseError``
with reason ``broker_error`` is the one whose cause lies upstream (the broker said no); asking
the broker again later may well succeed, but normalising these bytes never will.
"""

from __future__ import annotations

from typing import Final

NORMALISE_REASONS: Final = frozenset(
    {
        "bad_number",
        "bad_time",
        "broker_error",
        "inconsistent_bar",
        "malformed_json",
        "missing_field",
        "missing_time",
        "unsupported_tr",
    }
)
"""Every ``NormaliseError.reason``: stable words, safe to count and alert on."""


class MarketDataError(Exception):
    """Base of every exception of apihub_marketdata."""


class NormaliseError(MarketDataError):
    """A broker answer that cannot be normalised; nothing of it is returned.

    ``reason`` is one stable word (see ``NORMALISE_REASONS``):

    - ``malformed_json``: not JSON, cut short, not an object, or a value of the wrong JSON type;
    - ``missing_field``: a list or object the TR always carries is absent (or a request
      parameter the TR needs, such as the symbol);
    - ``bad_number`` / ``bad_time``: a number, date or time that does not parse;
    - ``inconsistent_bar``: a bar or print that cannot be true (high below open or close, low
      above them, a price not above zero, a negative volume, a cumulative value that shrinks,
      two different bars at one time);
    - ``broker_error``: the broker answered with an error (KIS ``rt_cd`` not ``"0"``, Kiwoom
      ``return_code`` not 0);
    - ``missing_time``: the answer carries no time of its own and ``received_at`` was not given;
    - ``unsupported_tr``: the TR carries no market data this library knows.

    ``detail`` says where (the row index in the broker's own order, e.g. ``output2[3]``, and
    the field) and what, in one line. ``provider``/``tr_id`` name the answer.
    """

    def __init__(self, reason: str, detail: str = "", *, provider: str = "", tr_id: str = ""):
        """Record the reason word, the one-line detail and the answer's provider and TR."""
        self.reason = reason
        self.detail = detail
        self.provider = provider
        self.tr_id = tr_id
        super().__init__(reason, detail)

    def __str__(self) -> str:
        where = f"{self.provider} {self.tr_id}: " if self.provider or self.tr_id else ""
        return f"{where}{self.reason}: {self.detail}" if self.detail else f"{where}{self.reason}"


class CalendarError(MarketDataError):
    """A calendar override file that cannot be read or says something impossible; the message
    names the file and the problem in one line."""
