"""``python -m apihub_dispatcher``: one dispatcher against ``REDIS_URL``."""

from __future__ import annotations

import sys

from apihub_runtime import configure_logging, configure_tracing, load_settings, run_process

from ._service import run_dispatcher


def main() -> None:
    """Entry point: settings from the environment, run until a stop signal, drain, exit."""
    configure_logging()
    configure_tracing("apihub-dispatcher")
    sys.exit(run_process(lambda: run_dispatcher(load_settings()), name="apihub-dispatcher"))


if __name__ == "__main__":
    main()
