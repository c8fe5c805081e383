"""Checks a request must pass before the dispatcher spends a broker call on it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from apihub_brokers import TrSpec, check_next_key, configured_catalog
from apihub_core import Keys, Provider, RequestInvalid, RequestSubmitted
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
    if request.passthrough is not None:
        spec = _passthrough_spec(provider, request, spec, settings)
    elif spec is None:
        raise Rejection(
            "unknown_tr",
            f"{provider.value} has no TR {request.tr_id!r} in the catalog "
            "(add it under [[catalog.tr]] in apihub.toml, or send it as a pass-through "
            "with its method, path and kind)",
        )
    if request.next_key:
        try:
            check_next_key(spec, request.next_key)
        except RequestInvalid as exc:
            raise Rejection("bad_next_key", str(exc)) from None
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


_UNSAFE_PATH = ("..", "://", "?", "#", "\\")


def _passthrough_spec(
    provider: Provider, request: RequestSubmitted, known: TrSpec | None, settings: Settings
) -> TrSpec:
    """The spec a pass-through request describes, checked against the catalog and the rules
    (a catalogued TR keeps its definition: a pass-through may not re-describe it)."""
    described = request.passthrough
    assert described is not None  # noqa: S101 - only called for pass-through requests
    if known is not None:
        if (known.method, known.path, known.kind) != (
            described.method,
            described.path,
            described.kind,
        ):
            raise Rejection(
                "passthrough_conflict",
                f"{request.tr_id} is in the catalog as {known.method} {known.path} "
                f"({known.kind}); drop the pass-through or make it agree",
            )
        return known
    if not settings.catalog.passthrough:
        raise Rejection(
            "passthrough_disabled",
            f"{provider.value} has no TR {request.tr_id!r} in the catalog and this hub "
            "refuses pass-through calls ([catalog] passthrough = false)",
        )
    path = described.path
    if (
        not path.startswith("/")
        or any(part in path for part in _UNSAFE_PATH)
        or any(ch.isspace() for ch in path)
    ):
        raise Rejection(
            "bad_passthrough", f"pass-through path {path[:80]!r} must be a plain absolute path"
        )
    if provider is Provider.KIWOOM and described.method != "POST":
        raise Rejection("bad_passthrough", "every Kiwoom TR is a POST")
    if not request.tr_id.strip() or len(request.tr_id) > 32:
        raise Rejection("bad_passthrough", "a pass-through needs its tr_id (1 to 32 characters)")
    is_order = described.kind == "order"
    return TrSpec(
        provider=provider,
        tr_id=request.tr_id.strip(),
        method=described.method,
        path=path,
        required=(),
        is_order=is_order,
        paging="tr_cont" if provider is Provider.KIS else "cont_key",
        family="order" if is_order else "passthrough",
        description="pass-through",
        virtual_tr_id=described.virtual_tr_id,
    )
