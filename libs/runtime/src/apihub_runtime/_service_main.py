"""The ``python -m <service>`` entry point every service shares: no options, settings from the
environment and ``apihub.toml``, the hub found as ``apihub call`` finds it, the exit status of
how it ended."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn

from apihub_core import find_hub_url

from ._lifecycle import configure_logging, run_process
from ._settings import Settings, load_settings
from ._tracing import configure_tracing


def service_main(
    run_service: Callable[[Settings], Awaitable[int]],
    *,
    package: str,
    name: str,
    description: str | None,
    argv: list[str] | None = None,
) -> NoReturn:
    """Parse ``argv`` (only ``-h``), set up logging and tracing as ``name``, run ``run_service``
    until a stop signal and exit with ``apihub_runtime.ExitCode`` of how it ended.

    The hub is ``REDIS_URL`` (or ``[hub] redis_url``), else the one ``apihub up`` advertises.
    """
    argparse.ArgumentParser(
        prog=f"python -m {package}",
        description=description,
        epilog="Configured by the environment and apihub.toml (docs/configuration.md); exit "
        "codes in docs/cli.md.",
    ).parse_args(argv)
    configure_logging()
    configure_tracing(name)

    async def run() -> int:
        settings = load_settings()
        if not settings.redis_url:
            settings = settings.with_redis_url(find_hub_url({}, data_dir=settings.data_dir))
        return await run_service(settings)

    sys.exit(run_process(run, name=name))
