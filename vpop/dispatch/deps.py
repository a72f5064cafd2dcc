"""What the stages may use, passed in (STYLE rule 6): no globals below the shell."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

from vpop.aaa.reply import ReplyRenderer
from vpop.aaa.subscribers import SubscriberDirectory
from vpop.config import Settings
from vpop.isp.selection import IspHealth
from vpop.radius.dictionary import Dictionary


HEALTH_REFRESH = 0.2  # seconds


@dataclass(slots=True, kw_only=True)
class Deps:
    settings: Settings
    directory: SubscriberDirectory
    dictionary: Dictionary
    replies: ReplyRenderer
    accounting: Any  # has record(packet, client, now) -> AcctRecord | None
    rng: random.Random = field(default_factory=random.SystemRandom)
    # PBKDF2 hash -> keyed fingerprint of the password last verified against it
    verified: dict[str, bytes] = field(default_factory=dict)
    # ISP-selection center: the ISPs, their server pools and how to rank them.
    isps: tuple = ()
    pools: Any = None  # vpop.isp.pool.Pools
    selection_policy: Any = None  # vpop.isp.selection.SelectionPolicy
    qos_health: dict = field(default_factory=dict)  # ISP name -> IspHealth from the QoS monitor
    leases: Any = None  # vpop.accounting.leases.LeaseBook: sessions in use per lease
    tunnels: Any = None  # vpop.isp.tunnel.TunnelTemplates, read when first needed

    _health: tuple = (None, -1.0, {})  # (pools, computed at, value)

    def isp_health(self, now: float = 0.0) -> dict:
        """What selection knows of each ISP: measured quality, and whether a server is up.
        Recomputed at most every HEALTH_REFRESH seconds (and when the pools change)."""
        pools, at, value = self._health
        if pools is self.pools and 0 <= now - at < HEALTH_REFRESH:
            return value
        value = self._compute_health()
        self._health = (self.pools, now, value)
        return value

    def _compute_health(self) -> dict:
        out = {}
        for isp in self.isps:
            measured = self.qos_health.get(isp.name)
            available = isp.mode != "proxy" or (self.pools is not None
                                                and self.pools.available(isp.name))
            out[isp.name] = (IspHealth(available=available) if measured is None
                             else dataclasses.replace(measured, available=available))
        return out
