"""Figures that do not depend on how records arrive: a busy stretch of accounting applied
in event-time order, and again shuffled within the lateness bound and cut into random
batches, leaves the same sessions, rollups, levels, peaks and events."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select, text

from acct_support import H, NAS, T0, add_lease, apply, rec, tick
from vpop.store import accounting as store
from vpop.store.accounting_models import (AcctGauge, AcctGaugeSecond, AcctPeak, AcctRollup,
                                          LeaseRollup, RadAcct, UtilizationEvent)
from vpop.store.engine import make_sessionmaker
from vpop.store.models import Base

OTHER = "192.0.2.2"
LATENESS = 600  # records move later by up to this much event time


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


def session_records(rng: random.Random, sid: str, nas: str, start: int, end: int, *,
                    stop: bool, isp: str | None, gigawords: bool) -> list:
    """Start, interims every 300 s with counters growing at a random rate, and a Stop
    (or none: the session goes silent at `end`)."""
    rate = rng.choice([0, 1_000, 200_000, 3_000_000])
    kw = dict(nas=nas, isp=isp, port=rng.randrange(1, 40), user=f"u-{sid}")
    records = [rec("start", sid, start, **kw)]
    t = start + 300
    while t < end:
        n = rate * (t - start)
        records.append(rec("interim", sid, t, session_time=t - start,
                           octets_in=n if gigawords else n % (1 << 32),
                           octets_out=n // 7, gigawords=gigawords, **kw))
        t += 300
    if stop:
        n = rate * (end - start)
        records.append(rec("stop", sid, end, session_time=end - start,
                           octets_in=n if gigawords else n % (1 << 32), octets_out=n // 7,
                           gigawords=gigawords, **kw))
    return records


def busy_stretch(seed: int) -> list:
    rng = random.Random(seed)
    records = []
    for n in range(60):
        nas = rng.choice([NAS, NAS, OTHER])
        start = T0 + rng.randrange(0, 5 * H)
        end = start + rng.randrange(30, 2 * H)
        records += session_records(rng, f"s{n}", nas, start, end, stop=rng.random() > 0.15,
                                   isp=rng.choice(["isp-a", None]), gigawords=nas == OTHER)
    # OTHER goes down at 02:53 and restarts at 03:00: its sessions open then send nothing
    # more (they end at the restart, or were stale before it)
    down, up = T0 + 3 * H - 400, T0 + 3 * H
    began = {r.session_id: r.event_time for r in records if r.status == "start"}
    records = [r for r in records if not (
        r.nas_address == OTHER and r.event_time > down
        and (r.event_time < up + 60 or began[r.session_id] < up))]
    records.append(rec("on", "", T0 + 3 * H, nas=OTHER, user="", cause=None))
    return sorted(records, key=lambda r: (r.event_time, r.status != "on"))


def shuffled(records: list, rng: random.Random) -> list:
    """Each record moved later by up to LATENESS seconds of event time."""
    keyed = [(r.event_time + rng.randrange(LATENESS), n, r) for n, r in enumerate(records)]
    return [r for _, _, r in sorted(keyed)]


def figures(sessions) -> dict:
    def rows(model, *skip):
        with sessions() as session:
            found = session.scalars(select(model)).all()
            return sorted(tuple((c.name, getattr(r, c.key)) for c in model.__mapper__.columns
                                if c.name not in skip) for r in found)
    return {
        "radacct": rows(RadAcct, "id", "flags", "unique_id"),
        "acct_rollup": rows(AcctRollup, "flagged"),
        "acct_gauge": rows(AcctGauge),
        "acct_gauge_second": rows(AcctGaugeSecond),
        "acct_peak": rows(AcctPeak),
        "lease_rollup": rows(LeaseRollup),
        "utilization_event": rows(UtilizationEvent, "id", "recorded_at"),
    }


def play(sessions, records, batches: list[int]) -> dict:
    add_lease(sessions, sessions=4, under_percent=50, under_window=1800,
              bandwidth_kbps=20_000, volume_bytes=10 ** 12)
    with sessions() as session:
        leases = store.load_leases(session)
    done = 0
    for size in batches:
        apply(sessions, records[done:done + size], leases=leases)
        done += size
    apply(sessions, records[done:], leases=leases)
    tick(sessions, T0 + 12 * H, leases=leases)  # every end decided, the same for both
    return figures(sessions)


def wipe(sessions) -> None:
    """Empty every table, ids starting again from 1."""
    with sessions.begin() as session:
        if session.connection().dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                session.execute(table.delete())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shuffled_within_the_bound_and_batched_anyhow_the_figures_are_the_same(sessions, seed):
    expected = play(sessions, busy_stretch(seed), [])
    wipe(sessions)
    rng = random.Random(seed * 101)
    records = shuffled(busy_stretch(seed), rng)
    batches = [rng.choice([1, 3, 20, 150]) for _ in range(len(records) // 10)]
    got = play(sessions, records, batches)
    assert expected["utilization_event"], "the stretch should make events"
    for table in expected:
        missing = [r for r in expected[table] if r not in got[table]]
        extra = [r for r in got[table] if r not in expected[table]]
        assert not missing and not extra, (table, missing[:3], extra[:3])
