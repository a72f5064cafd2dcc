"""A made-up but plausible QoS history of one upstream server, for the demo (`vpop init
--demo`): what the QoS monitor would have stored over the past week, as BucketSummary
values that vpop/store/qos.py records like the monitor's own. Pure: the end time and
the random source are the caller's, so one seed gives one history.

The server answers most requests in tens of milliseconds, with a load that follows the
day, a few slow spells and one outage of twenty minutes three hours before the end
(timeouts, lost probes), so the directory and the charts show something to read.
"""

from __future__ import annotations

import datetime as dt
import math
import random

from vpop.isp.qos import Histogram, BucketSummary, bucket_start

SAMPLES = 40  # response times drawn per bucket; the counts are scaled to the requests


def _load(at: dt.datetime) -> float:
    """Requests a minute: low at night, high in the evening."""
    hour = at.hour + at.minute / 60
    return 30 + 90 * (1 + math.sin((hour - 10) / 24 * 2 * math.pi)) / 2


def _bucket(isp: str, server: str, start: dt.datetime, seconds: int, rng: random.Random,
            outage: tuple[dt.datetime, dt.datetime]) -> BucketSummary:
    minutes = seconds / 60
    requests = max(1, int(_load(start) * minutes * rng.uniform(0.8, 1.2)))
    down = outage[0] <= start < outage[1]
    slow = 1.0 if rng.random() > 0.03 else rng.uniform(2, 5)
    timeouts = int(requests * (rng.uniform(0.6, 0.9) if down else rng.uniform(0, 0.01)))
    answered = requests - timeouts
    rejects = int(answered * rng.uniform(0.03, 0.08))
    draws = [rng.lognormvariate(math.log(22 * slow), 0.45) for _ in range(SAMPLES)]
    counts: dict[int, int] = {}
    for index, count in Histogram.of(draws).bins:
        counts[index] = round(count * answered / SAMPLES)
    probes = int(minutes * 2) if down else 0  # Status-Server only while it was in doubt
    lost = int(probes * 0.8)
    return BucketSummary(
        isp=isp, server=server, start=start, seconds=seconds, probes=probes,
        probes_lost=lost, requests=requests, accepts=answered - rejects, rejects=rejects,
        timeouts=timeouts, invalid=0,
        rtt=Histogram.of([rng.uniform(1, 3)] * (probes - lost)) if probes - lost else Histogram(),
        response=Histogram.from_counts(counts))


def server_history(isp: str, server: str, *, end: dt.datetime, rng: random.Random,
                   days: int = 7) -> list[BucketSummary]:
    """Buckets as the monitor keeps them at `end` (vpop/isp/qos.py, LEVELS): a minute
    each for the last day, five minutes each for the days before."""
    finest = bucket_start(end, 60)
    day_ago = bucket_start(end - dt.timedelta(days=1), 300)
    outage_start = bucket_start(end - dt.timedelta(hours=3), 60)
    outage = (outage_start, outage_start + dt.timedelta(minutes=20))
    out = []
    at = bucket_start(end - dt.timedelta(days=days), 300)
    while at < day_ago:
        out.append(_bucket(isp, server, at, 300, rng, outage))
        at += dt.timedelta(minutes=5)
    while at < finest:
        out.append(_bucket(isp, server, at, 60, rng, outage))
        at += dt.timedelta(minutes=1)
    return out
