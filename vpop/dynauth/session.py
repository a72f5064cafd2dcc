"""Which NAS a live session belongs to, where its dynamic-authorization requests go,
and what a subscriber's new choice asks of a live session."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from vpop.dynauth.request import COA, DEFAULT_PORT, DISCONNECT, Change


@dataclass(frozen=True, slots=True, kw_only=True)
class NasEntry:
    """A NAS client as provisioned ([[nas]]), with its dynamic-authorization endpoint."""

    name: str
    address: str  # IP or CIDR
    secret: str
    nas_type: str = "generic"
    das_address: str | None = None  # None: the NAS's own address
    das_port: int = DEFAULT_PORT
    das_secret: str | None = None  # None: the RADIUS secret


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    host: str  # canonical IP text, as recvfrom reports a reply's source
    port: int
    secret: bytes

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _network(address: str):
    try:
        return ipaddress.ip_network(address, strict=False)
    except ValueError:
        return None


def nas_for_session(nas_reported: str, nases: Iterable[NasEntry]) -> NasEntry | None:
    """The NAS client of a session whose NAS named itself `nas_reported` (radacct's
    nas_address): the one of that name (a NAS-Identifier that is vpop's name for it,
    or the client's name where the NAS sent none), else the one whose address or
    network holds that address, the narrowest first."""
    nases = list(nases)
    for nas in nases:
        if nas.name == nas_reported:
            return nas
    try:
        ip = ipaddress.ip_address(nas_reported)
    except ValueError:
        return None
    holding = [(network.prefixlen, nas) for nas in nases
               if (network := _network(nas.address)) is not None
               and network.version == ip.version and ip in network]
    return max(holding, key=lambda pair: pair[0])[1] if holding else None


def endpoint_for(nas: NasEntry, nas_reported: str = "") -> Endpoint | str:
    """Where the NAS takes CoA and Disconnect requests (RFC 5176 §3.1), or why that is
    not known: its das_address; else its own address when it is one host; else, for a
    network of NASes, the address the session's NAS reported when it lies in it."""
    secret = (nas.das_secret or nas.secret).encode()
    if nas.das_address:
        host = nas.das_address
    else:
        network = _network(nas.address)
        if network is None:
            return f"NAS {nas.name}: address {nas.address!r} is not an IP address or network"
        if network.num_addresses == 1:
            host = str(network.network_address)
        else:
            try:
                reported = ipaddress.ip_address(nas_reported)
            except ValueError:
                reported = None
            if reported is None or reported.version != network.version \
                    or reported not in network:
                return (f"NAS {nas.name} is a network ({nas.address}) and the session's NAS "
                        f"named itself {nas_reported!r}: set its das_address")
            host = str(reported)
    return Endpoint(host=str(ipaddress.ip_address(host)), port=nas.das_port, secret=secret)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiceStep:
    """What a subscriber's new choice asks of one live session: `kind` disconnect (the
    session must move to another ISP; its next login goes there), coa (the profile's
    values change in place) or "" (nothing to do)."""

    kind: str
    change: Change | None = None
    why: str = ""


def step_for_choice(*, session_isp: str | None, new_isp: str | None,
                    old: Change, new: Change) -> ChoiceStep:
    """Disconnect when the session is with another ISP than the one now chosen (ISP
    None: authenticated by vpop itself); else a CoA with the new values when they
    differ from the old; else nothing."""
    if (session_isp or None) != (new_isp or None):
        return ChoiceStep(kind=DISCONNECT, why=f"moves from ISP {session_isp or 'none'} to "
                                               f"{new_isp or 'none'}")
    if old != new:
        return ChoiceStep(kind=COA, change=new, why=f"profile values change in place "
                                                    f"({new.describe()})")
    return ChoiceStep(kind="", why="nothing changes for this session")
