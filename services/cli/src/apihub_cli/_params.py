"""The parameters of ``apihub call``: ``-p KEY=VALUE`` and ``--params-json``, checked against
the TR's catalog entry before anything is sent.

A repeated name is refused (which value would the broker get?), across ``-p`` and the JSON
alike; so is a name the catalog entry does not list (a typo would otherwise reach the broker
and come back as some code of its own), unless the caller says it means it. Names compare
case-insensitively, as the catalog's check of required parameters does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

from apihub_brokers import TrSpec


class ParamError(ValueError):
    """A bad parameter, with a one-line reason naming it."""


def parse_pairs(pairs: Iterable[str]) -> list[tuple[str, str]]:
    """``KEY=VALUE`` strings as pairs, in order."""
    parsed = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParamError(f"parameter {pair!r} is not KEY=VALUE")
        parsed.append((key.strip(), value))
    return parsed


def load_json(source: str) -> list[tuple[str, str]]:
    """A JSON object of string values: inline text, ``@file.json``, or ``-`` for stdin."""
    if source == "-":
        text, where = sys.stdin.read(), "--params-json - (stdin)"
    elif source.startswith("@"):
        path = Path(source[1:])
        where = f"--params-json {source}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ParamError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    else:
        text, where = source, "--params-json"
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ParamError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ParamError(f"{where} must be a JSON object of KEY: VALUE strings")
    pairs = []
    for key, value in document.items():
        if not isinstance(value, str):
            raise ParamError(
                f"{where}: the value of {key!r} must be a string, not {json.dumps(value)}"
                " (broker parameters are strings: write it in quotes)"
            )
        pairs.append((key, value))
    return pairs


def merge(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The pairs as one mapping; a name given twice (in any case) is refused."""
    params: dict[str, str] = {}
    first: dict[str, str] = {}
    for key, value in pairs:
        earlier = first.setdefault(key.upper(), key)
        if key.upper() in first and (earlier != key or key in params):
            also = "" if earlier == key else f" (also as {earlier!r})"
            raise ParamError(f"parameter {key!r} is given twice{also}: give it once")
        params[key] = value
    return params


def check_known(params: Iterable[str], spec: TrSpec) -> None:
    """Refuse the first name ``spec`` lists neither as required nor as optional."""
    known = {name.upper(): name for name in (*spec.required, *spec.optional)}
    for name in params:
        if name.upper() not in known:
            listed = ", ".join((*spec.required, *spec.optional)) or "none"
            raise ParamError(
                f"parameter {name!r} is not a parameter of {spec.provider.value} {spec.tr_id} "
                f"(known: {listed}); pass --allow-unknown-params to send it anyway"
            )
