"""A generated day of RADIUS accounting: NASes cut into pools of ports, each with a load
over the day (sessions online) that new sessions follow; a session has a Start, an
Interim-Update every `interim` seconds and a Stop, unless its NAS reboots or its
records just stop (stale). Pure: the plan, the day and the seed are the caller's, so
one seed gives one day. The records are (attribute, value) pairs in event-time order.

The accounting tests design a day with it (tests/accounting_day/generator.py) and
replay it; `vpop init --demo` loads a day of it through the accounting ledger's own
path (vpop/store/demo_history.py), so the demo's reports and charts have history.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

Pairs = Sequence[tuple[str, object]]
MAX_DELTA = 1_900_000_000  # octets between two records at most: below 2^31, so a wrap is a
                           # drop of more than half the range (as vpop recognises one)
CAUSES = ("User-Request", "Idle-Timeout", "Lost-Carrier", "Session-Timeout", "Port-Error")
MEAN_DURATION = 6600.0  # seconds a user stays, on average, unless the load drops
SPREAD = 1.0  # sigma of the log of a duration
STALE_SHARE = 0.015


def at(clock: str, day: int) -> int:
    """The epoch second of "hh:mm" on the day starting at `day`."""
    hours, minutes = clock.split(":")
    return day + int(hours) * 3600 + int(minutes) * 60


@dataclass(frozen=True, slots=True, kw_only=True)
class Nas:
    address: str  # IPv4: its last octet names its sessions
    ports: int
    gigawords: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Reboot:
    nas: str
    silent_from: int  # no record from the NAS in [silent_from, accounting_on)
    accounting_on: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Pool:
    """Ports of a NAS with one load over the day and one mix of routing."""
    nas: str
    first: int
    last: int
    load: tuple[tuple[str, float], ...]  # (from hh:mm, sessions online) until the next
    routes: tuple[tuple[float, str | None, str], ...]  # (weight, ISP, class|realm|none)


def routes(isp: str, *, other: str, own: float = 0.85) -> tuple[tuple[float, str | None, str], ...]:
    """Mostly the pool's own ISP by Class, realm or neither; some another ISP's."""
    return ((own * 0.40, isp, "class"), (own * 0.30, isp, "realm"), (own * 0.30, None, "none"),
            ((1 - own) * 0.6, other, "class"), ((1 - own) * 0.4, other, "realm"))


@dataclass(frozen=True, slots=True, kw_only=True)
class DayPlan:
    day_start: int  # epoch seconds of the day's first second
    nases: tuple[Nas, ...]
    pools: tuple[Pool, ...]
    realms: dict[str, str]  # ISP -> its realm ("@north.example")
    reboots: tuple[Reboot, ...] = ()
    interim: int = 300
    modes: dict[str, str] = field(default_factory=dict)  # ISP -> mode in its Class (local)
    # Known users: this share of new sessions is one of them, by name without realm
    # (the demo's subscribers); the rest are made-up names.
    users: tuple[str, ...] = ()
    users_share: float = 0.0

    @property
    def day_end(self) -> int:
        return self.day_start + 86_400


@dataclass(slots=True, kw_only=True)
class Planned:
    """A session as the generator plans it, before it becomes records."""
    nas: Nas
    pool: Pool
    session_id: str
    user: str
    port: int
    routed_isp: str | None  # the Class's ISP, None without a Class
    start: int
    end: int  # when the user leaves (planned)
    cut_at: int | None = None  # the NAS went silent then: no Stop, no record from then on
    stale_after: int | None = None  # the last record's time when its records just stop
    out_rate: float = 0.0  # octets per second
    in_rate: float = 0.0
    cause: str = "User-Request"


def generate(plan: DayPlan, *, seed: int) -> tuple[tuple[Pairs, ...], tuple[Planned, ...]]:
    """(every Accounting-Request of the day in event-time order, the sessions planned).
    Sessions still going at the day's end have no Stop: they are in progress."""
    rng = random.Random(seed)
    planned: list[Planned] = []
    counters: dict[str, int] = defaultdict(int)
    for pool in plan.pools:
        planned += _pool_sessions(plan, pool, rng, counters)
    _make_stale(plan, planned, rng)
    records = []
    for s in planned:
        records += _records(plan, s, rng)
    for reboot in plan.reboots:
        records.append((reboot.accounting_on, 0, reboot.nas, "",
                        (("Acct-Status-Type", "Accounting-On"), ("NAS-IP-Address", reboot.nas),
                         ("Event-Timestamp", reboot.accounting_on))))
    records.sort(key=lambda r: r[:4])
    return tuple(r[4] for r in records), tuple(planned)


def _target(plan: DayPlan, pool: Pool, t: int) -> float:
    level = 0.0
    for clock, value in pool.load:
        if at(clock, plan.day_start) <= t:
            level = value
    return level


def _pool_sessions(plan: DayPlan, pool: Pool, rng: random.Random,
                   counters: dict[str, int]) -> list[Planned]:
    """Sessions that keep the pool near its load, minute by minute: new users at the rate
    that holds the load (and more when below it), users sent away when well above it."""
    nas = next(n for n in plan.nases if n.address == pool.nas)
    reboot = next((r for r in plan.reboots if r.nas == pool.nas), None)
    online: list[Planned] = []
    made: list[Planned] = []
    cut = 0
    for minute in range(1440):
        t = plan.day_start + 60 * minute
        online = [s for s in online if s.end > t]
        if reboot and t < reboot.accounting_on and t + 60 > reboot.silent_from:
            if online:  # the NAS goes silent: its sessions just stop reporting
                going = [s for s in online if s.end >= reboot.silent_from]
                for s in going:
                    s.cut_at = reboot.silent_from
                cut, online = len(going), []
            continue  # no new sessions until the minute after the Accounting-On
        if reboot and cut and t >= reboot.accounting_on:
            for _ in range(round(0.8 * cut)):  # most users come back within minutes
                start = reboot.accounting_on + 5 + rng.randrange(360)
                online.append(_arrive(plan, nas, pool, online, start, rng, counters, made))
            cut = 0
        target = _target(plan, pool, t)
        arrivals = _poisson(rng, target * 60 / MEAN_DURATION)
        if len(online) < 0.9 * target:
            arrivals += round((target - len(online)) / 4)
        if len(online) > 1.1 * target + 1:
            for s in rng.sample(online, math.ceil((len(online) - target) / 4)):
                s.end = max(s.start + 30, t + rng.randrange(60))
                s.cause = rng.choice(("User-Request", "Idle-Timeout"))
        for _ in range(arrivals):
            if len(online) > pool.last - pool.first:
                break  # every port busy
            online.append(_arrive(plan, nas, pool, online, t + rng.randrange(60), rng,
                                  counters, made))
    return made


def _arrive(plan: DayPlan, nas: Nas, pool: Pool, online: list[Planned], start: int,
            rng: random.Random, counters: dict[str, int], made: list[Planned]) -> Planned:
    busy = {s.port for s in online}
    port = rng.choice([p for p in range(pool.first, pool.last + 1) if p not in busy])
    s = _new_session(plan, nas, pool, port, start, rng, counters)
    made.append(s)
    return s


def _new_session(plan: DayPlan, nas: Nas, pool: Pool, port: int, start: int,
                 rng: random.Random, counters: dict[str, int]) -> Planned:
    counters[nas.address] += 1
    number = counters[nas.address]
    session_id = f"{int(nas.address.rsplit('.', 1)[1]):02X}{number:06X}"
    weights = [w for w, _, _ in pool.routes]
    _, isp, kind = rng.choices(pool.routes, weights)[0]
    user = f"u{rng.randrange(100_000):05d}"
    if plan.users_share and rng.random() < plan.users_share:
        user = rng.choice(plan.users)
    routed_isp = None
    if kind == "class":
        routed_isp = isp
        pick = rng.random()
        if pick < 0.4:
            user += plan.realms[isp]
        elif pick < 0.5:  # another ISP's realm: the Class decides
            user += plan.realms[rng.choice([name for name in plan.realms if name != isp])]
    elif kind == "realm":
        user += plan.realms[isp]
    elif rng.random() < 0.15:
        user += "@elsewhere.example"  # a realm of no ISP: counts as neither
    mu = math.log(MEAN_DURATION) - SPREAD ** 2 / 2  # so that the mean is MEAN_DURATION
    duration = int(min(8 * 3600, max(60, rng.lognormvariate(mu, SPREAD))))
    heavy = rng.random() < 0.08
    out_rate = rng.uniform(1.5e6, 3.5e6) if heavy else rng.lognormvariate(math.log(40_000), 1.2)
    return Planned(nas=nas, pool=pool, session_id=session_id, user=user, port=port,
                   routed_isp=routed_isp, start=start, end=start + duration,
                   out_rate=out_rate, in_rate=out_rate / rng.uniform(4, 12),
                   cause=rng.choice(CAUSES))


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _make_stale(plan: DayPlan, planned: list[Planned], rng: random.Random) -> None:
    """Some sessions' records just stop after an interim, while their NAS goes on: well
    away from a reboot of their NAS and from the end of the day."""
    interim = plan.interim
    candidates = []
    for s in planned:
        if s.cut_at is not None or s.end >= plan.day_end or s.end - s.start < 4 * interim:
            continue
        candidates.append(s)
    for s in rng.sample(candidates, round(STALE_SHARE * len(planned))):
        interims = (s.end - s.start - 1) // interim
        last = s.start + interim * rng.randint(1, interims - 1)
        reboot = next((r for r in plan.reboots if r.nas == s.nas.address), None)
        if reboot and reboot.silent_from - 3600 < last < reboot.accounting_on + 3600:
            continue
        if last + 3600 > plan.day_end:
            continue
        s.stale_after = last


def _records(plan: DayPlan, s: Planned, rng: random.Random) -> list[tuple]:
    """(event time, order, NAS, session id, pairs) for each record of a session."""
    stop = None
    if s.cut_at is not None:
        until = s.cut_at - 1
    elif s.stale_after is not None:
        until = s.stale_after
    elif s.end >= plan.day_end:
        until = plan.day_end - 1
    else:
        until = s.end - 1
        stop = s.end
    times = [s.start]
    t = s.start + plan.interim
    while t <= until:
        times.append(t)
        t += plan.interim
    if stop is not None:
        times.append(stop)
    common = [("NAS-IP-Address", s.nas.address), ("NAS-Port", s.port),
              ("Acct-Session-Id", s.session_id), ("User-Name", s.user)]
    if s.routed_isp is not None:
        mode = plan.modes.get(s.routed_isp, "local")
        common.append(("Class", f"vpop1;isp={s.routed_isp};mode={mode};reason=test"))
    out = []
    octets = {"Input": 0, "Output": 0}
    for n, t in enumerate(times):
        status = "Start" if n == 0 else ("Stop" if t == stop else "Interim-Update")
        pairs = [("Acct-Status-Type", status), *common]
        pick = rng.random()
        delay = rng.randint(1, 45) if pick < 0.08 else 0
        pairs.append(("Event-Timestamp", t + delay))
        if pick < 0.12:
            pairs.append(("Acct-Delay-Time", delay))
        if n:
            pairs.append(("Acct-Session-Time", t - s.start))
            for kind, rate in (("Input", s.in_rate), ("Output", s.out_rate)):
                step = int(rate * (t - times[n - 1]) * rng.uniform(0.4, 1.6))
                octets[kind] += min(step, MAX_DELTA)
                pairs.append((f"Acct-{kind}-Octets", octets[kind] % (1 << 32)))
                if s.nas.gigawords:
                    pairs.append((f"Acct-{kind}-Gigawords", octets[kind] >> 32))
        if status == "Stop":
            pairs.append(("Acct-Terminate-Cause", s.cause))
        out.append((t, 1 + ("Start", "Interim-Update", "Stop").index(status), s.nas.address,
                    s.session_id, tuple(pairs)))
    return out
