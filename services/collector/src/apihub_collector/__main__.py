"""``python -m apihub_collector`` / ``apihub-collector``: the collector of ``REDIS_URL``'s hub.

Configured by the environment and apihub.toml (``[collector]``, ``[[collector.watch]]``; no
options); the hub is ``REDIS_URL`` (or ``[hub] redis_url``), else the one ``apihub up``
advertises.
"""

from __future__ import annotations

from apihub_runtime import service_main

from ._service import run_collector


def main(argv: list[str] | None = None) -> None:
    """Entry point: run until a stop signal, drain, exit with the status of how it ended."""
    service_main(
        run_collector,
        package="apihub_collector",
        name="apihub-collector",
        description=__doc__,
        argv=argv,
    )


if __name__ == "__main__":
    main()
