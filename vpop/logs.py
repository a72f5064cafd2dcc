"""Where vpop's log lines go: one setup for the CLI and for processes it spawns."""

from __future__ import annotations

import logging
import re

from vpop.config import Settings

# What must not reach a log or a terminal as it is: C0 controls and DEL, C1 controls,
# the Unicode line and paragraph separators, the bidirectional controls (which reorder
# what follows on screen), and lone surrogates (bytes that were not UTF-8, decoded with
# "surrogateescape").
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069"
                          "\ud800-\udfff]")


def _escaped(match: re.Match) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8
        return "\\x%02x" % (code - 0xDC00)
    return "\\x%02x" % code if code < 0x80 else "\\u%04x" % code


def printable(text: str) -> str:
    """`text` with control characters and bytes that were not UTF-8 written as \\xNN
    (\\uNNNN above U+007F), so that a log stays text for grep and a terminal shows
    what a NAS sent instead of obeying it. Everything else is left as it is."""
    return _UNPRINTABLE.sub(_escaped, text)


def setup_logging(settings: Settings) -> None:
    handler = (logging.FileHandler(settings.logging.file) if settings.logging.file
               else logging.StreamHandler())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.logging.level.upper())
