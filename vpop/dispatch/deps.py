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


class SelectionHealth:
    """What selection knows of each ISP: the QoS monitor's latest measurement (set by
    the shell every bucket) and whether a server is up, recomputed at most every
    HEALTH_REFRESH seconds and when the ISPs or pools change. One per worker, kept
    across reloads."""

    __slots__ = ("measured", "_cached")

    def __init__(self, measured: dict | None = None):
        self.measured: dict = measured or {}  # ISP name -> IspHealth
        self._cached: tuple = (None, None, -1.0, {})  # (isps, pools, computed at, value)

    def of(self, isps: tuple, pools, now: float) -> dict:
        cached_isps, cached_pools, at, value = self._cached
        if cached_isps is isps and cached_pools is pools and 0 <= now - at < HEALTH_REFRESH:
            return value
        value = {}
        for isp in isps:
            measured = self.measured.get(isp.name)
            available = isp.mode != "proxy" or (pools is not None and pools.available(isp.name))
            value[isp.name] = (IspHealth(available=available) if measured is None
                               else dataclasses.replace(measured, available=available))
        self._cached = (isps, pools, now, value)
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Deps:
    """One worker's dependency set. A reload builds a new one and swaps it in whole
    (server/wiring.py); what outlives a reload is handed on by reference: the random
    source, the verified-password cache, the ISP health and the lease book."""
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
    health: SelectionHealth = field(default_factory=SelectionHealth)
    leases: Any = None  # vpop.accounting.leases.LeaseBook: sessions in use per lease
    tunnels: Any = None  # vpop.isp.tunnel.TunnelTemplates for tunnel-mode replies
    # The relay of ISPs' CoA/Disconnect (dispatch/dynauth.py): their dynamic-authorization
    # clients (a ClientTable of vpop.dynauth.relay.IspPeer), the request builder, and
    # relay_lookup(query, isp) -> [vpop.store.relay.Candidate], run off the event loop.
    relay_peers: Any = None
    dynauth_requests: Any = None  # vpop.dynauth.request.RequestBuilder
    relay_lookup: Any = None
    eap: Any = None  # vpop.aaa.eap.EapServer: EAP-MD5's State key; None: EAP-MD5 refused

    def isp_health(self, now: float = 0.0) -> dict:
        """What selection knows of each ISP: measured quality, and whether a server is up."""
        return self.health.of(self.isps, self.pools, now)
