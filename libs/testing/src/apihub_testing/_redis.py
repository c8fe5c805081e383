"""A real Redis for a test session: external, a container, or a child redis-server."""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from apihub_embedded import EmbeddedRedis

if TYPE_CHECKING:
    from testcontainers.community.redis import RedisContainer

__all__ = [
    "ENV_DOCKER",
    "ENV_REDIS_URL",
    "RedisServer",
    "docker_available",
    "running_redis",
]

#: A disposable Redis to use instead of starting one. It is FLUSHALLed before each test.
ENV_REDIS_URL = "APIHUB_TEST_REDIS_URL"
#: Set to ``0`` to skip the Docker probe and go straight to a redis-server process.
ENV_DOCKER = "APIHUB_TEST_DOCKER"

_CONTAINER_IMAGE = "redis:7-alpine"

RedisKind = Literal["container", "binary", "external"]


@dataclass(frozen=True)
class RedisServer:
    """The Redis a test session uses.

    Attributes:
        url: ``redis://`` URL of the server.
        kind: ``"external"`` (from ``APIHUB_TEST_REDIS_URL``), ``"container"``
            (testcontainers) or ``"binary"`` (a ``redis-server`` child process).
    """

    url: str
    kind: RedisKind


def docker_available(timeout: float = 2.0) -> bool:
    """Return True if a Docker engine answers a ping within ``timeout`` seconds."""
    if os.environ.get(ENV_DOCKER, "").strip().lower() in {"0", "false", "no", "off"}:
        return False
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return False  # the common case with no engine installed: answer without the SDK
    # docker-py leaks its socket when the engine does not answer; swallow that
    # ResourceWarning here rather than let it fail a random later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker  # type: ignore[import-untyped]

            client = docker.from_env(timeout=timeout)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:
            return False
        finally:
            gc.collect()


@contextlib.contextmanager
def running_redis(data_dir: Path) -> Iterator[RedisServer]:
    """Provide a Redis for the session, and stop whatever was started on exit.

    Order: ``APIHUB_TEST_REDIS_URL`` if set; else a ``redis:7-alpine`` container if a
    Docker engine is reachable (and the container starts); else ``redis-server``
    (see :func:`apihub_embedded.find_redis_server`) on a free port with
    its files in ``data_dir`` and no persistence. An ``atexit`` hook stops it too,
    in case the interpreter exits without unwinding this context.
    """
    external = os.environ.get(ENV_REDIS_URL)
    if external:
        yield RedisServer(external, "external")
        return
    if docker_available():
        container_url = _start_container()
        if container_url is not None:
            url, stop = container_url
            atexit.register(stop)
            try:
                yield RedisServer(url, "container")
            finally:
                stop()
                atexit.unregister(stop)
            return
    server = EmbeddedRedis(data_dir, appendonly=False)
    atexit.register(server.stop)
    try:
        server.start()
        yield RedisServer(server.url, "binary")
    finally:
        server.stop()
        atexit.unregister(server.stop)


def _start_container() -> tuple[str, _Stopper] | None:
    try:
        from testcontainers.community.redis import RedisContainer

        container = RedisContainer(_CONTAINER_IMAGE)
    except Exception:
        return None
    stopper = _Stopper(container)
    try:
        container.start()
        host = container.get_container_host_ip()
        port = container.get_exposed_port(container.port)
    except Exception:
        # No image and no registry, or an engine that cannot run it: use the binary.
        stopper()
        return None
    return f"redis://{host}:{port}/0", stopper


class _Stopper:
    """Idempotent stop for a container (called by the fixture and by atexit)."""

    def __init__(self, container: RedisContainer) -> None:
        self._container: RedisContainer | None = container

    def __call__(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            # Best effort: testcontainers' Ryuk reaper removes it if this fails.
            with contextlib.suppress(Exception):
                container.stop()
