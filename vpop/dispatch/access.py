"""The Access-Request sections, in FreeRADIUS's order."""

from __future__ import annotations

from vpop.aaa.authenticate import authenticate
from vpop.aaa.eap import eap_failure
from vpop.aaa.identify import check_account, choose_method, identify, read_identity
from vpop.aaa.request import AccessContext
from vpop.accounting.leases import admit_by_lease
from vpop.errors import MalformedPacket
from vpop.isp.forwarding import downstream_attributes
from vpop.isp.stages import route, routing_class, select_isp
from vpop.isp.tunnel import tunnel_attributes
from vpop.pipeline.core import Rcode, run_section
from vpop.radius import attributes as A
from vpop.radius.codec import ACCESS_ACCEPT
from vpop.radius.crypto import random_salt


def render_reply(ctx: AccessContext, deps) -> Rcode:
    """The subscriber's profile for its NAS type, what its ISP's template adds, and the
    routing Class the NAS will echo in accounting."""
    ctx.reply_attrs.insert(0, deps.replies.encoded(ctx.account, ctx.client.nas_type))
    if ctx.decision is not None:
        ctx.reply_attrs.append(deps.replies.isp_extra(ctx.decision.isp, ctx.account,
                                                      ctx.client.nas_type))
    ctx.reply_attrs.append(routing_class(ctx))
    return Rcode.UPDATED


def render_tunnel(ctx: AccessContext, deps) -> Rcode:
    """Tunnel mode (VPDN): the NAS opens an L2TP tunnel to the ISP's LNS (RFC 2868)."""
    isp = ctx.decision.isp
    ctx.reply_attrs.append(tunnel_attributes(
        isp, deps.dictionary, secret=ctx.client.secret,
        request_authenticator=ctx.packet.authenticator, nas_type=ctx.client.nas_type,
        templates=deps.tunnels,
        salt=lambda: random_salt(deps.rng)))
    ctx.reply_attrs.append(deps.replies.isp_extra(isp, ctx.account, ctx.client.nas_type))
    ctx.reply_attrs.append(routing_class(ctx))
    return Rcode.UPDATED


AUTHORIZE = [read_identity, identify, select_isp, route, check_account, choose_method]
AUTHENTICATE = [authenticate]
# A new session beyond its ISP's lease is refused here, once everything else said yes.
POST_AUTH = [admit_by_lease, render_reply]
POST_AUTH_TUNNEL = [admit_by_lease, render_tunnel]



def take_upstream_reply(ctx: AccessContext, deps) -> Rcode:
    """Post-proxy: the ISP's answer becomes ours, its attributes re-signed for the NAS;
    no answer is a reject when the ISP says so, else silence (the NAS will retry)."""
    finished = ctx.upstream
    isp, reply = finished.job.isp, finished.reply
    if reply is None:
        if not isp.timeout_reject:
            ctx.silent = True
            return Rcode.FAIL
        return ctx.reject(f"ISP {isp.name} did not answer", "Service unavailable")
    try:
        attrs = downstream_attributes(
            reply, secret=finished.server.secret, authenticator=finished.authenticator,
            nas_secret=ctx.client.secret, nas_authenticator=ctx.packet.authenticator,
            salt=lambda: random_salt(deps.rng))
    except MalformedPacket as exc:
        return ctx.reject(f"unusable reply from {finished.server.name}: {exc.reason}",
                          "Service unavailable")
    ctx.reply_code = reply.code
    ctx.reason = f"proxied to {finished.server.name}"
    ctx.reply_attrs = [attrs]
    return Rcode.UPDATED if reply.code == ACCESS_ACCEPT else Rcode.HANDLED


def admit_accepted(ctx: AccessContext, deps) -> Rcode:
    """The ISP said yes; the lease may still say no."""
    if admit_by_lease(ctx, deps) is Rcode.REJECT:
        ctx.reply_attrs = []
        return Rcode.REJECT
    return Rcode.NOOP


def render_proxied(ctx: AccessContext, deps) -> Rcode:
    """What the ISP's template adds, and the routing Class the NAS will echo."""
    ctx.reply_attrs.append(deps.replies.isp_extra(ctx.decision.isp, ctx.account,
                                                  ctx.client.nas_type))
    ctx.reply_attrs.append(routing_class(ctx))
    return Rcode.UPDATED


# Post-proxy, on the ISP's answer: a reject or challenge goes back as it is (HANDLED),
# an accept is admitted against the lease and completed; no answer is FAIL (silence)
# or a reject.
POST_PROXY = [take_upstream_reply, admit_accepted, render_proxied]

# The three sections run as one chain: every section stops at REJECT, FAIL or DEFER
# alike, and only authorize's route stage answers HANDLED (proxy or tunnel), so one
# pass decides the same as three and costs one loop instead of three.
ACCESS = AUTHORIZE + AUTHENTICATE + POST_AUTH

PROXY = "proxy"  # process_access outcome: the shell forwards the request upstream


def process_access(ctx: AccessContext, deps, start: int = 0) -> int | str | None:
    """Decide the request. None: decided; PROXY: forward it; an int: the stage to
    resume at (start=) after the shell has run ctx.deferred."""
    code, index = run_section(ACCESS, ctx, deps, start)
    if code is Rcode.DEFER:
        return index
    if code is Rcode.HANDLED:  # proxy, tunnel, or a local EAP-MD5 challenge
        route = ctx.route
        if route == "proxy":
            return PROXY
        if route == "tunnel":
            run_section(POST_AUTH_TUNNEL, ctx, deps)
    elif code is Rcode.REJECT and A.EAP_MESSAGE in ctx.packet.attrs:
        eap_failure(ctx)
    return None


def process_proxied(ctx: AccessContext, deps) -> bool:
    """Decide on the ISP's answer (ctx.upstream); False: send nothing."""
    run_section(POST_PROXY, ctx, deps)
    return not ctx.silent
