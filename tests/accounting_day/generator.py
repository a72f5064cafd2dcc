"""One seeded UTC day of RADIUS accounting from four NASes, designed to be replayed
(made by the package's generator, vpop/accounting/daygen.py, from the plan below).

2026-03-02, NAS-IP-Address 192.0.2.11-14 with 60, 120, 200 and 400 ports; .11 and .13
send Gigawords, .12 and .14 do not (their heavy sessions wrap the 32-bit counters,
with interims after the wrap). Each NAS is cut into pools of ports, each with a load
over the day (sessions online) that new sessions follow; a session has a Start, an
Interim-Update every 300 s and a Stop, unless something cuts it short. What is
designed into the day (times UTC; `DESIGN` lists it for the tests):

* .12 reboots at 09:10 for 8 minutes (Accounting-On within the stale threshold: its
  sessions end at the Accounting-On), .14 at 15:40 for 25 minutes (beyond it: they
  were stale and end at their last record); users reconnect within minutes;
* stale sessions: interims stop, no Stop, while the NAS goes on reporting others;
* lease north-a goes over its sessions in the evening, north-c-ports from 17:00 to
  18:00; every lease with under_percent is under-used at night, south-b also at a
  dip 13:00-13:50 (recorded: longer than its window) and 16:00-16:15 (not: shorter);
  south-d's outage during the 15:40 reboot is shorter than its window;
* routing: a Class `vpop1;isp=...;mode=local;reason=test` on some sessions (a few of
  them with another ISP's realm in User-Name: the Class wins), a realm alone on others,
  neither on the rest (these count against the lease covering the NAS and port: on
  .13 before noon the whole-NAS lease west-c, after it the port lease north-c-ports);
* Acct-Delay-Time > 0 on some records (event time = Event-Timestamp - delay).

Every decision the figures hang on is kept at least a minute from its edge (no
session's last record within 60 s of the stale threshold before an Accounting-On, no
under-use within 60 s of its window); tests/accounting_day/test_generator.py checks it.

`arrival_order` makes the order a replay sends the records in: some records late by
up to 10 minutes of event time, a few consecutive interims of a session swapped, and
retransmissions (the same datagram again).
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from accounting_day.figures import Isp, Lease, Pairs, PortRange
from vpop.accounting import daygen
from vpop.accounting.daygen import (CAUSES, MAX_DELTA, Nas, Planned, Pool,  # noqa: F401
                                    Reboot, routes)

DAY_START = 1_772_409_600  # 2026-03-02T00:00:00Z, a Monday
DAY_END = DAY_START + 86_400
DATE = "2026-03-02"
INTERIM = 300  # seconds between Interim-Updates
SEED = 20260302
CLOSING_NAS = "192.0.2.250"  # leases nothing; its Accounting-On moves the clock past the day
CLOSING_AT = DAY_END + 7200


def at(clock: str, day: int = DAY_START) -> int:
    return daygen.at(clock, day)


NASES = (Nas(address="192.0.2.11", ports=60, gigawords=True),
         Nas(address="192.0.2.12", ports=120, gigawords=False),
         Nas(address="192.0.2.13", ports=200, gigawords=True),
         Nas(address="192.0.2.14", ports=400, gigawords=False))

ISPS = (Isp(name="isp-north", realms=("@north.example",)),
        Isp(name="isp-south", realms=("@south.example",)),
        Isp(name="isp-west", realms=("@west.example",)),
        Isp(name="isp-east", realms=("@east.example",)))
REALM = {isp.name: isp.realms[0] for isp in ISPS}


REBOOTS = (Reboot(nas="192.0.2.12", silent_from=at("09:10") + 17,
                  accounting_on=at("09:18") + 17),
           Reboot(nas="192.0.2.14", silent_from=at("15:40") + 41,
                  accounting_on=at("16:05") + 41))


POOLS = (
    Pool(nas="192.0.2.11", first=1, last=60,
         load=(("00:00", 2), ("06:00", 8), ("07:00", 14), ("17:00", 20), ("19:00", 36),
               ("20:30", 18), ("23:00", 10)),
         routes=routes("isp-north", other="isp-west", own=0.92)),
    Pool(nas="192.0.2.12", first=1, last=120,
         load=(("00:00", 3), ("06:30", 20), ("08:00", 30), ("13:00", 1), ("13:50", 32),
               ("16:00", 1), ("16:15", 34), ("20:00", 24), ("23:00", 14)),
         routes=routes("isp-south", other="isp-east")),
    Pool(nas="192.0.2.13", first=1, last=80,
         load=(("00:00", 2), ("06:30", 12), ("12:00", 14), ("17:00", 34), ("18:00", 12),
               ("23:00", 8)),
         routes=routes("isp-north", other="isp-west", own=0.88)),
    Pool(nas="192.0.2.13", first=81, last=200,
         load=(("00:00", 2), ("06:30", 20), ("09:00", 30), ("18:00", 24), ("23:00", 12)),
         routes=routes("isp-west", other="isp-north")),
    Pool(nas="192.0.2.14", first=1, last=200,
         load=(("00:00", 7), ("06:00", 34), ("09:00", 48), ("18:00", 42), ("23:00", 24)),
         routes=routes("isp-south", other="isp-west")),
    Pool(nas="192.0.2.14", first=201, last=300,
         load=(("00:00", 4), ("07:00", 18), ("18:00", 22), ("23:00", 10)),
         routes=routes("isp-east", other="isp-south")),
    Pool(nas="192.0.2.14", first=301, last=400,
         load=(("00:00", 3), ("07:00", 12), ("23:00", 6)),
         routes=((0.5, "isp-west", "class"), (0.5, None, "none"))),
)

LEASES = (
    Lease(name="north-a", isp="isp-north", nas=("192.0.2.11",), sessions=24,
          under_percent=25, under_window=3600, starts=DAY_START - 86_400),
    Lease(name="south-b", isp="isp-south", nas=("192.0.2.12",), sessions=40,
          under_percent=25, under_window=1800, starts=DAY_START - 86_400),
    Lease(name="west-c", isp="isp-west", nas=("192.0.2.13",), sessions=60,
          under_percent=10, under_window=3600, starts=DAY_START - 86_400),
    Lease(name="north-c-ports", isp="isp-north",
          ports=(PortRange(nas="192.0.2.13", first=1, last=80),), sessions=20,
          under_percent=25, under_window=1800, starts=at("12:00")),
    Lease(name="south-d", isp="isp-south",
          ports=(PortRange(nas="192.0.2.14", first=1, last=200),), sessions=60,
          under_percent=20, under_window=3600, starts=DAY_START - 86_400),
    Lease(name="east-d", isp="isp-east",
          ports=(PortRange(nas="192.0.2.14", first=201, last=300),), sessions=30,
          starts=DAY_START - 86_400),
)

# What the day is designed to show, for the tests that check the design holds.
DESIGN = {
    "over": {"north-a": ("19:00", "20:30"), "north-c-ports": ("17:00", "18:00")},
    "under": {"north-a": ["00:00"], "south-b": ["00:00", "13:00"], "west-c": ["00:00"],
              "south-d": ["00:00"], "north-c-ports": []},
    "short_under": {"south-b": ("16:00", "16:30"), "south-d": ("15:30", "16:30")},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Day:
    records: tuple[Pairs, ...]  # every Accounting-Request of the day, in event-time order
    sessions: tuple[Planned, ...]
    isps: tuple[Isp, ...] = ISPS
    leases: tuple[Lease, ...] = LEASES
    nases: tuple[Nas, ...] = NASES
    reboots: tuple[Reboot, ...] = REBOOTS
    seed: int = SEED

    def closing_record(self) -> Pairs:
        """An Accounting-On from a NAS that leases nothing, two hours after the day: it
        moves every NAS's clock past the threshold, so every session's end is decided."""
        return (("Acct-Status-Type", "Accounting-On"), ("NAS-IP-Address", CLOSING_NAS),
                ("Event-Timestamp", CLOSING_AT))

    def import_toml(self) -> str:
        """The ISPs and leases, for `vpop import`."""
        lines = []
        for isp in self.isps:
            realms = ", ".join(f'"{r}"' for r in isp.realms)
            lines += ["[[isp]]", f'name = "{isp.name}"', 'mode = "local"',
                      f"realms = [{realms}]", ""]
        for lease in self.leases:
            lines += ["[[lease]]", f'name = "{lease.name}"', f'isp = "{lease.isp}"']
            if lease.nas:
                lines.append("nas = [" + ", ".join(f'"{n}"' for n in lease.nas) + "]")
            if lease.ports:
                lines.append("ports = [" + ", ".join(
                    f'{{ nas = "{p.nas}", first = {p.first}, last = {p.last} }}'
                    for p in lease.ports) + "]")
            lines.append(f"sessions = {lease.sessions}")
            if lease.under_percent:
                lines += [f"under_percent = {lease.under_percent}",
                          f"under_window = {lease.under_window}"]
            starts = dt.datetime.fromtimestamp(lease.starts, dt.timezone.utc)
            lines += [f"starts = {starts.strftime('%Y-%m-%dT%H:%M:%SZ')}", ""]
        return "\n".join(lines)


PLAN = daygen.DayPlan(day_start=DAY_START, nases=NASES, pools=POOLS, realms=REALM,
                      reboots=REBOOTS, interim=INTERIM)


def generate_day(*, seed: int = SEED) -> Day:
    """The day: about 2,100 sessions and 36,000 records (the design is checked for SEED)."""
    records, planned = daygen.generate(PLAN, seed=seed)
    return Day(records=records, sessions=planned, seed=seed)


# --- arrival orders -------------------------------------------------------------------

def event_time(pairs: Pairs) -> int:
    attrs = dict(pairs)
    return int(attrs["Event-Timestamp"]) - int(attrs.get("Acct-Delay-Time", 0))


def session_key(pairs: Pairs) -> tuple | None:
    attrs = dict(pairs)
    if "Acct-Session-Id" not in attrs:
        return None
    return (attrs["NAS-IP-Address"], attrs["Acct-Session-Id"], attrs["User-Name"])


@dataclass(slots=True, kw_only=True)
class Arrival:
    """The order a replay sends records in, and what was done to make it."""
    records: list[Pairs]
    late: int = 0  # records sent late (up to `max_late` seconds of event time)
    swapped: int = 0  # pairs of consecutive interims sent the wrong way round
    repeated: int = 0  # retransmissions: a datagram sent again


def arrival_order(records: Sequence[Pairs], *, seed: int = SEED, late_share: float = 0.1,
                  max_late: int = 600, swaps: int = 30, repeat_share: float = 0.02,
                  repeat_within: int = 150) -> Arrival:
    """Records late by up to `max_late` seconds of event time (a session's own records
    still in order, but for `swaps` pairs of consecutive interims), and a share sent
    twice, the second time up to `repeat_within` records later. The first record is
    never late, so the first stored is the first of the day."""
    rng = random.Random(seed)
    times = [event_time(p) for p in records]
    keys = [t + (rng.randint(1, max_late) if n and rng.random() < late_share else 0)
            for n, t in enumerate(times)]
    late = sum(1 for k, t in zip(keys, times) if k != t)
    order = sorted(range(len(records)), key=lambda n: (keys[n], n))
    # A session's records keep their order: each takes the places its session holds.
    places: dict[tuple, list[int]] = defaultdict(list)
    for place, n in enumerate(order):
        key = session_key(records[n])
        if key is not None:
            places[key].append(place)
    for key, held in places.items():
        members = sorted(order[p] for p in held)
        for place, n in zip(held, members):
            order[place] = n
    # Some consecutive interims the wrong way round.
    interims: dict[tuple, list[int]] = defaultdict(list)
    for place, n in enumerate(order):
        if dict(records[n])["Acct-Status-Type"] == "Interim-Update":
            interims[session_key(records[n])].append(place)
    eligible = sorted(k for k, v in interims.items() if len(v) >= 2)
    swapped = 0
    for key in rng.sample(eligible, min(swaps, len(eligible))):
        held = interims[key]
        i = rng.randrange(len(held) - 1)
        a, b = held[i], held[i + 1]
        order[a], order[b] = order[b], order[a]
        swapped += 1
    sent = [records[n] for n in order]
    repeats = sorted(rng.sample(range(1, len(sent)), round(repeat_share * len(sent))),
                     reverse=True)
    for place in repeats:
        sent.insert(min(len(sent), place + rng.randint(1, repeat_within)), sent[place])
    return Arrival(records=sent, late=late, swapped=swapped, repeated=len(repeats))
