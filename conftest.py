"""Root pytest configuration.

The apihub pytest plugins are registered here (a real redis-server and ``anyio_backend`` =
asyncio from ``apihub_testing``; the broker simulator from ``apihub_broker_sim``) rather than as
pytest11 entry points: entry points are imported before pytest-cov starts measuring, which
would hide the import-time lines of every apihub module.
"""

pytest_plugins = ["apihub_testing.plugin", "apihub_broker_sim.pytest_plugin"]
