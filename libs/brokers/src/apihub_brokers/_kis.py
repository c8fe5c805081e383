"""The KIS Open API client (https://apiportal.koreainvestment.com)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Final

from apihub_core import Provider, UpstreamError
from apihub_runtime import AccessToken, AccountConfig, Secret, TrSpec

from ._base import _BaseBrokerClient, kst_to_utc, on_local_clock
from ._errors_map import KIS_ERROR_CODES, ErrorCodes, kis_error
from ._kis_paging import apply_next_key, continuation
from ._types import BrokerReply

TOKEN_PATH: Final = "/oauth2/tokenP"  # noqa: S105  (a path, not a password)
REVOKE_PATH: Final = "/oauth2/revokeP"
_CONTENT_TYPE: Final = "application/json; charset=utf-8"
_REPLY_HEADERS: Final = ("tr_id", "tr_cont", "gt_uid", "date")
_EXPIRY_FORMAT: Final = "%Y-%m-%d %H:%M:%S"


class KisClient(_BaseBrokerClient):
    """Talks to the KIS Open API: ``/oauth2/tokenP``, ``/oauth2/revokeP`` and the ``/uapi`` TRs.

    Quote TRs are GETs with query parameters; orders POST a JSON body with upper-case keys. On a
    virtual account, the TR's virtual twin goes out (``TTTC0012U`` → ``VTTC0012U``, see
    :attr:`TrSpec.virtual_tr_id`).
    """

    provider: Provider = Provider.KIS
    _default_codes: ClassVar[ErrorCodes] = KIS_ERROR_CODES

    def _classify(self, status: int, body: bytes) -> UpstreamError | None:
        return kis_error(status, body, self.error_codes)

    async def issue_token(
        self,
        account: AccountConfig,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> AccessToken:
        """``POST /oauth2/tokenP``. Within 6 h KIS hands back the same token; 1 issue a minute."""
        secrets = self._secrets(account)
        response, _ = await self._request(
            "POST",
            account,
            TOKEN_PATH,
            headers={"content-type": _CONTENT_TYPE},
            body={
                "grant_type": "client_credentials",
                "appkey": account.app_key.reveal(),
                "appsecret": account.app_secret.reveal(),
            },
            secrets=secrets,
            timeout=timeout,
            quote_body=False,
        )
        doc = self._decode(response.content)
        value = doc.get("access_token")
        if not isinstance(value, str) or not value:
            raise self._malformed("no access_token", response.status_code, secrets)
        secrets = (*secrets, value)
        # expires_in is relative, so it is immune to clock skew; the KST date is the fallback.
        expires_in = doc.get("expires_in")
        if isinstance(expires_in, int) and not isinstance(expires_in, bool):
            expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
        else:
            absolute = kst_to_utc(str(doc.get("access_token_token_expired", "")), _EXPIRY_FORMAT)
            if absolute is None:
                raise self._malformed("no usable expiry", response.status_code, secrets)
            expires_at = on_local_clock(absolute, response)
        token_type = str(doc.get("token_type") or "Bearer")
        return AccessToken(Secret(value), expires_at, _bearer(token_type))

    async def revoke_token(
        self,
        account: AccountConfig,
        token: AccessToken,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> None:
        """``POST /oauth2/revokeP`` with the app key, secret and token."""
        await self._request(
            "POST",
            account,
            REVOKE_PATH,
            headers={"content-type": _CONTENT_TYPE},
            body={
                "appkey": account.app_key.reveal(),
                "appsecret": account.app_secret.reveal(),
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
        """Call ``spec`` once. ``next_key`` (from the previous page's reply) selects the next
        page whatever the TR's paging style (see ``_kis_paging``); ``cont`` alone sends
        ``tr_cont: N`` for a caller that moves the cursors in ``params`` itself."""
        if spec.provider is not Provider.KIS:
            raise ValueError(f"{spec.provider.value} TR {spec.tr_id} sent to the KIS client")
        headers = {
            "content-type": _CONTENT_TYPE,
            "authorization": f"Bearer {token.value.reveal()}",
            "appkey": account.app_key.reveal(),
            "appsecret": account.app_secret.reveal(),
            "tr_id": spec.wire_tr_id(virtual=account.virtual),
            "custtype": "P",
        }
        if cont or (next_key and spec.paging == "tr_cont"):
            headers["tr_cont"] = "N"
        params = apply_next_key(spec, params, next_key)
        is_get = spec.method == "GET"
        if is_get:
            params = _with_blank_optionals(spec, params)
        response, elapsed_ms = await self._request(
            spec.method,
            account,
            spec.path,
            headers=headers,
            params=dict(params) if is_get else None,
            body=None if is_get else {key.upper(): value for key, value in params.items()},
            secrets=self._secrets(account, token.value.reveal()),
            timeout=timeout,
            tr_id=spec.tr_id,
        )
        reply_headers = {
            name: response.headers[name] for name in _REPLY_HEADERS if name in response.headers
        }
        has_more, following = continuation(
            spec, params, reply_headers.get("tr_cont", ""), response.content
        )
        return BrokerReply(
            status=response.status_code,
            headers=reply_headers,
            body=response.content,
            has_more=has_more,
            next_key=following,
            elapsed_ms=elapsed_ms,
        )


def _with_blank_optionals(spec: TrSpec, params: Mapping[str, str]) -> dict[str, str]:
    """``params`` with every optional parameter the caller left out sent blank, as the KIS
    samples send them (the gateway wants each documented key present)."""
    present = {name.upper() for name in params}
    blanks = {name: "" for name in spec.optional if name.upper() not in present}
    return {**params, **blanks}


def _bearer(token_type: str) -> str:
    return "Bearer" if token_type.lower() == "bearer" else token_type
