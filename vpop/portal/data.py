"""What the operator's and admin's pages and the JSON API show and change, in one place:
plain values in and out, every query scoped to the ISP of the user or token (`Scope`).

Reads come from the rollups, the gauges and the indexes (vpop/store/reports.py), never
from a scan of the raw accounting. Changes go through the provisioning package as
`vpop import` does (vpop/provisioning/stored.py): checked field by field, nothing
written on any problem, a new data generation that the running server loads within
seconds, and an audit entry with the values before and after.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpop.accounting import reports
from vpop.accounting.rollups import GRAINS
from vpop.errors import ConfigError
from vpop.provisioning.fields import Context, ProvisioningError
from vpop.provisioning.stored import (apply_tables, problems_by_field, stored_keys,
                                      stored_table)
from vpop.store import reports as queries
from vpop.store.accounting import event_clock, load_leases
from vpop.store.gauges import levels
from vpop.store.isp_models import IspRecord
from vpop.store.portal_models import PortalAudit

MAX_PAGE = 500  # sessions a page or an API call lists at most
SETTINGS_ACTION = "isp.servers"  # the audit's name for an ISP's servers and LNS changed
# The fields of its ISP an operator may change: its RADIUS servers (with their secrets)
# and its L2TP network servers (with their tunnel passwords).
OPERATOR_FIELDS = ("servers", "tunnels")
MASK = "***"  # how the audit shows a secret (vpop/portal/audit.py)
# Each list's key (what a secret left empty is kept by) and its secret.
SECRET_OF = {"servers": ("name", "secret"), "tunnels": ("address", "password")}


class NotFound(Exception):
    """No such object for this scope: another ISP's is answered the same way."""


class Invalid(Exception):
    """Bad values: field -> its problems; nothing was changed."""

    def __init__(self, problems: Mapping[str, list[str]]):
        super().__init__("; ".join(f"{f or 'record'}: {', '.join(p)}" for f, p in problems.items()))
        self.problems = dict(problems)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """Whose data: an ISP's (its operator or token) or everyone's (admin)."""
    isp: str | None = None
    isp_id: int | None = None
    actor: str = ""

    @property
    def admin(self) -> bool:
        return self.isp is None


def isp_scope(session: Session, isp_id: int, actor: str) -> Scope:
    name = session.scalar(select(IspRecord.name).where(IspRecord.id == isp_id))
    if name is None:
        raise NotFound(f"ISP {isp_id}")
    return Scope(isp=name, isp_id=isp_id, actor=actor)


# --- periods ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Period:
    start: int
    end: int
    grain: str

    def filters(self, **kw) -> reports.Filters:
        return reports.Filters(start=self.start, end=self.end, grain=self.grain, **kw)

    def text(self) -> dict[str, str]:
        return {"from": reports.iso(self.start), "to": reports.iso(self.end), "grain": self.grain}


MAX_BUCKETS = 2_000  # a chart or report of more buckets asks for a coarser grain


def period(session: Session, args: Mapping[str, str], *, now: dt.datetime) -> Period:
    """The period of ?from=&to=&grain= (dates or date-times, UTC unless an offset is
    given); by default the 24 hours up to the newest accounting (or now)."""
    try:
        end = reports.parse_time(args["to"], "to") if args.get("to") else None
        start = reports.parse_time(args["from"], "from") if args.get("from") else None
    except ConfigError as exc:
        field = "to" if str(exc).startswith("to") else "from"
        raise Invalid({field: [exc.message.split(" ", 2)[-1]]}) from None
    if end is None:
        newest = event_clock(session) or int(now.timestamp())
        end = newest - newest % 3600 + 3600
    if start is None:
        start = end - 86_400
    if end <= start:
        raise Invalid({"to": ["must be after from"]})
    grain = args.get("grain") or ("5min" if end - start <= 86_400 else
                                   "hour" if end - start <= 14 * 86_400 else "day")
    if grain not in GRAINS:
        raise Invalid({"grain": [f"must be one of: {', '.join(GRAINS)}"]})
    if (end - start) // GRAINS[grain] > MAX_BUCKETS:
        raise Invalid({"grain": [f"more than {MAX_BUCKETS} buckets: choose a coarser grain "
                                 "or a shorter period"]})
    return Period(start=start, end=end, grain=grain)


# --- leases and utilization ------------------------------------------------------------

def leases(session: Session, scope: Scope) -> list[dict]:
    """The leases (an ISP's own), with the sessions online on each now."""
    terms = [t for t in load_leases(session).by_id.values()
             if scope.admin or t.isp == scope.isp]
    online = levels(session.connection(), "lease", [str(t.id) for t in terms])
    return [dict(id=t.id, name=t.name, isp=t.isp, sessions=t.sessions,
                 bandwidth_kbps=t.bandwidth_kbps, volume_bytes=t.volume_bytes,
                 starts=reports.iso(t.starts), ends=reports.iso(t.ends), policy=t.policy,
                 under_percent=t.under_percent, price=str(t.price),
                 nas=sorted(t.nas | {p.nas for p in t.ports}),
                 online=online.get(str(t.id), 0))
            for t in sorted(terms, key=lambda t: (t.isp, t.name))]


def lease(session: Session, scope: Scope, lease_id: int) -> dict:
    for found in leases(session, scope):
        if found["id"] == lease_id:
            return found
    raise NotFound(f"lease {lease_id}")


def lease_usage(session: Session, scope: Scope, lease_id: int, when: Period, *,
                now: dt.datetime) -> dict:
    """A lease's utilization over the period, per bucket, as chart series: sessions online
    (peak from its gauge, average from the session seconds, the in-progress sessions
    counted up to their latest record), traffic (average and busiest 5 minutes) against
    what is leased, and the under- and over-utilization events going on."""
    found = lease(session, scope, lease_id)
    rows, _ = queries.utilization(session, when.filters(lease=found["name"]),
                                  now=now.timestamp())
    events, _ = queries.utilization(session, when.filters(lease=found["name"]), events=True,
                                    now=now.timestamp())
    series = reports.buckets(when.start, when.end, when.grain)
    column = lambda name: [row[name] for row in rows]  # noqa: E731
    return dict(lease=found, period=when.text(), rows=rows, events=events,
                chart=dict(t=series, sessions_peak=column("sessions_peak"),
                           sessions_avg=column("sessions_avg"),
                           mbps_avg=column("mbps_avg"), mbps_peak=column("mbps_peak"),
                           sessions_leased=found["sessions"],
                           mbps_leased=rows[0]["mbps_leased"] if rows else None,
                           events=[dict(kind=e["kind"], start=_epoch(e["start"]),
                                        end=_epoch(e["end"]) if e["end"] else None)
                                   for e in events]))


def _epoch(text: str) -> int:
    return int(dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
               .replace(tzinfo=dt.timezone.utc).timestamp())


BY = ("isp", "lease", "nas")


def utilization(session: Session, scope: Scope, by: str, when: Period, *,
                nas: str | None = None, chart: bool = True) -> dict:
    """Sessions and traffic per bucket and ISP, lease or NAS over the period (an ISP's
    own only), and (`chart`) the chart's series per group."""
    if by not in BY:
        raise Invalid({"by": [f"must be one of: {', '.join(BY)}"]})
    rows, columns = queries.sessions(session, when.filters(isp=scope.isp, nas=nas), by=by)
    report = dict(by=by, period=when.text(), rows=rows, columns=list(columns))
    if not chart:
        return report
    series = reports.buckets(when.start, when.end, when.grain)
    at = {reports.iso(b): b for b in series}
    groups: dict[str, dict[int, dict]] = {}
    for row in rows:
        groups.setdefault(str(row["group"]), {})[at[row["bucket"]]] = row
    report["chart"] = dict(t=series, groups=[
        dict(name=name,
             online_avg=[found.get(b, {}).get("online_avg", 0) for b in series],
             online_peak=[found.get(b, {}).get("online_peak") for b in series],
             octets=[(found.get(b, {}).get("input_octets", 0) or 0)
                     + (found.get(b, {}).get("output_octets", 0) or 0) for b in series])
        for name, found in sorted(groups.items())])
    return report


# --- sessions ---------------------------------------------------------------------------

def session_query(scope: Scope, args: Mapping[str, str]) -> queries.SessionQuery:
    """The filters of ?isp=&lease=&nas=&user=&status=&from=&to=; an ISP's own always."""
    problems: dict[str, list[str]] = {}
    status = args.get("status") or None
    if status not in (None, *queries.STATUSES):
        problems["status"] = [f"must be one of: {', '.join(queries.STATUSES)}"]
    lease_id = None
    if args.get("lease"):
        try:
            lease_id = int(args["lease"])
        except ValueError:
            problems["lease"] = ["must be a lease id (a number)"]
    times = {}
    for name in ("from", "to"):
        if args.get(name):
            try:
                times[name] = reports.parse_time(args[name], name)
            except ConfigError:
                problems[name] = ["use a date (2026-03-01) or a date and time (2026-03-01T10:00)"]
    if problems:
        raise Invalid(problems)
    isp = scope.isp if not scope.admin else (args.get("isp") or None)
    return queries.SessionQuery(isp=isp, lease_id=lease_id, nas=args.get("nas") or None,
                                username=args.get("user") or None, status=status,
                                start=times.get("from"), end=times.get("to"))


def sessions(session: Session, scope: Scope, args: Mapping[str, str]) -> dict:
    query = session_query(scope, args)
    try:
        limit = min(MAX_PAGE, max(1, int(args.get("limit") or 50)))
    except ValueError:
        raise Invalid({"limit": ["must be a number"]}) from None
    try:
        rows, after = queries.session_page(session, query, after=args.get("after") or None,
                                           limit=limit)
    except ConfigError as exc:
        raise Invalid({"after": [exc.message]}) from None
    return dict(sessions=[_session_out(r) for r in rows], next=after)


def _session_out(row: Mapping[str, Any]) -> dict:
    return {**row, **{k: reports.iso(row[k]) if row[k] is not None else None
                      for k in ("start", "last_update", "stop")}}


def session_detail(session: Session, scope: Scope, ident: int) -> dict:
    row = queries.session_by_id(session, ident, isp=scope.isp)
    if row is None:
        raise NotFound(f"session {ident}")
    records = [{**r, "event_time": reports.iso(r["event_time"]),
                "arrival": reports.iso(r["arrival"])}
               for r in queries.session_records(session, ident)]
    return dict(session=_session_out(row), records=records)


def sessions_csv(session: Session, scope: Scope, args: Mapping[str, str]) -> Iterator[str]:
    """Every session of the filters as CSV, produced a page at a time (streamed)."""
    query = session_query(scope, args)
    columns = queries.SESSION_LIST_COLUMNS
    yield _csv_line(columns)
    for page in queries.session_pages(session, query):
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for row in page:
            shown = _session_out(row)
            writer.writerow([reports._csv_cell(shown[c]) for c in columns])
        yield out.getvalue()


def rows_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Iterator[str]:
    yield _csv_line(columns)
    for start in range(0, len(rows), 1000):
        yield reports.render(rows[start:start + 1000], columns, "csv").split("\n", 1)[1]


def _csv_line(columns: Sequence[str]) -> str:
    return ",".join(columns) + "\n"


def disconnect(database, settings, scope: Scope, ident: int, *, reason: str = "") -> dict:
    """Disconnect a live session through dynamic authorization (RFC 5176); the NAS's
    answer: ACK, NAK with its Error-Cause in words, or a timeout."""
    with database() as session:
        row = queries.session_by_id(session, ident, isp=scope.isp)
    if row is None:
        raise NotFound(f"session {ident}")
    if row["status"] != "open":
        raise Invalid({"session": ["is not online: only a live session can be disconnected"]})
    from vpop.server.dynauth import UnknownSession, disconnect_session
    try:
        results = disconnect_session(database, settings, actor=scope.actor, session_id=ident,
                                     reason=reason)
    except UnknownSession as exc:
        raise Invalid({"session": [str(exc)]}) from None
    return dict(results=[dict(session_id=r.session_id, username=r.username, nas=r.nas,
                              outcome=r.outcome, ok=r.ok, error_cause=r.error_cause,
                              error_words=r.error_words if r.error_cause is not None else "",
                              described=r.describe(),
                              answer=[list(pair) for pair in r.answer])
                         for r in results])


# --- the ISP's servers and LNS ---------------------------------------------------------

def isp_settings(session: Session, scope: Scope, isp: str) -> dict:
    """What an operator may change of its ISP: the RADIUS servers and LNS endpoints."""
    _own(scope, isp)
    table = stored_table(session, "isp", isp)
    if table is None:
        raise NotFound(f"ISP {isp}")
    return {name: table.get(name, []) for name in OPERATOR_FIELDS} | {"mode": table["mode"]}


def _own(scope: Scope, isp: str) -> None:
    if not scope.admin and isp != scope.isp:
        raise NotFound(f"ISP {isp}")


def keep_secrets(given: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]],
                 key: str, secret: str) -> list[dict]:
    """Entries whose secret is left empty (or masked) keep the one stored for the entry
    with the same `key` (a server's name, an LNS's address)."""
    stored = {c.get(key): c.get(secret) for c in current if c.get(key)}
    out = []
    for item in given:
        item = dict(item)
        if item.get(secret) in (None, "", MASK) and stored.get(item.get(key)):
            item[secret] = stored[item.get(key)]
        elif item.get(secret) in ("", MASK):
            item.pop(secret)
        out.append(item)
    return out


def change_isp_settings(session: Session, scope: Scope, isp: str, given: Mapping[str, Any],
                        *, context: Context, now: dt.datetime, audit, action: str =
                        SETTINGS_ACTION, **apply_options: Any) -> dict:
    """Replace the ISP's servers and/or tunnels (given in full, as the import file writes
    them); checked as `vpop import` checks, applied with a new data generation, audited
    with before and after. Invalid (nothing changed) on any problem."""
    _own(scope, isp)
    table = stored_table(session, "isp", isp)
    if table is None:
        raise NotFound(f"ISP {isp}")
    unknown = [name for name in given if name not in OPERATOR_FIELDS]
    if unknown:
        raise Invalid({name: [f"cannot be changed here: use {', '.join(OPERATOR_FIELDS)}"]
                       for name in unknown})
    before = {name: table.get(name, []) for name in OPERATOR_FIELDS}
    changed = dict(table)
    for name, value in given.items():
        if not isinstance(value, list):
            raise Invalid({name: ["must be a list of tables"]})
        key, secret = SECRET_OF[name]
        changed[name] = keep_secrets([v if isinstance(v, dict) else {} for v in value],
                                     before[name], key, secret)
    summary = _apply(session, {"isp": [changed]}, context, now, apply_options)
    after = isp_settings(session, scope, isp)
    after.pop("mode")
    isp_id = session.scalar(select(IspRecord.id).where(IspRecord.name == isp))
    if summary.changed:
        audit(action, f"isp {isp}", before=before, after=after, isp_id=isp_id)
    return dict(changed=summary.changed, generation=summary.generation, **after)


def rollback_isp_settings(session: Session, scope: Scope, audit_id: int, *,
                          context: Context, now: dt.datetime, audit, **apply_options) -> dict:
    """Put back the servers and LNS an audited change replaced (its `before`); secrets
    the audit does not keep stay as they are now for the same server or LNS."""
    entry = session.get(PortalAudit, audit_id)
    if entry is None or entry.action not in (SETTINGS_ACTION, SETTINGS_ACTION + ".rollback") \
            or (not scope.admin and entry.isp_id != scope.isp_id) or not entry.before:
        raise NotFound(f"change {audit_id}")
    isp = entry.object.removeprefix("isp ")
    current = stored_table(session, "isp", isp) or {}
    lost = {}
    for name, (key, secret) in SECRET_OF.items():
        kept = {item.get(key) for item in current.get(name, []) if item.get(secret)}
        for index, item in enumerate(entry.before.get(name, []), 1):
            if item.get(secret) == MASK and item.get(key) not in kept:
                lost[f"{name}[{index}].{secret}"] = [
                    "the audit keeps no secrets, and no server or LNS of this name has one "
                    "now: set it again on the servers page"]
    if lost:
        raise Invalid(lost)
    return change_isp_settings(session, scope, isp, entry.before, context=context, now=now,
                               audit=audit, action=SETTINGS_ACTION + ".rollback",
                               **apply_options)


def _apply(session: Session, tables, context: Context, now: dt.datetime, options):
    try:
        return apply_tables(session, tables, context, now=now, **options)
    except ProvisioningError as exc:
        session.rollback()
        raise Invalid(problems_by_field(exc)) from None


# --- records of every section (admin) ----------------------------------------------------

SECTIONS = ("nas", "isp", "profile", "subscriber", "lease")


def records(session: Session, section: str) -> list[str]:
    return stored_keys(session, section)


def record(session: Session, section: str, key: str) -> dict:
    table = stored_table(session, section, key)
    if table is None:
        raise NotFound(f"{section} {key}")
    return table


def put_record(session: Session, section: str, table: Mapping[str, Any], *, key: str | None,
               context: Context, now: dt.datetime, audit, isp_id: int | None = None,
               **apply_options: Any) -> dict:
    """Create (key None) or change a record from a whole table; checked and written as
    `vpop import` does, audited. Invalid on any problem (nothing changed)."""
    from vpop.provisioning.steps import SECTION_NAMED
    name_field = SECTION_NAMED[section].key
    before = stored_table(session, section, key) if key is not None else None
    if key is not None and before is None:
        raise NotFound(f"{section} {key}")
    if key is None:
        given_key = table.get(name_field)
        if isinstance(given_key, str) and stored_table(session, section, given_key) is not None:
            raise Invalid({name_field: [f"{section} {given_key!r} exists already"]})
    elif table.get(name_field) != key:
        raise Invalid({name_field: ["cannot be changed (a record is known by it)"]})
    summary = _apply(session, {section: [dict(table)]}, context, now, apply_options)
    after = stored_table(session, section, table[name_field])
    if summary.changed:
        audit(f"{section}.{'create' if before is None else 'update'}",
              f"{section} {table[name_field]}", before=jsonable(before),
              after=jsonable(after), isp_id=isp_id)
    return dict(changed=summary.changed, generation=summary.generation,
                record=jsonable(after))


def jsonable(value: Any) -> Any:
    """Dates and times as ISO 8601 text, for JSON."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return value


# --- the audit ---------------------------------------------------------------------------

def audit_log(session: Session, scope: Scope, *, before_id: int | None = None,
              limit: int = 100) -> dict:
    """Portal changes (an ISP's own) and, for admin, the dynamic-authorization actions."""
    from vpop.store.portal import audit_entries
    entries = audit_entries(session, isp_id=scope.isp_id, limit=limit, before_id=before_id)
    out = dict(changes=[dict(id=e.id, at=e.at.isoformat(), actor=e.actor, action=e.action,
                             object=e.object, before=e.before, after=e.after,
                             rollback=e.action.startswith(SETTINGS_ACTION) and bool(e.before))
                        for e in entries],
               next=entries[-1].id if len(entries) == limit else None)
    from vpop.store.dynauth_models import DynAuthAction
    statement = select(DynAuthAction).order_by(DynAuthAction.id.desc()).limit(limit)
    if not scope.admin:
        statement = statement.where(DynAuthAction.isp == scope.isp)
    out["dynauth"] = [dict(id=a.id, at=a.at.isoformat(), actor=a.actor, kind=a.kind,
                           direction=a.direction, session_id=a.session_id,
                           username=a.username, nas=a.nas, isp=a.isp, outcome=a.outcome,
                           error_cause=a.error_cause, reason=a.reason)
                      for a in session.scalars(statement)]
    return out


# --- ISPs with their quality ----------------------------------------------------------

def isps(session: Session, scope: Scope, *, now: dt.datetime,
         minutes: int = 15) -> list[dict]:
    """The ISPs (an ISP token: its own) with price, status and measured quality over the
    last `minutes` (vpop/store/qos.py)."""
    from vpop.store.qos import latest_health
    health = latest_health(session, now, window=dt.timedelta(minutes=minutes))
    statement = select(IspRecord).order_by(IspRecord.name)
    if not scope.admin:
        statement = statement.where(IspRecord.name == scope.isp)
    out = []
    for row in session.scalars(statement):
        measured = health.get(row.name)
        out.append(dict(name=row.name, mode=row.mode, status=row.status,
                        price_per_minute=str(row.price_per_minute),
                        price_per_gb=str(row.price_per_gb), description=row.description,
                        quality=dataclasses.asdict(measured) if measured else None))
    return out
