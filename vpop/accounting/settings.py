"""The [accounting] settings: how often NASes report, when a silent session is stale."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountingSettings:
    # Seconds between the Interim-Updates the NASes send (Acct-Interim-Interval). Also how
    # long a 5-minute bucket waits for late interims before an over_bandwidth event ends.
    interim_interval: int = 300
    # A session without a record for this many intervals of its NAS's event time is
    # closed by the reaper as of its last record (Stale-Session); 0 turns the reaper off.
    stale_intervals: float = 3.0
    # Seconds between looks at event time passing while no records come (the reaper, the
    # utilization events); every batch applied looks too.
    tick: float = 1.0
    # Records committed in one transaction at most.
    max_batch: int = 1000
    # The journal directory (relative to the config file): records are acknowledged once
    # stored there, and the ledger process applies them to the database. Empty: no
    # journal; each worker applies records to the database before acknowledging them.
    journal: str = "accounting-journal"
    # How much the ledger process yields the CPU to the workers (nice(2), 0-19): under
    # load, acknowledgements come first and the ledger catches up when load falls.
    ledger_niceness: int = 10
    # While records reach the journal faster than this (records/s), the ledger does not
    # apply them: it could not keep up anyway, and the CPU it takes slows the workers
    # that acknowledge them. It catches up once the burst is over, or as soon as its
    # backlog reaches ledger_defer_backlog. 0: the ledger never waits.
    ledger_defer_rate: int = 4000
    ledger_defer_backlog: int = 500_000

    def stale_after(self) -> int | None:
        """Seconds of silence after which a session is stale; None: never."""
        if self.stale_intervals <= 0:
            return None
        return int(self.stale_intervals * self.interim_interval)

    def problems(self) -> list[tuple[str, str]]:
        """(option, reason) for each value that cannot work."""
        found = []
        if self.interim_interval < 1:
            found.append(("interim_interval", "must be at least 1 second"))
        if self.stale_intervals < 0:
            found.append(("stale_intervals", "must not be negative (0 turns the reaper off)"))
        if self.tick <= 0:
            found.append(("tick", "must be more than 0"))
        if self.max_batch < 1:
            found.append(("max_batch", "must be at least 1"))
        if not 0 <= self.ledger_niceness <= 19:
            found.append(("ledger_niceness", "must be from 0 to 19"))
        if self.ledger_defer_rate < 0:
            found.append(("ledger_defer_rate", "must not be negative (0: the ledger never waits)"))
        if self.ledger_defer_backlog < 0:
            found.append(("ledger_defer_backlog", "must not be negative"))
        return found
