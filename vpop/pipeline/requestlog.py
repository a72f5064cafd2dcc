"""One logfmt line per request, buffered.

The logging module costs about as much per record as answering a PAP request, so
request lines take this short path: formatted with %, kept in a list, written by
the shell's periodic flush() in one call.
"""

from __future__ import annotations

import time
from typing import Callable, TextIO

from vpop.logs import printable

LINE = "%s vpop.requests client=%s code=%s user=%s caller=%s method=%s outcome=%s reason=%s ms=%.2f\n"


class RequestLog:
    def __init__(self, stream: TextIO | None, clock: Callable[[], float] = time.time,
                 max_buffered: int = 10_000):
        self.stream = stream
        self.clock = clock
        self.max_buffered = max_buffered
        self._lines: list[str] = []
        self._second = -1
        self._stamp = ""

    def write(self, client: str, code: str, user: str, caller: str, method: str,
              outcome: str, reason: str, ms: float) -> None:
        if self.stream is None:
            return
        now = self.clock()
        second = int(now)
        if second != self._second:  # strftime once a second, not once a request
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        stamp = "%s.%03dZ" % (self._stamp, (now - second) * 1000)
        self._lines.append(LINE % (stamp, client, code, _q(user), _q(caller), method or "-",
                                   outcome, _q(reason), ms))
        if len(self._lines) >= self.max_buffered:
            self.flush()

    def flush(self) -> None:
        if self._lines and self.stream is not None:
            lines, self._lines = self._lines, []
            self.stream.write("".join(lines))
            self.stream.flush()




def _q(value: str) -> str:
    """A logfmt value: '-' when empty; quoted when it has white space, quotes, '=' or
    a backslash (or is "-"), with \\ and \\" inside the quotes and control characters and bytes
    that were not UTF-8 as \\xNN (vpop.logs.printable)."""
    if not value:
        return "-"
    # isprintable() is False for controls, separators other than " ", format characters
    # and surrogates: the common value passes a few fast tests. "-" itself is quoted.
    if value.isprintable() and " " not in value and '"' not in value and "=" not in value \
            and "\\" not in value and value != "-":
        return value
    return '"' + printable(value.replace("\\", "\\\\").replace('"', '\\"')) + '"'
