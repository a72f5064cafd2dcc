"""Where vpop's log lines go: one setup for the CLI and for processes it spawns."""

from __future__ import annotations

import logging

from vpop.config import Settings


def setup_logging(settings: Settings) -> None:
    handler = (logging.FileHandler(settings.logging.file) if settings.logging.file
               else logging.StreamHandler())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.logging.level.upper())
