"""How a command ends on an error: one line on stderr, and the outcome's exit code."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from apihub_runtime import ExitCode

err = Console(stderr=True, highlight=False)


def fail(message: str, *, code: ExitCode) -> NoReturn:
    """Print ``apihub: <message>`` on stderr and exit with ``code``."""
    err.print(f"apihub: {message}", markup=False, soft_wrap=True)
    raise typer.Exit(code)
