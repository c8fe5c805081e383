"""apihub brokers: the only code that speaks HTTP to a broker.

:class:`KisClient` and :class:`KiwoomClient` follow one :class:`BrokerClient` protocol: issue
and revoke tokens, call a catalogued TR (:class:`TrSpec`) once, and either return the broker's
body untouched in a :class:`BrokerReply` or raise one of ``apihub_core``'s ``Upstream*`` errors
(see :func:`classify_kis_response` / :func:`classify_kiwoom_response`). Retries, rate limits and
token caching belong to the callers.

The TR catalog is data (``trs.toml``, :func:`builtin_catalog`) that ``apihub.toml`` may extend
(:func:`configured_catalog`); ``python -m apihub_brokers.catalog_doc`` writes ``docs/trs.md``.
"""

from apihub_runtime import Catalog, TrSpec

from ._catalog import (
    CatalogRow,
    builtin_catalog,
    catalog_markdown,
    catalog_rows,
    configured_catalog,
    known_trs,
    lookup_tr,
)
from ._errors_map import (
    KIS_ERROR_CODES,
    KIWOOM_ERROR_CODES,
    ErrorCodes,
    classify_kis_response,
    classify_kiwoom_response,
)
from ._factory import client_for
from ._kis import KisClient
from ._kis_paging import check_next_key
from ._kiwoom import KiwoomClient
from ._reconcile import (
    Candidate,
    Inquiry,
    OrderTerms,
    Verdict,
    candidate_rows,
    judge,
    order_terms,
    reconciliation_inquiries,
    rows_of,
)
from ._transport import TransportName, make_http_client, make_transport
from ._types import BrokerClient, BrokerReply

__all__ = [
    "KIS_ERROR_CODES",
    "KIWOOM_ERROR_CODES",
    "BrokerClient",
    "BrokerReply",
    "Candidate",
    "Catalog",
    "CatalogRow",
    "ErrorCodes",
    "Inquiry",
    "KisClient",
    "KiwoomClient",
    "OrderTerms",
    "TrSpec",
    "TransportName",
    "Verdict",
    "builtin_catalog",
    "candidate_rows",
    "catalog_markdown",
    "catalog_rows",
    "check_next_key",
    "classify_kis_response",
    "classify_kiwoom_response",
    "client_for",
    "configured_catalog",
    "judge",
    "known_trs",
    "lookup_tr",
    "make_http_client",
    "make_transport",
    "order_terms",
    "reconciliation_inquiries",
    "rows_of",
]
