"""The dispatcher service: consumes the request stream and calls the brokers."""

from ._dispatcher import Dispatcher
from ._service import open_dispatcher, serve

__all__ = ["Dispatcher", "open_dispatcher", "serve"]
