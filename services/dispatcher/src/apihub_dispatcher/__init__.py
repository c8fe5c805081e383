"""The dispatcher service: consumes the request stream and calls the brokers."""

from ._dispatcher import Dispatcher
from ._service import open_dispatcher, serve
from ._tokens import LocalTokenCache, TokenSource

__all__ = ["Dispatcher", "LocalTokenCache", "TokenSource", "open_dispatcher", "serve"]
