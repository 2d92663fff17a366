"""``python -m worker`` is ``rascore``."""

from worker.cli import app

app()
