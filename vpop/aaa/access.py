"""The Access-Request sections, in FreeRADIUS's order."""

from __future__ import annotations

from vpop.aaa.authenticate import authenticate
from vpop.aaa.identify import check_account, choose_method, identify, read_identity
from vpop.aaa.reply import render_reply
from vpop.aaa.request import AccessContext
from vpop.pipeline.core import Rcode, run_section

AUTHORIZE = [read_identity, identify, check_account, choose_method]
AUTHENTICATE = [authenticate]
POST_AUTH = [render_reply]


def process_access(ctx: AccessContext, deps) -> int | None:
    """Decide the request; return None when done, or the stage index to resume at
    after the shell has run ctx.deferred."""
    code, _ = run_section(AUTHORIZE, ctx, deps)
    if code in (Rcode.REJECT, Rcode.FAIL):
        return None
    return resume_access(ctx, deps, 0)


def resume_access(ctx: AccessContext, deps, start: int) -> int | None:
    code, index = run_section(AUTHENTICATE, ctx, deps, start)
    if code is Rcode.DEFER:
        return index
    if code in (Rcode.REJECT, Rcode.FAIL):
        return None
    run_section(POST_AUTH, ctx, deps)
    return None
