"""Upstream server pools: choice of server and its health, as a pure state machine.

alive  -- a request timed out -->  zombie  -- no answer for zombie_period --> dead
zombie/dead -- revive_probes Status-Server answers in a row (RFC 5997) --> alive

A zombie is used only when no alive server of the pool is left; a dead one never.
Every transition is returned as an event, and kept in ``changes`` until the shell takes
them to log and store (whoever caused it: the proxy engine or the accounting forwarder).
"""

from __future__ import annotations

import datetime as dt
import random
import zlib
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from vpop.isp.model import Isp, UpstreamServer

ALIVE, ZOMBIE, DEAD = "alive", "zombie", "dead"


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolSettings:
    response_window: float = 2.0  # seconds before a request counts as unanswered
    zombie_period: float = 10.0  # seconds a zombie is probed before it is dead
    probe_interval: float = 1.0  # Status-Server interval for zombie and dead servers
    revive_probes: int = 3  # answers in a row that bring a server back


@dataclass(frozen=True, slots=True)
class Transition:
    server: str
    old: str
    new: str
    reason: str
    at: float = 0.0  # the pool's clock


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerState:
    """A server's state as the proxy last set it (and logged it), kept in the store so
    that `vpop isp status` shows it at once."""
    server: str
    isp: str
    state: str  # alive | zombie | dead
    since: dt.datetime  # UTC
    reason: str


@dataclass(slots=True)
class ServerHealth:
    server: UpstreamServer
    status: str = ALIVE
    since: float = 0.0
    last_answer: float = 0.0
    last_probe: float = -1e9
    good_probes: int = 0
    answered: int = 0
    timeouts: int = 0
    bad_replies: int = 0
    transitions: list[Transition] = field(default_factory=list)


class Pools:
    def __init__(self, isps: tuple[Isp, ...], settings: PoolSettings = PoolSettings(),
                 previous: "Pools | None" = None):
        self.settings = settings
        self.isps = {isp.name: isp for isp in isps}
        self.health: dict[str, ServerHealth] = {}
        self.isp_of: dict[str, str] = {}  # server name -> ISP name
        # Transitions not yet taken by the shell; a reload hands them on.
        self.changes: list[Transition] = previous.changes if previous is not None else []
        for isp in isps:
            for server in isp.servers:
                self.isp_of[server.name] = isp.name
                old = previous.health.get(server.name) if previous else None
                if old is not None:  # a reload keeps what we know of a server
                    old.server = server
                    self.health[server.name] = old
                else:
                    self.health[server.name] = ServerHealth(server=server)
        # Each ISP's servers by priority, then as listed: the order every choice walks.
        self._ranked = {isp.name: _by_priority(self.health, isp) for isp in isps}

    # --- choice -----------------------------------------------------------------------

    def choose(self, isp: Isp, *, key: str = "", exclude: AbstractSet[str] = frozenset(),
               rng: random.Random) -> UpstreamServer | None:
        """The server for the next attempt, by the ISP's balance mode: among the alive
        servers not excluded (the zombies when none is), of the best priority."""
        ranked = self._ranked.get(isp.name)
        if ranked is None:  # an ISP this pool set does not know (e.g. removed by a reload)
            ranked = _by_priority(self.health, isp)
        if isp.balance == "failover":  # the first of the best priority, in listed order
            zombie = None
            for health in ranked:
                if health.server.name in exclude:
                    continue
                if health.status == ALIVE:
                    return health.server
                if zombie is None and health.status == ZOMBIE:
                    zombie = health
            return zombie.server if zombie is not None else None
        candidates = [h for h in ranked if h.server.name not in exclude]
        usable = [h for h in candidates if h.status == ALIVE] or \
            [h for h in candidates if h.status == ZOMBIE]
        if not usable:
            return None
        best = min(h.server.priority for h in usable)
        tier = [h.server for h in usable if h.server.priority == best]
        if len(tier) == 1:
            return tier[0]
        if isp.balance == "keyed" and key:
            # Stable for a caller while the tier is unchanged, weighted by slots.
            slots = [s for s in tier for _ in range(max(1, s.weight))]
            return slots[zlib.crc32(key.encode()) % len(slots)]
        return rng.choices(tier, weights=[max(1, s.weight) for s in tier])[0]

    def available(self, isp_name: str) -> bool:
        """Some server may still answer: alive, or a zombie (used when nothing else is)."""
        isp = self.isps.get(isp_name)
        return isp is not None and any(self.health[s.name].status != DEAD for s in isp.servers)

    # --- what happened ----------------------------------------------------------------

    # A server removed by a reload may still answer, or time out, what it was sent.

    def answered(self, name: str, now: float) -> list[Transition]:
        health = self.health.get(name)
        if health is None:
            return []
        health.answered += 1
        health.last_answer = now
        if health.status != ALIVE:
            return self._probe_ok(health, now, "answered a request")
        return []

    def timed_out(self, name: str, now: float) -> list[Transition]:
        health = self.health.get(name)
        if health is None:
            return []
        health.timeouts += 1
        if health.status == ALIVE:
            return [self._move(health, ZOMBIE, now, "request unanswered")]
        return []

    def bad_reply(self, name: str) -> None:
        health = self.health.get(name)
        if health is not None:
            health.bad_replies += 1

    def probes_due(self, now: float) -> list[UpstreamServer]:
        due = []
        for health in self.health.values():
            if health.status != ALIVE and now - health.last_probe >= self.settings.probe_interval:
                health.last_probe = now
                due.append(health.server)
        return due

    def probe_answered(self, name: str, now: float) -> list[Transition]:
        health = self.health.get(name)
        if health is None:
            return []
        health.last_answer = now
        return self._probe_ok(health, now, "answered Status-Server")

    def probe_unanswered(self, name: str, now: float) -> list[Transition]:
        health = self.health.get(name)
        if health is None:
            return []
        health.good_probes = 0
        if health.status == ZOMBIE and now - health.since >= self.settings.zombie_period:
            return [self._move(health, DEAD, now, "no answer for the zombie period")]
        return []

    def _probe_ok(self, health: ServerHealth, now: float, why: str) -> list[Transition]:
        health.good_probes += 1
        if health.good_probes >= self.settings.revive_probes:
            return [self._move(health, ALIVE, now, f"{why} {health.good_probes} times in a row")]
        return []

    def take_changes(self) -> list[Transition]:
        """The transitions since the last call, in order."""
        changes = self.changes[:]
        self.changes.clear()
        return changes

    def _move(self, health: ServerHealth, status: str, now: float, reason: str) -> Transition:
        event = Transition(health.server.name, health.status, status, reason, now)
        health.status, health.since, health.good_probes = status, now, 0
        health.transitions.append(event)
        del health.transitions[:-20]
        self.changes.append(event)
        return event


def _by_priority(health: dict[str, ServerHealth], isp: Isp) -> tuple[ServerHealth, ...]:
    return tuple(sorted((health[s.name] for s in isp.servers if s.name in health),
                        key=_priority))


def _priority(health) -> int:
    return health.server.priority
