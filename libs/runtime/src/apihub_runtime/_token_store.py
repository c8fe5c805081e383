"""Access tokens in Redis, encrypted at rest and guarded by fence numbers.

Each (provider, account) has one hash: the token encrypted with AES-256-GCM (the Redis key name
is the associated data, so a ciphertext cannot be moved to another account's key), its expiry,
its token type and the fence number of the lock lease that wrote it. A write carrying a fence
not greater than the stored one is refused by the store itself (one Lua script), so a slow or
stale writer can never replace a newer token. The raw Redis value never contains the token.

Key material: ``APIHUB_TOKEN_KEY`` (32 bytes, URL-safe base64) or, for the embedded default, a
key generated once into the data directory with 0600 permissions.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast

import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from apihub_core import ConfigurationError

from ._secret import Secret

TOKEN_KEY_ENV: Final = "APIHUB_TOKEN_KEY"  # noqa: S105 - a variable name
TOKEN_KEY_FILE: Final = "token.key"  # noqa: S105 - a file name
_NONCE_BYTES: Final = 12

_PUT_LUA: Final = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
local fence = tonumber(ARGV[1])
if fence <= stored then
  return stored
end
redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'ciphertext', ARGV[2], 'expires_at_ms', ARGV[3],
           'issued_at_ms', ARGV[4], 'token_type', ARGV[5])
return 0
"""


class TokenKeyError(ConfigurationError):
    """The token encryption key is missing, malformed or not private."""


def _decode_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (ValueError, TypeError):
        raise TokenKeyError(f"{TOKEN_KEY_ENV} is not URL-safe base64") from None
    if len(key) != 32:
        raise TokenKeyError(f"{TOKEN_KEY_ENV} must hold 32 bytes (AES-256), not {len(key)}")
    return key


def load_token_key(data_dir: Path, env: Mapping[str, str] | None = None) -> bytes:
    """The AES-256 key: ``APIHUB_TOKEN_KEY``, else ``<data_dir>/token.key`` (made once, 0600)."""
    env = os.environ if env is None else env
    if env.get(TOKEN_KEY_ENV):
        return _decode_key(env[TOKEN_KEY_ENV])
    path = data_dir / TOKEN_KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting at once cannot both write a key; the loser reads.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise TokenKeyError(
                f"{path} is readable by others (mode {mode:o}); run `chmod 600 {path}`"
            ) from None
        return _decode_key(path.read_text())
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    return _decode_key(path.read_text())


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A token as kept in the store, with the fence of the lease that wrote it."""

    value: Secret
    expires_at_ms: int
    issued_at_ms: int
    fence: int
    token_type: str = "Bearer"  # noqa: S105 - a scheme name


class TokenStore:
    """Reads and fence-checked writes of encrypted tokens."""

    def __init__(self, redis: aioredis.Redis, key: bytes) -> None:
        self._redis = redis
        self._aead = AESGCM(key)
        self._put = redis.register_script(_PUT_LUA)

    def _seal(self, redis_key: str, token: Secret) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, token.reveal().encode(), redis_key.encode())
        return base64.b64encode(nonce + sealed).decode()

    def _open(self, redis_key: str, ciphertext: bytes) -> Secret:
        raw = base64.b64decode(ciphertext)
        try:
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], redis_key.encode())
        except InvalidTag:
            raise TokenKeyError(
                f"the token in {redis_key} does not decrypt: wrong {TOKEN_KEY_ENV} or tampered"
            ) from None
        return Secret(plain.decode())

    async def put(self, redis_key: str, token: StoredToken) -> bool:
        """Store ``token`` unless the store holds one with an equal or newer fence."""
        refused_by = await self._put(
            keys=[redis_key],
            args=[
                token.fence,
                self._seal(redis_key, token.value),
                token.expires_at_ms,
                token.issued_at_ms,
                token.token_type,
            ],
        )
        return int(refused_by) == 0

    async def get(self, redis_key: str) -> StoredToken | None:
        """The stored token, decrypted, or ``None`` when there is none."""
        fields = cast(dict[bytes, bytes], await self._redis.hgetall(redis_key))
        if not fields or b"ciphertext" not in fields:
            return None
        return StoredToken(
            value=self._open(redis_key, fields[b"ciphertext"]),
            expires_at_ms=int(fields[b"expires_at_ms"]),
            issued_at_ms=int(fields[b"issued_at_ms"]),
            fence=int(fields[b"fence"]),
            token_type=fields.get(b"token_type", b"Bearer").decode(),
        )
