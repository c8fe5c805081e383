"""The token-keeper service: one token per (provider, account) for the whole fleet.

Only the token-keeper calls a broker's token endpoint. It keeps each account's token encrypted
in Redis under a fence number, replaces it once per rejection report, refreshes it before it
expires and never issues more than once per issuance window per app key (KIS ``EGW00133``).
Dispatchers read the stored token (``apihub_dispatcher.SharedTokenSource``) and talk to the
keeper only through the token stream. See ``docs/tokens.md``.
"""

from ._issuer import Issuer, Result
from ._keeper import SHUTDOWN_GRACE_S, TokenKeeper
from ._need import Need, Reason
from ._service import open_token_keeper, run_token_keeper
from ._window import IssueWindow, WindowBusy

__all__ = [
    "SHUTDOWN_GRACE_S",
    "IssueWindow",
    "Issuer",
    "Need",
    "Reason",
    "Result",
    "TokenKeeper",
    "WindowBusy",
    "open_token_keeper",
    "run_token_keeper",
]
