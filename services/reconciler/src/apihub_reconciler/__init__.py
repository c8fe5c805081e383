"""The reconciler service: what became of orders whose outcome was unknown.

After a timeout or a crash the hub cannot know whether an order reached the broker, and it never
sends it again. The reconciler follows every such ``outcome_unknown`` order up with the broker's
own order inquiries — made through the hub, so they share the token and the quota — and appends
``order.reconciled`` (``found`` with the broker's order number, ``not_found`` or ``ambiguous``
with the candidates) to ``<ns>:orders``. ``apihub orders reconcile REQUEST_ID`` does the same on
demand. See ``docs/operations.md``.
"""

from ._reconcile import OrderRequest, load_order_request, reconcile
from ._service import GROUP, RECHECK_AFTER_S, Reconciler, open_reconciler, run_reconciler

__all__ = [
    "GROUP",
    "RECHECK_AFTER_S",
    "OrderRequest",
    "Reconciler",
    "load_order_request",
    "open_reconciler",
    "reconcile",
    "run_reconciler",
]
