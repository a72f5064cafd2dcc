"""The ISP directory: every ISP with its measured quality over a chosen window (from the
QoS monitor's series, vpop/store/qos.py), its price and status, sortable on the server
(query parameters, so it works without scripts); a page per ISP with its quality over
time; for a subscriber, which ISPs can serve it.

An ISP can serve a subscriber's choice when the selection would take it now
(vpop/isp/selection.py, `unavailable`): not disabled or marked down, inside its
schedule, and with an RADIUS server available (proxy mode) or an LNS (tunnel mode).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import Blueprint, abort, jsonify, render_template, request
from flask_login import current_user

from vpop.isp.model import Isp
from vpop.isp.qos import BucketSummary, total
from vpop.isp.selection import IspHealth, policy_from_settings, session_cost, unavailable
from vpop.portal.app import db, now, state
from vpop.portal.security import role_required
from vpop.store.isp_snapshot import load_isps
from vpop.store.qos import latest_health, series

bp = Blueprint("directory", __name__, url_prefix="/isps")

# The windows a visitor can choose: (label, length, the chart's bucket size in seconds).
WINDOWS = {"1h": (dt.timedelta(hours=1), 60),
           "24h": (dt.timedelta(hours=24), 300),
           "7d": (dt.timedelta(days=7), 3600)}
DEFAULT_WINDOW = "24h"
SORT_KEYS = ("name", "mode", "status", "price", "availability", "success", "p50", "p99")


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectoryRow:
    isp: Isp
    cost: float  # the reference session's price (the selection score's)
    availability: float | None  # 0..1 over the window; None: nothing measured
    success: float | None
    p50_ms: float | None
    p99_ms: float | None
    requests: int
    unavailable: str  # why it cannot serve now; "" if it can


def window_arg() -> str:
    value = request.args.get("window", DEFAULT_WINDOW)
    return value if value in WINDOWS else DEFAULT_WINDOW


def directory_rows(session, settings, at: dt.datetime, window: str) -> list[DirectoryRow]:
    """Each ISP with its quality over the window (its servers' buckets summed)."""
    length, _ = WINDOWS[window]
    isps = load_isps(session)
    buckets: dict[str, list[BucketSummary]] = {}
    for bucket in series(session, since=at - length, until=at, resolution=WINDOWS[window][1]):
        buckets.setdefault(bucket.isp, []).append(bucket)
    health = latest_health(session, at)
    policy = policy_from_settings(settings.isp)
    rows = []
    for isp in isps:
        summed = total(buckets.get(isp.name, []))
        rows.append(DirectoryRow(
            isp=isp, cost=session_cost(isp, policy),
            availability=summed.availability if summed else None,
            success=summed.success_rate if summed else None,
            p50_ms=summed.response_ms(0.5) if summed else None,
            p99_ms=summed.response_ms(0.99) if summed else None,
            requests=summed.requests if summed else 0,
            unavailable=unavailable(isp, health, at)))
    return rows


def sort_rows(rows: list[DirectoryRow], key: str, descending: bool) -> list[DirectoryRow]:
    """Sorted by `key`; ISPs without a measurement come last in either order."""
    value = {"name": lambda r: r.isp.name, "mode": lambda r: r.isp.mode,
             "status": lambda r: r.isp.status, "price": lambda r: r.cost,
             "availability": lambda r: r.availability, "success": lambda r: r.success,
             "p50": lambda r: r.p50_ms, "p99": lambda r: r.p99_ms}[key]
    known = [row for row in rows if value(row) is not None]
    unknown = [row for row in rows if value(row) is None]
    known.sort(key=lambda r: (value(r), r.isp.name), reverse=descending)
    return known + sorted(unknown, key=lambda r: r.isp.name)


@bp.route("/")
@role_required("subscriber", "operator", "admin")
def index():
    window = window_arg()
    key = request.args.get("sort", "name")
    key = key if key in SORT_KEYS else "name"
    descending = request.args.get("order") == "desc"
    settings = state().settings
    rows = sort_rows(directory_rows(db(), settings, now(), window), key, descending)
    return render_template("directory/index.html", rows=rows, window=window,
                           windows=WINDOWS, sort=key, descending=descending,
                           sort_keys=SORT_KEYS, for_subscriber=current_user.role == "subscriber",
                           choice_rule="choice" in settings.isp.chain,
                           policy=policy_from_settings(settings.isp))


@bp.route("/<name>")
@role_required("subscriber", "operator", "admin")
def isp(name: str):
    window = window_arg()
    row = next((r for r in directory_rows(db(), state().settings, now(), window)
                if r.isp.name == name), None)
    if row is None:
        abort(404)
    return render_template("directory/isp.html", row=row, window=window, windows=WINDOWS,
                           policy=policy_from_settings(state().settings.isp))


@bp.route("/<name>/quality.json")
@role_required("subscriber", "operator", "admin")
def quality(name: str):
    """The chart's series: per bucket (start, epoch seconds) the availability and the
    success rate in percent and the median and 99th-percentile response time in ms,
    all the ISP's servers together; null where nothing was measured."""
    window = window_arg()
    if not any(isp.name == name for isp in load_isps(db())):
        abort(404)
    length, resolution = WINDOWS[window]
    at = now()
    by_start: dict[dt.datetime, list[BucketSummary]] = {}
    for bucket in series(db(), since=at - length, until=at, isp=name, resolution=resolution):
        by_start.setdefault(bucket.start, []).append(bucket)
    points = [(start, total(buckets)) for start, buckets in sorted(by_start.items())]

    def percent(value: float | None) -> float | None:
        return None if value is None else round(value * 100, 3)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 3)
    return jsonify({
        "isp": name, "window": window, "resolution": resolution,
        "time": [int(start.timestamp()) for start, _ in points],
        "availability": [percent(s.availability) for _, s in points],
        "success": [percent(s.success_rate) for _, s in points],
        "p50_ms": [ms(s.response_ms(0.5)) for _, s in points],
        "p99_ms": [ms(s.response_ms(0.99)) for _, s in points],
        "requests": [s.requests for _, s in points],
    })


def serving_choices(session, at: dt.datetime) -> tuple[list[Isp], dict[str, str]]:
    """The ISPs and, for each that cannot serve now, why (for the subscriber's choice)."""
    isps = list(load_isps(session))
    health: dict[str, IspHealth] = latest_health(session, at)
    return isps, {isp.name: why for isp in isps if (why := unavailable(isp, health, at))}
