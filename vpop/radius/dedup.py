"""RFC 5080 §2.2.2 duplicate detection: a retransmission gets the cached reply.

Key: the source address and port, and the Identifier and Request Authenticator
(see key()). An entry whose reply is still being made is IN_PROGRESS, so the
retransmission is dropped instead of being processed twice. An Accounting-Response
is made at once but sent only once its record is stored: its entry is an Awaiting,
which answers retransmissions from the moment the storing thread marks it stored.

Entries live in two generations of plain dicts: new entries go into the young
one, and once a window the old generation is dropped whole and the young one
becomes old. Expiry then costs nothing per request, and a reply is kept for at
least one window and at most two. Answering a retransmission a little later
than the window is harmless: the reply is the one made for that very request.
When the young generation reaches half of max_entries the generations turn early,
so memory stays bounded and only an extreme rate shortens the memory.
"""

from __future__ import annotations

IN_PROGRESS = b""


class Awaiting:
    """A reply held back until its record is stored. The storing thread sets `stored`
    just before it sends the reply, so a retransmission arriving from then on, before
    the event loop has replaced this entry by the reply itself, is answered too."""
    __slots__ = ("reply", "stored")

    def __init__(self, reply: bytes):
        self.reply = reply
        self.stored = False


def key(address: tuple, data: bytes) -> tuple:
    """(source address and port, Identifier + Length + Request Authenticator)."""
    return (address, data[1:20])


class DuplicateCache:
    def __init__(self, window: float, max_entries: int = 1_000_000):
        self.window = window
        self.max_entries = max_entries
        self._young: dict[tuple, bytes] = {}
        self._old: dict[tuple, bytes] = {}
        self._turn_at: float | None = None  # when the young generation becomes old

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def get(self, key: tuple) -> bytes | Awaiting | None:
        """The cached reply (IN_PROGRESS or an Awaiting if not ready yet), or None if not
        a duplicate."""
        reply = self._young.get(key)
        return reply if reply is not None else self._old.get(key)

    def begin(self, key: tuple, now: float, awaiting: Awaiting | None = None) -> None:
        self._put(key, now, IN_PROGRESS if awaiting is None else awaiting)

    def finish(self, key: tuple, reply: bytes | None, now: float) -> None:
        """Remember the reply; a request that got no reply is forgotten."""
        if reply is None:
            self._young.pop(key, None)
            self._old.pop(key, None)
        else:
            self._put(key, now, reply)

    def _put(self, key: tuple, now: float, reply: bytes | Awaiting) -> None:
        if self.window <= 0:  # duplicate detection switched off
            return
        turn_at = self._turn_at
        if turn_at is None or now >= turn_at or len(self._young) * 2 >= self.max_entries:
            self._old = self._young
            self._young = {}
            self._turn_at = now + self.window
        self._young[key] = reply
