"""Checks a request must pass before the dispatcher spends a broker call on it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from apihub_brokers import TrSpec, configured_catalog
from apihub_core import Keys, Provider, RequestSubmitted
from apihub_runtime import AccountConfig, Settings


class Rejection(Exception):
    """The request cannot be executed; ``reason`` is the stable word written to the dead letter."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ValidRequest:
    """A request that passed validation, with what executing it needs."""

    request: RequestSubmitted
    provider: Provider
    spec: TrSpec
    account: AccountConfig
    once: bool = False
    """Sent to the broker at most once: an order, or a TR the operator declared
    non-idempotent (``[dispatcher] non_idempotent_trs``)."""


def entry_size(fields: Mapping[bytes, bytes]) -> int:
    """Bytes of an entry's field names and values."""
    return sum(len(k) + len(v) for k, v in fields.items())


def validate(request: RequestSubmitted, settings: Settings, keys: Keys) -> ValidRequest:
    """Resolve provider, TR (in the configured catalog: the built-in one extended by
    ``apihub.toml``) and account, and check required parameters; raise :class:`Rejection`."""
    if not request.request_id or len(request.request_id) > 128:
        raise Rejection("invalid_event", "request_id must be 1 to 128 characters")
    if request.reply_to is not None and not keys.is_reply_stream(request.reply_to):
        raise Rejection(
            "bad_reply_to", f"reply_to must be a stream named {keys.reply_prefix}<client id>"
        )
    try:
        provider = Provider.parse(request.provider)
    except ValueError as exc:
        raise Rejection("unknown_provider", str(exc)) from None
    spec = configured_catalog(settings).lookup(provider, request.tr_id)
    if spec is None:
        raise Rejection(
            "unknown_tr", f"{provider.value} has no TR {request.tr_id!r} in the catalog"
        )
    missing = [name for name in spec.required if name not in request.params]
    if missing:
        raise Rejection(
            "missing_params", f"{request.tr_id} requires {', '.join(missing)} (missing)"
        )
    try:
        account = settings.account(provider, request.account)
    except KeyError:
        raise Rejection(
            "unknown_account", f"{provider.value} has no account {request.account!r}"
        ) from None
    once = spec.is_order or request.tr_id in settings.dispatcher.non_idempotent_trs
    return ValidRequest(request=request, provider=provider, spec=spec, account=account, once=once)
