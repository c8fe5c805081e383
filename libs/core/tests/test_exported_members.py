"""The public surface of apihub_core is exactly its sorted ``__all__`` (httpx's habit)."""

from __future__ import annotations

import apihub_core


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: SCREAMING_CASE constants, then CamelCase classes, then functions.
    if name.isupper():
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


def test_all_is_sorted() -> None:
    assert apihub_core.__all__ == sorted(apihub_core.__all__, key=_isort_key)


def test_all_has_no_duplicates() -> None:
    assert len(apihub_core.__all__) == len(set(apihub_core.__all__))


def test_all_equals_the_public_names_of_the_package() -> None:
    public = {name for name in vars(apihub_core) if not name.startswith("_")}
    assert set(apihub_core.__all__) == public


def test_every_exported_name_resolves() -> None:
    for name in apihub_core.__all__:
        assert getattr(apihub_core, name) is not None, name
