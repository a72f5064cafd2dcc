"""The Access-Request sections, in FreeRADIUS's order."""

from __future__ import annotations

from vpop.aaa.authenticate import authenticate
from vpop.accounting.leases import admit_by_lease
from vpop.aaa.identify import check_account, choose_method, identify, read_identity
from vpop.aaa.reply import render_reply, render_tunnel
from vpop.aaa.request import AccessContext
from vpop.isp.stages import route, select_isp
from vpop.pipeline.core import Rcode, run_section

AUTHORIZE = [read_identity, identify, select_isp, route, check_account, choose_method]
AUTHENTICATE = [authenticate]
# A new session beyond its ISP's lease is refused here, once everything else said yes.
POST_AUTH = [admit_by_lease, render_reply]
POST_AUTH_TUNNEL = [admit_by_lease, render_tunnel]

PROXY = "proxy"  # process_access outcome: the shell forwards the request upstream


def process_access(ctx: AccessContext, deps) -> int | str | None:
    """Decide the request. None: decided; PROXY: forward it; an int: the stage to
    resume at after the shell has run ctx.deferred."""
    code, _ = run_section(AUTHORIZE, ctx, deps)
    if code is Rcode.REJECT or code is Rcode.FAIL:
        return None
    if code is Rcode.HANDLED:
        if ctx.route == "proxy":
            return PROXY
        run_section(POST_AUTH_TUNNEL, ctx, deps)
        return None
    return resume_access(ctx, deps, 0)


def resume_access(ctx: AccessContext, deps, start: int) -> int | None:
    code, index = run_section(AUTHENTICATE, ctx, deps, start)
    if code is Rcode.DEFER:
        return index
    if code is Rcode.REJECT or code is Rcode.FAIL:
        return None
    run_section(POST_AUTH, ctx, deps)
    return None
