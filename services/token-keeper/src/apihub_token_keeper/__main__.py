"""``python -m apihub_token_keeper`` / ``apihub-token-keeper``: one replica on ``REDIS_URL``."""

from __future__ import annotations

import sys

from apihub_runtime import configure_logging, configure_tracing, load_settings, run_process

from ._service import run_token_keeper


def main() -> None:
    """Entry point: settings from the environment, run until a stop signal, drain, exit."""
    configure_logging()
    configure_tracing("apihub-token-keeper")
    sys.exit(run_process(lambda: run_token_keeper(load_settings()), name="apihub-token-keeper"))


if __name__ == "__main__":
    main()
