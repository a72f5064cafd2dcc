"""Progress of long commands (imports, reports) on standard error.

On a terminal, a bar redrawn in place; elsewhere (a log file, a pipe), a line every
`interval` seconds, so a long import run by a script still says how far it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

REDRAW = 0.1  # seconds between redraws of a bar


class Progress:
    """`step(n)` per n units of work, `done()` at the end. Silent when `stream` is None.

    With `interval`, a line `label: count/total (percent)` every `interval` seconds
    instead of the bar, and one at the end if the work took that long.
    """

    def __init__(self, total: int, stream: TextIO | None, label: str = "", width: int = 30,
                 *, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.total = max(1, total)
        self.stream = stream
        self.label = label
        self.width = width
        self.interval = interval
        self.clock = clock
        self.count = 0
        self._started = self._shown = clock()
        self._drawn = False
        self._lines = 0

    def step(self, n: int = 1) -> None:
        self.count += n
        if self.stream is None:
            return
        now = self.clock()
        if self.interval is not None:
            if now - self._shown >= self.interval:
                self._line(now)
        elif not self._drawn or now - self._shown >= REDRAW or self.count >= self.total:
            self._bar(now)

    def done(self) -> None:
        if self.stream is None:
            return
        if self.interval is not None:
            if self._lines or self.clock() - self._started >= self.interval:
                self._line(self.clock())  # work that took no time goes unmentioned
        elif self._drawn:
            self.stream.write("\r" + " " * (len(self.label) + self.width + 30) + "\r")
            self.stream.flush()

    def _shown_count(self) -> str:
        return f"{min(self.count, self.total):,}/{self.total:,}"

    def _bar(self, now: float) -> None:
        filled = self.width * min(self.count, self.total) // self.total
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{self._shown_count()}")
        self.stream.flush()
        self._shown, self._drawn = now, True

    def _line(self, now: float) -> None:
        percent = 100 * min(self.count, self.total) // self.total
        self.stream.write(f"{self.label}: {self._shown_count()} ({percent}%)\n")
        self.stream.flush()
        self._shown = now
        self._lines += 1


def silent(label: str, total: int) -> Progress:
    """A Progress that shows nothing: the default where a caller wants none."""
    return Progress(total, None, label)


def on(stream: TextIO | None, *, interval: float = 10.0) -> Callable[[str, int], Progress]:
    """Progress factory for `stream`: a bar on a terminal, a line every `interval`
    seconds elsewhere, nothing for None."""
    tty = stream is not None and stream.isatty()

    def start(label: str, total: int) -> Progress:
        return Progress(total, stream, label, interval=None if tty else interval)
    return start
