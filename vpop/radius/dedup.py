"""RFC 5080 §2.2.2 duplicate detection: a retransmission gets the cached reply.

Key: (source address, source port, identifier, request authenticator). An entry
whose reply is still being made is IN_PROGRESS, so the retransmission is dropped
instead of being processed twice.
"""

from __future__ import annotations

from collections import OrderedDict

IN_PROGRESS = b""


class DuplicateCache:
    def __init__(self, window: float, max_entries: int = 1_000_000):
        self.window = window
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple, now: float) -> bytes | None:
        """The cached reply (IN_PROGRESS if not ready yet), or None if not a duplicate."""
        entry = self._entries.get(key)
        if entry is None or entry[0] < now:
            return None
        return entry[1]

    def begin(self, key: tuple, now: float) -> None:
        self._put(key, now, IN_PROGRESS)

    def finish(self, key: tuple, reply: bytes | None, now: float) -> None:
        """Remember the reply; a request that got no reply is forgotten."""
        if reply is None:
            self._entries.pop(key, None)
        else:
            self._put(key, now, reply)

    def _put(self, key: tuple, now: float, reply: bytes) -> None:
        entries = self._entries
        entries[key] = (now + self.window, reply)
        entries.move_to_end(key)
        # Entries are in expiry order, so expired ones are at the front.
        while entries:
            first = next(iter(entries.values()))
            if first[0] >= now and len(entries) <= self.max_entries:
                break
            entries.popitem(last=False)
