"""Authorize stages of the ISP-selection center: choose the ISP, then the route."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

from vpop.aaa.identify import caller_number, unknown_subscriber
from vpop.aaa.request import AccessContext
from vpop.accounting.routing import routing_from_classes
from vpop.isp.acct_forward import ForwardOrder, queued_attributes
from vpop.isp.realms import find_realm, upstream_name
from vpop.isp.selection import SelectionRequest, select_isp as choose
from vpop.pipeline.core import Rcode
from vpop.radius import attributes as A
from vpop.radius.codec import attribute

ROUTING_CLASS_PREFIX = b"vpop1;"


def select_isp(ctx: AccessContext, deps) -> Rcode:
    """Decide which ISP serves this session, and why (kept for the logs and accounting)."""
    if not deps.isps:
        return Rcode.NOOP
    account = ctx.account
    called = ctx.packet.first(A.CALLED_STATION_ID)
    number = ""
    if called is not None:
        number = caller_number(called.decode("utf-8", "replace"), deps.settings.identification)
    request = SelectionRequest(
        user_name=ctx.username, called_station_id=number,
        chosen_isp=getattr(account, "isp", None) if account else None,
        failover_allowed=bool(account and getattr(account, "isp_failover", False)))
    decision = choose(request, deps.isps, deps.isp_health(ctx.now),
                      now=dt.datetime.fromtimestamp(ctx.now, dt.timezone.utc),
                      policy=deps.selection_policy, rng=deps.rng)
    ctx.decision = decision
    ctx.isp = decision.isp.name if decision.isp is not None else None
    return Rcode.UPDATED


def route(ctx: AccessContext, deps) -> Rcode:
    """Proxy and tunnel sessions leave the local path here; local ones need a subscriber."""
    decision = ctx.decision
    isp = decision.isp if decision is not None else None
    if isp is None and decision is not None and not decision.available:
        return ctx.reject(decision.reason, "Service unavailable")
    if isp is None:
        ctx.route = "local"
        if ctx.account is None:
            return unknown_subscriber(ctx)
        return Rcode.OK
    if not decision.available:  # named by a rule, cannot serve, no failover allowed
        return ctx.reject(decision.reason, "Service unavailable")
    ctx.route = isp.mode
    if isp.mode == "proxy":
        return Rcode.HANDLED
    if isp.mode == "tunnel":
        ctx.method = "tunnel"
        return Rcode.HANDLED
    if ctx.account is None:
        return unknown_subscriber(ctx)
    return Rcode.OK


LOCAL_CLASS = attribute(A.CLASS, ROUTING_CLASS_PREFIX + b"isp=;mode=local;reason=")


_CLASSES: dict[tuple[str, str, str], bytes] = {}


def routing_class(ctx: AccessContext) -> bytes:
    """Class the NAS echoes in accounting (RFC 2865 §5.25): ties sessions to routing."""
    decision = ctx.decision
    if decision is None:
        return LOCAL_CLASS  # no ISPs configured: the common case, built once
    key = (ctx.isp or "", ctx.route or "local", decision.reason)
    encoded = _CLASSES.get(key)
    if encoded is None:  # few distinct values: ISPs times rules
        value = b"%sisp=%s;mode=%s;reason=%s" % (
            ROUTING_CLASS_PREFIX, quote(key[0], safe="").encode(), key[1].encode(),
            quote(key[2], safe="").encode())
        encoded = attribute(A.CLASS, value[:253])
        if len(_CLASSES) > 10_000:
            _CLASSES.clear()
        _CLASSES[key] = encoded
    return encoded


def accounting_owed(packet, record, deps, now: float) -> ForwardOrder | None:
    """Whether this accounting goes on to a proxy-mode ISP, and what to queue for it.

    The routing Class the NAS echoes says which ISP took the session; without one
    (a NAS that drops Class) the realm in User-Name decides, as it did for access.
    """
    if not deps.isps or record is None:
        return None
    routing = routing_from_classes(packet.attrs.get(A.CLASS, ()))
    realm = find_realm(record.username, deps.isps)
    if routing.isp:
        isp = next((i for i in deps.isps if i.name == routing.isp), None)
    else:
        isp = realm.isp if realm else None
    if isp is None or isp.mode != "proxy":
        return None
    user = realm.user if realm is not None and realm.isp is isp else record.username
    name = upstream_name(isp, record.username, user).encode()
    delay = packet.first(A.ACCT_DELAY_TIME)
    return ForwardOrder(isp=isp.name, session_key=record.unique_id,
                        attrs=queued_attributes(packet, name),
                        delay=int.from_bytes(delay, "big") if delay and len(delay) == 4 else 0,
                        received=now)
