"""The TRs apihub knows: the built-in catalog (data in ``trs.toml``, shipped with this package),
the catalog in force once ``apihub.toml`` extended it, and its table for people.

The data model (:class:`TrSpec`, :class:`Catalog`, the checks of a definition) is
``apihub_runtime``'s, because settings are read there; see ``docs/configuration.md``
("Adding a TR") for the format.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import ClassVar, Final

from apihub_core import Provider
from apihub_runtime import Catalog, Settings, TrSpec

BUILTIN_FILE: Final = "trs.toml"
_BUILTIN_SOURCE: Final = f"apihub_brokers/{BUILTIN_FILE}"


@functools.cache
def builtin_catalog() -> Catalog:
    """The catalog shipped with apihub (``apihub_brokers/trs.toml``), read once."""
    text = (
        resources.files(__package__ or "apihub_brokers")
        .joinpath(BUILTIN_FILE)
        .read_text(encoding="utf-8")
    )
    return Catalog.from_toml(text, _BUILTIN_SOURCE)


@functools.lru_cache(maxsize=32)
def _extend_builtin(extension: Catalog) -> Catalog:
    return builtin_catalog().extended(extension)


def configured_catalog(settings: Settings) -> Catalog:
    """The catalog in force: the built-in one extended by ``[[catalog.tr]]`` of ``apihub.toml``
    (``settings.catalog.trs``), whose definitions win. Built once per extension."""
    return _extend_builtin(settings.catalog.trs)


def lookup_tr(provider: Provider, tr_id: str) -> TrSpec | None:
    """The spec of ``tr_id`` in the built-in catalog, or ``None`` when apihub does not know it.

    KIS ids are matched upper-case and a vps id (``VTTC0012U``) resolves to its real twin;
    Kiwoom ids are matched lower-case. Services use :func:`configured_catalog` instead.
    """
    return builtin_catalog().lookup(provider, tr_id)


def known_trs(provider: Provider | None = None) -> list[TrSpec]:
    """Every TR in the built-in catalog, or those of ``provider``, in catalog order."""
    return builtin_catalog().of(provider)


@dataclass(frozen=True, slots=True)
class CatalogRow:
    """One TR as the catalog table shows it (``docs/trs.md``, ``apihub trs``).

    :meth:`cells` are the table's columns (:attr:`HEADERS`); the other fields carry the rest
    of the definition for a fuller listing.
    """

    HEADERS: ClassVar[tuple[str, ...]] = (
        "Provider",
        "TR",
        "Virtual twin",
        "Method",
        "Path",
        "Kind",
        "Paging",
        "Description",
    )

    provider: str
    tr_id: str
    virtual_tr_id: str
    method: str
    path: str
    kind: str
    paging: str
    description: str
    family: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    source: str

    def cells(self) -> tuple[str, ...]:
        """The values of :attr:`HEADERS`, in order."""
        return (
            self.provider,
            self.tr_id,
            self.virtual_tr_id,
            self.method,
            self.path,
            self.kind,
            self.paging,
            self.description,
        )


def catalog_rows(catalog: Catalog | None = None) -> list[CatalogRow]:
    """The rows of ``catalog`` (default: the built-in one), in catalog order."""
    return [
        CatalogRow(
            provider=spec.provider.value,
            tr_id=spec.tr_id,
            virtual_tr_id=spec.virtual_tr_id,
            method=spec.method,
            path=spec.path,
            kind=spec.kind,
            paging=spec.paging,
            description=spec.description,
            family=spec.family,
            required=spec.required,
            optional=spec.optional,
            source=spec.source,
        )
        for spec in (builtin_catalog() if catalog is None else catalog)
    ]


def catalog_markdown(catalog: Catalog | None = None) -> str:
    """``catalog`` (default: the built-in one) as a Markdown table, one line per TR."""

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    rows = catalog_rows(catalog)
    out = [line(CatalogRow.HEADERS), "|" + "---|" * len(CatalogRow.HEADERS)]
    for row in rows:
        cells = list(row.cells())
        cells[1], cells[2] = f"`{cells[1]}`", f"`{cells[2]}`"
        cells[4] = f"`{cells[4]}`"
        out.append(line(tuple(cells)))
    return "\n".join(out) + "\n"
