"""The public surface of apihub_testing is curated (as in httpx)."""

from __future__ import annotations

import inspect

import apihub_testing


def test_all_is_sorted_and_complete() -> None:
    exported = apihub_testing.__all__
    assert exported == sorted(exported)
    # Submodules (``plugin``) and pytest's assertion-rewrite helpers are not API.
    public = {
        name
        for name, value in vars(apihub_testing).items()
        if name.isidentifier() and not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(exported)
