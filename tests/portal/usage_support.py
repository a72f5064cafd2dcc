"""Accounting in the demo database for the portal's tests: sessions of two ISPs on their
leases (isp-local on 203.0.113.1, isp-proxy on ports 2001-4000 of 203.0.113.2), stored
through the ledger's own path (vpop.store.accounting.apply_batch)."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from vpop.accounting.records import AcctRecord
from vpop.accounting.routing import Routing
from vpop.store import accounting as store
from vpop.store.accounting_models import Lease, RadAcct
from vpop.store.engine import make_engine, make_sessionmaker

DAY = 1_781_481_600  # 2026-06-15T00:00:00Z, the day the portal tests' clock is in
# (ISP, NAS, NAS-Port, user): each ISP's sessions count against its lease there.
PLACES = {"isp-local": ("203.0.113.1", 7, "alice@isp-local.example"),
          "isp-proxy": ("203.0.113.2", 2500, "joe@isp-proxy.example")}


def record(status: str, isp: str, sid: str, t: int, elapsed: int) -> AcctRecord:
    nas, port, user = PLACES[isp]
    return AcctRecord(
        status=status, unique_id=hashlib.md5(f"{nas}\0{sid}\0{user}".encode()).hexdigest(),
        session_id=sid, username=user, nas_address=nas, nas_port=str(port),
        nas_port_number=port, calling_station_id="49301234567", framed_ip=None,
        event_time=t, arrival=t, event_stamp=t, session_time=elapsed,
        input_octets=elapsed * 5000, output_octets=elapsed * 500,
        terminate_cause="User-Request" if status == "stop" else None,
        routing=Routing(isp=isp, mode="local" if isp == "isp-local" else "proxy",
                        reason="realm"))


def session_records(isp: str, sid: str, start: int, stop: int | None) -> list[AcctRecord]:
    """Start, an interim every 5 minutes, Stop (none: still online at 11:55)."""
    end = stop if stop is not None else DAY + 11 * 3600 + 55 * 60
    out = [record("start", isp, sid, start, 0)]
    out += [record("interim", isp, sid, start + k, k) for k in range(300, end - start, 300)]
    if stop is not None:
        out.append(record("stop", isp, sid, stop, stop - start))
    return out


def add_accounting(url: str) -> dict[str, dict[str, int]]:
    """Two closed sessions and one online per ISP, this morning; returns per ISP its
    lease id and session ids (closed, online)."""
    records = []
    for isp in PLACES:
        records += session_records(isp, f"{isp}-1", DAY + 8 * 3600, DAY + 9 * 3600)
        records += session_records(isp, f"{isp}-2", DAY + 9 * 3600, DAY + 10 * 3600 + 1800)
        records += session_records(isp, f"{isp}-3", DAY + 10 * 3600, None)
    engine = make_engine(url)
    try:
        sessions = make_sessionmaker(engine)
        with sessions.begin() as session:
            store.apply_batch(session, sorted(records, key=lambda r: r.event_time),
                              leases=store.load_leases(session))
        with sessions() as session:
            found = {}
            for isp in PLACES:
                ids = dict(session.execute(select(RadAcct.status, RadAcct.id).where(
                    RadAcct.isp == isp).order_by(RadAcct.id)).all())
                found[isp] = dict(
                    lease=session.scalar(select(Lease.id).where(Lease.isp == isp)),
                    closed=ids["closed"], open=ids["open"])
        return found
    finally:
        engine.dispose()
