"""``python -m apihub_cli``."""

from .main import app

app()
