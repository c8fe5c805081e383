"""Access tokens of both brokers and their (different) issuance rules.

KIS: one ``tokenP`` answer per appkey per window (else ``EGW00133``); within 6 h of minting
the same token comes back; older tokens stay valid until they expire.
Kiwoom: every issuance mints a new token and kills the appkey's previous one.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from ._clock import SimClock
from ._config import SimConfig

__all__ = ["KIS", "KIWOOM", "TokenRecord", "TokenState", "TokenStore"]

KIS = "KIS"
KIWOOM = "KIWOOM"


class TokenState(enum.Enum):
    """Outcome of checking a bearer token."""

    VALID = "valid"
    INVALID = "invalid"
    EXPIRED = "expired"


@dataclass
class TokenRecord:
    """One minted token. ``secret_digest`` lets later calls check the appsecret header."""

    provider: str
    appkey: str
    secret_digest: str
    token: str
    issued_at: datetime
    expires_at: datetime
    revoked: bool = False

    def remaining_s(self, now: datetime) -> int:
        """Whole seconds until expiry (never negative)."""
        return max(0, int((self.expires_at - now).total_seconds()))


def secret_digest(secret: str) -> str:
    """Compare secrets by digest so no plaintext secret is kept after the token call."""
    return hashlib.blake2b(secret.encode(), digest_size=16).hexdigest()


class TokenStore:
    """All tokens of one simulator; thread-safe."""

    def __init__(self, config: SimConfig, clock: SimClock) -> None:
        """Bind to the simulator's settings and clock."""
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._serial = 0
        self._by_token: dict[str, TokenRecord] = {}
        self._kis_latest: dict[str, TokenRecord] = {}
        self._kis_last_answer: dict[str, datetime] = {}
        self._kiwoom_active: dict[str, TokenRecord] = {}

    def reset(self) -> None:
        """Forget every token and throttle."""
        with self._lock:
            self._by_token.clear()
            self._kis_latest.clear()
            self._kis_last_answer.clear()
            self._kiwoom_active.clear()

    def kis_issue(self, appkey: str, secret: str) -> TokenRecord | None:
        """Answer a KIS ``tokenP`` call; ``None`` means throttled (``EGW00133``)."""
        now = self._clock.now()
        with self._lock:
            last = self._kis_last_answer.get(appkey)
            window = timedelta(seconds=self._config.token_issue_window_s)
            if last is not None and last <= now < last + window:
                return None
            self._kis_last_answer[appkey] = now
            current = self._kis_latest.get(appkey)
            reuse = timedelta(seconds=self._config.kis_reissue_same_within_s)
            if (
                current is not None
                and not current.revoked
                and now < current.expires_at
                and now - current.issued_at < reuse
                and current.secret_digest == secret_digest(secret)
            ):
                return current
            record = self._mint(KIS, appkey, secret, now)
            self._kis_latest[appkey] = record
            return record

    def kiwoom_issue(self, appkey: str, secret: str) -> TokenRecord:
        """Answer a Kiwoom ``/oauth2/token`` call, revoking the appkey's previous token."""
        now = self._clock.now()
        with self._lock:
            previous = self._kiwoom_active.get(appkey)
            if previous is not None:
                previous.revoked = True
            record = self._mint(KIWOOM, appkey, secret, now)
            self._kiwoom_active[appkey] = record
            return record

    def check(self, provider: str, token: str) -> tuple[TokenState, TokenRecord | None]:
        """Validate a bearer token of ``provider`` against the simulated clock."""
        now = self._clock.now()
        with self._lock:
            record = self._by_token.get(token)
        if record is None or record.provider != provider or record.revoked:
            return TokenState.INVALID, record
        if now >= record.expires_at:
            return TokenState.EXPIRED, record
        return TokenState.VALID, record

    def owner(self, token: str) -> str:
        """The appkey a token was minted for ("" if unknown); used to label calls."""
        with self._lock:
            record = self._by_token.get(token)
        return record.appkey if record is not None else ""

    def revoke_token(self, provider: str, appkey: str, token: str) -> bool:
        """Revoke one live token on its owner's request; ``False`` otherwise."""
        with self._lock:
            record = self._by_token.get(token)
            if record is None or record.provider != provider or record.appkey != appkey:
                return False
            if record.revoked:
                return False
            record.revoked = True
            return True

    def expire(self, provider: str, appkey: str | None = None) -> int:
        """Make matching live tokens expired now (admin hook); returns how many."""
        now = self._clock.now()
        with self._lock:
            hits = self._select(provider, appkey)
            for record in hits:
                record.expires_at = now
            return len(hits)

    def revoke(self, provider: str, appkey: str | None = None) -> int:
        """Invalidate matching tokens as if the server dropped them (admin hook)."""
        with self._lock:
            hits = self._select(provider, appkey)
            for record in hits:
                record.revoked = True
            return len(hits)

    def _select(self, provider: str, appkey: str | None) -> list[TokenRecord]:
        return [
            r
            for r in self._by_token.values()
            if r.provider == provider and (appkey is None or r.appkey == appkey) and not r.revoked
        ]

    def _mint(self, provider: str, appkey: str, secret: str, now: datetime) -> TokenRecord:
        self._serial += 1
        lifetime = timedelta(seconds=self._config.token_lifetime_s)
        expires = now + lifetime
        material = f"{self._config.seed}|{provider}|{appkey}|{self._serial}|{now.isoformat()}"
        if provider == KIS:
            token = _jwt_like(material, now, expires)
        else:
            raw = hashlib.blake2b(material.encode(), digest_size=64).digest()
            token = base64.b64encode(raw).decode().rstrip("=").replace("+", "A").replace("/", "B")
        record = TokenRecord(provider, appkey, secret_digest(secret), token, now, expires)
        self._by_token[token] = record
        return record


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jwt_like(material: str, issued: datetime, expires: datetime) -> str:
    """A token shaped like KIS's HS512 JWT; the claims carry no appkey or secret."""
    header = {"typ": "JWT", "alg": "HS512"}
    claims = {
        "sub": "token",
        "aud": hashlib.blake2b(material.encode(), digest_size=16).hexdigest(),
        "prdt_cd": "",
        "iss": "unogw",
        "exp": int(expires.timestamp()),
        "iat": int(issued.timestamp()),
        "jti": hashlib.blake2b(("jti" + material).encode(), digest_size=12).hexdigest(),
    }
    signing = _b64url(json.dumps(header, separators=(",", ":")).encode())
    signing += "." + _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hashlib.blake2b(signing.encode() + material.encode(), digest_size=64).digest()
    return signing + "." + _b64url(signature)
