"""``python -m apihub_archiver`` / ``apihub-archiver``: the archiver (the ``archiver`` group on
the response stream) writing the archive of ``[archive] dir``.

Configured by the environment and apihub.toml (no options); the hub is ``REDIS_URL``
(or ``[hub] redis_url``), else the one ``apihub up`` advertises.
"""

from __future__ import annotations

from apihub_runtime import service_main

from ._service import run_archiver


def main(argv: list[str] | None = None) -> None:
    """Entry point: run until a stop signal, drain, exit with the status of how it ended."""
    service_main(
        run_archiver,
        package="apihub_archiver",
        name="apihub-archiver",
        description=__doc__,
        argv=argv,
    )


if __name__ == "__main__":
    main()
