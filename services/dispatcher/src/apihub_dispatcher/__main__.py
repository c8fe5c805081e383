"""``python -m apihub_dispatcher``: one dispatcher against ``REDIS_URL``."""

from __future__ import annotations

import anyio

from apihub_core import load_settings
from apihub_core._lifecycle import configure_logging
from apihub_core._telemetry import configure_tracing

from ._service import serve


def main() -> None:
    """Entry point: settings from the environment, run until a stop signal."""
    configure_logging()
    configure_tracing("apihub-dispatcher")
    anyio.run(serve, load_settings())


if __name__ == "__main__":
    main()
