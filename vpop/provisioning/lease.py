"""[[lease]]: the part of the infrastructure an ISP leases (format in
docs/provisioning.md and docs/accounting.md)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from vpop.accounting.leases import DEFAULT_REJECT_MESSAGE, POLICIES
from vpop.errors import ConfigError
from vpop.provisioning.fields import (DESCRIPTION, NAME, Context, Field, Invalid,
                                      checked_text, choice, integer, text, utc_datetime)
from vpop.provisioning.hashing import Hashing
from vpop.provisioning.records import assign, columns, rows_by_keys
from vpop.provisioning.sections import Counts, Entry, Plan, Section
from vpop.store.accounting_models import Lease, LeasePlace
from vpop.store.isp_models import IspRecord

MAX_PORT = 2**32 - 1  # NAS-Port is a 32-bit integer (RFC 2865 §5.5)
MAX_PRICE = Decimal(10) ** 10  # Numeric(12, 2)
WHOLE = (0, MAX_PORT)  # a whole NAS, as a port range, for overlap checks


# --- field checks ---------------------------------------------------------------------

def _nas_identity(value: Any, where: str) -> str:
    """As the NAS names itself: an address (stored canonical) or a NAS-Identifier."""
    try:
        given = checked_text(value, 64, name=True)
    except Invalid as exc:
        raise Invalid(exc.reason, where) from None
    try:
        return str(ipaddress.ip_address(given))
    except ValueError:
        return given


def _nas_list(value: Any, ctx: Context) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise Invalid("must be a list of NAS-IP-Address, NAS-IPv6-Address or NAS-Identifier")
    found: list[str] = []
    for index, item in enumerate(value, 1):
        nas = _nas_identity(item, f"nas[{index}]")
        if nas not in found:
            found.append(nas)
    return tuple(found)


def _port(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PORT:
        raise Invalid(f"must be a NAS-Port from 0 to {MAX_PORT}", where)
    return value


def _ports(value: Any, ctx: Context) -> tuple[tuple[str, int, int], ...]:
    shape = "must be a list of tables {nas = ..., first = N, last = M}"
    if not isinstance(value, list):
        raise Invalid(shape)
    found: list[tuple[str, int, int]] = []
    for index, item in enumerate(value, 1):
        where = f"ports[{index}]"
        if not isinstance(item, dict) or set(item) != {"nas", "first", "last"}:
            raise Invalid(shape, where)
        span = (_nas_identity(item["nas"], f"{where}.nas"), _port(item["first"], f"{where}.first"),
                _port(item["last"], f"{where}.last"))
        if span[1] > span[2]:
            raise Invalid("first must not be above last", where)
        if span not in found:
            found.append(span)
    return tuple(found)


def _positive_number(scale: int, maximum: int) -> Any:
    """A positive number (integer or decimal) times `scale`, as an integer."""
    def check(value: Any, ctx: Context) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise Invalid("must be a number above 0")
        scaled = round(Decimal(str(value)) * scale)
        if not 1 <= scaled <= maximum:
            raise Invalid(f"must be at most {Decimal(maximum) / scale:f}")
        return int(scaled)
    return check


def _price(value: Any, ctx: Context) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Invalid("must be a number, e.g. 1200.50")
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise Invalid("must be a number, e.g. 1200.50") from None
    if not price.is_finite() or not 0 <= price < MAX_PRICE or price != round(price, 2):
        raise Invalid(f"must be from 0 to {MAX_PRICE - Decimal('0.01')} with at most 2 decimals")
    return price


def _currency(value: Any, ctx: Context) -> str:
    if not isinstance(value, str) or len(value) != 3 or not value.isalpha():
        raise Invalid("must be a three-letter currency code, e.g. EUR")
    return value.upper()


def _finish_lease(values: dict[str, Any]) -> Iterator[tuple[str, str]]:
    if not values["nas"] and not values["ports"]:
        yield "nas", "give the leased NASes (nas) or port ranges (ports), or both"
    if all(values[k] is None for k in ("sessions", "bandwidth_mbps", "volume_gb")):
        yield "sessions", "give what is leased: sessions, bandwidth_mbps and/or volume_gb"
    if values["ends"] is not None and values["ends"] <= values["starts"]:
        yield "ends", "must be after starts"
    if values["policy"] == "reject" and values["sessions"] is None:
        yield "policy", "reject needs sessions: it turns away sessions beyond them"
    if values["under_percent"] and values["sessions"] is None:
        yield "under_percent", "needs sessions: it is a share of the leased sessions"
    if values["under_percent"] > 100:
        yield "under_percent", "must be from 0 to 100"
    for nas, first, last in values["ports"]:
        if nas in values["nas"]:
            yield "ports", f"NAS {nas} is leased whole already (in nas)"
            break


# --- overlaps: a session must count against one lease only -------------------------------

def _places(nas: tuple[str, ...], ports) -> list[tuple[str, int, int]]:
    return [(n, *WHOLE) for n in nas] + list(ports)


def _overlap(a_places, a_period, b_places, b_period) -> str | None:
    a_start, a_end = a_period
    b_start, b_end = b_period
    if (a_end is not None and a_end <= b_start) or (b_end is not None and b_end <= a_start):
        return None
    for nas, first, last in a_places:
        for other, o_first, o_last in b_places:
            if nas == other and first <= o_last and o_first <= last:
                return nas
    return None


def _entry_places(entry: Entry):
    values = entry.values
    return (_places(values["nas"], values["ports"]), (values["starts"], values["ends"]))


def _check_leases_file(plan: Plan) -> Iterator[ConfigError]:
    entries = plan["lease"]
    for index, entry in enumerate(entries):
        for earlier in entries[:index]:
            if earlier.values["isp"] != entry.values["isp"]:
                continue
            nas = _overlap(*_entry_places(entry), *_entry_places(earlier))
            if nas is not None:
                yield plan.problem(entry, "nas", f"NAS {nas} is leased to "
                                   f"{entry.values['isp']} by lease[{earlier.index}] "
                                   f"({earlier.key!r}) too, for the same time")


def _check_leases_db(session: Session, plan: Plan) -> Iterator[ConfigError]:
    entries = plan["lease"]
    if not entries:
        return
    in_file = {e.key for e in plan["isp"]}
    wanted = {e.values["isp"] for e in entries} - in_file
    stored_isps = {name for (name,) in rows_by_keys(session, select(IspRecord.name), IspRecord.name,
                                                    wanted)}
    for entry in entries:
        isp = entry.values["isp"]
        if isp not in in_file and isp not in stored_isps:
            yield plan.problem(entry, "isp", f"no isp {isp!r} in this file or the database")
    names = {e.key for e in entries}
    others = session.scalars(select(Lease).options(selectinload(Lease.places)).where(
        Lease.isp.in_({e.values["isp"] for e in entries}), Lease.name.not_in(names))).all()
    for entry in entries:
        for lease in others:
            if lease.isp != entry.values["isp"]:
                continue
            places = [(p.nas, *((p.port_first, p.port_last) if p.port_first is not None
                                else WHOLE)) for p in lease.places]
            nas = _overlap(*_entry_places(entry), places, (lease.starts, lease.ends))
            if nas is not None:
                yield plan.problem(entry, "nas", f"NAS {nas} is leased to {lease.isp} by "
                                   f"lease {lease.name!r}, which is not in this file, for the "
                                   "same time")


# --- writing ----------------------------------------------------------------------------

def _write_leases(session: Session, plan: Plan, hashing: Hashing) -> Counts:
    entries = plan["lease"]
    if not entries:
        return Counts()
    existing = {row.name: row for (row,) in rows_by_keys(
        session, select(Lease).options(selectinload(Lease.places)), Lease.name,
        (e.key for e in entries))}
    created = updated = 0
    for entry in entries:
        values = entry.values
        row_values = columns(SECTION, entry)
        row_values["bandwidth_kbps"] = values["bandwidth_mbps"]
        row_values["volume_bytes"] = values["volume_gb"]
        wanted = [(nas, None, None) for nas in values["nas"]] + list(values["ports"])
        row = existing.get(entry.key)
        if row is None:
            row = Lease(**row_values, revision=1)
            row.places = [LeasePlace(nas=n, port_first=f, port_last=t) for n, f, t in wanted]
            session.add(row)
            created += 1
            continue
        changed = assign(row, row_values)
        if [(p.nas, p.port_first, p.port_last) for p in row.places] != wanted:
            row.places.clear()
            session.flush()  # the old places go before new ones take their keys
            row.places.extend(LeasePlace(nas=n, port_first=f, port_last=t)
                              for n, f, t in wanted)
            changed = True
        if changed:
            row.revision += 1  # running servers reload their leases
            updated += 1
    return Counts(created=created, updated=updated, unchanged=len(entries) - created - updated)


SECTION = Section(
    name="lease", key="name",
    fields=(
        Field("name", NAME, required=True),
        Field("isp", NAME, required=True),
        Field("nas", _nas_list, default=(), column=None),
        Field("ports", _ports, default=(), column=None),
        Field("sessions", integer(1)),
        Field("bandwidth_mbps", _positive_number(1000, 2**31 - 1), column=None),  # stored in kbit/s
        Field("volume_gb", _positive_number(10**9, 2**63 - 1), column=None),  # stored in octets
        Field("starts", utc_datetime, required=True),
        Field("ends", utc_datetime),
        Field("price", _price, default=Decimal(0)),
        Field("currency", _currency, default="EUR"),
        Field("policy", choice(POLICIES), default="admit"),
        Field("reject_message", text(253), default=DEFAULT_REJECT_MESSAGE),
        Field("under_percent", integer(0), default=0),
        Field("under_window", integer(60), default=3600),
        DESCRIPTION,
    ),
    finish=_finish_lease, check_file=_check_leases_file, check_db=_check_leases_db,
    write=_write_leases,
)
