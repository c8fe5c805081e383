"""Finding an order whose answer was lost: which inquiry to make and how to match its rows.

Neither broker lets a client tag an order with its own id, so an order is recognised by what it
said — symbol, side, quantity, price and order type — placed in a time window around its send,
on the account it was sent for (the inquiry runs on that account). A modify or cancel is
recognised by the order it points at (KIS ``orgn_odno``, Kiwoom ``orig_ord_no``).

- KIS: the daily order inquiry (``TTTC0081R``) of the send day, filtered to the symbol and side,
  newest first; rows are ``output1``.
- Kiwoom: open orders (``ka10075``) and fills (``ka10076``) of the symbol and side; a cancel
  (``kt10003``) leaves no row of its own, so it is judged by whether the original is still open.

The answer is ``found`` (one candidate, with the broker's order number), ``not_found`` (none) or
``ambiguous`` (several candidates — two identical orders in the same window — listed so a human
can decide). Nothing here sends anything: the caller makes the inquiries through the hub.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Final, Literal

from apihub_core import Provider
from apihub_runtime import TrSpec

from ._kis_paging import param_value

__all__ = [
    "Candidate",
    "Inquiry",
    "OrderTerms",
    "Verdict",
    "candidate_rows",
    "judge",
    "order_terms",
    "reconciliation_inquiries",
    "rows_of",
]

KST: Final = timezone(timedelta(hours=9), "KST")
_KIS_SIDES: Final = {
    "TTTC0012U": "buy",
    "TTTC0802U": "buy",
    "TTTC0011U": "sell",
    "TTTC0801U": "sell",
}
_KIS_MODIFY: Final = frozenset({"TTTC0013U", "TTTC0803U"})
_KIWOOM_SIDES: Final = {"kt10000": "buy", "kt10001": "sell"}
_KIWOOM_MARKET_TYPES: Final = frozenset({"3", "13", "23"})

Status = Literal["found", "not_found", "ambiguous"]


@dataclass(frozen=True, slots=True)
class OrderTerms:
    """What identifies one order request (``kind`` new, modify or cancel)."""

    provider: Provider
    tr_id: str
    kind: Literal["new", "modify", "cancel"]
    symbol: str
    side: str = ""
    """``buy``/``sell``; empty for a modify or cancel (the original's side is unknown here)."""
    quantity: int = 0
    price: int = 0
    market: bool = False
    original_no: str = ""
    account_params: Mapping[str, str] = field(default_factory=dict)
    """KIS ``CANO``/``ACNT_PRDT_CD``: the inquiry runs on the order's account."""


@dataclass(frozen=True, slots=True)
class Inquiry:
    """One call to make through the hub (all its pages)."""

    tr_id: str
    params: dict[str, str]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One broker row that could be the order."""

    order_no: str
    symbol: str
    side: str
    quantity: int
    price: int
    time: str
    """HHMMSS as the broker printed it."""
    original_no: str
    source: str
    """The inquiry TR it came from."""
    open_quantity: int | None = None
    """What is still open (Kiwoom ka10075 ``oso_qty``; KIS ``rmn_qty``)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the inquiries showed."""

    status: Status
    order_no: str = ""
    candidates: tuple[Candidate, ...] = ()
    detail: str = ""


def _number(value: object) -> int:
    text = str(value).strip().lstrip("+")
    negative = text.startswith("-")
    digits = text.lstrip("-").lstrip("0") or "0"
    if not digits.isdigit():
        return 0
    return -int(digits) if negative else int(digits)


def _param(params: Mapping[str, str], name: str) -> str:
    return param_value(params, name).strip()


def order_terms(spec: TrSpec, params: Mapping[str, str]) -> OrderTerms | None:
    """The terms of an order request, or ``None`` for a TR this module cannot reconcile."""
    tr_id = spec.tr_id
    if spec.provider is Provider.KIS:
        account = {
            "CANO": _param(params, "CANO"),
            "ACNT_PRDT_CD": _param(params, "ACNT_PRDT_CD"),
        }
        if tr_id in _KIS_SIDES:
            return OrderTerms(
                provider=spec.provider,
                tr_id=tr_id,
                kind="new",
                symbol=_param(params, "PDNO"),
                side=_KIS_SIDES[tr_id],
                quantity=_number(_param(params, "ORD_QTY")),
                price=_number(_param(params, "ORD_UNPR")),
                market=_param(params, "ORD_DVSN") == "01",
                account_params=account,
            )
        if tr_id in _KIS_MODIFY:
            cancel = _param(params, "RVSE_CNCL_DVSN_CD") == "02"
            return OrderTerms(
                provider=spec.provider,
                tr_id=tr_id,
                kind="cancel" if cancel else "modify",
                symbol="",
                quantity=_number(_param(params, "ORD_QTY")),
                price=_number(_param(params, "ORD_UNPR")),
                original_no=_param(params, "ORGN_ODNO"),
                account_params=account,
            )
        return None
    if tr_id in _KIWOOM_SIDES:
        return OrderTerms(
            provider=spec.provider,
            tr_id=tr_id,
            kind="new",
            symbol=_param(params, "stk_cd"),
            side=_KIWOOM_SIDES[tr_id],
            quantity=_number(_param(params, "ord_qty")),
            price=_number(_param(params, "ord_uv")),
            market=_param(params, "trde_tp") in _KIWOOM_MARKET_TYPES,
        )
    if tr_id in ("kt10002", "kt10003"):
        cancel = tr_id == "kt10003"
        return OrderTerms(
            provider=spec.provider,
            tr_id=tr_id,
            kind="cancel" if cancel else "modify",
            symbol=_param(params, "stk_cd"),
            quantity=_number(_param(params, "cncl_qty" if cancel else "mdfy_qty")),
            price=0 if cancel else _number(_param(params, "mdfy_uv")),
            original_no=_param(params, "orig_ord_no"),
        )
    return None


def reconciliation_inquiries(terms: OrderTerms, sent_at: datetime) -> list[Inquiry]:
    """The inquiries that show ``terms``' order if the broker took it (sent on ``sent_at``)."""
    if terms.provider is Provider.KIS:
        day = sent_at.astimezone(KST).strftime("%Y%m%d")
        side = {"buy": "02", "sell": "01"}.get(terms.side, "00")
        return [
            Inquiry(
                "TTTC0081R",
                {
                    **terms.account_params,
                    "INQR_STRT_DT": day,
                    "INQR_END_DT": day,
                    "SLL_BUY_DVSN_CD": side,
                    "CCLD_DVSN": "00",
                    "INQR_DVSN": "00",
                    "INQR_DVSN_3": "00",
                    "PDNO": terms.symbol,
                },
            )
        ]
    side = {"buy": "2", "sell": "1"}.get(terms.side, "0")
    one = "1" if terms.symbol else "0"
    return [
        Inquiry(
            "ka10075",
            {"all_stk_tp": one, "trde_tp": side, "stk_cd": terms.symbol, "stex_tp": "0"},
        ),
        Inquiry(
            "ka10076",
            {"qry_tp": one, "sell_tp": side, "stk_cd": terms.symbol, "stex_tp": "0"},
        ),
    ]


def rows_of(inquiry: str, body: Any) -> list[Candidate]:
    """The candidate rows of one page of ``inquiry``'s answer (``body`` as decoded JSON)."""
    if not isinstance(body, dict):
        return []
    key = {"TTTC0081R": "output1", "ka10075": "oso", "ka10076": "cntr"}.get(inquiry, "")
    rows = body.get(key)
    if not isinstance(rows, list):
        return []
    found: list[Candidate] = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        if inquiry == "TTTC0081R":
            side = {"01": "sell", "02": "buy"}.get(str(row.get("sll_buy_dvsn_cd", "")), "")
            found.append(
                Candidate(
                    order_no=str(row.get("odno", "")),
                    symbol=str(row.get("pdno", "")),
                    side=side,
                    quantity=_number(row.get("ord_qty", "")),
                    price=_number(row.get("ord_unpr", "")),
                    time=str(row.get("ord_tmd", "")),
                    original_no=str(row.get("orgn_odno", "")),
                    source=inquiry,
                    open_quantity=_number(row.get("rmn_qty", "")),
                )
            )
            continue
        label = str(row.get("io_tp_nm", ""))
        side = "buy" if "매수" in label else "sell" if "매도" in label else ""
        found.append(
            Candidate(
                order_no=str(row.get("ord_no", "")),
                symbol=str(row.get("stk_cd", "")).lstrip("A"),
                side=side,
                quantity=_number(row.get("ord_qty", "")),
                price=_number(row.get("ord_pric", "")),
                time=str(row.get("tm" if inquiry == "ka10075" else "ord_tm", "")),
                original_no=str(row.get("orig_ord_no", "")),
                source=inquiry,
                open_quantity=_number(row.get("oso_qty", "")) if inquiry == "ka10075" else None,
            )
        )
    return found


def _seconds(hhmmss: str) -> int | None:
    digits = "".join(ch for ch in hhmmss if ch.isdigit())[-6:]
    if len(digits) != 6:
        return None
    return int(digits[:2]) * 3600 + int(digits[2:4]) * 60 + int(digits[4:])


def _same_number(a: str, b: str) -> bool:
    return bool(a.strip()) and _number(a) == _number(b) and _number(a) != 0


def judge(
    terms: OrderTerms,
    candidates: Iterable[Candidate],
    *,
    window: tuple[datetime, datetime],
) -> Verdict:
    """Which of ``candidates`` is ``terms``' order, placed between ``window``'s ends."""
    start, end = (t.astimezone(KST) for t in window)
    first = start.hour * 3600 + start.minute * 60 + start.second
    last = end.hour * 3600 + end.minute * 60 + end.second
    if end.date() > start.date():
        last = 24 * 3600  # the window crosses midnight: the rest of the send day
    unique: dict[tuple[str, str], Candidate] = {}
    for candidate in candidates:
        unique.setdefault((candidate.source, candidate.order_no.lstrip("0")), candidate)
    rows = list(unique.values())
    if terms.kind == "new":
        matches = [c for c in rows if _is_new_order(terms, c, first, last)]
    else:
        if terms.kind == "cancel" and terms.provider is Provider.KIWOOM:
            return _kiwoom_cancel(terms, rows)
        matches = [c for c in rows if _same_number(c.original_no, terms.original_no)]
    # One order may show in two inquiries (Kiwoom: open and partly filled): one order number.
    numbers = {c.order_no.lstrip("0") for c in matches}
    if not matches:
        return Verdict("not_found", detail=_not_found_detail(terms))
    if len(numbers) == 1:
        return Verdict("found", order_no=matches[0].order_no, candidates=tuple(matches))
    return Verdict(
        "ambiguous",
        candidates=tuple(matches),
        detail=f"{len(numbers)} orders with the same terms in the window; check them by hand",
    )


def _is_new_order(terms: OrderTerms, row: Candidate, first: int, last: int) -> bool:
    if row.symbol.lstrip("A") != terms.symbol.lstrip("A") or row.side != terms.side:
        return False
    if row.quantity != terms.quantity:
        return False
    if not terms.market and row.price != terms.price:
        return False
    if row.original_no.strip() and _number(row.original_no) != 0:
        return False  # a modify or cancel of another order, not a new one
    second = _seconds(row.time)
    return second is not None and first <= second <= last


def _kiwoom_cancel(terms: OrderTerms, rows: list[Candidate]) -> Verdict:
    original = [
        c for c in rows if c.source == "ka10075" and _same_number(c.order_no, terms.original_no)
    ]
    if original and (original[0].open_quantity or 0) > 0:
        return Verdict(
            "not_found",
            candidates=tuple(original),
            detail=f"order {terms.original_no} is still open: the cancel did not take effect",
        )
    return Verdict(
        "ambiguous",
        candidates=tuple(original),
        detail=(
            f"order {terms.original_no} is no longer open; Kiwoom lists no cancel rows, so a "
            "fill or the session's end could explain it as well as the cancel"
        ),
    )


def _not_found_detail(terms: OrderTerms) -> str:
    if terms.kind == "new":
        return (
            "no order with these terms in the window; the broker may list today's orders late, "
            "so a later check can still find it"
        )
    return f"no order points at {terms.original_no}"


def candidate_rows(candidates: Iterable[Candidate]) -> list[dict[str, str]]:
    """Candidates as plain string maps (for an event)."""
    return [
        {k: "" if v is None else str(v) for k, v in dataclasses.asdict(c).items()}
        for c in candidates
    ]
