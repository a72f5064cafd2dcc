"""From datagram to action, without sockets: the front door of every request.

The shell hands each datagram to Receiver.datagram() and carries out what comes
back: send a reply, drop, run deferred work off the loop and resume, or persist
accounting and send the reply once it is committed. The receiver checks what every
packet must pass (known client, duplicates, signatures), runs the sections of its kind
(dispatch/access.py: authorize, authenticate, post-auth, post-proxy;
dispatch/accounting.py: preacct, accounting; dispatch/dynauth.py: CoA/Disconnect) and
turns their result into an action.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from vpop.aaa.request import AccessContext
from vpop.dispatch.access import PROXY, process_access, process_proxied
from vpop.dispatch.accounting import AccountingContext, process_accounting
from vpop.dispatch.dynauth import DynAuthContext, process_dynauth, process_relay
from vpop.dynauth.relay import IspPeer, answer_for
from vpop.errors import MalformedPacket
from vpop.isp.acct_forward import ForwardOrder
from vpop.isp.proxy import Finished, ProxyJob
from vpop.pipeline.requestlog import RequestLog
from vpop.pipeline.stats import Stats
from vpop.radius import codec
from vpop.radius import attributes as A
from vpop.radius.clients import ClientTable, MessageAuthenticatorPolicy, NasClient
from vpop.radius.dedup import IN_PROGRESS, Awaiting, DuplicateCache, key as dedup_key

events = logging.getLogger(__name__)

AUTH, ACCT, COA = "auth", "acct", "coa"
ACCEPTED_CODES = {
    AUTH: frozenset({codec.ACCESS_REQUEST, codec.STATUS_SERVER}),
    ACCT: frozenset({codec.ACCOUNTING_REQUEST, codec.STATUS_SERVER}),
    COA: frozenset({codec.COA_REQUEST, codec.DISCONNECT_REQUEST}),
}
CODE_NAMES = {codec.ACCESS_REQUEST: "Access-Request", codec.ACCOUNTING_REQUEST: "Accounting-Request",
              codec.STATUS_SERVER: "Status-Server", codec.COA_REQUEST: "CoA-Request",
              codec.DISCONNECT_REQUEST: "Disconnect-Request"}
OUTCOMES = {codec.ACCESS_ACCEPT: "accept", codec.ACCESS_REJECT: "reject",
            codec.ACCESS_CHALLENGE: "challenge",
            codec.ACCOUNTING_RESPONSE: "ok", codec.COA_NAK: "nak", codec.DISCONNECT_NAK: "nak",
            codec.COA_ACK: "ack", codec.DISCONNECT_ACK: "ack"}
MALFORMED_LOG_INTERVAL = 60.0


# Not frozen: made per request, and a frozen dataclass's __init__ pays a call per field.
@dataclass(slots=True)
class Send:
    data: bytes


@dataclass(slots=True)
class Drop:
    reason: str


@dataclass(slots=True)
class Defer:
    """Run `work` off the event loop, then call `then(result)` for the next action."""
    work: Callable[[], Any]
    then: Callable[[Any], Any]


@dataclass(slots=True)
class Forward:
    """Proxy `job` to its ISP (vpop.isp.proxy); hand the outcome to `then` for the reply."""
    job: Any
    then: Callable[[Any], Any]


@dataclass(slots=True)
class Relay:
    """An ISP's CoA/Disconnect for the shell (vpop.dispatch.dynauth.RelayJob): sent to the
    session's NAS (or refused) and audited; `then(result)` gives the answer to the ISP."""
    job: Any
    then: Callable[[Any], Any]


@dataclass(slots=True)
class Persist:
    """Commit `record` durably, then send `reply` (RFC 2866 §4.1: only once stored)."""
    record: Any
    reply: bytes
    done: Callable[[bool], None]
    awaiting: Awaiting  # its duplicate-cache entry: marked stored, then the reply sent
    forward: ForwardOrder | None = None  # also owed to a proxy-mode ISP


class Receiver:
    def __init__(self, deps, clients: ClientTable, *, dedup_window: float,
                 clock: Callable[[], float] = time.monotonic,
                 wallclock: Callable[[], float] = time.time,
                 request_log: RequestLog | None = None):
        self.deps = deps
        self.clients = clients
        self.dedup = DuplicateCache(dedup_window)
        self.policy = MessageAuthenticatorPolicy()
        self.stats = Stats()
        self.clock = clock
        self.wallclock = wallclock
        self.request_log = request_log or RequestLog(None)
        self._malformed_logged: dict[str, float] = {}

    def datagram(self, data: bytes, addr: tuple, port: str):
        started = self.clock()
        client = self.clients.lookup(addr[0])
        if client is None:
            peers = self.deps.relay_peers
            client = peers.lookup(addr[0]) if peers is not None and port == COA else None
            if client is None:
                return self._drop("unknown client", addr[0], started, data)
        if len(data) < codec.MIN_LENGTH:
            return self._malformed(client, "shorter than the RADIUS header", started)
        key = dedup_key(addr, data)
        cached = self.dedup.get(key)
        if cached is not None:
            self.stats.duplicates += 1
            if type(cached) is Awaiting:
                cached = cached.reply if cached.stored else IN_PROGRESS
            return Send(cached) if cached is not IN_PROGRESS else Drop("duplicate in progress")
        try:
            packet = codec.decode(data)
        except MalformedPacket as exc:
            return self._malformed(client, exc.reason, started)
        if packet.code not in ACCEPTED_CODES[port]:
            return self._drop(f"code {packet.code} not served on the {port} port",
                              client.name, started)
        secret = client.secret
        if packet.ma_offset >= 0:
            if not codec.message_authenticator_ok(packet, secret):
                return self._drop("bad Message-Authenticator", client.name, started)
            self.policy.saw(client)
        elif packet.code == codec.STATUS_SERVER:  # RFC 5997 §3
            return self._drop("Status-Server without Message-Authenticator", client.name, started)
        elif type(client) is IspPeer:  # BlastRADIUS: docs/dynauth.md
            return self._drop("missing Message-Authenticator", client.name, started)
        elif packet.code == codec.ACCESS_REQUEST and (self.policy.required(client)
                                                      or A.EAP_MESSAGE in packet.attrs):
            # RFC 3579 §3.3: EAP without a Message-Authenticator is silently discarded.
            return self._drop("missing Message-Authenticator", client.name, started)
        if packet.code in codec.HASHED_REQUESTS and not codec.request_authenticator_ok(packet, secret):
            return self._drop("bad Request Authenticator", client.name, started)

        try:
            if packet.code == codec.ACCESS_REQUEST:
                ctx = AccessContext(packet, client, self.wallclock())
                return self._access(ctx, key, started, process_access(ctx, self.deps))
            if packet.code == codec.STATUS_SERVER:
                code = codec.ACCESS_ACCEPT if port == AUTH else codec.ACCOUNTING_RESPONSE
                reply = self._reply(packet, client, code, b"", to_status_server=True)
                return self._finish(key, packet, client, started, reply, code, "", "")
            if packet.code == codec.ACCOUNTING_REQUEST:
                return self._accounting(packet, client, key, started)
            ctx = DynAuthContext(packet, client, self.wallclock())
            if type(client) is IspPeer:
                self.dedup.begin(key, started)  # a retransmission meanwhile is not relayed twice
                return self._relay(ctx, key, started, 0)
            process_dynauth(ctx, self.deps)
            reply = self._reply(packet, client, ctx.reply_code, b"".join(ctx.reply_attrs))
            return self._finish(key, packet, client, started, reply, ctx.reply_code, "",
                                ctx.reason)
        except MalformedPacket as exc:
            self.dedup.finish(key, None, started)
            return self._malformed(client, exc.reason, started)

    # --- access ---------------------------------------------------------------------

    def _access(self, ctx: AccessContext, key, started: float, outcome):
        if outcome is PROXY:
            self.dedup.begin(key, started)
            decision = ctx.decision
            name = decision.user_name_upstream
            job = ProxyJob(packet=ctx.packet, nas_secret=ctx.client.secret, isp=decision.isp,
                           user_name=name.encode() if name is not None else None,
                           key=ctx.caller_id, context=(ctx, key, started))
            ctx.method = "proxy"
            return Forward(job, self.proxied)
        if outcome is not None:  # deferred slow work
            def then(result):
                ctx.deferred_result = result
                return self._access(ctx, key, started, process_access(ctx, self.deps, outcome))
            self.dedup.begin(key, started)  # a retransmission meanwhile is not re-processed
            return Defer(ctx.deferred, then)
        attrs = b"".join(ctx.reply_attrs)
        if ctx.reply_message:
            attrs += codec.attribute(A.REPLY_MESSAGE, ctx.reply_message.encode())
        reply = self._reply(ctx.packet, ctx.client, ctx.reply_code, attrs)
        if self.request_log.stream is not None:  # only for the log
            why, user = _why(ctx), _as_sent(ctx.packet, A.USER_NAME)
            caller = _as_sent(ctx.packet, A.CALLING_STATION_ID)
        else:
            why = user = caller = ""
        return self._finish(key, ctx.packet, ctx.client, started, reply, ctx.reply_code,
                            user, why, caller, ctx.method)

    def proxied(self, finished: Finished):
        """The ISP answered (or nobody did): the post-proxy section, then the reply."""
        ctx, key, started = finished.job.context
        ctx.upstream = finished
        answered = process_proxied(ctx, self.deps)
        # The job holds the context: let go of the answer, so that no cycle is left for
        # the cyclic collector (which runs rarely in a worker: docs/architecture.md).
        ctx.upstream = None
        if not answered:
            self.dedup.finish(key, None, self.clock())
            self.stats.drop("upstream timeout")
            return Drop("upstream timeout")
        return self._access(ctx, key, started, None)

    # --- the relay of an ISP's CoA/Disconnect -----------------------------------------

    def _relay(self, ctx: DynAuthContext, key, started: float, start: int):
        try:
            resume = process_relay(ctx, self.deps, start)
        except MalformedPacket as exc:
            self.dedup.finish(key, None, self.clock())
            return self._malformed(ctx.client, exc.reason, started)
        if resume is not None:  # the store is asked off the event loop
            def then(found):
                ctx.deferred_result = found
                return self._relay(ctx, key, started, resume)
            return Defer(ctx.deferred, then)
        if ctx.job.refused is not None:
            self._log_rarely(ctx.client.name, "%s %s refused: %s", ctx.client.name,
                             CODE_NAMES[ctx.packet.code], ctx.reason, now=started)
        return Relay(ctx.job, lambda result: self._relayed(ctx, key, started, result))

    def _relayed(self, ctx: DynAuthContext, key, started: float, result):
        """The NAS's answer (or vpop's refusal, or a timeout) for the ISP."""
        code, attrs = answer_for(ctx.packet.code, result)
        reply = self._reply(ctx.packet, ctx.client, code, attrs)
        user = _as_sent(ctx.packet, A.USER_NAME) if self.request_log.stream is not None else ""
        return self._finish(key, ctx.packet, ctx.client, started, reply, code, user,
                            result.describe() + (f" ({ctx.reason})" if ctx.reason else ""))

    # --- accounting -----------------------------------------------------------------

    def _accounting(self, packet: codec.Packet, client: NasClient, key, started: float):
        ctx = AccountingContext(packet, client, self.wallclock())
        stored = process_accounting(ctx, self.deps)
        reply = self._reply(packet, client, codec.ACCOUNTING_RESPONSE, b"")
        username = _as_sent(packet, A.USER_NAME) if self.request_log.stream is not None else ""

        def done(stored: bool) -> None:
            if stored:
                self._finish(key, packet, client, started, reply, codec.ACCOUNTING_RESPONSE,
                             username, "")
            else:  # not acknowledged: the NAS retransmits and we try again
                now = self.clock()
                self.dedup.finish(key, None, now)
                self.request_log.write(client.name, "Accounting-Request", username, "", "",
                                       "error", "store failed", (now - started) * 1000)
        if not stored:
            return self._finish(key, packet, client, started, reply,
                                codec.ACCOUNTING_RESPONSE, username, ctx.reason)
        awaiting = Awaiting(reply)
        self.dedup.begin(key, started, awaiting)
        return Persist(ctx.record, reply, done, awaiting, ctx.forward)

    # --- helpers --------------------------------------------------------------------

    def _reply(self, packet: codec.Packet, client: NasClient, code: int, attrs: bytes, *,
               to_status_server: bool = False) -> bytes:
        # RFC 2865 §5.33: Proxy-State copied unmodified and in order.
        for state in packet.attrs.get(A.PROXY_STATE, ()):
            attrs += codec.attribute(A.PROXY_STATE, state)
        return codec.encode_reply(code, packet.ident, packet.authenticator, attrs, client.secret,
                                  to_status_server=to_status_server)

    def _finish(self, key, packet, client, started, reply, code, username, reason,
                caller="", method=""):
        now = self.clock()
        self.dedup.finish(key, reply, now)
        outcome = OUTCOMES.get(code, "ok")
        name = CODE_NAMES.get(packet.code) or str(packet.code)
        self.stats.request(client.name, name, outcome, now - started)
        self.request_log.write(client.name, name, username, caller, method, outcome, reason,
                               (now - started) * 1000)
        return Send(reply)

    def _drop(self, reason: str, source: str, started: float, data: bytes = b""):
        self.stats.drop(reason)
        self._log_rarely(source, "dropped request from %s: %s", source, reason, now=started)
        return Drop(reason)

    def _malformed(self, client: NasClient, reason: str, started: float):
        self.stats.drop("malformed")
        self._log_rarely(client.name, "malformed packet from %s: %s", client.name, reason,
                         now=started)
        return Drop("malformed")

    def _log_rarely(self, source: str, message: str, *args, now: float) -> None:
        """Once per source per minute, so a flood cannot flood the log too."""
        last = self._malformed_logged.get(source)
        if last is None or now - last >= MALFORMED_LOG_INTERVAL:
            if len(self._malformed_logged) > 10_000:
                self._malformed_logged.clear()
            self._malformed_logged[source] = now
            events.warning(message, *args)



def _as_sent(packet: codec.Packet, key) -> str:
    """An attribute's text for the request log as the NAS sent it: bytes that are not
    UTF-8 stay distinct (surrogates, which the log writes as \\xNN)."""
    raw = packet.first(key)
    return raw.decode("utf-8", "surrogateescape") if raw else ""


def _why(ctx: AccessContext) -> str:
    """The reason logged: what decided the outcome, and which ISP rule routed it."""
    decision = ctx.decision
    if decision is None or decision.isp is None:
        return ctx.reason
    routed = f"{decision.isp.name}: {decision.reason}"
    return f"{ctx.reason}; {routed}" if ctx.reason else routed
