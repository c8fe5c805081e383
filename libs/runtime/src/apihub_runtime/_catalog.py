"""The TR catalog's data model: what a broker transaction is, how its definitions are read
from TOML and checked, and the :class:`Catalog` that finds them.

The built-in definitions are data shipped with ``apihub_brokers`` (its ``trs.toml``, read with
:meth:`Catalog.from_toml`); ``apihub.toml`` may add or replace definitions with
``[[catalog.tr]]`` tables of the same fields, which :func:`apihub_runtime.load_settings` reads
into ``Settings.catalog.trs`` (``apihub_brokers.configured_catalog`` merges the two). A wrong
definition is refused as a :class:`~apihub_core.ConfigurationError` naming its file and line.
The format is described in ``docs/configuration.md`` ("Adding a TR").

This lives in the runtime, not in ``apihub_brokers``, because settings are read here and the
runtime cannot depend on the brokers package (which depends on it).
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NoReturn, get_args

from apihub_core import ConfigurationError, Provider

HttpMethod = Literal["GET", "POST"]
Paging = Literal["none", "tr_cont", "cont_key", "date_window", "hour_window"]
"""How a TR pages: not at all, KIS ``tr_cont`` headers, Kiwoom ``cont-yn``/``next-key`` headers,
or by moving a date (``FID_INPUT_DATE_2``) or time (``FID_INPUT_HOUR_1``) window back."""
TrKind = Literal["query", "order"]

_KIS_VPS_PREFIXES: Final = ("T", "J", "C")
"""Real KIS TR ids starting with these letters become ``V…`` on the virtual (vps) domain, as the
official sample client ``kis_auth._url_fetch`` (koreainvestment/open-trading-api) does."""


def _default_virtual_tr_id(provider: Provider, tr_id: str) -> str:
    if provider is Provider.KIS and tr_id[:1] in _KIS_VPS_PREFIXES:
        return "V" + tr_id[1:]
    return tr_id


def _normal_id(provider: Provider, tr_id: str) -> str:
    """KIS ids are upper-case, Kiwoom ids lower-case; lookups ignore case."""
    tr_id = tr_id.strip()
    return tr_id.lower() if provider is Provider.KIWOOM else tr_id.upper()


@dataclass(frozen=True, slots=True)
class TrSpec:
    """One broker transaction (KIS ``tr_id`` / Kiwoom ``api-id``) and how to call it."""

    provider: Provider
    tr_id: str
    method: HttpMethod
    path: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    is_order: bool = False
    """Non-idempotent: never retried once the request may have reached the broker."""
    paging: Paging = "none"
    family: str = ""
    """Endpoint family (``quotations``, ``chart``, ``order``) for a per-family circuit breaker."""
    description: str = ""
    virtual_tr_id: str = ""
    """The id sent on a virtual (모의투자) account. Empty means the provider's rule: a KIS id
    starting with T/J/C becomes ``V…`` (``TTTC0012U`` → ``VTTC0012U``), any other id stays."""
    cont_headers: tuple[str, ...] = ()
    """Response headers that say more follows and go back on the next request (KIS
    ``tr_cont``; Kiwoom ``cont-yn``, ``next-key``)."""
    cont_fields: tuple[str, ...] = ()
    """Parameters that carry the position of the next page: with ``tr_cont`` the response's
    body cursors sent back (``CTX_AREA_FK100``, ``CTX_AREA_NK100``); with a window paging the
    bound the caller moves back (``FID_INPUT_DATE_2``, ``FID_INPUT_HOUR_1``)."""
    source: str = field(default="", compare=False)
    """Where the definition was read (``file:line``); empty for a spec built in code."""

    def __post_init__(self) -> None:
        if not self.virtual_tr_id:
            twin = _default_virtual_tr_id(self.provider, self.tr_id)
            object.__setattr__(self, "virtual_tr_id", twin)

    @property
    def kind(self) -> TrKind:
        """``"order"`` for a non-idempotent TR, else ``"query"``."""
        return "order" if self.is_order else "query"

    def wire_tr_id(self, *, virtual: bool) -> str:
        """The id the broker expects: the virtual twin on a virtual account, else ``tr_id``."""
        return self.virtual_tr_id if virtual else self.tr_id

    def missing_params(self, params: Mapping[str, str]) -> tuple[str, ...]:
        """The required parameters absent from ``params`` (names compared case-insensitively)."""
        present = {name.upper() for name in params}
        return tuple(name for name in self.required if name.upper() not in present)


def _keys(spec: TrSpec) -> list[tuple[Provider, str]]:
    ids = dict.fromkeys(_normal_id(spec.provider, i) for i in (spec.tr_id, spec.virtual_tr_id))
    return [(spec.provider, tr_id) for tr_id in ids]


class Catalog:
    """The TRs apihub can call, found by provider and id (or virtual twin), case-insensitively.

    Immutable, iterable in definition order, hashable. :meth:`extended` returns the catalog
    with other definitions added or replacing its own.
    """

    __slots__ = ("_hash", "_index", "_specs")

    def __init__(self, specs: Iterable[TrSpec] = ()) -> None:
        self._specs: tuple[TrSpec, ...] = tuple(specs)
        index: dict[tuple[Provider, str], TrSpec] = {}
        for spec in self._specs:
            for key in _keys(spec):
                if key in index:
                    raise ValueError(f"{key[0].value} TR {key[1]} is defined twice")
                index[key] = spec
        self._index = index
        self._hash = hash(self._specs)

    @classmethod
    def from_toml(cls, text: str, source: str, *, table: str = "tr") -> Catalog:
        """The definitions of the ``[[<table>]]`` tables of the TOML ``text``, checked;
        ``source`` names the file in a :class:`~apihub_core.ConfigurationError`."""
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{source} is not valid TOML: {exc}") from None
        value: Any = doc
        for part in table.split("."):
            value = value.get(part, []) if isinstance(value, dict) else None
        return parse_tr_tables(value, text, source, table)

    def lookup(self, provider: Provider, tr_id: str) -> TrSpec | None:
        """The spec of ``tr_id`` (or of the TR whose virtual twin it is), or ``None``.

        KIS ids are matched upper-case, Kiwoom ids lower-case.
        """
        return self._index.get((provider, _normal_id(provider, tr_id)))

    def of(self, provider: Provider | None = None) -> list[TrSpec]:
        """Every TR, or those of ``provider``, in catalog order."""
        return [s for s in self._specs if provider is None or s.provider is provider]

    def extended(self, other: Iterable[TrSpec]) -> Catalog:
        """This catalog with the definitions of ``other`` (a catalog or specs) added.

        ``other`` wins: a definition replaces, in place, every one of this catalog sharing
        an id with it (its ``tr_id`` or virtual twin, per provider); new ones come last.
        """
        incoming = list(other)
        if not incoming:
            return self
        claimed = {key: spec for spec in incoming for key in _keys(spec)}
        merged: list[TrSpec] = []
        placed: set[int] = set()
        for spec in self._specs:
            winner = next((claimed[key] for key in _keys(spec) if key in claimed), None)
            if winner is None:
                merged.append(spec)
            elif id(winner) not in placed:
                merged.append(winner)
                placed.add(id(winner))
        merged += [spec for spec in incoming if id(spec) not in placed]
        return Catalog(merged)

    def __iter__(self) -> Iterator[TrSpec]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, spec: object) -> bool:
        return spec in self._specs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Catalog):
            return NotImplemented
        return self._specs == other._specs

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        shown = ", ".join(f"{s.provider.value} {s.tr_id}" for s in self._specs)
        return f"Catalog([{shown}])"


# -- reading definitions ---------------------------------------------------------------------

_FIELDS: Final = (
    "provider",
    "tr_id",
    "virtual_tr_id",
    "method",
    "path",
    "required",
    "optional",
    "kind",
    "family",
    "paging",
    "cont_headers",
    "cont_fields",
    "description",
)
_MANDATORY: Final = ("provider", "tr_id", "method", "path", "family")
_LISTS: Final = frozenset({"required", "optional", "cont_headers", "cont_fields"})
_ID = re.compile(r"[A-Za-z0-9_]+")
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_PAGING_OF: Final[Mapping[Provider, tuple[Paging, ...]]] = {
    Provider.KIS: ("none", "tr_cont", "date_window", "hour_window"),
    Provider.KIWOOM: ("none", "cont_key"),
}
_CONT_DEFAULTS: Final[Mapping[Paging, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    # paging: (cont_headers, cont_fields) when the definition names none
    "none": ((), ()),
    "tr_cont": (("tr_cont",), ("CTX_AREA_FK100", "CTX_AREA_NK100")),
    "cont_key": (("cont-yn", "next-key"), ()),
    "date_window": ((), ("FID_INPUT_DATE_2",)),
    "hour_window": ((), ("FID_INPUT_HOUR_1",)),
}
_HEADER = re.compile(r"""^\s*(\[\[?)\s*([A-Za-z0-9_\-."' ]+?)\s*\]\]?\s*(?:#.*)?$""")


class _Lines:
    """Finds the line of a definition in the TOML text (tomllib keeps no positions): the n-th
    ``[[table]]`` header starts the n-th definition, which ends at the next table header."""

    def __init__(self, text: str, table: str) -> None:
        self._lines = text.splitlines()
        self._starts: list[int] = []
        self._headers: list[int] = []
        for number, line in enumerate(self._lines):
            match = _HEADER.match(line)
            if match is None:
                continue
            self._headers.append(number)
            name = re.sub(r"""[\s"']""", "", match.group(2))
            if match.group(1) == "[[" and name == table:
                self._starts.append(number)
        self._table = table

    def of(self, index: int, count: int, key: str | None = None, tr_id: object = None) -> int:
        """The 1-based line of definition ``index`` of ``count`` (of its ``key`` if found)."""
        if len(self._starts) != count:  # inline tables: find the tr_id, else the array key
            return self._search(rf"""\btr_id\s*=\s*["']{re.escape(str(tr_id))}["']""", 0) or (
                self._search(rf"""^\s*["']?{re.escape(self._table.split(".")[-1])}\b""", 0) or 1
            )
        start = self._starts[index]
        end = next((h for h in self._headers if h > start), len(self._lines))
        if key is not None:
            found = self._search(rf"""^\s*["']?{re.escape(key)}["']?\s*=""", start + 1, end)
            if found:
                return found
        return start + 1

    def _search(self, pattern: str, start: int, end: int | None = None) -> int:
        compiled = re.compile(pattern)
        for number in range(start, len(self._lines) if end is None else end):
            if compiled.search(self._lines[number]):
                return number + 1
        return 0


def parse_tr_tables(tables: object, text: str, source: str, table: str) -> Catalog:
    """Check and convert the value of a ``[[table]]`` array read from ``text`` (the file's
    TOML, for line numbers) into a :class:`Catalog`; the first wrong definition raises a
    one-line :class:`~apihub_core.ConfigurationError` ``<source>:<line>: …``."""
    lines = _Lines(text, table)
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        line = lines.of(0, -1)
        raise ConfigurationError(f"{source}:{line}: {table} must be tables ([[{table}]])")
    specs: list[TrSpec] = []
    first: dict[tuple[Provider, str], int] = {}
    for index, definition in enumerate(tables):
        spec = _definition(definition, index, len(tables), lines, source, table)
        line = int(spec.source.rsplit(":", 1)[1])
        for key in _keys(spec):
            if key in first:
                raise ConfigurationError(
                    f"{source}:{line}: [[{table}]] {spec.provider.value} {spec.tr_id}: "
                    f"duplicate tr_id {key[1]} (already defined at line {first[key]})"
                )
            first[key] = line
        specs.append(spec)
    return Catalog(specs)


def _definition(
    raw: Mapping[str, Any], index: int, count: int, lines: _Lines, source: str, table: str
) -> TrSpec:
    tr_id_value = raw.get("tr_id")
    label = f"#{index + 1}"

    def fail(message: str, key: str | None = None) -> NoReturn:
        line = lines.of(index, count, key, tr_id_value)
        raise ConfigurationError(f"{source}:{line}: [[{table}]] {label}: {message}")

    unknown = [name for name in raw if name not in _FIELDS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], _FIELDS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"fields: {', '.join(_FIELDS)}"
        fail(f"unknown field {unknown[0]!r} ({hint})", unknown[0])
    missing = [name for name in _MANDATORY if name not in raw]
    if missing:
        fail(f"missing field {', '.join(missing)}")
    for name, value in raw.items():
        if name in _LISTS:
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                fail(f"{name} must be a list of names, not {value!r}", name)
        elif not isinstance(value, str):
            fail(f"{name} must be a string, not {value!r}", name)
    try:
        provider = Provider.parse(raw["provider"])
    except ValueError as exc:
        fail(str(exc), "provider")
    tr_id = _normal_id(provider, raw["tr_id"])
    if not _ID.fullmatch(tr_id):
        fail(f"tr_id must be letters, digits and _, not {raw['tr_id']!r}", "tr_id")
    label = f"{provider.value} {tr_id}"
    virtual = _normal_id(provider, raw.get("virtual_tr_id", "")) or _default_virtual_tr_id(
        provider, tr_id
    )
    if not _ID.fullmatch(virtual):
        fail(f"virtual_tr_id must be letters, digits and _, not {virtual!r}", "virtual_tr_id")
    method = raw["method"].strip().upper()
    if method not in get_args(HttpMethod):
        fail(f'method must be "GET" or "POST", not {raw["method"]!r}', "method")
    if provider is Provider.KIWOOM and method != "POST":
        fail("every Kiwoom TR is a POST", "method")
    path = raw["path"]
    if not path.startswith("/") or re.search(r"[\s?#]", path):
        fail(f"path must start with / and hold no query or spaces, not {path!r}", "path")
    kind = raw.get("kind", "query")
    if kind not in get_args(TrKind):
        fail(f'kind must be "query" or "order", not {kind!r}', "kind")
    if kind == "order" and method == "GET":
        fail("an order must be a POST (a GET may be repeated by anyone on the way)", "method")
    family = raw["family"]
    if not _NAME.fullmatch(family):
        fail(f"family must be letters, digits, _, - or ., not {family!r}", "family")
    paging = raw.get("paging", "none")
    if paging not in get_args(Paging):
        fail(f"paging must be one of {', '.join(get_args(Paging))}, not {paging!r}", "paging")
    if paging not in _PAGING_OF[provider]:
        styles = ", ".join(_PAGING_OF[provider])
        fail(f"{provider.value} TRs page with {styles}, not {paging!r}", "paging")
    required = tuple(raw.get("required", ()))
    optional = tuple(raw.get("optional", ()))
    params = [name.upper() for name in (*required, *optional)]
    doubled = sorted({name for name in params if params.count(name) > 1})
    if doubled:
        fail(f"parameter {doubled[0]} is listed twice", "optional" if optional else "required")
    default_headers, default_fields = _CONT_DEFAULTS[paging]
    cont_headers = tuple(raw.get("cont_headers", default_headers))
    cont_fields = tuple(raw.get("cont_fields", default_fields))
    if paging == "none" and (cont_headers or cont_fields):
        where = "cont_headers" if cont_headers else "cont_fields"
        fail(f'{where} needs a paging other than "none"', where)
    if paging in ("tr_cont", "cont_key") and not cont_headers:
        fail(f"paging {paging!r} needs cont_headers", "cont_headers")
    if paging in ("date_window", "hour_window") and not cont_fields:
        fail(f"paging {paging!r} needs cont_fields (the window bound)", "cont_fields")
    if "\n" in raw.get("description", "").strip():
        fail("description must be one line", "description")
    strays = [name for name in cont_fields if name.upper() not in params]
    if strays:
        fail(f"cont_fields {strays[0]} is not one of the TR's parameters", "cont_fields")
    return TrSpec(
        provider=provider,
        tr_id=tr_id,
        method=method,
        path=path,
        required=required,
        optional=optional,
        is_order=kind == "order",
        paging=paging,
        family=family,
        description=raw.get("description", "").strip(),
        virtual_tr_id=virtual,
        cont_headers=cont_headers,
        cont_fields=cont_fields,
        source=f"{source}:{lines.of(index, count, None, tr_id_value)}",
    )
