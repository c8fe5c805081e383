"""A service with nothing of its own to drain (``apihub sim``: the server runs beside it)."""

from __future__ import annotations

import anyio
from anyio.abc import TaskStatus


class Idle:
    """Runs until :meth:`stop`; what it stands for (a server) is closed by its context."""

    def __init__(self) -> None:
        self._stopped = anyio.Event()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Wait for :meth:`stop`."""
        task_status.started()
        await self._stopped.wait()

    def stop(self) -> None:
        """End :meth:`run`."""
        self._stopped.set()
