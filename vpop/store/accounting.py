"""Accounting in the store: sessions, history, routing records, rollups, gauges and
utilization events, written in batches. The caller commits (group commit in the
shell); nothing here commits.

Accounting writers of every worker process take one lock per transaction
(``lock``: a PostgreSQL advisory lock, SQLite's BEGIN IMMEDIATE) so that the
read-modify-write of gauges, rollups and the monitor's state never interleaves.
Group commit makes that cheap: one lock, one commit, hundreds of records.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Table, bindparam, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from vpop.accounting import sessions as S
from vpop.accounting.leases import LeaseIndex, LeaseTerms, PortRange, attribute
from vpop.accounting.clocks import NAS_REBOOT, NasClocks
from vpop.accounting.records import IMPLAUSIBLE, AcctRecord, content_key
from vpop.accounting.rollups import MEASURES, RollupBatch, net_changes
from vpop.store import gauges, utilization
from vpop.store.accounting_models import (AcctClock, AcctGauge, AcctHistory, AcctJournal,
                                          AcctRollup, Lease, LeaseRollup, RadAcct,
                                          RoutingRecord)
from vpop.store.dynauth import ADMIN_RESET, DISCONNECT_ACKED, STOP_OVERDUE
from vpop.store.timestamps import seconds, when

_LOCK_KEY = 0x7670_6F61  # "vpoa": accounting writers, any process
_CHUNK = 500  # keeps IN (...) lists under SQLite's bound-parameter limit
# A session whose NAS ACKed a Disconnect; its causeless Stop is an Admin-Reset.
DISCONNECTED = (DISCONNECT_ACKED, STOP_OVERDUE)

_TIMES = ("start_time", "update_time", "stop_time")


def lock(session: Session) -> None:
    """Serialize accounting writers; the first statement of the transaction."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


@dataclass(slots=True)
class BatchResult:
    stored: int = 0  # records applied
    duplicates: int = 0  # retransmissions of records already stored
    flags: collections.Counter = field(default_factory=collections.Counter)
    closed: int = 0  # sessions closed by Accounting-On/Off
    reaped: int = 0  # sessions the reaper closed
    lease_levels: dict[int, int] = field(default_factory=dict)  # sessions online, per lease
    lease_onlines: list[int] = field(default_factory=list)  # a session came online, per lease
    now: int | None = None  # the newest event time applied (the event clock)


# --- reading ----------------------------------------------------------------------------

def _chunks(values: Sequence) -> Iterator[Sequence]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]


def _state(row) -> S.SessionState:
    values = dict(row._mapping)
    for name in _TIMES:
        values[name] = seconds(values[name])
    values["flags"] = tuple(f for f in values["flags"].split(",") if f)
    if values["start_time"] is None:  # rows written before vpop kept every time
        values["start_time"] = values["update_time"] or values["stop_time"] or 0
    if values["update_time"] is None:
        values["update_time"] = values["stop_time"] or values["start_time"]
    values.pop("acct_session_id")
    values["session_id"] = row.acct_session_id
    # Dynamic authorization's mark is not the accounting's: kept as it is, never written.
    values.pop("dynauth_state", None)
    values.pop("dynauth_at", None)
    return S.SessionState(**values)


_STATE_FIELDS = tuple(n for n in S.SessionState.__slots__ if n != "id")


def _session_columns(state: S.SessionState, names: Iterable[str]) -> dict:
    """The radacct columns for these fields of a session's state."""
    values = {}
    for name in names:
        value = getattr(state, name)
        if name == "session_id":
            values["acct_session_id"] = value
        elif name == "flags":
            values["flags"] = ",".join(value)[:255]
        elif name in _TIMES:
            values[name] = when(value)
        else:
            values[name] = value
    return values


def _session_row(state: S.SessionState) -> dict:
    return _session_columns(state, _STATE_FIELDS)


def load_leases(session: Session) -> LeaseIndex:
    leases = []
    for lease in session.scalars(select(Lease).options(selectinload(Lease.places))):
        leases.append(lease_terms(lease))
    return LeaseIndex(leases)


def lease_terms(lease: Lease) -> LeaseTerms:
    return LeaseTerms(
        id=lease.id, name=lease.name, isp=lease.isp,
        nas=frozenset(p.nas for p in lease.places if p.port_first is None),
        ports=tuple(PortRange(nas=p.nas, first=p.port_first, last=p.port_last)
                    for p in lease.places if p.port_first is not None),
        sessions=lease.sessions, bandwidth_kbps=lease.bandwidth_kbps,
        volume_bytes=lease.volume_bytes, starts=seconds(lease.starts),
        ends=seconds(lease.ends), price=lease.price, policy=lease.policy,
        reject_message=lease.reject_message, under_percent=lease.under_percent,
        under_window=lease.under_window)


def leases_revision(session: Session) -> tuple:
    """Changes whenever an import changes a lease: cheap enough to ask every second."""
    return tuple(session.execute(select(func.count(Lease.id), func.sum(Lease.revision),
                                        func.max(Lease.id))).one())


def lease_levels(session: Session) -> dict[int, int]:
    """Sessions online per lease, as committed."""
    return {int(key): level for key, level in session.execute(
        select(AcctGauge.key, AcctGauge.level).where(AcctGauge.kind == "lease"))}


def lease_state(session: Session, known: tuple | None
                ) -> tuple[tuple, LeaseIndex | None, dict[int, int]]:
    """(the leases' revision, the leases if it is not `known`, sessions online per lease)."""
    revision = leases_revision(session)
    return (revision, load_leases(session) if revision != known else None,
            lease_levels(session))


def journal_applied(session: Session, stream: str) -> int:
    """The id of the last entry of journal `stream` applied; 0 before the first."""
    applied = session.scalar(select(AcctJournal.applied_id).where(AcctJournal.stream == stream))
    return applied or 0


def set_journal_applied(session: Session, stream: str, applied: int) -> None:
    """Record, in the transaction that applied them, that entries up to `applied` are in."""
    row = session.get(AcctJournal, stream)
    if row is None:
        session.add(AcctJournal(stream=stream, applied_id=applied))
    else:
        row.applied_id = applied
    session.flush()


# --- statements, built once per dialect -------------------------------------------------

class _Sql:
    """Every statement the ledger runs; built once, so each batch only binds values."""

    def __init__(self, dialect: str):
        self.dialect = dialect
        upsert_into = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._greatest = func.greatest if dialect == "postgresql" else func.max
        self._insert = upsert_into
        keys = bindparam("keys", expanding=True)
        acct, history = RadAcct.__table__, AcctHistory.__table__
        self.sessions_by_uid = select(acct).where(acct.c.unique_id.in_(keys))
        self.open_by_nas = select(acct).where(acct.c.nas_address.in_(keys),
                                              acct.c.status == S.OPEN)
        # Sessions the reaper closed at their last record within `since` of a restart.
        self.reaped_by_nas = select(acct).where(
            acct.c.nas_address == bindparam("nas"), acct.c.status == S.CLOSED,
            acct.c.update_time >= bindparam("since"), acct.c.update_time < bindparam("until"),
            acct.c.closed_by == S.BY_REAPER)
        self.stale = select(acct).where(acct.c.status == S.OPEN,
                                        acct.c.update_time < bindparam("before")) \
            .order_by(acct.c.update_time).limit(bindparam("limit"))
        self.marks = select(history.c.event_time, history.c.status, history.c.input_octets,
                            history.c.output_octets, history.c.flags).where(
            history.c.radacct_id == bindparam("id"))
        self.first_restart = select(func.min(history.c.event_time)).where(
            history.c.radacct_id == 0, history.c.nas_address == bindparam("nas"),
            history.c.status.in_(("on", "off")), history.c.event_time > bindparam("after"))
        self._seen_sql: dict[int, str] = {}
        # No RETURNING: SQLite can only keep its rows in parameter order one INSERT
        # at a time (10x slower); new rows' ids are read back by their unique_id.
        self.insert_sessions = insert(acct)
        self.session_ids = select(acct.c.unique_id, acct.c.id).where(acct.c.unique_id.in_(keys))
        self.update_sessions = update(acct).where(acct.c.id == bindparam("_id"))
        self.insert_history = insert(history)
        routing = RoutingRecord.__table__
        self.unroute = delete(routing).where(routing.c.radacct_id.in_(keys))
        self.route = self._upsert(routing, ["radacct_id"], replace=[
            c.name for c in routing.columns if c.name not in ("id", "radacct_id")])
        self.rollup = self._upsert(AcctRollup.__table__,
                                   ["grain", "bucket", "isp", "lease_id", "nas"], add=MEASURES)
        self.add_lease_octets = self._upsert(LeaseRollup.__table__,
                                             ["lease_id", "grain", "bucket"], add=["octets"])
        rollup = AcctRollup.__table__
        self.epoch = select(func.min(rollup.c.bucket)).where(rollup.c.grain == "5min")
        clock = AcctClock.__table__
        self.clocks = select(clock.c.nas, clock.c.newest, clock.c.restarted)
        self.set_clocks = self._upsert(clock, ["nas"], greatest=["newest"],
                                       replace=["restarted"])

    def seen(self, pairs: int) -> str:
        """Which of `pairs` (radacct_id, content_key) the history holds: one index probe a
        pair. (Row values IN (VALUES ...) scans the table on SQLite; an IN list per
        column probes every combination of the two.)"""
        text_ = self._seen_sql.get(pairs)
        if text_ is None:
            mark = "?" if self.dialect == "sqlite" else "%s"
            values = ", ".join([f"({mark}, {mark})"] * pairs)
            text_ = self._seen_sql[pairs] = (
                f"WITH wanted (radacct_id, content_key) AS (VALUES {values}) "
                "SELECT h.radacct_id, h.content_key FROM wanted JOIN acct_record h "
                "ON h.radacct_id = wanted.radacct_id AND h.content_key = wanted.content_key")
        return text_

    def _upsert(self, table: Table, keys: Sequence[str], *, add: Sequence[str] = (),
                greatest: Sequence[str] = (), replace: Sequence[str] = ()):
        """Insert; where the key exists already, add, take the larger, or replace."""
        statement = self._insert(table)
        new = statement.excluded
        changes = {name: table.c[name] + new[name] for name in add}
        changes.update({name: self._greatest(table.c[name], new[name]) for name in greatest})
        changes.update({name: new[name] for name in replace})
        return statement.on_conflict_do_update(index_elements=list(keys), set_=changes)


_SQL: dict[str, _Sql] = {}


def _sql(connection) -> _Sql:
    name = connection.dialect.name
    sql = _SQL.get(name)
    if sql is None:
        sql = _SQL[name] = _Sql(name)
    return sql


# --- the ledger: one transaction's worth of accounting --------------------------------

# Records that are not part of the session (history rows with these flags are no marks).
_NOT_APPLIED = frozenset({S.AFTER_STOP, S.OUT_OF_RANGE, S.REPEATED_START, IMPLAUSIBLE})
REAP_LIMIT = 5000  # sessions the reaper looks at per batch


class AccountingBatch:
    """One transaction's worth of accounting: applies records (and closures) to the
    sessions they belong to, then writes the sessions, history, routing records, rollups,
    gauges and events at once. Time is event time throughout: the NASes' clocks
    (`acct_clock`, vpop.accounting.clocks) decide what is stale and what a restart ends.
    """

    def __init__(self, session: Session, leases: LeaseIndex, *, settle: int = 300,
                 stale: int | None = 900, now: int | None = None, wall: float = 0.0,
                 realm_isp: Callable[[str], str | None] | None = None):
        self.connection = session.connection()
        self.sql = _sql(self.connection)
        self.leases = leases
        self.settle = settle
        self.wall = wall
        self.realm_isp = realm_isp
        self.states: dict[str, S.SessionState] = {}  # by unique_id, loaded or new
        self.original: dict[str, S.SessionState] = {}  # as loaded
        # A session whose Acct-Session-Id the NAS reused is retired: (unique_id, generation,
        # state). Generation 0 is the session as loaded; each reuse starts the next one.
        self.retired: list[tuple[str, int, S.SessionState]] = []
        self._generation: dict[str, int] = {}
        # (unique_id or "" for Accounting-On/Off, generation, record, content key, flags)
        self.history: list[tuple[str, int, AcctRecord, int, tuple[str, ...]]] = []
        self.rollup = RollupBatch()
        self.result = BatchResult()
        self._seen: set[tuple[int | str, int]] = set()
        self.clocks = NasClocks(
            ((nas, seconds(newest), seconds(restarted))
             for nas, newest, restarted in self._run(self.sql.clocks)), stale=stale, now=now)
        self.restarts: dict[str, list[int]] = collections.defaultdict(list)  # this batch's

    def _run(self, statement, parameters=None):
        return self.connection.execute(statement, parameters)

    # --- attribution ---

    def _assign(self, record: AcctRecord, start: int) -> S.Attribution:
        return attribute(record, start, self.leases, self.realm_isp)

    # --- input ---

    def _load(self, statement, parameters) -> None:
        for row in self._run(statement, parameters):
            state = _state(row)
            self.states.setdefault(state.unique_id, state)
            self.original.setdefault(state.unique_id, state)

    def _take(self, step: S.Step, record: AcctRecord | None = None) -> None:
        """`record`: the step applies it (counted in the bucket of its own event time)."""
        uid = step.after.unique_id
        if step.retire is not None:
            generation = self._generation.get(uid, 0)
            self.retired.append((uid, generation, step.retire))
            self._generation[uid] = generation + 1
        self.states[uid] = step.after
        self.rollup.add(step, record=record is not None,
                        at=record.event_time if record is not None else None)
        self.result.flags.update(step.flags)
        if step.online is not None and step.after.lease_id is not None:
            self.result.lease_onlines.append(step.after.lease_id)
        if step.offline is not None and step.before is not None and step.before.status == S.OPEN:
            if step.after.closed_by == S.BY_NAS:
                self.result.closed += 1
            elif step.after.closed_by == S.BY_REAPER:
                self.result.reaped += 1

    def records(self, records: Sequence[AcctRecord]) -> None:
        sql = self.sql
        keys = [content_key(r) for r in records]
        nas_events = [r.status in ("on", "off") for r in records]
        uids = sorted({r.unique_id for r, nas in zip(records, nas_events) if not nas})
        for chunk in _chunks(uids):
            self._load(sql.sessions_by_uid, {"keys": list(chunk)})
        nases = sorted({r.nas_address for r, nas in zip(records, nas_events) if nas})
        for chunk in _chunks(nases):
            self._load(sql.open_by_nas, {"keys": list(chunk)})
        if self.clocks.stale is not None:
            for record, nas in zip(records, nas_events):
                if nas:
                    self._load(sql.reaped_by_nas, {
                        "nas": record.nas_address, "until": when(record.event_time),
                        "since": when(record.event_time - self.clocks.stale)})
        # Retransmissions of records already stored: their sessions are stored too.
        stored = set()
        for record, key, nas in zip(records, keys, nas_events):
            state = None if nas else self.states.get(record.unique_id)
            if nas or state is not None:
                stored.add((0 if nas else state.id, key))
            else:
                stored.add((0, key))  # kept out as implausible before the session existed
        for chunk in _chunks(sorted(stored)):
            flat = tuple(value for pair in chunk for value in pair)
            for row in self.connection.exec_driver_sql(sql.seen(len(chunk)), flat):
                self._seen.add(tuple(row))
        for record, key, nas in zip(records, keys, nas_events):
            if nas:
                self._nas_restarted(record, key)
            else:
                self._record(record, key)

    def _duplicate(self, owner: int | str, key: int) -> bool:
        if (owner, key) in self._seen:
            self.result.duplicates += 1
            return True
        self._seen.add((owner, key))
        return False

    def _record(self, record: AcctRecord, key: int) -> None:
        state = self.states.get(record.unique_id)
        # A session new in this batch has no id yet: its records go by unique_id.
        owner = state.id if state is not None and state.id is not None else record.unique_id
        if self._duplicate(owner, key) or (state is None and (0, key) in self._seen):
            return
        if self.clocks.implausible(state, record):
            self._keep_out(state, record, key)
            return
        step = S.apply(state, record, self._assign, self._neighbours(state, record))
        self._take(step, record)
        self.history.append((record.unique_id, self._generation.get(record.unique_id, 0),
                             record, key, step.flags))
        self.result.stored += 1
        self.clocks.observe(record.nas_address, record.event_time)
        after = step.after
        if after.status == S.OPEN and (step.before is None or step.before.status == S.CLOSED):
            self._restarted_since(after)

    def _keep_out(self, state: S.SessionState | None, record: AcctRecord, key: int) -> None:
        """Stored in the history and counted as a flagged record, kept out of the session
        and every figure."""
        flags = S.merge_flags(record.flags, (IMPLAUSIBLE,))
        self._seen.add((0, key))
        cell = state or S.SessionState(
            unique_id=record.unique_id, session_id=record.session_id,
            username=record.username, nas_address=record.nas_address,
            start_time=record.event_time, update_time=record.event_time)
        at = (state.update_time if state is not None
              else self.clocks.newest(record.nas_address) or record.arrival)
        self.rollup.add(S.Step(before=state, after=cell, flags=flags), at=at)
        if state is not None:
            self.states[record.unique_id] = dataclasses.replace(
                state, flags=S.merge_flags(state.flags, (IMPLAUSIBLE,)))
            self.history.append((record.unique_id,
                                 self._generation.get(record.unique_id, 0), record, key, flags))
        else:
            self.history.append(("", 0, record, key, flags))
        self.result.flags.update(flags)
        self.result.stored += 1

    def _neighbours(self, state: S.SessionState | None, record: AcctRecord
                    ) -> S.Neighbours | None:
        """For a record older than its session's newest, or a Start after the session's
        first record: the records applied around it, from the history."""
        if state is None:
            return None
        t = record.event_time
        late_start = (record.status == "start" and S.NO_START in state.flags
                      and S.LATE_START not in state.flags)
        if not late_start and (record.status == "start" or t >= state.update_time):
            return None
        marks = S.totals(self._marks(state), wraps=not record.gigawords)
        if late_start:
            return S.Neighbours(None, marks[0] if marks else None)
        before = [m for m in marks if m.at <= t]
        after = [m for m in marks if m.at > t]
        return S.Neighbours(before[-1] if before else None, after[0] if after else None)

    def _marks(self, state: S.SessionState) -> list[S.Mark]:
        """The records applied to the session, in event-time order, with their counters
        as the NAS sent them."""
        rows = []
        if state.id is not None:
            rows = [(seconds(t), status, i, o, tuple(f for f in flags.split(",") if f))
                    for t, status, i, o, flags in self._run(self.sql.marks, {"id": state.id})]
        generation = self._generation.get(state.unique_id, 0)
        rows += [(r.event_time, r.status, r.input_octets, r.output_octets, flags)
                 for uid, gen, r, _, flags in self.history
                 if uid == state.unique_id and gen == generation]
        return [S.Mark(t, 0, 0) if status == "start" else S.Mark(t, i, o)
                for t, status, i, o, flags in sorted(rows, key=lambda row: row[0])
                if not _NOT_APPLIED.intersection(flags) and t >= state.start_time]

    def _restarted_since(self, state: S.SessionState) -> None:
        """A session that came (back) online as of a time its NAS has restarted since
        (the Accounting-On/Off came first): it ended with that restart, or was stale."""
        nas, u = state.nas_address, state.update_time
        later = [t for t in self.restarts.get(nas, ()) if t > u]
        stored = self.clocks.restarted(nas)
        if stored is not None and stored > u and not later:
            found = self._run(self.sql.first_restart, {"nas": nas, "after": when(u)}).scalar()
            if found is not None:
                later.append(seconds(found))
        if later:
            self._take(self.clocks.end_at_restart(state, min(later)))

    def _nas_restarted(self, record: AcctRecord, key: int) -> None:
        """RFC 2866 §5.1 Accounting-On/Off: the NAS's sessions from before are over."""
        if self._duplicate(0, key):
            return
        if self.clocks.implausible(None, record):
            self._keep_out(None, record, key)
            return
        t, nas = record.event_time, record.nas_address
        for state in list(self.states.values()):
            if state.nas_address != nas or state.update_time >= t:
                continue
            if state.status == S.OPEN:
                self._take(self.clocks.end_at_restart(state, t))
            elif self.clocks.reaped_but_restarted(state, t):
                self._take(S.unreap(state, t, NAS_REBOOT))
        self.restarts[nas].append(t)
        self.clocks.observe(nas, t, restart=True)
        self.history.append(("", 0, record, key, record.flags))
        self.result.flags.update(record.flags)
        self.result.stored += 1

    def reap(self) -> None:
        """Close the sessions that went stale by event time (vpop.accounting.clocks)."""
        before = self.clocks.stale_before()
        if before is None:
            return
        self._load(self.sql.stale, {"before": when(before), "limit": REAP_LIMIT})
        for state in list(self.states.values()):
            if self.clocks.is_stale(state):
                self._take(self.clocks.reap(state))

    # --- output ---

    def flush(self) -> BatchResult:
        """Reap what went stale, then write everything; time passes for the leases' events."""
        self.reap()
        ids = self._write_sessions()
        self._admin_reset(ids)
        self._write_history(ids)
        self._write_routing(ids)
        self._write_rollups()
        changes = net_changes(self.rollup.gauge_changes)
        final = gauges.apply_changes(self.connection, changes)
        utilization.add_lease_octets(self.connection, self.rollup.lease_octets,
                                     self.sql.add_lease_octets)
        now = self.clocks.now
        if len(self.leases) and now is not None:
            events = utilization.Events(
                self.connection, self.leases.by_id, now=now,
                epoch=seconds(self._run(self.sql.epoch).scalar()), settle=self.settle,
                wall=self.wall)
            events.sessions_changed({int(key): min(seconds_) for (kind, key), seconds_
                                     in changes.items() if kind == "lease"})
            touched = collections.defaultdict(list)
            for lease_id, b5 in self.rollup.lease_octets:
                touched[lease_id].append(b5)
            events.octets_changed(touched)
            events.time_passes({int(k): n for k, n in
                                gauges.levels(self.connection, "lease").items()})
        self._write_clocks()
        self.result.now = now
        self.result.lease_levels = {int(key): n for (kind, key), n in final.items()
                                    if kind == "lease"}
        return self.result

    def _admin_reset(self, ids: dict[tuple[str, int], int]) -> None:
        """A Stop without Acct-Terminate-Cause for a session whose NAS ACKed a
        Disconnect (hostapd sends none): the session was ended by an administrator,
        Admin-Reset (RFC 2866 §5.10). Only this batch's causeless Stops are looked at."""
        stopped = [ids[(uid, generation)] for uid, generation, state, before in self._sessions()
                   if state.closed_by == S.BY_STOP and state.terminate_cause is None
                   and (before is None or before.status == S.OPEN)
                   and (uid, generation) in ids]
        for chunk in _chunks(stopped):
            self._run(update(RadAcct).where(
                RadAcct.id.in_(chunk), RadAcct.terminate_cause.is_(None),
                RadAcct.dynauth_state.in_(DISCONNECTED)).values(terminate_cause=ADMIN_RESET))

    def _write_clocks(self) -> None:
        if self.clocks.moved:
            self._run(self.sql.set_clocks, [
                dict(nas=nas, newest=when(newest), restarted=when(restarted))
                for nas, newest, restarted in self.clocks.rows(self.clocks.moved)])

    def _sessions(self):
        """(unique_id, generation, state, as loaded or None) of every session touched."""
        for uid, generation, state in self.retired:
            yield uid, generation, state, self.original.get(uid) if generation == 0 else None
        for uid, state in self.states.items():
            generation = self._generation.get(uid, 0)
            yield uid, generation, state, self.original.get(uid) if generation == 0 else None

    def _write_sessions(self) -> dict[tuple[str, int], int]:
        """Row ids by (unique_id, generation). Updates go first: a retired session leaves
        its unique_id to the new one before that is inserted."""
        sql = self.sql
        retired = {(uid, generation) for uid, generation, _ in self.retired}
        ids: dict[tuple[str, int], int] = {}
        new: list[tuple[tuple[str, int], dict]] = []
        # Only what changed, grouped: an Interim-Update changes five columns, not thirty.
        groups: dict[tuple[str, ...], list[dict]] = collections.defaultdict(list)
        for uid, generation, state, before in self._sessions():
            key = (uid, generation)
            if state.id is None:
                row = _session_row(state)
                if key in retired:
                    row["unique_id"] = f"{uid}#{generation}:{state.start_time}"[:64]
                    row["flags"] = ",".join(S.merge_flags(state.flags, (S.ID_REUSED,)))[:255]
                new.append((key, row))
                continue
            ids[key] = state.id
            names = tuple(n for n in _STATE_FIELDS
                          if before is None or getattr(state, n) != getattr(before, n))
            row = _session_columns(state, names)
            if key in retired:
                row["unique_id"] = f"{uid}#{state.id}"[:64]
                row["flags"] = ",".join(S.merge_flags(state.flags, (S.ID_REUSED,)))[:255]
            if row:
                row["_id"] = state.id
                groups[tuple(sorted(row))].append(row)
        for rows in groups.values():
            self._run(sql.update_sessions, rows)
        if new:
            rows = [row for _, row in new]
            self._run(sql.insert_sessions, rows)
            found: dict[str, int] = {}
            for chunk in _chunks([row["unique_id"] for row in rows]):
                found.update(tuple(row) for row in self._run(sql.session_ids, {"keys": chunk}))
            for key, row in new:
                ids[key] = found[row["unique_id"]]
        return ids

    def _write_history(self, ids: dict[tuple[str, int], int]) -> None:
        rows = [dict(
            radacct_id=ids[(uid, generation)] if uid else 0, content_key=key,
            status=record.status, nas_address=record.nas_address,
            event_time=when(record.event_time), arrival=when(record.arrival),
            delay=record.delay, session_time=record.session_time,
            input_octets=record.input_octets, output_octets=record.output_octets,
            input_packets=record.input_packets, output_packets=record.output_packets,
            terminate_cause=record.terminate_cause, flags=",".join(flags)[:255])
            for uid, generation, record, key, flags in self.history]
        if rows:
            self._run(self.sql.insert_history, rows)

    def _write_routing(self, ids: dict[tuple[str, int], int]) -> None:
        finished, reopened = [], []
        for uid, generation, state, before in self._sessions():
            if state == before:
                continue
            row_id = ids[(uid, generation)]
            if state.status == S.CLOSED:
                finished.append(dict(
                    radacct_id=row_id, username=state.username, isp=state.isp,
                    route_mode=state.route_mode, route_reason=state.route_reason,
                    nas_address=state.nas_address, lease_id=state.lease_id,
                    start_time=when(state.start_time), stop_time=when(state.stop_time),
                    session_time=state.session_time, input_octets=state.input_octets,
                    output_octets=state.output_octets, closed_by=state.closed_by))
            elif before is not None and before.status == S.CLOSED:
                reopened.append(row_id)
        if reopened:
            self._run(self.sql.unroute, {"keys": reopened})
        if finished:
            self._run(self.sql.route, finished)

    def _write_rollups(self) -> None:
        rows = [dict(grain=grain, bucket=when(start), isp=isp, lease_id=lease_id, nas=nas,
                     **dict(zip(MEASURES, measures)))
                for (grain, start, isp, lease_id, nas), measures
                in sorted(self.rollup.cells.items())]
        if rows:
            self._run(self.sql.rollup, rows)

# --- entry points ---------------------------------------------------------------------

def apply_batch(session: Session, records: Sequence[AcctRecord], *,
                leases: LeaseIndex | None = None, settle: int = 300, stale: int | None = 900,
                now: int | None = None, wall: float = 0.0,
                realm_isp: Callable[[str], str | None] | None = None,
                locked: bool = False) -> BatchResult:
    """Apply records, idempotently: a record stored before is recognised by its content
    and skipped. Then reap what went stale and let time pass for the events. The caller
    commits."""
    if not locked:
        lock(session)
    batch = AccountingBatch(session, leases if leases is not None else load_leases(session),
                    settle=settle, stale=stale, now=now, wall=wall, realm_isp=realm_isp)
    batch.records(records)
    return batch.flush()


def tick(session: Session, *, now: int | None, leases: LeaseIndex, settle: int = 300,
         stale: int | None = 900, wall: float = 0.0, locked: bool = False) -> BatchResult:
    """Let event time `now` pass: reap sessions gone stale by it and let the utilization
    events see it."""
    if not locked:
        lock(session)
    return AccountingBatch(session, leases, settle=settle, stale=stale, now=now,
                           wall=wall).flush()


def event_clock(session: Session) -> int | None:
    """The newest event time applied from any NAS."""
    return seconds(session.scalar(select(func.max(AcctClock.newest))))
