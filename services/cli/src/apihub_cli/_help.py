"""Help pages that speak the user's language: ``PROVIDER``, ``KEY=VALUE``, ``SECONDS`` instead
of typer's raw Python types (``<str>``, ``<list[str]>``, ``<bool>``).

Typer renders an option's metavar when it has one and its Python annotation otherwise, and an
argument's annotation always. Every command of ``apihub`` uses :class:`Command` (the app
:class:`Group`), which, when the parameters are collected:

- gives flags (``--cont``, ``--help``) no metavar at all;
- gives any other option without an explicit ``metavar=`` its name in capitals;
- shows an argument by its name alone (``PROVIDER``), in the usage line too.

``tests`` check that no help page shows a ``<type>``.
"""

from __future__ import annotations

from typing import Any

import typer.core
from typer.core import TyperArgument, TyperOption

HELP_OPTIONS = ["-h", "--help"]
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": HELP_OPTIONS}


class _Argument(TyperArgument):
    """An argument shown as its metavar (``PROVIDER``), without a type column."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")


def _humanize(params: list[Any]) -> list[Any]:
    for param in params:
        if isinstance(param, TyperOption) and param.metavar is None:
            param.metavar = "" if param.is_flag else (param.name or "value").upper()
        elif isinstance(param, TyperArgument) and not isinstance(param, _Argument):
            if param.metavar is None:
                param.metavar = (param.name or "arg").upper()
            param.__class__ = _Argument
    return params


class Command(typer.core.TyperCommand):
    """A command whose help shows meaningful metavars (see the module docstring)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _humanize(super().get_params(ctx))


class Group(typer.core.TyperGroup):
    """The ``apihub`` group, with the same help conventions as :class:`Command`."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _humanize(super().get_params(ctx))
