"""Root pytest configuration.

The apihub pytest plugin (a real redis-server, the simulator, ``anyio_backend`` = asyncio) is
registered here rather than as a pytest11 entry point: entry points are imported before
pytest-cov starts measuring, which would hide the import-time lines of every apihub module.
"""

pytest_plugins = ["apihub_testing.plugin"]
