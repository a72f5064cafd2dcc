"""An ISP's CoA-Request or Disconnect-Request relayed to the NAS of one of its sessions
(RFC 5176 §3.1, vpop as the proxy between the ISP's server and the NAS); no I/O.

- Who may ask: an ISP's dynamic-authorization clients ([[isp]] dynauth_clients), each
  for that ISP's sessions only (`IspPeer`, looked up by source address).
- Which session: the attributes the ISP gave (Acct-Session-Id, User-Name,
  Framed-IP-Address, Calling-Station-Id, NAS-IP-Address/NAS-IPv6-Address/
  NAS-Identifier, NAS-Port/NAS-Port-Id) read into a `SessionQuery`, compared with the
  ISP's open sessions (`matches`). A User-Name is the one the ISP knows: the session's
  name as its NAS reported it, or as vpop sent it to the ISP (realm stripped,
  rewritten). Exactly one session must match; none, several, or one of another ISP
  are all "Session-Context-Not-Found" (503), so that an ISP learns nothing of
  sessions that are not its own.
- What the NAS is sent: a request of vpop's own, the session named the way its NAS
  type wants (vpop.dynauth.request's templates), for a CoA the ISP's other attributes
  byte for byte (`changes`); new Identifier and authenticator, Event-Timestamp and
  Message-Authenticator. The ISP's Proxy-State stays with vpop, whatever the NAS type:
  vpop keeps the ISP's request while it waits and echoes them itself, and some NASes
  (hostapd) refuse Proxy-State with NAK 401.
- What the ISP is answered (`answer_for`): the NAS's ACK or NAK with its Error-Cause;
  for a NAS that never answered, NAK 506 (Resources-Unavailable); for a session whose
  NAS vpop cannot reach (no dynamic-authorization endpoint), NAK 502.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from vpop.dynauth.request import COA, DISCONNECT, DynAuthRequest, RequestBuilder, SessionFacts
from vpop.dynauth.result import ACK, NAK, TIMEOUT, Result
from vpop.errors import MalformedPacket
from vpop.isp.model import Isp
from vpop.isp.realms import match_rule, upstream_name
from vpop.radius import attributes as A
from vpop.radius import codec

ACCT_MULTI_SESSION_ID = 50  # RFC 2866 §5.11
CHARGEABLE_USER_IDENTITY = 89  # RFC 4372
NOT_ROUTABLE = 502  # RFC 5176 §3.6: Proxy-Request-Not-Routable
SESSION_NOT_FOUND = 503  # Session-Context-Not-Found
RESOURCES_UNAVAILABLE = 506
MISSING_ATTRIBUTE = 402

# What names the session (and its NAS): read for the lookup, never passed on as such;
# the NAS is sent its own type's identification instead.
IDENTIFYING = frozenset({A.USER_NAME, A.ACCT_SESSION_ID, A.FRAMED_IP_ADDRESS,
                         A.CALLING_STATION_ID, A.NAS_IP_ADDRESS, A.NAS_IPV6_ADDRESS,
                         A.NAS_IDENTIFIER, A.NAS_PORT, A.NAS_PORT_ID,
                         ACCT_MULTI_SESSION_ID, CHARGEABLE_USER_IDENTITY})
# Not passed on either: each leg has its own (RFC 5176 §3 Event-Timestamp and
# Message-Authenticator; §3.1 the ISP's Proxy-State is echoed by vpop).
PER_LEG = frozenset({A.PROXY_STATE, A.MESSAGE_AUTHENTICATOR, A.EVENT_TIMESTAMP})
KINDS = {codec.DISCONNECT_REQUEST: DISCONNECT, codec.COA_REQUEST: COA}
ACKS = {codec.DISCONNECT_REQUEST: codec.DISCONNECT_ACK, codec.COA_REQUEST: codec.COA_ACK}
NAKS = {codec.DISCONNECT_REQUEST: codec.DISCONNECT_NAK, codec.COA_REQUEST: codec.COA_NAK}

_MAC_DIGITS = re.compile(r"[0-9a-f]{12}")


@dataclass(frozen=True, slots=True, kw_only=True)
class IspPeer:
    """One of an ISP's dynamic-authorization clients, as the receiver looks it up by
    source address (vpop.radius.clients.ClientTable)."""

    isp: Isp
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    secret: bytes

    @property
    def name(self) -> str:
        """As the request log, the counters and the audit name the asker."""
        return f"isp:{self.isp.name}"

    @property
    def require_message_authenticator(self) -> str:
        """Always (BlastRADIUS): an ISP's requests are dropped without one."""
        return "yes"


def peers_of(isps) -> list[IspPeer]:
    return [IspPeer(isp=isp, network=ipaddress.ip_network(client.address, strict=False),
                    secret=client.secret)
            for isp in isps for client in isp.dynauth_clients]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionQuery:
    """The session an ISP's request names, among that ISP's open sessions."""

    isp: str
    acct_session_id: str | None = None
    user_name: str | None = None
    framed_ip: str | None = None
    calling_station_id: str | None = None
    nas_ip: str | None = None  # NAS-IP-Address or NAS-IPv6-Address, canonical
    nas_identifier: str | None = None
    nas_port: str | None = None  # NAS-Port as text, or NAS-Port-Id

    @property
    def names_a_session(self) -> bool:
        """At least one attribute that tells sessions apart (a NAS alone does not)."""
        return any((self.acct_session_id, self.user_name, self.framed_ip,
                    self.calling_station_id))

    def describe(self) -> str:
        """`Name = value` lines of what was asked, for the audit."""
        shown = (("Acct-Session-Id", self.acct_session_id), ("User-Name", self.user_name),
                 ("Framed-IP-Address", self.framed_ip),
                 ("Calling-Station-Id", self.calling_station_id), ("NAS-IP", self.nas_ip),
                 ("NAS-Identifier", self.nas_identifier), ("NAS-Port", self.nas_port))
        return "\n".join(f"{name} = {value}" for name, value in shown if value is not None)


def _text(packet: codec.Packet, key) -> str | None:
    raw = packet.first(key)
    return raw.decode("utf-8", "replace") if raw is not None else None


def read_query(packet: codec.Packet, isp: Isp) -> SessionQuery:
    """MalformedPacket for an address or port of the wrong length."""
    framed = packet.first(A.FRAMED_IP_ADDRESS)
    nas_ip = packet.first(A.NAS_IP_ADDRESS)
    nas_ip6 = packet.first(A.NAS_IPV6_ADDRESS)
    port = packet.first(A.NAS_PORT)
    for raw, size, name in ((framed, 4, "Framed-IP-Address"), (nas_ip, 4, "NAS-IP-Address"),
                            (nas_ip6, 16, "NAS-IPv6-Address"), (port, 4, "NAS-Port")):
        if raw is not None and len(raw) != size:
            raise MalformedPacket(f"{name} must be {size} octets")
    nas = nas_ip if nas_ip is not None else nas_ip6
    return SessionQuery(
        isp=isp.name, acct_session_id=_text(packet, A.ACCT_SESSION_ID),
        user_name=_text(packet, A.USER_NAME),
        framed_ip=str(ipaddress.ip_address(framed)) if framed is not None else None,
        calling_station_id=_text(packet, A.CALLING_STATION_ID),
        nas_ip=str(ipaddress.ip_address(nas)) if nas is not None else None,
        nas_identifier=_text(packet, A.NAS_IDENTIFIER),
        nas_port=(str(int.from_bytes(port, "big")) if port is not None
                  else _text(packet, A.NAS_PORT_ID)))


def names_known_to(isp: Isp, user_name: str) -> set[str]:
    """The User-Names the ISP may know a session by: as the NAS reported it, and as
    vpop sent it upstream (realm stripped or rewritten: vpop.isp.forwarding)."""
    names = {user_name}
    for rule in isp.realms:
        user = match_rule(rule, user_name)
        if user is not None:
            names.add(upstream_name(isp, user_name, user))
    if isp.rewrite or not isp.realms:
        names.add(upstream_name(isp, user_name, user_name))
    return names


def user_parts(query: SessionQuery, isp: Isp) -> tuple[str, ...]:
    """Text a matching session's User-Name contains, for a coarse filter in the store
    (`matches` decides): the name given, and what the ISP's rewrite put into it."""
    given = query.user_name
    if given is None:
        return ()
    parts = [given]
    if isp.rewrite:
        pattern, groups = "", 0
        for token in re.split(r"(\{\{|\}\}|\{user\}|\{name\})", isp.rewrite):
            if token in ("{user}", "{name}"):
                pattern += f"(?P<g{groups}>.+?)"
                groups += 1
            else:
                pattern += re.escape(token[0] if token in ("{{", "}}") else token)
        found = re.fullmatch(pattern, given, re.S)
        if found is not None:
            parts += [part for part in found.groupdict().values() if part]
    return tuple(dict.fromkeys(parts))


def same_caller(given: str, stored: str | None) -> bool:
    """Calling-Station-Ids compared as MAC addresses when both are one (NASes spell them
    aa-bb-cc-dd-ee-ff, AA:BB:..., aabb.ccdd.eeff), else as text."""
    if stored is None:
        return False
    a, b = _mac(given), _mac(stored)
    return a == b if a is not None and b is not None else given == stored


def _mac(text: str) -> str | None:
    digits = re.sub(r"[-:.]", "", text.lower())
    return digits if _MAC_DIGITS.fullmatch(digits) else None


def matches(query: SessionQuery, isp: Isp, facts: SessionFacts) -> bool:
    """Whether an open session of the ISP is the one the request names: every attribute
    given agrees. The NAS's own identification is compared only where the session has
    it in that form (NAS-IP-Address with a NAS that named itself by address, NAS-
    Identifier with one that named itself by name): a NAS reports one of them."""
    if facts.isp != query.isp:  # the caller's query says so too; never relax it here
        return False
    if query.acct_session_id is not None and facts.acct_session_id != query.acct_session_id:
        return False
    if query.user_name is not None and query.user_name not in names_known_to(isp,
                                                                             facts.username):
        return False
    if query.framed_ip is not None and facts.framed_ip != query.framed_ip:
        return False
    if query.calling_station_id is not None and not same_caller(query.calling_station_id,
                                                                facts.calling_station_id):
        return False
    reported_ip = facts.nas_ip_address or facts.nas_ipv6_address
    if query.nas_ip is not None and reported_ip is not None and reported_ip != query.nas_ip:
        return False
    if query.nas_identifier is not None and facts.nas_identifier is not None \
            and facts.nas_identifier != query.nas_identifier:
        return False
    if query.nas_port is not None and facts.nas_port != query.nas_port:
        return False
    return True


def changes(packet: codec.Packet) -> bytes:
    """A CoA's attributes other than the session's names and each leg's own, byte for
    byte and in their order (VSAs whole)."""
    raw, out, offset = packet.raw, [], 20
    while offset + 2 <= len(raw):
        kind, length = raw[offset], raw[offset + 1]
        if kind not in IDENTIFYING and kind not in PER_LEG:
            out.append(raw[offset:offset + length])
        offset += length
    return b"".join(out)


def relayed_request(builder: RequestBuilder, facts: SessionFacts, packet: codec.Packet, *,
                    now: float) -> DynAuthRequest:
    """The request vpop sends the session's NAS for the ISP's `packet`: the session as
    the NAS type names it, then (a CoA) the ISP's changes, Event-Timestamp last.
    ConfigError when the NAS type's template cannot be rendered."""
    kind = KINDS[packet.code]
    # The identification alone: a Disconnect's rendering carries no changes.
    pairs = builder.pairs(facts, DISCONNECT, now=now)
    stamp = pairs.pop()  # vpop's Event-Timestamp, last
    attrs = builder.dictionary.encode_pairs(pairs)
    extra = changes(packet) if kind == COA else b""
    shown = list(pairs)
    if extra:
        shown.append(("(from the ISP)", "0x" + extra.hex()))
    shown.append(stamp)
    attrs += extra + builder.dictionary.encode_pairs([stamp])
    return DynAuthRequest(kind=kind, pairs=tuple(shown), attrs=attrs)


def refusal(code: int, reason: str) -> Result:
    """A NAK vpop answers itself (no NAS asked)."""
    return Result(outcome=NAK, error_cause=code, reason=reason)


def answer_for(request_code: int, result: Result) -> tuple[int, bytes]:
    """The code and attributes vpop answers the ISP with (its Proxy-States are added by
    the receiver): the NAS's ACK or NAK with the NAS's Error-Cause; NAK 506 when the NAS
    never answered; NAK 502 when it could not be asked."""
    if result.outcome == ACK:
        code = ACKS[request_code]
        cause = result.error_cause  # 201 or 202 may come with an ACK
    elif result.outcome == NAK:
        code, cause = NAKS[request_code], result.error_cause
    elif result.outcome == TIMEOUT:
        code, cause = NAKS[request_code], RESOURCES_UNAVAILABLE
    else:
        code, cause = NAKS[request_code], NOT_ROUTABLE
    attrs = codec.attribute(A.ERROR_CAUSE, cause.to_bytes(4, "big")) if cause is not None \
        else b""
    return code, attrs
