"""The public surface stays small, sorted and documented."""

from __future__ import annotations

import inspect

import apihub_broker_sim


def test_all_is_sorted_and_complete() -> None:
    names = apihub_broker_sim.__all__
    assert names == sorted(names)
    public = {name for name in dir(apihub_broker_sim) if not name.startswith("_")}
    assert set(names) == public


def test_every_export_is_documented() -> None:
    for name in apihub_broker_sim.__all__:
        member = getattr(apihub_broker_sim, name)
        if inspect.isclass(member) or inspect.isfunction(member):
            assert inspect.getdoc(member), name
