"""``python -m apihub_reconciler`` / ``apihub-reconciler``: one member of the reconciler group
on ``REDIS_URL``."""

from __future__ import annotations

import argparse
import sys

from apihub_core import find_hub_url
from apihub_runtime import configure_logging, configure_tracing, load_settings, run_process

from ._service import run_reconciler


def main(argv: list[str] | None = None) -> None:
    """Entry point: settings from the environment, run until a stop signal, drain, exit.

    The hub is ``REDIS_URL`` (or ``[hub] redis_url``), else the one ``apihub up`` advertises;
    the exit status is ``apihub_runtime.ExitCode`` of how it ended (``docs/cli.md``).
    """
    # No options: the environment and apihub.toml configure it (docs/configuration.md); -h says so.
    argparse.ArgumentParser(
        prog=f"python -m {__package__}",
        description=__doc__,
        epilog="Configured by the environment and apihub.toml (docs/configuration.md); exit "
        "codes in docs/cli.md.",
    ).parse_args(argv)
    configure_logging()
    configure_tracing("apihub-reconciler")

    async def run() -> int:
        settings = load_settings()
        if not settings.redis_url:
            settings = settings.with_redis_url(find_hub_url({}, data_dir=settings.data_dir))
        return await run_reconciler(settings)

    sys.exit(run_process(run, name="apihub-reconciler"))


if __name__ == "__main__":
    main()
