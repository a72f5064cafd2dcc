"""Leases of access infrastructure to ISPs, and admission against them, without I/O.

An ISP leases a set of NASes, or ranges of ports on them, for a period: a number of
concurrent sessions, a bandwidth and/or a monthly volume, at a price. A NAS is
named as it names itself in RADIUS (NAS-IP-Address, NAS-IPv6-Address or
NAS-Identifier), since it may reach vpop through another proxy.

A session counts against the lease of its ISP that covers its NAS (and its
NAS-Port, for a lease of port ranges) at the session's start. When a lease's
policy is ``reject``, ``admit_by_lease`` turns away new sessions once the lease's
sessions are all in use; with ``admit`` they are let in and the overage is
recorded by the utilization monitor.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Iterable

from vpop.accounting.records import AcctRecord, nas_identity, nas_port_number
from vpop.accounting.sessions import Attribution
from vpop.pipeline.core import Rcode

POLICIES = ("admit", "reject")
DEFAULT_REJECT_MESSAGE = "Leased capacity exhausted"
RESERVATION_HOLD = 60.0  # seconds an admitted session counts before its Start arrives


@dataclass(frozen=True, slots=True, kw_only=True)
class PortRange:
    nas: str
    first: int
    last: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseTerms:
    id: int
    name: str
    isp: str
    nas: frozenset[str] = frozenset()  # whole NASes
    ports: tuple[PortRange, ...] = ()
    sessions: int | None = None  # concurrent sessions leased
    bandwidth_kbps: int | None = None
    volume_bytes: int | None = None  # per calendar month (UTC)
    starts: int = 0  # seconds since the epoch
    ends: int | None = None  # exclusive; None: open-ended
    price: Decimal = Decimal(0)  # per month
    policy: str = "admit"  # admit | reject
    reject_message: str = DEFAULT_REJECT_MESSAGE
    under_percent: int = 0  # under-utilization below this share of leased sessions; 0: off
    under_window: int = 3600  # ... lasting at least this many seconds

    def active(self, at: float) -> bool:
        return self.starts <= at and (self.ends is None or at < self.ends)

    def covers(self, nas: str, port: int | None) -> int:
        """0: not this NAS or port; 1: the whole NAS; 2: a port range on it (preferred)."""
        for span in self.ports:
            if span.nas == nas and port is not None and span.first <= port <= span.last:
                return 2
        return 1 if nas in self.nas else 0


class LeaseIndex:
    """Leases by ISP and NAS, for finding the one a session counts against."""

    def __init__(self, leases: Iterable[LeaseTerms] = ()):
        self.by_id: dict[int, LeaseTerms] = {}
        self._by_place: dict[tuple[str, str], list[LeaseTerms]] = collections.defaultdict(list)
        self._by_nas: dict[str, list[LeaseTerms]] = collections.defaultdict(list)
        self.isps: set[str] = set()  # ISPs with any lease: the others need no NAS look-up
        for lease in leases:
            self.by_id[lease.id] = lease
            self.isps.add(lease.isp)
            for nas in lease.nas | {p.nas for p in lease.ports}:
                self._by_place[(lease.isp, nas)].append(lease)
                self._by_nas[nas].append(lease)

    def __len__(self) -> int:
        return len(self.by_id)

    def match(self, isp: str | None, nas: str, port: int | None, at: float) -> LeaseTerms | None:
        """The ISP's lease covering the NAS (a port range before the whole NAS) at `at`."""
        if isp is None:
            return None
        return _best(self._by_place.get((isp, nas), ()), nas, port, at)

    def at_place(self, nas: str, port: int | None, at: float) -> LeaseTerms | None:
        """Whoever's lease covers the NAS (a port range before the whole NAS) at `at`."""
        return _best(self._by_nas.get(nas, ()), nas, port, at)


def attribute(record: AcctRecord, start: int, leases: LeaseIndex,
              realm_isp: Callable[[str], str | None] | None) -> Attribution:
    """The lease a new session counts against (and its ISP when no Class named one): the
    Class's ISP, else the ISP of the realm in its User-Name, and that ISP's lease covering
    the NAS (and port) at the session's start; with neither, the lease covering the NAS
    and port, whoever holds it."""
    port, nas = record.nas_port_number, record.nas_address
    isp = record.routing.isp
    if isp is not None:
        lease = leases.match(isp, nas, port, start)
        return Attribution(lease.id if lease else None)
    isp = realm_isp(record.username) if realm_isp is not None else None
    if isp is not None:
        lease = leases.match(isp, nas, port, start)
        return Attribution(lease.id if lease else None, isp, "realm")
    lease = leases.at_place(nas, port, start)
    if lease is not None:
        return Attribution(lease.id, lease.isp, "lease")
    return Attribution(None)


def _best(leases: Iterable[LeaseTerms], nas: str, port: int | None, at: float
          ) -> LeaseTerms | None:
    best, rank = None, 0
    for lease in leases:
        covers = lease.covers(nas, port)
        if covers > rank and lease.active(at):
            best, rank = lease, covers
    return best


class LeaseBook:
    """Sessions in use per lease, in memory, for admission on the event loop.

    The accounting writer sets the counts it commits (``set_counts``) and reports
    the Starts it stored (``started``); an admitted session is reserved until its
    Start arrives or RESERVATION_HOLD passes, so a burst of Access-Requests cannot
    all slip in before their Starts are counted. With the accounting journal, a
    Start stored there (``journaled``) counts until the ledger has applied it
    (``applied``) and the counts read from the database include it. Use from one
    thread.
    """

    def __init__(self, leases: LeaseIndex | None = None, counts: dict[int, int] | None = None,
                 hold: float = RESERVATION_HOLD):
        self.leases = leases or LeaseIndex()
        self.counts: dict[int, int] = dict(counts or {})
        self.hold = hold
        self._reserved: dict[int, collections.deque[float]] = collections.defaultdict(
            collections.deque)
        # journal entry ids of Starts not yet applied, per lease, in order
        self._journaled: dict[int, collections.deque[int]] = collections.defaultdict(
            collections.deque)

    def set_leases(self, leases: LeaseIndex) -> None:
        self.leases = leases

    def set_counts(self, counts: dict[int, int]) -> None:
        self.counts.update(counts)

    def started(self, lease_ids: Iterable[int]) -> None:
        for lease_id in lease_ids:
            queue = self._reserved.get(lease_id)
            if queue:
                queue.popleft()

    def journaled(self, starts: list[tuple[int, int]]) -> None:
        """(lease id, journal entry id) of Starts in the journal, in entry order."""
        self.started(lease_id for lease_id, _ in starts)
        for lease_id, entry in starts:
            self._journaled[lease_id].append(entry)

    def applied(self, through: int) -> None:
        """The ledger has applied the journal through this entry: set_counts has them."""
        for entries in self._journaled.values():
            while entries and entries[0] <= through:
                entries.popleft()

    def in_use(self, lease_id: int, now: float) -> int:
        queue = self._reserved.get(lease_id)
        while queue and queue[0] <= now - self.hold:
            queue.popleft()
        pending = self._journaled.get(lease_id)
        return (self.counts.get(lease_id, 0) + (len(queue) if queue else 0)
                + (len(pending) if pending else 0))

    def reserve(self, lease_id: int, now: float) -> None:
        self._reserved[lease_id].append(now)

    def admit(self, isp: str | None, nas: str, port: int | None, now: float
              ) -> tuple[LeaseTerms | None, bool]:
        """(the lease, whether a new session may start on it); reserves when it may."""
        lease = self.leases.match(isp, nas, port, now)
        if lease is None:
            return None, True
        if (lease.policy == "reject" and lease.sessions is not None
                and self.in_use(lease.id, now) >= lease.sessions):
            return lease, False
        self.reserve(lease.id, now)
        return lease, True


def admit_by_lease(ctx, deps) -> Rcode:
    """Stage: reject a new session beyond its ISP's lease when the lease says so.

    Needs ctx.isp (the selected ISP, None for local sessions) and deps.leases (a
    LeaseBook). Place it after the decision to accept, so that a request rejected for
    another reason holds no reservation.
    """
    book: LeaseBook | None = deps.leases
    if book is None or ctx.isp not in book.leases.isps:  # local sessions: isp None
        return Rcode.NOOP
    lease, admitted = book.admit(ctx.isp, nas_identity(ctx.packet, ctx.client),
                                 nas_port_number(ctx.packet), ctx.now)
    if lease is None:
        return Rcode.NOOP
    if not admitted:
        return ctx.reject(f"lease {lease.name} full: {lease.sessions} sessions in use",
                          lease.reject_message)
    return Rcode.OK
