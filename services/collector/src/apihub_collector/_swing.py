"""Swing polls: every watched symbol's latest minute bars, as requests and page decisions.

The collector stores nothing itself: the archiver projects the bars from the answers on the
response stream (``tags`` tell it whose they are). What is decided here is which pages to ask.

- KIS ``FHKST03010200`` (today's minute bars) answers at most :data:`KIS_PAGE_ROWS` bars,
  newest first, ending at ``FID_INPUT_HOUR_1``. The first page ends at the market's now; when
  the previous successful poll lies further back than one page reaches, older pages are asked
  with ``FID_INPUT_HOUR_1`` one second before the oldest bar received (right whether the broker
  counts the bound inclusively or not), until the window reaches
  :func:`~apihub_collector._schedule.window_start`, the open, or :data:`MAX_PAGES`.
- Kiwoom ``ka10080`` (minute bars, ``tic_scope`` 1) has no time bound: one answer holds
  hundreds of bars, more than a whole session, so one page always overlaps the last poll.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from apihub_core import Provider
from apihub_marketdata import KST, Session

KIS_MINUTE_TR: Final = "FHKST03010200"
KIWOOM_MINUTE_TR: Final = "ka10080"
KIS_PAGE_ROWS: Final = 30
"""Most bars one FHKST03010200 answer holds."""
MAX_PAGES: Final = 4
"""Most FHKST03010200 pages one swing poll asks (two hours of bars); the sentinel heals a
longer gap (after a long stop, say) from the archive's point of view."""


def swing_tr(provider: Provider) -> str:
    """The minute-bar TR polled for ``provider``."""
    return KIS_MINUTE_TR if provider is Provider.KIS else KIWOOM_MINUTE_TR


def swing_params(provider: Provider, symbol: str, hour: str) -> dict[str, str]:
    """The parameters of a swing page of ``symbol`` ending at ``hour`` (``HHMMSS``; Kiwoom
    has no such bound and ignores it)."""
    if provider is Provider.KIS:
        return {
            "FID_COND_MRKT_DIV_CODE": "J",
            "FID_INPUT_ISCD": symbol,
            "FID_INPUT_HOUR_1": hour,
            "FID_PW_DATA_INCU_YN": "N",
            "FID_ETC_CLS_CODE": "",
        }
    return {"stk_cd": symbol, "tic_scope": "1", "upd_stkpc_tp": "1"}


def hhmmss(at: datetime) -> str:
    """``at`` as the KIS time-of-day parameter."""
    return at.astimezone(KST).strftime("%H%M%S")


def kis_bar_starts(body: Any) -> list[datetime]:
    """The bar starts of a FHKST03010200 answer (``output2``), as found; rows whose date or
    time does not parse are left out (the archiver quarantines them)."""
    rows = body.get("output2") if isinstance(body, Mapping) else None
    if not isinstance(rows, list):
        return []
    starts = []
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        stamp_text = f"{row.get('stck_bsop_date', '')}{row.get('stck_cntg_hour', '')}"
        if len(stamp_text) != 14 or not stamp_text.isdigit():
            continue
        try:
            stamp = datetime.strptime(stamp_text, "%Y%m%d%H%M%S")
        except ValueError:
            continue
        starts.append(stamp.replace(tzinfo=KST))
    return starts


def next_page_hour(
    starts: list[datetime], *, start: datetime | None, session: Session, pages: int
) -> str | None:
    """``FID_INPUT_HOUR_1`` of the next older page after ``pages`` pages whose last held the
    bars ``starts``, or ``None`` when the window is covered: no continuation asked
    (``start`` is ``None``), a short page (nothing older today), the oldest bar reaching
    ``start`` or the open, or :data:`MAX_PAGES` asked."""
    if start is None or not starts or len(starts) < KIS_PAGE_ROWS or pages >= MAX_PAGES:
        return None
    oldest = min(starts)
    if oldest <= start or oldest <= session.open:
        return None
    return hhmmss(oldest - timedelta(seconds=1))


def window_truncated(starts: list[datetime], *, start: datetime | None, pages: int) -> bool:
    """Whether a poll stopped at :data:`MAX_PAGES` before reaching ``start``."""
    return (
        start is not None
        and pages >= MAX_PAGES
        and len(starts) >= KIS_PAGE_ROWS
        and min(starts) > start
    )
