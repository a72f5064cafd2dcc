"""The CoA-Request and Disconnect-Request section (RFC 5176): where dynamic
authorization's stages go. Today it answers NAK with Error-Cause 405 (Unsupported
Service, RFC 5176 §3.5)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vpop.pipeline.core import Rcode, run_section
from vpop.radius import attributes as A
from vpop.radius.clients import NasClient
from vpop.radius.codec import COA_NAK, COA_REQUEST, DISCONNECT_NAK, Packet, attribute

UNSUPPORTED_SERVICE = 405


@dataclass(slots=True)
class DynAuthContext:
    packet: Packet
    client: NasClient
    now: float
    reply_code: int = 0
    reply_attrs: list[bytes] = field(default_factory=list)
    reason: str = ""


def not_supported(ctx: DynAuthContext, deps) -> Rcode:
    ctx.reply_code = COA_NAK if ctx.packet.code == COA_REQUEST else DISCONNECT_NAK
    ctx.reply_attrs.append(attribute(A.ERROR_CAUSE, UNSUPPORTED_SERVICE.to_bytes(4, "big")))
    ctx.reason = "not supported"
    return Rcode.HANDLED


DYNAMIC_AUTHORIZATION = [not_supported]


def process_dynauth(ctx: DynAuthContext, deps) -> None:
    run_section(DYNAMIC_AUTHORIZATION, ctx, deps)
