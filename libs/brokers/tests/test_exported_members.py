"""``__all__`` is the public surface: it must match the module and stay sorted."""

from __future__ import annotations

import apihub_brokers

EXPECTED = {
    "KIS_ERROR_CODES",
    "KIWOOM_ERROR_CODES",
    "AccessToken",
    "BrokerClient",
    "BrokerReply",
    "ErrorCodes",
    "KisClient",
    "KiwoomClient",
    "TrSpec",
    "TransportName",
    "classify_kis_response",
    "classify_kiwoom_response",
    "client_for",
    "known_trs",
    "lookup_tr",
    "make_http_client",
}


def test_all_is_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(apihub_brokers).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("apihub_brokers")
    } | {"KIS_ERROR_CODES", "KIWOOM_ERROR_CODES", "TransportName"}
    assert set(apihub_brokers.__all__) == EXPECTED == public
    assert len(apihub_brokers.__all__) == len(EXPECTED)


def test_every_public_member_is_documented() -> None:
    for name in apihub_brokers.__all__:
        member = getattr(apihub_brokers, name)
        if callable(member) and name != "TransportName":
            assert member.__doc__, name
