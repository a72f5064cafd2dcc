"""Builders shared by the accounting tests: records as the NAS would send them."""

from __future__ import annotations

import hashlib

from vpop.accounting.records import AcctRecord
from vpop.accounting.routing import LOCAL, Routing

NAS = "192.0.2.1"
T0 = 1_772_323_200  # 2026-03-01T00:00:00Z, a Sunday


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
