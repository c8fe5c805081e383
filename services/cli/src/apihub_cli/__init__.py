"""The ``apihub`` command line: the one composition root that may import every service."""

from ._hub import needs_simulator, run_hub
from .main import app

__all__ = ["app", "needs_simulator", "run_hub"]
