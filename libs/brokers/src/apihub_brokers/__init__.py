"""apihub brokers: the only code that speaks HTTP to a broker.

:class:`KisClient` and :class:`KiwoomClient` follow one :class:`BrokerClient` protocol: issue
and revoke tokens, call a catalogued TR (:class:`TrSpec`) once, and either return the broker's
body untouched in a :class:`BrokerReply` or raise one of ``apihub_core``'s ``Upstream*`` errors
(see :func:`classify_kis_response` / :func:`classify_kiwoom_response`). Retries, rate limits and
token caching belong to the callers.
"""

from ._catalog import TrSpec, known_trs, lookup_tr
from ._errors_map import (
    KIS_ERROR_CODES,
    KIWOOM_ERROR_CODES,
    ErrorCodes,
    classify_kis_response,
    classify_kiwoom_response,
)
from ._factory import client_for
from ._kis import KisClient
from ._kiwoom import KiwoomClient
from ._transport import TransportName, make_http_client, make_transport
from ._types import BrokerClient, BrokerReply

__all__ = [
    "KIS_ERROR_CODES",
    "KIWOOM_ERROR_CODES",
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
    "make_transport",
]
