"""The Accounting-Request sections: preacct (the record as the NAS meant it: event time,
counters, flags) and accounting (what else the record is owed to: a proxy-mode ISP).
Storing it before the Accounting-Response goes is the shell's (RFC 2866 §4.1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vpop.isp.stages import accounting_owed
from vpop.pipeline.core import Rcode, run_section
from vpop.radius.clients import NasClient
from vpop.radius.codec import Packet


@dataclass(slots=True)
class AccountingContext:
    packet: Packet
    client: NasClient
    now: float  # seconds since the epoch, from the shell's clock
    record: Any = None  # vpop.accounting.records.AcctRecord
    forward: Any = None  # vpop.isp.acct_forward.ForwardOrder: also owed to an ISP
    reason: str = ""


def read_record(ctx: AccountingContext, deps) -> Rcode:
    """The record; a status type vpop does not record (Accounting-Failed...) is answered
    and not stored. MalformedPacket when RFC 2866 §4.1's attributes are missing."""
    ctx.record = deps.accounting.record(ctx.packet, ctx.client, ctx.now)
    if ctx.record is None:
        ctx.reason = "ignored"
        return Rcode.HANDLED
    return Rcode.OK


def owed_to_isp(ctx: AccountingContext, deps) -> Rcode:
    ctx.forward = accounting_owed(ctx.packet, ctx.record, deps, ctx.now)
    return Rcode.NOOP if ctx.forward is None else Rcode.UPDATED


PREACCT = [read_record]
ACCOUNTING = [owed_to_isp]
# Both sections as one chain: only preacct stops it (HANDLED: nothing to store).
ACCOUNTING_REQUEST = PREACCT + ACCOUNTING


def process_accounting(ctx: AccountingContext, deps) -> bool:
    """Whether there is a record to store (ctx.record, ctx.forward)."""
    code, _ = run_section(ACCOUNTING_REQUEST, ctx, deps)
    return code is not Rcode.HANDLED
