"""The demo's history (`vpop init --demo`): the day of accounting before the moment of
the init, generated (vpop/accounting/daygen.py) for the demo's BRASes, ISPs and leases
and fed through the accounting ledger's own path (each record encoded as the NAS would
send it, read by record_from, stored by the Recorder), so sessions, rollups, gauges and
utilization events agree as they would for real traffic; and a week of QoS measurements
of each proxy-mode ISP's RADIUS servers (vpop/isp/qos_history.py), stored as the QoS
monitor stores its own. Deterministic for a given end time."""

from __future__ import annotations

import datetime as dt
import ipaddress
import random

from vpop.accounting import daygen
from vpop.accounting.records import record_from
from vpop.config import Settings
from vpop.isp.qos_history import server_history
from vpop.radius import codec
from vpop.radius.clients import NasClient
from vpop.server.wiring import load_dictionary
from vpop.server.writer import Recorder
from vpop.store.engine import make_engine, make_sessionmaker
from vpop.store.qos import record_buckets, servers_by_isp

SEED = 20261205
CHUNK = 1000  # records a transaction
REALMS = {"isp-local": "@isp-local.example", "isp-tunnel": "@isp-tunnel.example",
          "isp-proxy": "@isp-proxy.example"}
MODES = {"isp-local": "local", "isp-tunnel": "tunnel", "isp-proxy": "proxy"}
# The demo's BRASes as its leases name them (vpop/store/demo.toml), with their loads over
# the day in UTC: (from hh:mm, sessions online).
BRAS1, BRAS2 = "203.0.113.1", "203.0.113.2"
LOADS = {
    (BRAS1, 1, 150): ((0, 6), (6, 20), (9, 35), (17, 50), (19, 70), (22, 40), (23, 15)),
    (BRAS2, 1, 2000): ((0, 4), (7, 25), (12, 30), (18, 44), (23, 12)),
    (BRAS2, 2001, 2200): ((0, 3), (7, 10), (17, 16), (19, 24), (21, 14), (23, 5)),
}
OWN = {(BRAS1, 1, 150): ("isp-local", "isp-tunnel"), (BRAS2, 1, 2000): ("isp-tunnel", "isp-local"),
       (BRAS2, 2001, 2200): ("isp-proxy", "isp-tunnel")}


def _offsets(points: tuple[tuple[int, float], ...], day_start: int) -> tuple[tuple[str, float], ...]:
    """Loads at UTC hours as loads from offsets ("hh:mm") after day_start."""
    shift = day_start % 86_400
    moved = sorted(((h * 3600 - shift) % 86_400, level) for h, level in points)
    first = max(points, key=lambda p: (p[0] * 3600 <= shift, p[0] if p[0] * 3600 <= shift
                                       else -1))[1]
    out = [("00:00", first)]
    out += [(f"{offset // 3600:02d}:{offset % 3600 // 60:02d}", level)
            for offset, level in moved if offset]
    return tuple(out)


def demo_plan(end: dt.datetime) -> daygen.DayPlan:
    """The 24 hours up to `end` (to its 5 minutes)."""
    day_end = int(end.timestamp()) // 300 * 300
    day_start = day_end - 86_400
    pools = tuple(daygen.Pool(nas=nas, first=first, last=last,
                              load=_offsets(points, day_start),
                              routes=daygen.routes(OWN[(nas, first, last)][0],
                                                   other=OWN[(nas, first, last)][1], own=0.9))
                  for (nas, first, last), points in LOADS.items())
    return daygen.DayPlan(
        day_start=day_start, pools=pools, realms=REALMS, modes=MODES,
        nases=(daygen.Nas(address=BRAS1, ports=200, gigawords=True),
               daygen.Nas(address=BRAS2, ports=4000, gigawords=False)),
        users=("alice", "bob", "carol"), users_share=0.02)


def load_demo_history(settings: Settings, end: dt.datetime) -> tuple[int, int]:
    """(accounting records stored, QoS buckets stored)."""
    plan = demo_plan(end)
    records, _ = daygen.generate(plan, seed=SEED)
    dictionary = load_dictionary(settings)
    bras = NasClient(name="demo-bras", network=ipaddress.ip_network("203.0.113.0/24"),
                     secret=b"demo", nas_type="generic", require_message_authenticator="no")
    engine = make_engine(settings.database_url)
    try:
        sessions = make_sessionmaker(engine)
        wall = float(plan.day_end)
        recorder = Recorder(sessions, lambda callback: callback(), settings=settings.accounting,
                            wallclock=lambda: wall)
        recorder.refresh_leases()
        stored = 0
        for first in range(0, len(records), CHUNK):
            items = []
            for n, pairs in enumerate(records[first:first + CHUNK]):
                data = codec.encode_request(codec.ACCOUNTING_REQUEST, n % 256,
                                            dictionary.encode_pairs(pairs), bras.secret,
                                            message_authenticator=False)
                arrival = int(dict(pairs)["Event-Timestamp"])
                record = record_from(codec.decode(data), bras, arrival)
                if record is not None:
                    items.append((record, None, None))
            wall = float(items[-1][0].event_time) if items else wall
            stored += sum(recorder.commit(items))
        wall = float(plan.day_end)
        recorder.tick()
        buckets = 0
        with sessions.begin() as session:
            rng = random.Random(SEED)
            for isp, servers in sorted(servers_by_isp(session).items()):
                for server in servers:
                    buckets += record_buckets(session, server_history(isp, server, end=end,
                                                                      rng=rng))
        return stored, buckets
    finally:
        engine.dispose()
