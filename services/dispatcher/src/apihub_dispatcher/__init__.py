"""The dispatcher service: consumes the request stream and calls the brokers."""

from ._dispatcher import Dispatcher
from ._service import open_dispatcher, serve
from ._shared_tokens import SharedTokenSource
from ._tokens import TokenSource

__all__ = ["Dispatcher", "SharedTokenSource", "TokenSource", "open_dispatcher", "serve"]
