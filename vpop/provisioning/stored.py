"""Stored records read back as the tables `vpop import` takes, and tables applied one
record at a time: how the portal's forms and the JSON API change a record.

A change starts from the record as stored (``stored_table``), overlays what the form
or request gives, and goes through ``apply_tables``: every table checked field by field
with the same checks as an import file (``check_table``), then against the database
and written as the import writes (``steps.apply``), making a new data generation so
the running server serves it within seconds. Nothing is written when any check fails:
ProvisioningError lists each problem with its field, e.g. ``servers[2].secret``.
Nothing here commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from vpop.errors import ConfigError
from vpop.isp.realms import realm_text
from vpop.provisioning.fields import Context, ProvisioningError
from vpop.provisioning.sections import Entry, Plan, Values, check_table
from vpop.provisioning.steps import SECTION_NAMED, Summary, apply
from vpop.store.accounting_models import Lease
from vpop.store.isp_models import IspRecord
from vpop.store.models import Nas, Profile, Subscriber

SOURCE = "portal"  # the `file` of a problem found in a form or request
MODELS = {"nas": (Nas, "name"), "isp": (IspRecord, "name"), "profile": (Profile, "name"),
          "subscriber": (Subscriber, "username"), "lease": (Lease, "name")}


def _plain(value: Any) -> Any:
    """A stored value as a table holds it: prices as text, so every digit is kept."""
    if isinstance(value, Decimal):
        return str(value)
    return value


def _columns(section: str, row: Any) -> dict[str, Any]:
    table = {}
    for spec in SECTION_NAMED[section].fields:
        if spec.attribute and hasattr(row, spec.attribute):
            value = getattr(row, spec.attribute)
            if value is not None:
                table[spec.name] = _plain(value)
    return table


def _drop_none(items: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) for k, v in items.items() if v is not None}


def _isp(row: IspRecord) -> dict[str, Any]:
    table = _columns("isp", row)
    table["realms"] = [realm_text(r) for r in row.realms]
    table["numbers"] = ["+" + n.number for n in row.numbers]
    table["servers"] = [_drop_none(dict(
        name=s.name, address=s.address, auth_port=s.auth_port, acct_port=s.acct_port,
        secret=s.secret, priority=s.priority, weight=s.weight,
        require_message_authenticator=s.require_message_authenticator)) for s in row.servers]
    table["tunnels"] = [_drop_none(dict(
        address=t.address, password=t.password, medium=t.medium,
        assignment_id=t.assignment_id, preference=t.preference,
        client_endpoint=t.client_endpoint, client_auth_id=t.client_auth_id))
        for t in row.tunnels]
    table["schedule"] = [dict(days=[("mon", "tue", "wed", "thu", "fri", "sat", "sun")[int(d)]
                                    for d in w.weekdays.split(",") if d],
                              **{"from": w.start.strftime("%H:%M:%S"),
                                 "to": w.end.strftime("%H:%M:%S")}) for w in row.windows]
    if "dynauth_clients" in {f.name for f in SECTION_NAMED["isp"].fields}:
        table["dynauth_clients"] = [dict(address=c.address, secret=c.secret)
                                    for c in getattr(row, "dynauth_clients", ())]
    return table


def _profile(row: Profile) -> dict[str, Any]:
    table = _columns("profile", row)
    if row.isp is not None:
        table["isp"] = row.isp.name
    return table


def _subscriber(row: Subscriber) -> dict[str, Any]:
    table = _columns("subscriber", row)
    table["profile"] = row.profile.name
    table["methods"] = [m for m in row.auth_methods.split(",") if m]
    if row.cleartext_password is not None:
        table["password"] = row.cleartext_password
    else:
        for name in ("password_hash", "nt_hash"):
            if getattr(row, name) is not None:
                table[name] = getattr(row, name)
    table["caller_ids"] = ["+" + c.number for c in row.caller_ids]
    table["lines"] = [{line.kind: line.value} for line in row.lines]
    table["isp"] = row.isp.name if row.isp is not None else ""
    return table


def _lease(row: Lease) -> dict[str, Any]:
    table = _columns("lease", row)
    table["nas"] = [p.nas for p in row.places if p.port_first is None]
    table["ports"] = [dict(nas=p.nas, first=p.port_first, last=p.port_last)
                      for p in row.places if p.port_first is not None]
    if row.bandwidth_kbps is not None:
        table["bandwidth_mbps"] = _number(Decimal(row.bandwidth_kbps) / 1000)
    if row.volume_bytes is not None:
        table["volume_gb"] = _number(Decimal(row.volume_bytes) / 10**9)
    return table


def _number(value: Decimal) -> int | str:
    return int(value) if value == value.to_integral_value() else str(value.normalize())


_EXPORT = {"nas": lambda row: _columns("nas", row), "isp": _isp, "profile": _profile,
           "subscriber": _subscriber, "lease": _lease}
_LOAD = {"isp": (selectinload(IspRecord.realms), selectinload(IspRecord.numbers),
                 selectinload(IspRecord.servers), selectinload(IspRecord.tunnels),
                 selectinload(IspRecord.windows)),
         "subscriber": (selectinload(Subscriber.caller_ids), selectinload(Subscriber.lines)),
         "lease": (selectinload(Lease.places),)}


def stored_table(session: Session, section: str, key: str) -> dict[str, Any] | None:
    """The record `key` of `section` as an import table (secrets included), or None."""
    model, attribute = MODELS[section]
    row = session.scalar(select(model).where(getattr(model, attribute) == key)
                         .options(*_LOAD.get(section, ())))
    return None if row is None else _EXPORT[section](row)


def stored_keys(session: Session, section: str, *, isp: str | None = None) -> list[str]:
    """The keys of a section's records, sorted; `isp`: leases of that ISP only."""
    model, attribute = MODELS[section]
    statement = select(getattr(model, attribute)).order_by(getattr(model, attribute))
    if isp is not None:
        statement = statement.where(Lease.isp == isp)
    return list(session.scalars(statement))


def plan_of(tables: Mapping[str, Sequence[Mapping[str, Any]]], context: Context) -> Plan:
    """A plan of the given tables, each checked as an import checks a file's; a problem's
    field is the table's own (``servers[2].secret``), its file SOURCE."""
    problems: list[ConfigError] = []
    entries: dict[str, tuple[Entry, ...]] = {}
    for name, given in tables.items():
        section = SECTION_NAMED[name]
        found = []
        for index, table in enumerate(given, 1):
            values, wrong = check_table(section, table, context)
            problems.extend(ConfigError(reason, file=SOURCE, field=where)
                            for where, reason in wrong)
            if values is not None:
                found.append(Entry(section=name, index=index, key=values[section.key],
                                   values=Values(values)))
        entries[name] = tuple(found)
    if problems:
        raise ProvisioningError(problems)
    return Plan(file=SOURCE, entries=entries, context=context)


def apply_tables(session: Session, tables: Mapping[str, Sequence[Mapping[str, Any]]],
                 context: Context, *, now: dt.datetime | None = None, **options: Any
                 ) -> Summary:
    """Check the tables, then against the database, then write them (steps.apply).
    ProvisioningError, with nothing written, when anything is wrong."""
    plan = plan_of(tables, context)
    try:
        return apply(session, plan, now=now, **options)
    except ProvisioningError as exc:
        # Problems found against the database name the entry (isp[1].servers); a form
        # edits one record: the field alone.
        raise ProvisioningError([ConfigError(p.message, file=SOURCE, field=_own(p.field))
                                 for p in exc.problems]) from None


def _own(field: str | None) -> str | None:
    if field and "]." in field:
        return field.split("].", 1)[1]
    return field


def problems_by_field(error: ProvisioningError) -> dict[str, list[str]]:
    """Field -> its problems, for a form or a JSON answer ("" for the record itself)."""
    found: dict[str, list[str]] = {}
    for problem in error.problems:
        found.setdefault(problem.field or "", []).append(problem.message)
    return found
