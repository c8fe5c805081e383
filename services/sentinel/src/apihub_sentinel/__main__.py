"""``python -m apihub_sentinel`` / ``apihub-sentinel``: one sentinel replica on ``REDIS_URL``.

Configured by the environment and apihub.toml (``[sentinel]``, ``[market]``, the watchlist in
``[[collector.watch]]``); the hub is ``REDIS_URL`` (or ``[hub] redis_url``), else the one
``apihub up`` advertises.
"""

from __future__ import annotations

from apihub_runtime import service_main

from ._service import run_sentinel


def main(argv: list[str] | None = None) -> None:
    """Entry point: run until a stop signal, drain, exit with the status of how it ended."""
    service_main(
        run_sentinel,
        package="apihub_sentinel",
        name="apihub-sentinel",
        description=__doc__,
        argv=argv,
    )


if __name__ == "__main__":
    main()
