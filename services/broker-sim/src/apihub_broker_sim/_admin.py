"""The test and control API under ``/__sim/`` (JSON in, JSON out).

==========================  ==================================================================
``GET  /__sim/health``      ``{"ok": true}``
``GET  /__sim/clock``       ``{"now": iso8601, "frozen": bool, "rate": x}``
``POST /__sim/clock``       ``{"now": iso8601, "frozen": bool}`` to set (frozen by default),
                            ``{"advance_s": x}`` to move, ``{"frozen": false}`` to unfreeze,
                            ``{"rate": x}`` for x simulated seconds per real second (any mix;
                            applied in that order)
``GET  /__sim/faults``      armed faults
``POST /__sim/faults``      arm one (see ``_faults``); returns it with its ``id``
``DELETE /__sim/faults``    disarm all faults *and* conditions; ``/__sim/faults/{id}`` one
``GET  /__sim/conditions``  ``{"seed", "latency": [...], "error_rate": [...], "outage": [...]}``
``POST /__sim/conditions``  add one (see ``_conditions``); returns it with its ``id``
``DELETE /__sim/conditions``  remove all (restarts the random streams); ``/{id}`` one
``POST /__sim/conditions/seed``  ``{"seed": n}``: restart the random streams from ``n``
``POST /__sim/tokens/expire``  ``{"provider": "KIS"|"KIWOOM", "appkey"?: str}``
``POST /__sim/tokens/revoke``  same body; the tokens become invalid
``GET  /__sim/calls``       recorded calls (``?provider=&tr_id=&limit=``)
``DELETE /__sim/calls``     clear the call log only
``GET  /__sim/stats``       token counts, busiest one-second window (at arrival), totals,
                            rate-limit rejections and outage answers per appkey
``GET  /__sim/orders``      accepted orders
``POST /__sim/reset``       clear calls, tokens, faults, rate windows and orders; conditions
                            back to ``SimConfig.conditions``
==========================  ==================================================================
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._faults import FaultSpecError
from ._http import json_response
from ._state import SimState
from ._tokens import KIS, KIWOOM

__all__ = ["routes"]

_MEDIA = "application/json"


def _ok(payload: Any, status: int = 200) -> Response:
    return json_response(payload, status, media_type=_MEDIA)


def _bad(message: str) -> Response:
    return _ok({"error": message}, 400)


async def _body(request: Request) -> dict[str, Any] | None:
    raw = await request.body()
    try:
        data = msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError:
        return None
    return data if isinstance(data, dict) else None


def routes(state: SimState) -> list[Route]:
    """The admin routes bound to ``state``."""

    def clock_view() -> dict[str, Any]:
        clock = state.clock
        return {"now": clock.now().isoformat(), "frozen": clock.frozen, "rate": clock.rate}

    async def health(request: Request) -> Response:
        return _ok({"ok": True})

    async def clock(request: Request) -> Response:
        if request.method == "GET":
            return _ok(clock_view())
        body = await _body(request)
        if body is None:
            return _bad("body must be a JSON object")
        frozen = body.get("frozen")
        if frozen is not None and not isinstance(frozen, bool):
            return _bad("frozen must be a boolean")
        rate = body.get("rate")
        if rate is not None and (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or not math.isfinite(rate)
            or rate <= 0
        ):
            return _bad("rate must be a number above 0 (simulated seconds per real second)")
        step = body.get("advance_s")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int | float)):
            return _bad("advance_s must be a number")
        if "now" in body:
            try:
                when = datetime.fromisoformat(str(body["now"]))
            except ValueError:
                return _bad("now must be an ISO 8601 datetime")
            state.clock.set(when, frozen=True if frozen is None else frozen)
        elif frozen is False:
            state.clock.unfreeze()
        if step is not None:
            state.clock.advance(float(step))
        if rate is not None:
            state.clock.set_rate(float(rate))
        return _ok(clock_view())

    async def faults(request: Request) -> Response:
        if request.method == "GET":
            return _ok([fault.to_json() for fault in state.faults.list()])
        if request.method == "DELETE":
            # "Disarm everything": a test cleaning up after itself should not have to know
            # whether a standing condition (outage, error rate) is also in force.
            state.faults.clear()
            state.conditions.clear()
            return _ok({"cleared": True})
        body = await _body(request)
        try:
            fault = state.faults.add(body)
        except FaultSpecError as error:
            return _bad(str(error))
        return _ok(fault.to_json(), 201)

    async def fault_item(request: Request) -> Response:
        try:
            fault_id = int(request.path_params["fault_id"])
        except ValueError:
            return _bad("fault id must be an integer")
        if not state.faults.remove(fault_id):
            return _ok({"error": "no such fault"}, 404)
        return _ok({"removed": fault_id})

    async def conditions(request: Request) -> Response:
        if request.method == "GET":
            return _ok(state.conditions.view())
        if request.method == "DELETE":
            state.conditions.clear()
            return _ok({"cleared": True})
        body = await _body(request)
        try:
            condition = state.conditions.add(body)
        except FaultSpecError as error:
            return _bad(str(error))
        return _ok(state.conditions.describe(condition), 201)

    async def condition_item(request: Request) -> Response:
        try:
            condition_id = int(request.path_params["condition_id"])
        except ValueError:
            return _bad("condition id must be an integer")
        if not state.conditions.remove(condition_id):
            return _ok({"error": "no such condition"}, 404)
        return _ok({"removed": condition_id})

    async def condition_seed(request: Request) -> Response:
        body = await _body(request)
        seed = None if body is None else body.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            return _bad('body must be {"seed": <integer>}')
        state.conditions.reseed(seed)
        return _ok({"seed": seed})

    async def tokens(request: Request) -> Response:
        body = await _body(request)
        if body is None:
            return _bad("body must be a JSON object")
        provider = str(body.get("provider", "")).upper()
        if provider not in (KIS, KIWOOM):
            return _bad("provider must be KIS or KIWOOM")
        appkey = body.get("appkey")
        if appkey is not None and not isinstance(appkey, str):
            return _bad("appkey must be a string")
        if request.url.path.endswith("/expire"):
            count = state.tokens.expire(provider, appkey)
        else:
            count = state.tokens.revoke(provider, appkey)
        return _ok({"affected": count})

    async def calls(request: Request) -> Response:
        if request.method == "DELETE":
            state.recorder.clear()
            return _ok({"cleared": True})
        query = request.query_params
        records = state.recorder.calls()
        if "provider" in query:
            records = [r for r in records if r.provider == query["provider"].upper()]
        if "tr_id" in query:
            records = [r for r in records if r.tr_id == query["tr_id"]]
        if query.get("limit", "").isdigit():
            records = records[-int(query["limit"]) :]
        return _ok([record.to_json() for record in records])

    async def stats(request: Request) -> Response:
        return _ok(state.recorder.stats())

    async def orders(request: Request) -> Response:
        return _ok([order.to_json() for order in state.orders()])

    async def reset(request: Request) -> Response:
        state.reset()
        return _ok({"reset": True})

    return [
        Route("/__sim/health", health, methods=["GET"]),
        Route("/__sim/clock", clock, methods=["GET", "POST"]),
        Route("/__sim/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/__sim/faults/{fault_id}", fault_item, methods=["DELETE"]),
        Route("/__sim/conditions", conditions, methods=["GET", "POST", "DELETE"]),
        Route("/__sim/conditions/seed", condition_seed, methods=["POST"]),
        Route("/__sim/conditions/{condition_id}", condition_item, methods=["DELETE"]),
        Route("/__sim/tokens/expire", tokens, methods=["POST"]),
        Route("/__sim/tokens/revoke", tokens, methods=["POST"]),
        Route("/__sim/calls", calls, methods=["GET", "DELETE"]),
        Route("/__sim/stats", stats, methods=["GET"]),
        Route("/__sim/orders", orders, methods=["GET"]),
        Route("/__sim/reset", reset, methods=["POST"]),
    ]
