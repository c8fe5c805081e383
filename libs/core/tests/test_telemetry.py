"""Trace context on the wire."""

from __future__ import annotations

from apihub_core import extract_trace, inject_trace


def test_no_active_span_puts_nothing_on_the_wire() -> None:
    assert inject_trace() == {}
    assert extract_trace({}) is None
