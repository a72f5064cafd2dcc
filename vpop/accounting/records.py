"""Accounting-Request to an accounting record (RFC 2866, RFC 2869), without I/O.

The event time is when it happened at the NAS: Event-Timestamp minus
Acct-Delay-Time, else arrival minus Acct-Delay-Time, so a day of accounting
replayed later with its timestamps is the same day. Values the NAS cannot have
meant (a clock before 2000 or far ahead of ours, a delay of weeks) are replaced
and the record carries a flag saying so.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from vpop.accounting.routing import LOCAL, Routing, routing_from_classes
from vpop.errors import MalformedPacket
from vpop.radius import attributes as A
from vpop.radius.clients import NasClient
from vpop.radius.codec import Packet

# Not yet in vpop.radius.attributes (RFC 2866 §5.8-5.9, RFC 3162 §2.3, RFC 4818 §3).
ACCT_INPUT_PACKETS = 47
ACCT_OUTPUT_PACKETS = 48
FRAMED_IPV6_PREFIX = 97
DELEGATED_IPV6_PREFIX = 123

TERMINATE_CAUSES = {1: "User-Request", 2: "Lost-Carrier", 3: "Lost-Service", 4: "Idle-Timeout",
                    5: "Session-Timeout", 6: "Admin-Reset", 7: "Admin-Reboot", 8: "Port-Error",
                    9: "NAS-Error", 10: "NAS-Request", 11: "NAS-Reboot", 12: "Port-Unneeded",
                    13: "Port-Preempted", 14: "Port-Suspended", 15: "Service-Unavailable",
                    16: "Callback", 17: "User-Error", 18: "Host-Request"}
STATUS_NAMES = {A.ACCT_START: "start", A.ACCT_STOP: "stop", A.ACCT_INTERIM: "interim",
                A.ACCT_ON: "on", A.ACCT_OFF: "off"}

EPOCH_FLOOR = 946_684_800  # 2000-01-01: a NAS clock before this was never set
MAX_FUTURE = 300  # seconds a NAS clock may run ahead of ours
MAX_DELAY = 7 * 86_400  # an Acct-Delay-Time beyond a week is not a real delay

# Record flags (also stored on sessions and history rows, comma-separated).
BAD_TIMESTAMP = "bad-timestamp"
BAD_DELAY = "bad-delay"
BAD_SESSION_TIME = "bad-session-time"
BAD_COUNTER = "bad-counter"
# A time no NAS can have meant for this record (see the store's ledger): the record is
# kept in the history, flagged, and out of the session and every figure.
IMPLAUSIBLE = "implausible-time"
MAX_COUNTER = 1 << 62  # octets beyond this (Gigawords near 2^32) cannot be real, nor stored


# Not frozen: made per request, and a frozen dataclass's __init__ pays a call per field.
@dataclass(slots=True, kw_only=True)
class AcctRecord:
    status: str  # start | stop | interim | on | off
    unique_id: str  # the session: NAS identity, Acct-Session-Id and User-Name
    session_id: str
    username: str
    nas_address: str  # the NAS as it names itself (nas_identity)
    nas_port: str | None  # NAS-Port-Id, else NAS-Port
    nas_port_number: int | None  # NAS-Port, for leases of port ranges
    calling_station_id: str | None
    called_station_id: str | None = None
    framed_ip: str | None
    framed_ipv6_prefix: str | None = None
    delegated_ipv6_prefix: str | None = None
    event_time: int  # seconds since the epoch, when it happened at the NAS
    arrival: int = 0  # seconds since the epoch, when it reached us
    delay: int = 0  # Acct-Delay-Time as used
    session_time: int
    input_octets: int  # with Gigawords
    output_octets: int
    input_packets: int = 0
    output_packets: int = 0
    gigawords: bool = False  # the NAS sent Acct-*-Gigawords: counters do not wrap at 2^32
    terminate_cause: str | None
    routing: Routing = LOCAL
    event_stamp: int | None = None  # Event-Timestamp as sent: the same in retransmissions
    flags: tuple[str, ...] = ()


def content_key(record: AcctRecord) -> int:
    """What a retransmission has in common with the original (not Acct-Delay-Time, which
    grows with each try): a signed 64-bit integer, the same for the same record."""
    text = (f"{record.unique_id}|{record.status}|{record.session_time}|{record.input_octets}|"
            f"{record.output_octets}|{record.input_packets}|{record.output_packets}|"
            f"{record.terminate_cause}|{record.event_stamp}|{record.nas_address}")
    if record.status in ("on", "off") and record.event_stamp is None:
        text += f"|{record.event_time // 60}"
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "big", signed=True)


def _text(packet: Packet, key, limit: int = 64) -> str | None:
    """The attribute as text, cut to what the store keeps; NUL, which PostgreSQL cannot
    store in text, is dropped."""
    raw = packet.first(key)
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace")
    if "\0" in text:
        text = text.replace("\0", "")
    return text[:limit]


def _int(packet: Packet, key) -> int | None:
    raw = packet.first(key)
    if raw is None:
        return None
    if len(raw) != 4:
        raise MalformedPacket(f"attribute {key} must be 4 octets")
    return int.from_bytes(raw, "big")


def _prefix(packet: Packet, key) -> str | None:
    """RFC 3162 §2.3: reserved octet, prefix length, then the prefix's leading octets."""
    raw = packet.first(key)
    if raw is None or len(raw) < 2 or raw[1] > 128 or len(raw) - 2 > 16:
        return None
    try:
        network = ipaddress.IPv6Network((raw[2:].ljust(16, b"\0"), raw[1]), strict=False)
    except ValueError:
        return None
    return str(network)


def _ipv4(raw: bytes) -> str:
    return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"  # ipaddress would take three times as long


def nas_identity(packet: Packet, client: NasClient, source: str = "") -> str:
    """The NAS as it names itself: NASes often reach us through another proxy."""
    raw = packet.first(A.NAS_IP_ADDRESS)
    if raw is not None and len(raw) == 4:
        return _ipv4(raw)
    raw = packet.first(A.NAS_IPV6_ADDRESS)
    if raw is not None and len(raw) == 16:
        return str(ipaddress.IPv6Address(raw))
    ident = _text(packet, A.NAS_IDENTIFIER)
    return ident or client.name


def nas_port_number(packet: Packet) -> int | None:
    raw = packet.first(A.NAS_PORT)
    return int.from_bytes(raw, "big") if raw is not None and len(raw) == 4 else None


def event_time(stamp: int | None, delay: int | None, arrival: int) -> tuple[int, int, tuple]:
    """(event time, delay used, flags): RFC 2869 §5.3 / RFC 2866 §5.2."""
    flags = []
    if delay is None:
        delay = 0
    elif delay > MAX_DELAY:
        flags.append(BAD_DELAY)
        delay = 0
    if stamp is not None and (stamp < EPOCH_FLOOR or stamp > arrival + MAX_FUTURE):
        flags.append(BAD_TIMESTAMP)  # an unset or runaway NAS clock: ours is better
        stamp = None
    return (stamp if stamp is not None else arrival) - delay, delay, tuple(flags)


def record_from(packet: Packet, client: NasClient, now: float) -> AcctRecord | None:
    """None for a status type vpop does not record (e.g. Failed); MalformedPacket when
    the attributes RFC 2866 §4.1 requires are missing."""
    code = _int(packet, A.ACCT_STATUS_TYPE)
    if code is None:
        raise MalformedPacket("Accounting-Request without Acct-Status-Type")
    status = STATUS_NAMES.get(code)
    if status is None:
        return None
    arrival = int(now)
    stamp = _int(packet, A.EVENT_TIMESTAMP)
    when, delay, flags = event_time(stamp, _int(packet, A.ACCT_DELAY_TIME), arrival)
    nas = nas_identity(packet, client)
    session_id = _text(packet, A.ACCT_SESSION_ID)
    if session_id is None and status not in ("on", "off"):
        raise MalformedPacket("Accounting-Request without Acct-Session-Id")
    session_id = session_id or ""
    username = _text(packet, A.USER_NAME, 128) or ""
    gigain = _int(packet, A.ACCT_INPUT_GIGAWORDS)
    gigaout = _int(packet, A.ACCT_OUTPUT_GIGAWORDS)
    port = nas_port_number(packet)
    port_id = _text(packet, A.NAS_PORT_ID)
    framed = packet.first(A.FRAMED_IP_ADDRESS)
    cause = _int(packet, A.ACCT_TERMINATE_CAUSE)
    session_time = _int(packet, A.ACCT_SESSION_TIME) or 0
    if session_time > max(0, when - EPOCH_FLOOR):  # longer than the NAS can have been up
        flags += (BAD_SESSION_TIME,)
        session_time = 0
    octets_in = ((gigain or 0) << 32) + (_int(packet, A.ACCT_INPUT_OCTETS) or 0)
    octets_out = ((gigaout or 0) << 32) + (_int(packet, A.ACCT_OUTPUT_OCTETS) or 0)
    if octets_in >= MAX_COUNTER or octets_out >= MAX_COUNTER:
        flags += (BAD_COUNTER,)
        octets_in = octets_in if octets_in < MAX_COUNTER else 0
        octets_out = octets_out if octets_out < MAX_COUNTER else 0
    unique = hashlib.md5(f"{nas}\0{session_id}\0{username}".encode()).hexdigest()
    return AcctRecord(
        status=status, unique_id=unique, session_id=session_id, username=username,
        nas_address=nas, nas_port=port_id or (str(port) if port is not None else None),
        nas_port_number=port,
        calling_station_id=_text(packet, A.CALLING_STATION_ID),
        called_station_id=_text(packet, A.CALLED_STATION_ID),
        framed_ip=_ipv4(framed) if framed and len(framed) == 4 else None,
        framed_ipv6_prefix=_prefix(packet, FRAMED_IPV6_PREFIX),
        delegated_ipv6_prefix=_prefix(packet, DELEGATED_IPV6_PREFIX),
        event_time=when, arrival=arrival, delay=delay, session_time=session_time,
        input_octets=octets_in, output_octets=octets_out,
        input_packets=_int(packet, ACCT_INPUT_PACKETS) or 0,
        output_packets=_int(packet, ACCT_OUTPUT_PACKETS) or 0,
        gigawords=gigain is not None or gigaout is not None,
        terminate_cause=TERMINATE_CAUSES.get(cause, str(cause)) if cause is not None else None,
        routing=routing_from_classes(packet.attrs.get(A.CLASS, ())),
        event_stamp=stamp, flags=flags)


class AccountingPolicy:
    """What deps.accounting offers the receiver."""

    @staticmethod
    def record(packet: Packet, client: NasClient, now: float) -> AcctRecord | None:
        return record_from(packet, client, now)
