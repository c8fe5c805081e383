"""The ``apihub`` command line: the one composition root that may import every service.

Only the Typer ``app`` is public. The embedded hub behind ``apihub up`` (``_hub``) imports every
service (DuckDB, pyarrow, the dispatcher's HTTP stack), so it is loaded by that command alone:
``apihub call`` or ``apihub --help`` do not pay for it.
"""

from .main import app

__all__ = ["app"]
