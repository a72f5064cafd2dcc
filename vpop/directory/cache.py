"""What a directory said lately, and how long it may be believed (docs/ldap.md).

A subscriber found is answered from memory for `ttl` seconds, one not found for
`negative_ttl`; after that the directory is asked again. While the directory cannot be
asked (every server down or silent), a subscriber found within the last `grace`
seconds is still served as last found, and a password last confirmed by binding
within that time still logs in: logins of recent subscribers go on through an outage,
others are refused with a clear Reply-Message.

Pure: time comes in as a parameter. Not safe for threads on its own: the shell holds a
lock around each call (each is a few dictionary operations).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

MISS = (False, None)


@dataclass(frozen=True, slots=True, kw_only=True)
class CachePolicy:
    ttl: float = 30.0
    negative_ttl: float = 5.0
    grace: float = 3600.0
    size: int = 100_000


class LookupCache:
    """Lookups by (way, kind, value) and passwords confirmed by DN, oldest dropped
    first beyond `size` entries."""

    def __init__(self, policy: CachePolicy, key: bytes):
        self.policy = policy
        self._key = key  # keys the password fingerprints; random per process
        self._held: dict[tuple, tuple[object, float]] = {}
        self.hits = self.misses = self.stale_answers = 0

    def __len__(self) -> int:
        return len(self._held)

    def fresh(self, lookup: tuple, now: float) -> tuple[bool, object]:
        """(known, account): known with the account (None: not found) while fresh."""
        held = self._held.get(lookup)
        if held is not None:
            account, at = held
            limit = self.policy.ttl if account is not None else self.policy.negative_ttl
            if 0 <= now - at < limit:
                self.hits += 1
                return True, account
        self.misses += 1
        return MISS

    def remember(self, lookup: tuple, account: object, now: float) -> None:
        held = self._held
        held.pop(lookup, None)  # to the end: the newest
        if len(held) >= self.policy.size:
            del held[next(iter(held))]
        held[lookup] = (account, now)

    def stale(self, lookup: tuple, now: float) -> object:
        """During an outage: the account found within `grace`, else None."""
        held = self._held.get(lookup)
        if held is not None and held[0] is not None and 0 <= now - held[1] < self.policy.grace:
            self.stale_answers += 1
            return held[0]
        return None

    # --- passwords confirmed by binding as the subscriber -----------------------

    def fingerprint(self, password: bytes) -> bytes:
        # keyed BLAKE2b: a fifth of an HMAC-SHA256's cost, paid on every bind confirmed
        return hashlib.blake2b(password, key=self._key, digest_size=32).digest()

    def password_confirmed(self, dn: str, password: bytes, now: float, *,
                           outage: bool = False) -> bool:
        """Whether this password bound as `dn` within `ttl` (within `grace` during an
        outage)."""
        held = self._held.get(("bind", dn))
        if held is None:
            return False
        fingerprint, at = held
        limit = self.policy.grace if outage else self.policy.ttl
        if not 0 <= now - at < limit:
            return False
        return hmac.compare_digest(fingerprint, self.fingerprint(password))

    def confirm_password(self, dn: str, password: bytes, now: float) -> None:
        self.remember(("bind", dn), self.fingerprint(password), now)

    def forget_password(self, dn: str) -> None:
        self._held.pop(("bind", dn), None)
