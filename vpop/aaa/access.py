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
    if code is Rcode.HANDLED:
        if ctx.route == "proxy":
            return PROXY
        run_section(POST_AUTH_TUNNEL, ctx, deps)
    return None
