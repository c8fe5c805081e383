"""``python -m apihub_token_keeper`` / ``apihub-token-keeper``: one replica on ``REDIS_URL``."""

from __future__ import annotations

import anyio

from apihub_runtime import configure_logging, load_settings

from ._service import serve


def main() -> None:
    """Entry point: settings from the environment, run until a stop signal."""
    configure_logging()
    anyio.run(serve, load_settings())


if __name__ == "__main__":
    main()
