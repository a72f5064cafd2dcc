"""The state of one Access-Request as it walks the sections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from vpop.aaa.subscribers import Account
from vpop.pipeline.core import Rcode
from vpop.radius.clients import NasClient
from vpop.radius.codec import ACCESS_ACCEPT, ACCESS_REJECT, Packet


@dataclass(slots=True)
class AccessContext:
    packet: Packet
    client: NasClient
    now: float  # seconds since the epoch, from the shell's clock
    username: str = ""
    caller_id: str = ""
    account: Account | None = None
    identified_by: str = ""
    method: str = ""
    password: bytes | None = None  # decrypted PAP password; never logged
    reply_code: int = ACCESS_ACCEPT
    reason: str = ""
    reply_message: str = ""
    reply_attrs: list[bytes] = field(default_factory=list)
    decision: Any = None  # vpop.isp.selection.Decision, when ISPs are configured
    isp: str | None = None
    route: str = ""  # local | proxy | tunnel
    # Slow work a stage hands to the shell (see pipeline.core).
    deferred: Callable[[], Any] | None = None
    deferred_result: Any = None
    upstream: Any = None  # post-proxy: vpop.isp.proxy.Finished, the ISP's answer or none
    silent: bool = False  # post-proxy: send nothing (the NAS retries)

    def reject(self, reason: str, reply_message: str = "") -> Rcode:
        """Decide Access-Reject; the reason is logged, the Reply-Message goes to the NAS."""
        self.reply_code = ACCESS_REJECT
        self.reason = reason
        self.reply_message = reply_message
        return Rcode.REJECT
