"""Finding the running hub the way ``apihub call`` does: ``REDIS_URL``, else the hub that
``apihub up`` advertises in ``<data dir>/hub.json``.

::

    from apihub_core import HubClient, find_hub_url

    async with HubClient.from_url(find_hub_url()) as hub:
        ...

The discovery file is written by ``apihub up`` (``apihub_embedded.EmbeddedRedis`` with
``advertise=True``): ``{"redis_url": ..., "pid": <redis-server pid>, "owner_pid": ...}``, mode
0600 because the URL may carry a password. It counts only while that server lives: its pid
exists and it answers PING within half a second. A file whose server is gone is stale and is
removed, so a crashed hub never sends callers to a dead port.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ._errors import HubUnavailable

DISCOVERY_FILE: Final = "hub.json"
"""Name of the file in the data directory where ``apihub up`` advertises its Redis."""

_DEFAULT_DATA_DIR: Final = ".apihub"  # when APIHUB_DATA_DIR is unset, as in the settings

_PING_TIMEOUT_S: Final = 0.5
# Discovery probes once; redis-py's default retries would only slow a "nothing there" answer.
_NO_RETRY: Final = Retry(NoBackoff(), 0)


def advertised_hub_url(data_dir: Path | str) -> str | None:
    """The Redis URL advertised in ``data_dir/hub.json`` if that server is alive, else ``None``.

    Alive means its pid exists and it answers PING within half a second. A file whose pid is
    gone (or that cannot be parsed) is stale and is removed. A live pid that does not answer
    (a server still loading its AOF, or a recycled pid) gives ``None`` and leaves the file.
    """
    path = Path(data_dir) / DISCOVERY_FILE
    info = read_discovery_file(data_dir)
    url = info.get("redis_url") if info else None
    pid = info.get("pid") if info else None
    if (
        not isinstance(url, str)
        or not isinstance(pid, int)
        or isinstance(pid, bool)
        or not _pid_alive(pid)
    ):
        if path.exists():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return None
    try:
        with redis.Redis.from_url(
            url,
            socket_timeout=_PING_TIMEOUT_S,
            socket_connect_timeout=_PING_TIMEOUT_S,
            retry=_NO_RETRY,
        ) as client:
            client.ping()
    except (redis.RedisError, OSError, ValueError):
        return None
    return url


def read_discovery_file(data_dir: Path | str) -> dict[str, Any] | None:
    """The parsed ``data_dir/hub.json`` as written, or ``None`` when missing or unreadable
    (no liveness check: see :func:`advertised_hub_url`)."""
    try:
        data = json.loads((Path(data_dir) / DISCOVERY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def find_hub_url(
    env: Mapping[str, str] | None = None, *, data_dir: Path | str | None = None
) -> str:
    """The Redis URL of the running hub, found the way ``apihub call`` finds it.

    ``REDIS_URL`` when set; else the hub ``apihub up`` advertises in ``data_dir`` (default:
    ``APIHUB_DATA_DIR``, else ``./.apihub``). Raises :class:`HubUnavailable` saying what to do
    when neither names a running hub. ``env`` defaults to ``os.environ``.
    """
    env = os.environ if env is None else env
    explicit = env.get("REDIS_URL", "").strip()
    if explicit:
        return explicit
    folder = Path(
        data_dir if data_dir is not None else env.get("APIHUB_DATA_DIR") or _DEFAULT_DATA_DIR
    )
    url = advertised_hub_url(folder)
    if url is None:
        raise HubUnavailable(
            f"no running hub found (no REDIS_URL, nothing advertised in {folder}/): "
            "start one with `apihub up` or set REDIS_URL"
        )
    return url


def masked_url(url: str) -> str:
    """``url`` safe to print: a password (and a user name with it) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>" if "@" in url else url
    if password is None and "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    auth = f"{user}:***" if password is not None else "***"
    return urlunsplit(parts._replace(netloc=f"{auth}@{host}"))


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
