"""Accounting-Request to a session record (RFC 2866, RFC 2869), without I/O."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from vpop.errors import MalformedPacket
from vpop.radius import attributes as A
from vpop.radius.clients import NasClient
from vpop.radius.codec import Packet

TERMINATE_CAUSES = {1: "User-Request", 2: "Lost-Carrier", 3: "Lost-Service", 4: "Idle-Timeout",
                    5: "Session-Timeout", 6: "Admin-Reset", 7: "Admin-Reboot", 8: "Port-Error",
                    9: "NAS-Error", 10: "NAS-Request", 11: "NAS-Reboot", 12: "Port-Unneeded",
                    13: "Port-Preempted", 14: "Port-Suspended", 15: "Service-Unavailable",
                    16: "Callback", 17: "User-Error", 18: "Host-Request"}
STATUS_NAMES = {A.ACCT_START: "start", A.ACCT_STOP: "stop", A.ACCT_INTERIM: "interim",
                A.ACCT_ON: "on", A.ACCT_OFF: "off"}


@dataclass(frozen=True, slots=True, kw_only=True)
class AcctRecord:
    status: str  # start | stop | interim | on | off
    unique_id: str
    session_id: str
    username: str
    nas_address: str
    nas_port: str | None
    calling_station_id: str | None
    framed_ip: str | None
    event_time: float  # seconds since the epoch, when it happened at the NAS
    session_time: int
    input_octets: int
    output_octets: int
    terminate_cause: str | None


def _text(packet: Packet, key) -> str | None:
    raw = packet.first(key)
    return raw.decode("utf-8", "replace") if raw is not None else None


def _int(packet: Packet, key) -> int | None:
    raw = packet.first(key)
    if raw is None:
        return None
    if len(raw) != 4:
        raise MalformedPacket(f"attribute {key} must be 4 octets")
    return int.from_bytes(raw, "big")


def nas_identity(packet: Packet, client: NasClient, source: str = "") -> str:
    """The NAS as it names itself: NASes often reach us through another proxy."""
    raw = packet.first(A.NAS_IP_ADDRESS)
    if raw is not None and len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    raw = packet.first(A.NAS_IPV6_ADDRESS)
    if raw is not None and len(raw) == 16:
        return str(ipaddress.IPv6Address(raw))
    ident = _text(packet, A.NAS_IDENTIFIER)
    return ident or client.name


def record_from(packet: Packet, client: NasClient, now: float) -> AcctRecord | None:
    """None for a status type vpop does not record (e.g. Failed)."""
    status = STATUS_NAMES.get(_int(packet, A.ACCT_STATUS_TYPE))
    if status is None:
        return None
    delay = _int(packet, A.ACCT_DELAY_TIME) or 0
    stamp = _int(packet, A.EVENT_TIMESTAMP)
    # RFC 2869 §5.3 / RFC 2866 §5.2: when it happened, not when it arrived.
    event_time = float(stamp if stamp is not None else now) - delay
    nas = nas_identity(packet, client)
    session_id = _text(packet, A.ACCT_SESSION_ID) or ""
    username = _text(packet, A.USER_NAME) or ""
    gigain = _int(packet, A.ACCT_INPUT_GIGAWORDS) or 0
    gigaout = _int(packet, A.ACCT_OUTPUT_GIGAWORDS) or 0
    port = _int(packet, A.NAS_PORT)
    port_id = _text(packet, A.NAS_PORT_ID)
    framed = packet.first(A.FRAMED_IP_ADDRESS)
    cause = _int(packet, A.ACCT_TERMINATE_CAUSE)
    unique = hashlib.md5(f"{nas}\0{session_id}\0{username}".encode()).hexdigest()
    return AcctRecord(
        status=status, unique_id=unique, session_id=session_id, username=username,
        nas_address=nas, nas_port=port_id or (str(port) if port is not None else None),
        calling_station_id=_text(packet, A.CALLING_STATION_ID),
        framed_ip=str(ipaddress.IPv4Address(framed)) if framed and len(framed) == 4 else None,
        event_time=event_time, session_time=_int(packet, A.ACCT_SESSION_TIME) or 0,
        input_octets=(gigain << 32) + (_int(packet, A.ACCT_INPUT_OCTETS) or 0),
        output_octets=(gigaout << 32) + (_int(packet, A.ACCT_OUTPUT_OCTETS) or 0),
        terminate_cause=TERMINATE_CAUSES.get(cause, str(cause)) if cause is not None else None)


class AccountingPolicy:
    """What deps.accounting offers the receiver."""

    @staticmethod
    def record(packet: Packet, client: NasClient, now: float) -> AcctRecord | None:
        return record_from(packet, client, now)
