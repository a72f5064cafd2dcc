"""Builders shared by the accounting tests: records as the NAS would send them, and
their way into the store."""

from __future__ import annotations

import datetime as dt
import hashlib

from vpop.accounting.records import AcctRecord
from vpop.accounting.routing import LOCAL, Routing
from vpop.store import accounting as store
from vpop.store.accounting_models import Lease, LeasePlace

NAS = "192.0.2.1"
T0 = 1_772_323_200  # 2026-03-01T00:00:00Z, a Sunday
H = 3600


def routed(isp: str | None, mode: str = "proxy", reason: str = "realm") -> Routing:
    return LOCAL if isp is None else Routing(isp=isp, mode=mode, reason=reason)


def rec(status: str, sid: str = "s1", t: int = T0, *, session_time: int = 0, octets_in: int = 0,
        octets_out: int = 0, nas: str = NAS, user: str = "alice", isp: str | None = None,
        port: int | None = 1, cause: str | None = None, stamp: int | None = None,
        **kw) -> AcctRecord:
    """An accounting record for session `sid` at event time `t`."""
    if status == "stop" and cause is None:
        cause = "User-Request"
    return AcctRecord(
        status=status, unique_id=hashlib.md5(f"{nas}\0{sid}\0{user}".encode()).hexdigest(),
        session_id=sid, username=user, nas_address=nas,
        nas_port=str(port) if port is not None else None, nas_port_number=port,
        calling_station_id="49301234567", framed_ip=None, event_time=t, arrival=t,
        session_time=session_time, input_octets=octets_in, output_octets=octets_out,
        terminate_cause=cause, routing=kw.pop("routing", routed(isp)),
        event_stamp=t if stamp is None else stamp, **kw)


def life(sid: str, start: int, stop: int, *, interval: int = 300, rate_in: int = 0,
         rate_out: int = 0, **kw) -> list[AcctRecord]:
    """Start, an Interim-Update every `interval` seconds, Stop: octets at constant rates
    (octets per second)."""
    records = [rec("start", sid, start, **kw)]
    t = start + interval
    while t < stop:
        n = t - start
        records.append(rec("interim", sid, t, session_time=n, octets_in=n * rate_in,
                           octets_out=n * rate_out, **kw))
        t += interval
    n = stop - start
    records.append(rec("stop", sid, stop, session_time=n, octets_in=n * rate_in,
                       octets_out=n * rate_out, **kw))
    return records


def scripted_day(isp: str = "isp-a") -> list[AcctRecord]:
    """A day of one ISP's traffic on one NAS, leased with LEASE_TERMS (times from T0):

    s1  01:00-05:00  1,000 octets/s in
    s2  02:00-03:00  idle
    s3  02:30-02:45  idle
    s4  04:00-04:20  20,000 octets/s in
    s5  (on another ISP, never counted against the lease) 02:00-02:10

    Sessions online for the lease: 1 from 01:00, 2 from 02:00, 3 from 02:30, 2 from 02:45,
    1 from 03:00, 2 from 04:00, 1 from 04:20, 0 from 05:00.
    """
    h = 3600
    records = (life("s1", T0 + 1 * h, T0 + 5 * h, rate_in=1000, isp=isp)
               + life("s2", T0 + 2 * h, T0 + 3 * h, isp=isp)
               + life("s3", T0 + 2 * h + 1800, T0 + 2 * h + 2700, isp=isp)
               + life("s4", T0 + 4 * h, T0 + 4 * h + 1200, rate_in=20_000, isp=isp)
               + life("s5", T0 + 2 * h, T0 + 2 * h + 600, isp="isp-b", port=2))
    return sorted(records, key=lambda r: (r.event_time, r.session_id))


# The lease of the scripted day: 2 sessions, under-used below 100 % for an hour, 80 kbit/s
# (3,000,000 octets in 5 minutes), 20,000,000 octets a month.
LEASE_TERMS = dict(name="isp-a-berlin", isp="isp-a", sessions=2, under_percent=100,
                   under_window=3600, bandwidth_kbps=80, volume_bytes=20_000_000)


# --- into the store ----------------------------------------------------------------------

def at(t: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc)


def apply(sessions, records, *, batch: int | None = None, leases=None, stale=900,
          realm_isp=None):
    total = store.BatchResult()
    batch = batch or max(1, len(records))
    for start in range(0, len(records), batch):
        with sessions.begin() as session:
            result = store.apply_batch(session, records[start:start + batch], leases=leases,
                                       stale=stale, realm_isp=realm_isp)
        total.stored += result.stored
        total.duplicates += result.duplicates
        total.closed += result.closed
        total.reaped += result.reaped
        total.flags.update(result.flags)
    return total


def tick(sessions, now, *, stale=900, leases=None):
    with sessions.begin() as session:
        return store.tick(session, now=now, stale=stale,
                          leases=leases if leases is not None else store.load_leases(session))


def add_lease(db, **terms):
    values = {**LEASE_TERMS, **terms}
    with db.begin() as session:
        lease = Lease(starts=at(T0 - 30 * 86_400), reject_message="full", **values)
        lease.places = [LeasePlace(nas=NAS)]
        session.add(lease)
        session.flush()
        return lease.id


def play_day(sessions, batch, ticks=()):
    with sessions() as session:
        leases = store.load_leases(session)
    records = scripted_day()
    done = 0
    for now in sorted(ticks) + [T0 + 24 * H]:
        upto = [r for r in records[done:] if r.event_time <= now]
        apply(sessions, upto, batch=batch, leases=leases)
        done += len(upto)
        tick(sessions, now, leases=leases)
