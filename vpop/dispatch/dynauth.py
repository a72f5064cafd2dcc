"""The CoA-Request and Disconnect-Request sections (RFC 5176).

From a NAS: vpop is no NAS, so the answer is NAK with Error-Cause 405 (Unsupported
Service, RFC 5176 §3.5). From an ISP's dynamic-authorization client: the relay section
(RFC 5176 §3.1, vpop/dynauth/relay.py) reads which session the ISP names, looks it up
among that ISP's open sessions off the event loop (DEFER: `deps.relay_lookup` reads the
store), and ends with a RelayJob for the shell: the request for the session's NAS, or
the refusal vpop answers itself. Either way the shell audits it and hands the result
back for the answer to the ISP.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from vpop.dynauth.relay import (MISSING_ATTRIBUTE, NOT_ROUTABLE, SESSION_NOT_FOUND, IspPeer,
                                SessionQuery, read_query, refusal, relayed_request)
from vpop.dynauth.request import DynAuthRequest, SessionFacts
from vpop.dynauth.result import Result
from vpop.dynauth.session import Endpoint
from vpop.errors import ConfigError
from vpop.pipeline.core import Rcode, run_section
from vpop.radius import attributes as A
from vpop.radius.clients import NasClient
from vpop.radius.codec import COA_NAK, COA_REQUEST, DISCONNECT_NAK, Packet, attribute

UNSUPPORTED_SERVICE = 405
PROXY_PROCESSING_ERROR = 505


@dataclass(slots=True)
class DynAuthContext:
    packet: Packet
    client: NasClient | IspPeer
    now: float
    reply_code: int = 0
    reply_attrs: list[bytes] = field(default_factory=list)
    reason: str = ""
    # the relay's
    query: SessionQuery | None = None
    deferred: Any = None
    deferred_result: Any = None
    job: "RelayJob | None" = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayJob:
    """What the shell does for a relayed request: send `request` to `endpoint` (vpop's
    own request for the session's NAS), or, with `refused`, nothing but the audit."""

    peer: IspPeer
    kind: str  # disconnect | coa
    asked: str  # what the ISP named, `Name = value` lines
    facts: SessionFacts | None = None
    request: DynAuthRequest | None = None
    endpoint: Endpoint | None = None
    refused: Result | None = None


def not_supported(ctx: DynAuthContext, deps) -> Rcode:
    ctx.reply_code = COA_NAK if ctx.packet.code == COA_REQUEST else DISCONNECT_NAK
    ctx.reply_attrs.append(attribute(A.ERROR_CAUSE, UNSUPPORTED_SERVICE.to_bytes(4, "big")))
    ctx.reason = "not supported"
    return Rcode.HANDLED


DYNAMIC_AUTHORIZATION = [not_supported]


def process_dynauth(ctx: DynAuthContext, deps) -> None:
    run_section(DYNAMIC_AUTHORIZATION, ctx, deps)


# --- the relay of an ISP's requests ---------------------------------------------------

def _kind(ctx: DynAuthContext) -> str:
    return "coa" if ctx.packet.code == COA_REQUEST else "disconnect"


def _refuse(ctx: DynAuthContext, cause: int, reason: str, facts=None) -> Rcode:
    ctx.reason = reason
    ctx.job = RelayJob(peer=ctx.client, kind=_kind(ctx), asked=_asked(ctx), facts=facts,
                       refused=refusal(cause, reason))
    return Rcode.HANDLED


def _asked(ctx: DynAuthContext) -> str:
    return ctx.query.describe() if ctx.query is not None else ""


def read_session_query(ctx: DynAuthContext, deps) -> Rcode:
    """Which session the ISP names; it must name one (RFC 5176 §3: a NAS would answer
    Missing-Attribute too)."""
    ctx.query = read_query(ctx.packet, ctx.client.isp)
    if not ctx.query.names_a_session:
        return _refuse(ctx, MISSING_ATTRIBUTE, "no attribute that names a session")
    return Rcode.OK


def find_session(ctx: DynAuthContext, deps) -> Rcode:
    """Among the ISP's own open sessions, off the event loop; exactly one must match.
    None and several get the same answer as another ISP's session: 503."""
    found = ctx.deferred_result
    if found is None:
        ctx.deferred = functools.partial(deps.relay_lookup, ctx.query, ctx.client.isp)
        return Rcode.DEFER
    ctx.deferred_result = None
    if len(found) != 1:
        return _refuse(ctx, SESSION_NOT_FOUND, "no session of this ISP matches" if not found
                       else f"{len(found)} sessions of this ISP match")
    candidate = found[0]
    if isinstance(candidate.endpoint, str):
        return _refuse(ctx, NOT_ROUTABLE, candidate.endpoint, candidate.facts)
    try:
        request = relayed_request(deps.dynauth_requests, candidate.facts, ctx.packet,
                                  now=ctx.now)
    except (ConfigError, ValueError, TypeError) as exc:
        return _refuse(ctx, PROXY_PROCESSING_ERROR, f"request for the NAS: {exc}",
                       candidate.facts)
    ctx.job = RelayJob(peer=ctx.client, kind=_kind(ctx), asked=_asked(ctx),
                       facts=candidate.facts, request=request, endpoint=candidate.endpoint)
    return Rcode.HANDLED


RELAY = [read_session_query, find_session]


def process_relay(ctx: DynAuthContext, deps, start: int = 0) -> int | None:
    """None once ctx.job is set; else the stage to resume at after ctx.deferred."""
    code, index = run_section(RELAY, ctx, deps, start)
    return index if code is Rcode.DEFER else None
