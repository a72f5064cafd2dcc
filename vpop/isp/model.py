"""Upstream ISPs as the request pipeline sees them: plain values, loaded from the store."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

MODES = ("proxy", "tunnel", "local")
BALANCES = ("failover", "weighted", "keyed")  # keyed: by Calling-Station-Id
STATUSES = ("active", "down", "disabled")  # down: marked down by an operator


@dataclass(frozen=True, slots=True, kw_only=True)
class RealmRule:
    """How a User-Name names this ISP: suffix `user@isp`, prefix `isp/user`, or a regex."""
    kind: str  # suffix | prefix | regex
    pattern: str  # realm text, or a regex with a named group 'user' for the rewrite
    compiled: re.Pattern | None = None  # for kind == regex


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamServer:
    name: str  # unique across ISPs, e.g. "isp-a/primary"
    address: str  # IP address (v4 or v6)
    auth_port: int = 1812
    acct_port: int = 1813
    secret: bytes = b""
    priority: int = 1  # lower is preferred (fail-over order)
    weight: int = 1  # share among servers of the same priority (weighted balance)
    require_message_authenticator: bool = True  # in its replies (BlastRADIUS)


@dataclass(frozen=True, slots=True, kw_only=True)
class TunnelEndpoint:
    """An L2TP network server (LNS) of the ISP, for RFC 2868 tunnel attributes."""
    address: str  # Tunnel-Server-Endpoint
    password: bytes = b""  # Tunnel-Password (sent salt-encrypted)
    medium: str = "IPv4"  # Tunnel-Medium-Type
    assignment_id: str | None = None  # Tunnel-Assignment-Id
    preference: int = 1  # Tunnel-Preference; lower is preferred
    client_endpoint: str | None = None  # Tunnel-Client-Endpoint (the LAC side)
    client_auth_id: str | None = None  # Tunnel-Client-Auth-Id (the LAC's hostname)


@dataclass(frozen=True, slots=True, kw_only=True)
class DynAuthClient:
    """A server of the ISP allowed to send CoA and Disconnect requests to vpop, which
    relays them to the NAS of one of this ISP's sessions (RFC 5176 §3.1)."""
    address: str  # an IP address or network, canonical spelling
    secret: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """An availability window: weekdays (0 = Monday) and a time-of-day range, UTC."""
    weekdays: frozenset[int]
    start: dt.time
    end: dt.time  # exclusive; end <= start wraps past midnight


@dataclass(frozen=True, slots=True, kw_only=True)
class Isp:
    name: str
    mode: str = "proxy"
    realms: tuple[RealmRule, ...] = ()
    numbers: tuple[str, ...] = ()  # dialled numbers (Called-Station-Id), normalised
    strip_realm: bool = True  # send the bare user name upstream
    rewrite: str | None = None  # format for the upstream User-Name, e.g. "{user}@isp.example"
    servers: tuple[UpstreamServer, ...] = ()
    balance: str = "failover"
    tunnels: tuple[TunnelEndpoint, ...] = ()
    price_per_minute: Decimal = Decimal(0)  # in the operator's currency
    price_per_gb: Decimal = Decimal(0)
    schedule: tuple[Window, ...] = ()  # empty: always available
    status: str = "active"
    template: str | None = None  # reply template added for sessions routed here
    timeout_reject: bool = True  # when every upstream is silent: Access-Reject, else no answer
    ranked: bool = False  # opt-in: may be chosen by score for sessions no realm, choice or number assigns
    dynauth_clients: tuple[DynAuthClient, ...] = ()  # who may relay CoA/Disconnect
