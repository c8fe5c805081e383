"""The simulated brokerage account: cash, holdings and orders that fill against the tape.

Every account the simulator sees (a KIS ``CANO``-``ACNT_PRDT_CD`` pair, a Kiwoom app key)
opens with ``SimConfig.account_cash`` won and the holdings of ``SimConfig.account_holdings``
(bought at the close before the simulator's first day), so balance, orderable amount, open
orders and fills all answer from one ledger that agrees with the market data.

How an order fills (deterministic, whole quantity at once):

- an order works in one session (the KRX calendar's hours, see ``_krx``): the day it is
  placed when that is a trading day before its close, otherwise the next trading day; what is
  left at that close expires;
- a market order fills at the first print at or after it starts working, a limit buy at the
  first print at or below its price (at its price), a limit sell at the first print at or
  above it. An order that meets the last print fills on arrival only in continuous trading;
  one placed during the closing auction (the last ten minutes) waits for the closing print.
  Fills are worked out lazily, as of the simulated "now" of each inquiry, so moving the clock
  forward fills resting orders;
- a modify moves the remainder of an open order to a new order number with the new terms
  (``orgn`` points back); a cancel records a cancel order and takes the remainder off. A
  filled or expired remainder cannot be modified or cancelled.

Buys need orderable cash (cash minus what open buys hold, at their limit or the upper price
limit for market orders); sells need orderable quantity. Commission (0.015 %) and the sell
tax (0.18 %) come off the cash on each fill, rounded down to whole won.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

from ._clock import KST, SimClock
from ._krx import REGULAR_HOURS, price_limits, second_of_day
from ._market import Market

__all__ = ["AccountBook", "BookOrder", "Holding", "OrderRejected", "Side"]

Side = Literal["buy", "sell"]
OrderKind = Literal["new", "modify", "cancel"]

COMMISSION_BP = 1.5  # basis points of the traded value
SELL_TAX_BP = 18.0


class OrderRejected(Exception):
    """The book refuses an order; ``reason`` is one of ``cash``, ``quantity``, ``not_found``,
    ``not_open``, ``too_large`` (the broker modules map it to their own error codes)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class BookOrder:
    """One order as the broker keeps it (a modify or a cancel is an order of its own)."""

    account: str
    order_no: str
    kind: OrderKind
    tr_id: str
    side: Side
    symbol: str
    quantity: int
    price: int
    """The limit price; 0 for a market order (and for a cancel)."""
    market_order: bool
    placed_at: datetime
    working_day: date
    """The session the order works in (it expires at that day's close)."""
    branch: str = ""
    """KIS's ``KRX_FWDG_ORD_ORGNO`` (``ord_gno_brno``); "" on Kiwoom."""
    exchange: str = "KRX"
    original_no: str = ""
    """The order this one modifies or cancels ("" for a new order)."""
    root_no: str = ""
    """The first order of the chain (Kiwoom's ``base_orig_ord_no``); itself for a new order."""
    filled: int = 0
    fill_value: int = 0
    fill_second: int | None = None
    moved: int = 0
    """Quantity taken off by a later modify or cancel."""

    @property
    def remaining(self) -> int:
        """What is still working (never negative); 0 for cancels."""
        if self.kind == "cancel":
            return 0
        return max(0, self.quantity - self.filled - self.moved)

    @property
    def average_price(self) -> int:
        """The average fill price (0 before a fill)."""
        return self.fill_value // self.filled if self.filled else 0


@dataclass
class Holding:
    """A position: quantity and what it cost (a sold-out position stays with quantity 0)."""

    symbol: str
    quantity: int = 0
    cost: int = 0
    bought_today: int = 0
    sold_today: int = 0

    @property
    def average_price(self) -> float:
        """Purchase price per share (0 when flat)."""
        return self.cost / self.quantity if self.quantity else 0.0


@dataclass
class _Account:
    cash: int
    holdings: dict[str, Holding]
    orders: list[BookOrder] = field(default_factory=list)
    buy_value_today: int = 0
    sell_value_today: int = 0
    fees_today: int = 0
    tax_today: int = 0
    day: date | None = None


class AccountBook:
    """Every simulated account, thread-safe; read through :meth:`orders` and friends."""

    def __init__(
        self,
        market: Market,
        clock: SimClock,
        *,
        cash: int,
        holdings: Mapping[str, int],
    ) -> None:
        """A book whose new accounts open with ``cash`` and ``holdings`` (code -> shares)."""
        self._market = market
        self._clock = clock
        self._cash = cash
        self._start_holdings = dict(holdings)
        self._accounts: dict[str, _Account] = {}
        self._lock = threading.RLock()
        self._opening_day = market.prev_trading_day(clock.now().astimezone(KST).date())

    # --- writes ------------------------------------------------------------------------

    def place(
        self,
        account: str,
        order_no: str,
        *,
        tr_id: str,
        side: Side,
        symbol: str,
        quantity: int,
        price: int,
        market_order: bool,
        branch: str = "",
        exchange: str = "KRX",
    ) -> BookOrder:
        """Accept a new order or raise :class:`OrderRejected` (``cash`` / ``quantity``)."""
        with self._lock:
            now = self._clock.now()
            book = self._settled(account, now)
            order = BookOrder(
                account=account,
                order_no=order_no,
                kind="new",
                tr_id=tr_id,
                side=side,
                symbol=symbol,
                quantity=quantity,
                price=0 if market_order else price,
                market_order=market_order,
                placed_at=now,
                branch=branch,
                exchange=exchange,
                root_no=order_no,
                working_day=self._working_day(now),
            )
            self._check_affordable(book, order, now)
            book.orders.append(order)
            self._fill(book, order, now)
            return order

    def modify(
        self,
        account: str,
        order_no: str,
        original_no: str,
        *,
        tr_id: str,
        quantity: int | None,
        price: int,
        market_order: bool = False,
        branch: str = "",
    ) -> BookOrder:
        """Move ``quantity`` (``None``: all) of an open order's remainder to new terms."""
        with self._lock:
            now = self._clock.now()
            book = self._settled(account, now)
            target = self._open_order(book, original_no)
            moved = self._movable(target, quantity)
            order = _follow_on(target, order_no, "modify", tr_id, moved, now, branch)
            order.price = 0 if market_order else price
            order.market_order = market_order
            target.moved += moved
            try:
                self._check_affordable(book, order, now)
            except OrderRejected:
                target.moved -= moved
                raise
            book.orders.append(order)
            self._fill(book, order, now)
            return order

    def cancel(
        self,
        account: str,
        order_no: str,
        original_no: str,
        *,
        tr_id: str,
        quantity: int | None,
        branch: str = "",
    ) -> BookOrder:
        """Take ``quantity`` (``None``: all) off an open order's remainder."""
        with self._lock:
            now = self._clock.now()
            book = self._settled(account, now)
            target = self._open_order(book, original_no)
            taken = self._movable(target, quantity)
            target.moved += taken
            order = _follow_on(target, order_no, "cancel", tr_id, taken, now, branch)
            book.orders.append(order)
            return order

    def reset(self) -> None:
        """Forget every account."""
        with self._lock:
            self._accounts.clear()

    # --- reads (each settles fills up to the simulated now first) -------------------------

    def orders(self, account: str) -> list[BookOrder]:
        """The account's orders, oldest first (copies: callers may not change the book)."""
        with self._lock:
            book = self._settled(account, self._clock.now())
            return [_copy(order) for order in book.orders]

    def open_orders(self, account: str) -> list[BookOrder]:
        """Orders with a remainder that can still fill, oldest first."""
        with self._lock:
            now = self._clock.now()
            book = self._settled(account, now)
            return [_copy(o) for o in book.orders if o.remaining and not self._expired(o, now)]

    def holdings(self, account: str) -> list[Holding]:
        """Positions by symbol, including today's sold-out ones (quantity 0)."""
        with self._lock:
            book = self._settled(account, self._clock.now())
            return [Holding(**h.__dict__) for h in sorted(book.holdings.values(), key=_symbol)]

    def cash(self, account: str) -> int:
        """Settled cash after today's fills, fees and taxes."""
        with self._lock:
            return self._settled(account, self._clock.now()).cash

    def orderable_cash(self, account: str) -> int:
        """Cash minus what open buy orders hold."""
        with self._lock:
            now = self._clock.now()
            book = self._settled(account, now)
            return book.cash - self._held_cash(book, now)

    def orderable_quantity(self, account: str, symbol: str) -> int:
        """Shares of ``symbol`` not already offered by open sell orders."""
        with self._lock:
            now = self._clock.now()
            book = self._settled(account, now)
            return self._free_shares(book, symbol, now)

    def today_flows(self, account: str) -> tuple[int, int, int, int]:
        """Today's (buy value, sell value, commission, tax)."""
        with self._lock:
            book = self._settled(account, self._clock.now())
            return book.buy_value_today, book.sell_value_today, book.fees_today, book.tax_today

    def order_price_cap(self, symbol: str, price: int, market_order: bool) -> int:
        """The price a buy holds cash at: its limit, or the day's upper limit for a market
        order (what a broker reserves)."""
        if not market_order:
            return price
        day, _ = self._market.session(self._clock.now())
        return price_limits(self._market.prev_close(symbol, day))[1]

    # --- internals ---------------------------------------------------------------------

    def _account(self, account: str) -> _Account:
        book = self._accounts.get(account)
        if book is None:
            holdings = {
                code: Holding(code, qty, qty * self._market.close(code, self._opening_day))
                for code, qty in self._start_holdings.items()
            }
            book = self._accounts[account] = _Account(cash=self._cash, holdings=holdings)
        return book

    def _settled(self, account: str, now: datetime) -> _Account:
        book = self._account(account)
        today = now.astimezone(KST).date()
        if book.day != today:
            # A new day: today's flows start at zero and yesterday's sold-out rows go.
            book.day = today
            book.buy_value_today = book.sell_value_today = 0
            book.fees_today = book.tax_today = 0
            for code in [c for c, h in book.holdings.items() if h.quantity == 0]:
                del book.holdings[code]
            for holding in book.holdings.values():
                holding.bought_today = holding.sold_today = 0
        for order in book.orders:
            if order.remaining and order.fill_second is None:
                self._fill(book, order, now)
        return book

    def _working_day(self, now: datetime) -> date:
        local = now.astimezone(KST)
        day = local.date()
        hours = self._market.hours(day)
        if hours is not None and _second(local) < hours.close_s:
            return day
        day += timedelta(days=1)
        while not self._market.is_trading_day(day):
            day += timedelta(days=1)
        return day

    def _window(self, order: BookOrder, now: datetime) -> tuple[int, int] | None:
        """The seconds of ``order.working_day`` in which it can fill as of ``now``."""
        local_now = now.astimezone(KST)
        placed = order.placed_at.astimezone(KST)
        hours = self._market.hours(order.working_day) or REGULAR_HOURS
        start = hours.open_s
        if placed.date() == order.working_day:
            start = max(start, _second(placed))
        if local_now.date() < order.working_day:
            return None
        end = hours.close_s
        if local_now.date() == order.working_day:
            end = min(end, _second(local_now))
        return (start, end) if start <= end else None

    def _expired(self, order: BookOrder, now: datetime) -> bool:
        local = now.astimezone(KST)
        return local.date() > order.working_day or (
            local.date() == order.working_day
            and _second(local) >= self._market.close_s(order.working_day)
        )

    def _fill(self, book: _Account, order: BookOrder, now: datetime) -> None:
        if order.kind == "cancel" or not order.remaining or order.fill_second is not None:
            return
        if order.placed_at == now and self._marketable(order, now):
            return
        window = self._window(order, now)
        if window is None:
            return
        tape = self._market.tape(order.symbol, order.working_day)
        # Prints strictly after the second it was placed: the marketable check covered that one.
        first = tape.tick_count(window[0])
        last = tape.tick_count(window[1])
        for i in range(first, last):
            price = tape.prices[i]
            crosses = price <= order.price if order.side == "buy" else price >= order.price
            if order.market_order or crosses:
                fill_price = price if order.market_order else order.price
                self._book_fill(book, order, fill_price, tape.secs[i])
                return

    def _marketable(self, order: BookOrder, now: datetime) -> bool:
        """Fill an order that meets the last print on arrival, at that price (it takes the
        resting quantity there); returns whether it filled."""
        local = now.astimezone(KST)
        second = _second(local)
        hours = self._market.hours(local.date())
        # In the closing auction there is no continuous trading to meet: the order waits for
        # the closing print (``_fill``).
        if order.working_day != local.date() or hours is None:
            return False
        if not hours.open_s <= second < hours.auction_s:
            return False
        tape = self._market.tape(order.symbol, local.date())
        count = tape.tick_count(second)
        if count == 0:
            return False
        last = tape.prices[count - 1]
        crosses = order.price >= last if order.side == "buy" else order.price <= last
        if order.market_order or crosses:
            self._book_fill(self._accounts[order.account], order, last, second)
            return True
        return False

    def _book_fill(self, book: _Account, order: BookOrder, price: int, second: int) -> None:
        quantity = order.remaining
        value = price * quantity
        order.filled += quantity
        order.fill_value += value
        order.fill_second = second
        holding = book.holdings.setdefault(order.symbol, Holding(order.symbol))
        fee = int(value * COMMISSION_BP / 10_000)
        if order.side == "buy":
            holding.quantity += quantity
            holding.cost += value
            holding.bought_today += quantity
            book.cash -= value + fee
            book.buy_value_today += value
        else:
            average = holding.average_price
            holding.quantity -= quantity
            holding.cost = round(average * holding.quantity)
            holding.sold_today += quantity
            tax = int(value * SELL_TAX_BP / 10_000)
            book.cash += value - fee - tax
            book.sell_value_today += value
            book.tax_today += tax
        book.fees_today += fee

    def _held_cash(self, book: _Account, now: datetime) -> int:
        held = 0
        for order in book.orders:
            if order.side == "buy" and order.remaining and not self._expired(order, now):
                cap = self.order_price_cap(order.symbol, order.price, order.market_order)
                held += cap * order.remaining
        return held

    def _free_shares(self, book: _Account, symbol: str, now: datetime) -> int:
        holding = book.holdings.get(symbol)
        offered = sum(
            o.remaining
            for o in book.orders
            if o.side == "sell" and o.symbol == symbol and not self._expired(o, now)
        )
        return (holding.quantity if holding else 0) - offered

    def _check_affordable(self, book: _Account, order: BookOrder, now: datetime) -> None:
        if order.side == "buy":
            cap = self.order_price_cap(order.symbol, order.price, order.market_order)
            if cap * order.quantity > book.cash - self._held_cash(book, now):
                raise OrderRejected("cash", "주문가능금액을 초과 했습니다")
        elif order.quantity > self._free_shares(book, order.symbol, now):
            raise OrderRejected("quantity", "주문가능수량을 초과 했습니다")

    def _open_order(self, book: _Account, order_no: str) -> BookOrder:
        wanted = order_no.lstrip("0")
        for order in book.orders:
            if order.order_no.lstrip("0") == wanted and order.kind != "cancel":
                if not order.remaining or self._expired(order, self._clock.now()):
                    raise OrderRejected("not_open", "정정/취소할 수량이 없습니다")
                return order
        raise OrderRejected("not_found", "원주문번호가 존재하지 않습니다")

    @staticmethod
    def _movable(target: BookOrder, quantity: int | None) -> int:
        if quantity is None or quantity == 0:
            return target.remaining
        if quantity > target.remaining:
            raise OrderRejected("too_large", "정정/취소 가능수량을 초과 했습니다")
        return quantity


def _follow_on(
    target: BookOrder,
    order_no: str,
    kind: OrderKind,
    tr_id: str,
    quantity: int,
    now: datetime,
    branch: str,
) -> BookOrder:
    """A modify or cancel of ``target``: same side, symbol, venue, session and chain."""
    return BookOrder(
        account=target.account,
        order_no=order_no,
        kind=kind,
        tr_id=tr_id,
        side=target.side,
        symbol=target.symbol,
        quantity=quantity,
        price=0,
        market_order=False,
        placed_at=now,
        working_day=target.working_day,
        branch=branch or target.branch,
        exchange=target.exchange,
        original_no=target.order_no,
        root_no=target.root_no,
    )


def _copy(order: BookOrder) -> BookOrder:
    return BookOrder(**order.__dict__)


def _symbol(holding: Holding) -> str:
    return holding.symbol


def _second(moment: datetime) -> int:
    """Seconds after midnight KST of ``moment``."""
    local = moment.astimezone(KST)
    return second_of_day(local.hour, local.minute, local.second)
