"""The Kiwoom REST API client (https://openapi.kiwoom.com)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Final

from apihub_core import Provider, UpstreamError
from apihub_runtime import AccessToken, AccountConfig, Secret, TrSpec

from ._base import _BaseBrokerClient, kst_to_utc, on_local_clock
from ._errors_map import KIWOOM_ERROR_CODES, ErrorCodes, kiwoom_error
from ._types import BrokerReply

TOKEN_PATH: Final = "/oauth2/token"  # noqa: S105  (a path, not a password)
REVOKE_PATH: Final = "/oauth2/revoke"
_CONTENT_TYPE: Final = "application/json;charset=UTF-8"
_REPLY_HEADERS: Final = ("api-id", "cont-yn", "next-key", "date")
_EXPIRY_FORMAT: Final = "%Y%m%d%H%M%S"


class KiwoomClient(_BaseBrokerClient):
    """Talks to the Kiwoom REST API: ``/oauth2/token``, ``/oauth2/revoke`` and the TRs.

    Every TR is a POST with a JSON body and the ``api-id`` header. A new token invalidates the
    previous one of the same app key, so only one process should issue tokens per key.
    """

    provider: Provider = Provider.KIWOOM
    _default_codes: ClassVar[ErrorCodes] = KIWOOM_ERROR_CODES

    def _classify(self, status: int, body: bytes) -> UpstreamError | None:
        return kiwoom_error(status, body, self.error_codes)

    async def issue_token(
        self,
        account: AccountConfig,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> AccessToken:
        """``POST /oauth2/token`` (api-id ``au10001``); ``expires_dt`` is KST ``YYYYMMDDHHMMSS``."""
        secrets = self._secrets(account)
        response, _ = await self._request(
            "POST",
            account,
            TOKEN_PATH,
            headers={"Content-Type": _CONTENT_TYPE, "api-id": "au10001"},
            body={
                "grant_type": "client_credentials",
                "appkey": account.app_key.reveal(),
                "secretkey": account.app_secret.reveal(),
            },
            secrets=secrets,
            timeout=timeout,
            quote_body=False,
        )
        doc = self._decode(response.content)
        value = doc.get("token")
        if not isinstance(value, str) or not value:
            raise self._malformed("no token", response.status_code, secrets)
        secrets = (*secrets, value)
        expires_at = kst_to_utc(str(doc.get("expires_dt", "")), _EXPIRY_FORMAT)
        if expires_at is None:
            raise self._malformed("no usable expires_dt", response.status_code, secrets)
        expires_at = on_local_clock(expires_at, response)
        token_type = str(doc.get("token_type") or "Bearer")
        return AccessToken(
            Secret(value), expires_at, "Bearer" if token_type.lower() == "bearer" else token_type
        )

    async def revoke_token(
        self,
        account: AccountConfig,
        token: AccessToken,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> None:
        """``POST /oauth2/revoke`` (api-id ``au10002``) with the app key, secret key and token."""
        await self._request(
            "POST",
            account,
            REVOKE_PATH,
            headers={"Content-Type": _CONTENT_TYPE, "api-id": "au10002"},
            body={
                "appkey": account.app_key.reveal(),
                "secretkey": account.app_secret.reveal(),
                "token": token.value.reveal(),
            },
            secrets=self._secrets(account, token.value.reveal()),
            timeout=timeout,
        )

    async def call(
        self,
        spec: TrSpec,
        params: Mapping[str, str],
        *,
        account: AccountConfig,
        token: AccessToken,
        cont: bool = False,
        next_key: str = "",
        timeout: float = 10.0,  # noqa: ASYNC109  (the per-call deadline, kept by fail_after)
    ) -> BrokerReply:
        """Call ``spec`` once. ``cont`` or a ``next_key`` sends ``cont-yn: Y`` and
        ``next-key: <next_key>`` with the same body, as Kiwoom pages (the response's
        ``cont-yn: Y`` says more follows)."""
        if spec.provider is not Provider.KIWOOM:
            raise ValueError(f"{spec.provider.value} TR {spec.tr_id} sent to the Kiwoom client")
        headers = {
            "Content-Type": _CONTENT_TYPE,
            "api-id": spec.wire_tr_id(virtual=account.virtual),
            "authorization": f"Bearer {token.value.reveal()}",
        }
        if cont or next_key:
            headers["cont-yn"] = "Y"
            headers["next-key"] = next_key
        response, elapsed_ms = await self._request(
            "POST",
            account,
            spec.path,
            headers=headers,
            body=dict(params),
            secrets=self._secrets(account, token.value.reveal()),
            timeout=timeout,
            tr_id=spec.tr_id,
        )
        reply_headers = {
            name: response.headers[name] for name in _REPLY_HEADERS if name in response.headers
        }
        return BrokerReply(
            status=response.status_code,
            headers=reply_headers,
            body=response.content,
            has_more=reply_headers.get("cont-yn", "").strip().upper() == "Y",
            next_key=reply_headers.get("next-key", "").strip(),
            elapsed_ms=elapsed_ms,
        )
