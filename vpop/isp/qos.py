"""QoS of upstream RADIUS servers: samples into time buckets, summaries, downsampling.

Pure: the shell feeds samples with its clock and writes the flushed buckets through
vpop/store/qos.py. Per server and bucket it counts

- Status-Server probes (RFC 5997) and the lost ones, with round-trip times;
- proxied requests by outcome: ``accept`` (Access-Accept or Access-Challenge),
  ``reject``, ``timeout`` (no answer within the response window) and ``invalid`` (an
  answer that failed verification: wrong secret, garbage), with response times.

A bucket's summary derives

- loss          = lost probes / probes
- success rate  = (accepts + rejects) / requests: a reject is a correct answer of a
                  working server; timeouts and invalid answers are failures
- availability  = valid answers / exchanges, probes and requests together
- p50/p95/p99   of round-trip and of response times, from log-scale histograms
                  (8 bins per octave: within 4.5 % of the exact value), which merge
                  exactly, so coarse buckets have true percentiles too.

Downsampling (``LEVELS``): 1-minute buckets are kept 1 day, then folded into
5-minute buckets kept 30 days, then into hourly ones kept a year.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from vpop.isp.selection import IspHealth

OUTCOMES = ("accept", "reject", "timeout", "invalid")
UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_FROZEN = dict(frozen=True, slots=True, kw_only=True)

# --- histograms ---------------------------------------------------------------------

BIN_BASE_MS = 0.1  # bin 0 holds everything up to 0.1 ms * 2^(1/8)
BINS_PER_OCTAVE = 8
MAX_BIN = 160  # 0.1 ms * 2^20 = 105 s; slower answers land in the last bin


def bin_of(ms: float) -> int:
    if ms <= BIN_BASE_MS:
        return 0
    return min(MAX_BIN, int(math.log2(ms / BIN_BASE_MS) * BINS_PER_OCTAVE))


def bin_value(index: int) -> float:
    """The geometric middle of a bin: within 2^(1/16) - 1 = 4.4 % of any value in it."""
    return BIN_BASE_MS * 2 ** ((index + 0.5) / BINS_PER_OCTAVE)


@dataclass(frozen=True, slots=True)
class Histogram:
    """Counts per log-scale bin, as sorted (bin, count) pairs."""

    bins: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, values_ms: Iterable[float]) -> Histogram:
        counts: dict[int, int] = {}
        for ms in values_ms:
            index = bin_of(ms)
            counts[index] = counts.get(index, 0) + 1
        return cls.from_counts(counts)

    @classmethod
    def from_counts(cls, counts: Mapping[int, int]) -> Histogram:
        return cls(tuple(sorted((b, c) for b, c in counts.items() if c)))

    @property
    def total(self) -> int:
        return sum(count for _, count in self.bins)

    def merge(self, other: Histogram) -> Histogram:
        counts = dict(self.bins)
        for index, count in other.bins:
            counts[index] = counts.get(index, 0) + count
        return Histogram.from_counts(counts)

    def percentile(self, q: float) -> float | None:
        """Nearest rank: the value below which a fraction ``q`` of the samples lie."""
        total = self.total
        if not total:
            return None
        rank = max(1, math.ceil(q * total))
        seen = 0
        for index, count in self.bins:
            seen += count
            if seen >= rank:
                return bin_value(index)
        return bin_value(self.bins[-1][0])

    def encode(self) -> str:
        return ",".join(f"{index}:{count}" for index, count in self.bins)

    @classmethod
    def decode(cls, text: str) -> Histogram:
        """The stored form; ValueError if it is not one."""
        counts: dict[int, int] = {}
        for item in filter(None, text.split(",")):
            index, _, count = item.partition(":")
            index_value, count_value = int(index), int(count)
            if not 0 <= index_value <= MAX_BIN or count_value < 0:
                raise ValueError(f"bad histogram entry {item!r}")
            counts[index_value] = counts.get(index_value, 0) + count_value
        return cls.from_counts(counts)


# --- bucket summaries ---------------------------------------------------------------

@dataclass(**_FROZEN)
class BucketSummary:
    isp: str
    server: str
    start: dt.datetime  # UTC, a multiple of ``seconds`` since the epoch
    seconds: int
    probes: int = 0
    probes_lost: int = 0
    requests: int = 0
    accepts: int = 0
    rejects: int = 0
    timeouts: int = 0
    invalid: int = 0
    rtt: Histogram = field(default_factory=Histogram)  # answered probes
    response: Histogram = field(default_factory=Histogram)  # answered requests

    @property
    def loss(self) -> float | None:
        return self.probes_lost / self.probes if self.probes else None

    @property
    def success_rate(self) -> float | None:
        return (self.accepts + self.rejects) / self.requests if self.requests else None

    @property
    def answered(self) -> int:
        """Valid answers to probes and requests."""
        return self.probes - self.probes_lost + self.accepts + self.rejects

    @property
    def exchanges(self) -> int:
        return self.probes + self.requests

    @property
    def availability(self) -> float | None:
        return self.answered / self.exchanges if self.exchanges else None

    def rtt_ms(self, q: float) -> float | None:
        return self.rtt.percentile(q)

    def response_ms(self, q: float) -> float | None:
        return self.response.percentile(q)

    def merge(self, other: BucketSummary, *, start: dt.datetime, seconds: int) -> BucketSummary:
        return replace(
            self, start=start, seconds=seconds,
            probes=self.probes + other.probes, probes_lost=self.probes_lost + other.probes_lost,
            requests=self.requests + other.requests, accepts=self.accepts + other.accepts,
            rejects=self.rejects + other.rejects, timeouts=self.timeouts + other.timeouts,
            invalid=self.invalid + other.invalid, rtt=self.rtt.merge(other.rtt),
            response=self.response.merge(other.response))


def bucket_start(at: dt.datetime | float, seconds: int) -> dt.datetime:
    """The start of the bucket of ``seconds`` holding ``at`` (epoch seconds or aware)."""
    epoch = at if isinstance(at, (int, float)) else (at - EPOCH).total_seconds()
    return EPOCH + dt.timedelta(seconds=math.floor(epoch / seconds) * seconds)


def fold(summaries: Iterable[BucketSummary], seconds: int) -> list[BucketSummary]:
    """Merge into buckets of ``seconds`` per ISP and server. A bucket already coarser
    keeps its own size, and finer ones inside it (late writes) join it. Sorted by ISP,
    server and start."""
    merged: dict[tuple[str, str, dt.datetime, int], BucketSummary] = {}
    sizes: list[int] = []  # of the buckets made so far, largest first
    for summary in sorted(summaries, key=lambda s: -s.seconds):
        size = max(seconds, summary.seconds)
        for coarser in sizes:
            if coarser <= size:
                break
            key = (summary.isp, summary.server, bucket_start(summary.start, coarser), coarser)
            if key in merged:
                size = coarser
                break
        start = bucket_start(summary.start, size)
        key = (summary.isp, summary.server, start, size)
        have = merged.get(key)
        merged[key] = (replace(summary, start=start, seconds=size) if have is None
                       else have.merge(summary, start=start, seconds=size))
        if size not in sizes:
            sizes.append(size)
    return [merged[key] for key in sorted(merged)]


def total(summaries: Iterable[BucketSummary]) -> BucketSummary | None:
    """Everything in one summary (start and size of the whole span); None if empty."""
    items = sorted(summaries, key=lambda s: s.start)
    if not items:
        return None
    start = items[0].start
    end = max(s.start + dt.timedelta(seconds=s.seconds) for s in items)
    seconds = int((end - start).total_seconds())
    result = replace(items[0], start=start, seconds=seconds)
    for item in items[1:]:
        result = result.merge(item, start=start, seconds=seconds)
    return result


# --- downsampling -------------------------------------------------------------------

@dataclass(**_FROZEN)
class Level:
    seconds: int  # bucket size
    keep: dt.timedelta  # how long buckets of this size are kept


LEVELS = (
    Level(seconds=60, keep=dt.timedelta(days=1)),
    Level(seconds=300, keep=dt.timedelta(days=30)),
    Level(seconds=3600, keep=dt.timedelta(days=365)),
)


def expiry(levels: Sequence[Level], index: int, now: dt.datetime) -> dt.datetime:
    """Buckets of ``levels[index]`` starting before this have expired: they are folded
    into the next level (or dropped after the last). Aligned to the next level's
    buckets, so each coarse bucket is folded from all of its parts at once."""
    level = levels[index]
    cut = now - level.keep
    if index + 1 < len(levels):
        return bucket_start(cut, levels[index + 1].seconds)
    return bucket_start(cut, level.seconds)


def check_levels(levels: Sequence[Level]) -> None:
    for finer, coarser in zip(levels, levels[1:]):
        if coarser.seconds % finer.seconds or coarser.keep <= finer.keep:
            raise ValueError("each level's buckets must hold whole buckets of the one before, "
                             "and be kept longer")


# --- accumulating samples -----------------------------------------------------------

@dataclass(slots=True)
class _Open:
    probes: int = 0
    probes_lost: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    rtt: dict[int, int] = field(default_factory=dict)
    response: dict[int, int] = field(default_factory=dict)


class QosRecorder:
    """Samples of one process, per ISP, server and bucket; ``flush`` hands over the
    buckets that are complete. Times are epoch seconds from the shell's clock."""

    def __init__(self, bucket_seconds: int = LEVELS[0].seconds):
        self.bucket_seconds = bucket_seconds
        self._open: dict[tuple[str, str, float], _Open] = {}

    def _bucket(self, isp: str, server: str, at: float) -> _Open:
        start = math.floor(at / self.bucket_seconds) * self.bucket_seconds
        key = (isp, server, start)
        bucket = self._open.get(key)
        if bucket is None:
            bucket = self._open[key] = _Open()
        return bucket

    def probe(self, isp: str, server: str, *, at: float, rtt_ms: float | None) -> None:
        """A Status-Server probe sent at ``at``: its round trip, or None if it was lost."""
        bucket = self._bucket(isp, server, at)
        bucket.probes += 1
        if rtt_ms is None:
            bucket.probes_lost += 1
        else:
            index = bin_of(rtt_ms)
            bucket.rtt[index] = bucket.rtt.get(index, 0) + 1

    def request(self, isp: str, server: str, *, at: float, outcome: str,
                response_ms: float | None = None) -> None:
        """A proxied request's outcome; ``response_ms`` for accepts and rejects."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
        bucket = self._bucket(isp, server, at)
        bucket.outcomes[outcome] = bucket.outcomes.get(outcome, 0) + 1
        if response_ms is not None and outcome in ("accept", "reject"):
            index = bin_of(response_ms)
            bucket.response[index] = bucket.response.get(index, 0) + 1

    def flush(self, now: float, *, everything: bool = False) -> list[BucketSummary]:
        """Summaries of the buckets that ended by ``now`` (all of them at shutdown)."""
        done = [key for key in self._open
                if everything or key[2] + self.bucket_seconds <= now]
        out = []
        for key in sorted(done):
            isp, server, start = key
            bucket = self._open.pop(key)
            get = bucket.outcomes.get
            out.append(BucketSummary(
                isp=isp, server=server, seconds=self.bucket_seconds,
                start=EPOCH + dt.timedelta(seconds=start),
                probes=bucket.probes, probes_lost=bucket.probes_lost,
                requests=sum(bucket.outcomes.values()), accepts=get("accept", 0),
                rejects=get("reject", 0), timeouts=get("timeout", 0),
                invalid=get("invalid", 0), rtt=Histogram.from_counts(bucket.rtt),
                response=Histogram.from_counts(bucket.response)))
        return out


# --- health for selection -----------------------------------------------------------

def server_answering(summaries: Sequence[BucketSummary]) -> bool | None:
    """Whether the server's latest bucket with exchanges had a valid answer; None if
    it had no exchanges at all (not measured: an idle backup is not dead)."""
    latest = max((s for s in summaries if s.exchanges), key=lambda s: s.start, default=None)
    return None if latest is None else latest.answered > 0


def isp_health(servers: Mapping[str, Sequence[str]],
               summaries: Iterable[BucketSummary]) -> dict[str, IspHealth]:
    """Per ISP (``servers``: ISP name -> its server names) from one window of buckets.

    available: a server answered in its latest bucket, or has not been measured;
    success rate and median response time of proxied requests (the median probe
    round trip when nothing was proxied); loss: unanswered exchanges of all kinds.
    """
    by_server: dict[str, list[BucketSummary]] = {}
    for summary in summaries:
        by_server.setdefault(summary.server, []).append(summary)
    health: dict[str, IspHealth] = {}
    for isp, names in servers.items():
        if not names:
            continue
        states = [server_answering(by_server.get(name, ())) for name in names]
        merged = total(s for name in names for s in by_server.get(name, ()))
        if merged is None:
            health[isp] = IspHealth()
            continue
        p50 = merged.response_ms(0.5)
        if p50 is None:
            p50 = merged.rtt_ms(0.5)
        success = merged.success_rate
        availability = merged.availability
        health[isp] = IspHealth(
            available=any(state is not False for state in states),
            success_rate=1.0 if success is None else success, p50_ms=p50,
            loss=0.0 if availability is None else 1.0 - availability)
    return health
