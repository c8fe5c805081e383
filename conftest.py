"""Root pytest configuration: every async test runs on asyncio (anyio's plugin)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """apihub runs on asyncio (uvicorn, redis-py, aiohttp); tests do too."""
    return "asyncio"
