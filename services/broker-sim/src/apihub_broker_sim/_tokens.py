"""Access tokens of both brokers and their (different) issuance rules.

KIS: one ``tokenP`` answer per appkey per window (else ``EGW00133``); within 6 h of minting
the same token comes back; older tokens stay valid until they expire. The window runs on the
clock's pacing time (real speed, whatever ``SimClock.rate``; explicit clock moves count), token
lifetimes and the 6 h reuse on the simulated clock.
Kiwoom: every issuance mints a new token and kills the appkey's previous one.

Like a real broker, a simulator given a ``state_file`` remembers its tokens and its issuance
windows across restarts (``apihub up`` keeps one in its data directory): a restarted demo hub
goes on with the token it holds instead of being told it is invalid and then waiting out a
window. The file holds digests of the tokens, never the tokens themselves, so a KIS ``tokenP``
call after a restart mints a new token where the real service would hand back the same one.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ._clock import SimClock
from ._config import SimConfig

__all__ = ["KIS", "KIWOOM", "TokenRecord", "TokenState", "TokenStore", "token_digest"]

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


def token_digest(token: str) -> str:
    """What the simulator keys a token by (and all it writes to its state file)."""
    return hashlib.blake2b(token.encode(), digest_size=20).hexdigest()


class TokenStore:
    """All tokens of one simulator; thread-safe. With ``state_file`` it survives restarts."""

    def __init__(self, config: SimConfig, clock: SimClock, state_file: Path | None = None) -> None:
        """Bind to the simulator's settings and clock; load ``state_file`` if it exists."""
        self._config = config
        self._clock = clock
        self._state_file = state_file
        self._lock = threading.Lock()
        self._serial = 0
        self._by_token: dict[str, TokenRecord] = {}  # by token_digest
        self._kis_latest: dict[str, TokenRecord] = {}
        self._kis_last_answer: dict[str, datetime] = {}
        self._kiwoom_active: dict[str, TokenRecord] = {}
        if state_file is not None:
            self._load(state_file)

    def reset(self) -> None:
        """Forget every token and throttle."""
        with self._lock:
            self._by_token.clear()
            self._kis_latest.clear()
            self._kis_last_answer.clear()
            self._kiwoom_active.clear()
            self._save()

    def kis_issue(self, appkey: str, secret: str) -> TokenRecord | None:
        """Answer a KIS ``tokenP`` call; ``None`` means throttled (``EGW00133``).

        The issuance window runs on the clock's pacing time (real seconds plus explicit clock
        moves, see ``_clock``), so a faster simulated clock does not shorten it; the token's
        lifetime runs on the simulated clock.
        """
        now = self._clock.now()
        paced = self._clock.pacing_now()
        with self._lock:
            last = self._kis_last_answer.get(appkey)
            window = timedelta(seconds=self._config.token_issue_window_s)
            if last is not None and last <= paced < last + window:
                return None
            self._kis_last_answer[appkey] = paced
            current = self._kis_latest.get(appkey)
            reuse = timedelta(seconds=self._config.kis_reissue_same_within_s)
            if (
                current is not None
                and current.token  # not known after a restart: only its digest was kept
                and not current.revoked
                and now < current.expires_at
                and now - current.issued_at < reuse
                and current.secret_digest == secret_digest(secret)
            ):
                self._save()
                return current
            record = self._mint(KIS, appkey, secret, now)
            self._kis_latest[appkey] = record
            self._save()
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
            self._save()
            return record

    def check(self, provider: str, token: str) -> tuple[TokenState, TokenRecord | None]:
        """Validate a bearer token of ``provider`` against the simulated clock."""
        now = self._clock.now()
        with self._lock:
            record = self._by_token.get(token_digest(token))
        if record is None or record.provider != provider or record.revoked:
            return TokenState.INVALID, record
        if now >= record.expires_at:
            return TokenState.EXPIRED, record
        return TokenState.VALID, record

    def owner(self, token: str) -> str:
        """The appkey a token was minted for ("" if unknown); used to label calls."""
        with self._lock:
            record = self._by_token.get(token_digest(token))
        return record.appkey if record is not None else ""

    def revoke_token(self, provider: str, appkey: str, token: str) -> bool:
        """Revoke one live token on its owner's request; ``False`` otherwise."""
        with self._lock:
            record = self._by_token.get(token_digest(token))
            if record is None or record.provider != provider or record.appkey != appkey:
                return False
            if record.revoked:
                return False
            record.revoked = True
            self._save()
            return True

    def expire(self, provider: str, appkey: str | None = None) -> int:
        """Make matching live tokens expired now (admin hook); returns how many."""
        now = self._clock.now()
        with self._lock:
            hits = self._select(provider, appkey)
            for record in hits:
                record.expires_at = now
            self._save()
            return len(hits)

    def revoke(self, provider: str, appkey: str | None = None) -> int:
        """Invalidate matching tokens as if the server dropped them (admin hook)."""
        with self._lock:
            hits = self._select(provider, appkey)
            for record in hits:
                record.revoked = True
            self._save()
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
        self._by_token[token_digest(token)] = record
        return record

    # -- the state file (called with the lock held) -----------------------------------------

    def _save(self) -> None:
        if self._state_file is None:
            return
        now = self._clock.now()
        records = {
            digest: {
                "provider": r.provider,
                "appkey": r.appkey,
                "secret_digest": r.secret_digest,
                "issued_at": r.issued_at.isoformat(),
                "expires_at": r.expires_at.isoformat(),
                "revoked": r.revoked,
            }
            for digest, r in self._by_token.items()
            if r.expires_at > now and not r.revoked  # dead tokens need not be remembered
        }

        digest_of = {id(record): digest for digest, record in self._by_token.items()}

        def latest(table: dict[str, TokenRecord]) -> dict[str, str]:
            return {
                appkey: digest
                for appkey, record in table.items()
                if (digest := digest_of.get(id(record), "")) in records
            }

        state = {
            "version": 1,
            "serial": self._serial,
            "tokens": records,
            "kis_latest": latest(self._kis_latest),
            "kiwoom_active": latest(self._kiwoom_active),
            "kis_last_answer": {k: v.isoformat() for k, v in self._kis_last_answer.items()},
        }
        tmp = self._state_file.with_name(self._state_file.name + ".tmp")
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh)
        os.replace(tmp, self._state_file)  # readers never see half a file

    def _load(self, path: Path) -> None:
        try:
            state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            if state.get("version") != 1:
                return
            by_digest = {
                digest: TokenRecord(
                    provider=str(raw["provider"]),
                    appkey=str(raw["appkey"]),
                    secret_digest=str(raw["secret_digest"]),
                    token="",  # never written down
                    issued_at=datetime.fromisoformat(raw["issued_at"]),
                    expires_at=datetime.fromisoformat(raw["expires_at"]),
                    revoked=bool(raw["revoked"]),
                )
                for digest, raw in dict(state["tokens"]).items()
            }
            kis_latest = {
                k: by_digest[d] for k, d in dict(state["kis_latest"]).items() if d in by_digest
            }
            kiwoom_active = {
                k: by_digest[d] for k, d in dict(state["kiwoom_active"]).items() if d in by_digest
            }
            # The windows were saved on the previous process's pacing clock; one that starts
            # behind it (a restart at the same simulated instant) must not see them as being
            # in the future, which would read as "the clock was set back" and lift them.
            paced = self._clock.pacing_now()
            last_answer = {
                k: min(datetime.fromisoformat(v), paced)
                for k, v in dict(state["kis_last_answer"]).items()
            }
            serial = int(state["serial"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return  # no file, or one this version cannot read: start afresh, as before
        self._by_token, self._kis_latest, self._kiwoom_active = by_digest, kis_latest, kiwoom_active
        self._kis_last_answer, self._serial = last_answer, serial


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
