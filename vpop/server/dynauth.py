"""Dynamic authorization's shell: CoA and Disconnect requests sent to NASes and their
answers awaited, for the CLI and the portal (blocking, no event loop) and for an event
loop (`send_async`).

The public functions take the database (a sessionmaker, or a URL) and the settings and
an actor ("cli:root", "portal:alice"), and return one SessionResult per session acted
on; each request is audited in dynauth_action whatever its outcome:

    disconnect_session(database, settings, actor=..., session_id=ID | username=NAME)
    change_session(database, settings, actor=..., session_id=ID, change=Change(...),
                   profile=NAME)
    apply_subscriber_choice(database, settings, actor=..., username=NAME,
                            isp=NAME | None | KEEP, profile=NAME | KEEP)

No database transaction is held while a NAS is awaited: the session is read, the
request sent and answered, then the audit (and the session's mark after a
Disconnect-ACK) committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from vpop.config import Settings
from vpop.dynauth.attempt import Attempt
from vpop.dynauth.request import (COA, DISCONNECT, Change, DynAuthRequest, NothingToChange,
                                  RequestBuilder, SessionFacts, change_from_profile)
from vpop.dynauth.result import ACK, NAK, Result, failed
from vpop.dynauth.session import Endpoint, endpoint_for, nas_for_session, step_for_choice
from vpop.errors import ConfigError, VpopError
from vpop.provisioning.choice import ChoiceChange, set_choice
from vpop.provisioning.fields import KEEP
from vpop.radius.dictionary import Dictionary
from vpop.store import dynauth as store
from vpop.store.models import Profile

log = logging.getLogger(__name__)
RECV_SIZE = 4096  # RFC 2865 §3: the largest RADIUS packet
# RFC 5176 §3.6: a NAK saying the NAS takes no such change (Unsupported-Attribute,
# Unsupported-Service), as hostapd answers every CoA: a choice disconnects instead.
REFUSED_CHANGE = (401, 405)


class UnknownSession(VpopError):
    """No such session, or no live one of the user named."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionResult:
    """One request for one session: what was sent, and the NAS's answer."""

    session_id: int | None
    username: str
    nas: str
    isp: str | None
    kind: str  # disconnect | coa
    result: Result
    sent: str = ""  # the request's attributes, `Name = value` a line
    action_id: int | None = None  # its dynauth_action row
    why: str = ""  # why it was asked

    @property
    def outcome(self) -> str:
        return self.result.outcome

    @property
    def ok(self) -> bool:
        return self.result.outcome == ACK

    @property
    def error_cause(self) -> int | None:
        return self.result.error_cause

    @property
    def error_words(self) -> str:
        return self.result.error_words

    @property
    def answer(self) -> tuple[tuple[str, str], ...]:
        return self.result.answer

    def describe(self) -> str:
        """"session 12 (alice at nas-1): Disconnect: ACK"."""
        what = "Disconnect" if self.kind == DISCONNECT else "CoA"
        return (f"session {self.session_id} ({self.username} at {self.nas or '?'}): "
                f"{what}: {self.result.describe()}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiceResult:
    """`apply_subscriber_choice`: the choice as stored, and what each live session got."""

    change: ChoiceChange
    sessions: tuple[SessionResult, ...] = ()
    unchanged: tuple[int, ...] = ()  # live sessions the choice does not touch

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.sessions)


# --- sending ----------------------------------------------------------------------------

def send_blocking(attempt: Attempt, *, clock: Callable[[], float] = time.monotonic) -> Result:
    """Send and wait on a socket of its own: the answer, or the timeout once the budget
    (timeout × (1 + retries)) is spent."""
    host = attempt.endpoint.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sent = attempt.start(clock())
            sock.sendto(sent.data, sent.addr)
            while True:
                deadline = attempt.deadline
                remaining = deadline - clock() if deadline is not None else 0.0
                if remaining <= 0:
                    step = attempt.expire(clock())
                    if isinstance(step, Result):
                        return step
                    if step is not None:
                        sock.sendto(step.data, step.addr)
                    continue
                sock.settimeout(remaining)
                try:
                    data, addr = sock.recvfrom(RECV_SIZE)
                except (socket.timeout, InterruptedError):
                    continue
                result = attempt.on_datagram(data, addr)
                if result is not None:
                    return result
                log.warning("dynamic authorization: reply from %s ignored: %s", addr[0],
                            attempt.ignored[-1])
    except OSError as exc:
        return failed(f"cannot send to {attempt.endpoint}: {exc.strerror or exc}",
                      endpoint=str(attempt.endpoint), tries=attempt.tries)


class _Replies(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()

    def datagram_received(self, data: bytes, addr) -> None:
        self.queue.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable: keep waiting
        log.debug("dynamic authorization: %s", exc)


async def send_async(attempt: Attempt) -> Result:
    """send_blocking's equivalent on the running event loop (a socket of its own)."""
    loop = asyncio.get_running_loop()
    host = attempt.endpoint.host
    wildcard = "::" if ":" in host else "0.0.0.0"
    try:
        transport, protocol = await loop.create_datagram_endpoint(
            _Replies, local_addr=(wildcard, 0))
    except OSError as exc:
        return failed(f"cannot open a socket: {exc.strerror or exc}",
                      endpoint=str(attempt.endpoint))
    try:
        sent = attempt.start(loop.time())
        transport.sendto(sent.data, sent.addr)
        while True:
            remaining = (attempt.deadline or 0.0) - loop.time()
            if remaining <= 0:
                step = attempt.expire(loop.time())
                if isinstance(step, Result):
                    return step
                if step is not None:
                    transport.sendto(step.data, step.addr)
                continue
            try:
                data, addr = await asyncio.wait_for(protocol.queue.get(), remaining)
            except asyncio.TimeoutError:
                continue
            result = attempt.on_datagram(data, addr)
            if result is not None:
                return result
    finally:
        transport.close()


class DynAuthClient:
    """Builds requests per NAS type and sends them with the configured budget."""

    def __init__(self, settings: Settings, dictionary: Dictionary | None = None, *,
                 rng: random.Random | None = None):
        if dictionary is None:
            from vpop.server.wiring import load_dictionary
            dictionary = load_dictionary(settings)
        self.settings = settings
        self.dictionary = dictionary
        self.builder = RequestBuilder(dictionary, settings.relative(settings.radius.templates))
        self.rng = rng or random.Random()

    def attempt(self, request: DynAuthRequest, endpoint: Endpoint) -> Attempt:
        return Attempt(request, endpoint, timeout=self.settings.dynauth.timeout,
                       retries=self.settings.dynauth.retries, dictionary=self.dictionary,
                       rng=self.rng)

    def send(self, request: DynAuthRequest, endpoint: Endpoint) -> Result:
        return send_blocking(self.attempt(request, endpoint))


# --- the public functions ---------------------------------------------------------------

@contextlib.contextmanager
def _database(database: Any, settings: Settings) -> Iterator[sessionmaker[Session]]:
    """A sessionmaker: the one given, or one over a URL (default: the settings')."""
    if isinstance(database, sessionmaker):
        yield database
        return
    from vpop.store.engine import check_connection, make_engine, make_sessionmaker
    engine = make_engine(database or settings.database_url)
    try:
        check_connection(engine)
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(slots=True)
class _Planned:
    """A request to send: the session's facts, and the request or why there is none."""
    facts: SessionFacts
    kind: str
    request: DynAuthRequest | None = None
    endpoint: Endpoint | None = None
    problem: str = ""
    why: str = ""
    change: Change | None = None
    disconnect_instead: bool = False  # when the NAS refuses the CoA's change


def _plan(client: DynAuthClient, session: Session, rows, kind: str,
          change: Change | None = None, why: str = "",
          disconnect_instead: bool = False) -> list[_Planned]:
    """The requests for `rows`. `disconnect_instead`: a CoA the NAS type takes none of
    becomes a Disconnect (the next login gets the change)."""
    nases = store.nas_entries(session)
    planned = []
    for row in rows:
        nas = nas_for_session(row.nas_address, nases)
        facts = store.facts_for(row, nas)
        plan = _Planned(facts=facts, kind=kind, why=why, change=change,
                        disconnect_instead=disconnect_instead)
        planned.append(plan)
        if nas is None:
            plan.problem = (f"no NAS client is named {row.nas_address!r} or holds that "
                            "address (the NAS as the session's accounting named it)")
            continue
        target = endpoint_for(nas, row.nas_address)
        if isinstance(target, str):
            plan.problem = target
            continue
        plan.endpoint = target
        try:
            plan.request = client.builder.build(facts, kind, change, now=time.time())
        except NothingToChange as exc:
            if not disconnect_instead:
                plan.problem = exc.message
                continue
            _disconnect_instead(client, plan, f"a {facts.nas_type} NAS takes no such change "
                                              "by CoA")
        except ConfigError as exc:
            plan.problem = str(exc)
    return planned


def _disconnect_instead(client: DynAuthClient, plan: _Planned, because: str) -> None:
    """The plan becomes a Disconnect: the session's next login gets the change."""
    plan.kind, plan.change, plan.disconnect_instead = DISCONNECT, None, False
    plan.why += f"; {because}: disconnected, its next login gets it"
    plan.request = client.builder.build(plan.facts, DISCONNECT, now=time.time())


def _carry_out(client: DynAuthClient, sessions: sessionmaker[Session], planned: list[_Planned],
               actor: str) -> list[SessionResult]:
    results = []
    for plan in planned:
        results.append(_send_and_record(client, sessions, plan, actor))
        result = results[-1].result
        if plan.disconnect_instead and plan.kind == COA and result.outcome == NAK \
                and result.error_cause in REFUSED_CHANGE:
            # Audited as refused; the session then gets a Disconnect of its own.
            try:
                _disconnect_instead(client, plan, f"the NAS refused the CoA "
                                                  f"({result.describe()})")
            except ConfigError as exc:
                plan.request, plan.problem = None, str(exc)
            results[-1] = _send_and_record(client, sessions, plan, actor)
    return results


def _send_and_record(client: DynAuthClient, sessions: sessionmaker[Session], plan: _Planned,
                     actor: str) -> SessionResult:
    """Send the plan's request (or report why there is none), audit it, and mark the
    session after a Disconnect-ACK."""
    if plan.request is None:
        result = failed(plan.problem, endpoint=str(plan.endpoint or ""))
    else:
        result = client.send(plan.request, plan.endpoint)
    sent = plan.request.text() if plan.request is not None else ""
    facts = plan.facts
    with sessions.begin() as session:
        at = _now()
        action = store.record_action(session, at=at, actor=actor,
                                     direction=store.ORIGINATED, kind=plan.kind,
                                     facts=facts, sent=sent, result=result,
                                     reason=plan.why)
        if plan.kind == DISCONNECT and result.ok and facts.radacct_id is not None:
            store.mark_disconnect_acked(session, facts.radacct_id, at)
    outcome = SessionResult(session_id=facts.radacct_id, username=facts.username,
                            nas=facts.nas_name or facts.nas_reported, isp=facts.isp,
                            kind=plan.kind, result=result, sent=sent, action_id=action,
                            why=plan.why)
    log.info("dynamic authorization by %s: %s", actor, outcome.describe())
    return outcome


def _rows(session: Session, session_id: int | None, username: str | None) -> list:
    if (session_id is None) == (username is None):
        raise ValueError("give a session id or a user name, not both")
    if session_id is not None:
        row = store.session_row(session, session_id)
        if row is None:
            raise UnknownSession(f"no session {session_id}")
        if row.status != "open":
            raise UnknownSession(f"session {session_id} is not live (closed by "
                                 f"{row.closed_by or 'its Stop'})")
        return [row]
    rows = store.open_sessions_of(session, [username])
    if not rows:
        raise UnknownSession(f"user {username!r} has no live session")
    return rows


def disconnect_session(database: Any, settings: Settings, *, actor: str,
                       session_id: int | None = None, username: str | None = None,
                       reason: str = "", client: DynAuthClient | None = None
                       ) -> list[SessionResult]:
    """Disconnect one live session (`session_id`) or every live session of `username`.
    UnknownSession when there is none. After an ACK the session is marked
    disconnect-acked: its Stop is expected within [dynauth] stop_wait."""
    client = client or DynAuthClient(settings)
    with _database(database, settings) as sessions:
        with sessions() as session:
            planned = _plan(client, session, _rows(session, session_id, username),
                            DISCONNECT, why=reason)
        return _carry_out(client, sessions, planned, actor)


def change_session(database: Any, settings: Settings, *, actor: str, session_id: int,
                   change: Change = Change(), profile: str | None = None, reason: str = "",
                   client: DynAuthClient | None = None) -> list[SessionResult]:
    """A CoA for one live session: `profile`'s values (rates, timeouts), with those
    `change` gives replacing them. UnknownSession for no such live session;
    ConfigError for an unknown profile or no change at all."""
    client = client or DynAuthClient(settings)
    with _database(database, settings) as sessions:
        with sessions() as session:
            rows = _rows(session, session_id, None)
            if profile is not None:
                row = session.query(Profile).filter(Profile.name == profile).first()
                if row is None:
                    raise ConfigError(f"no profile {profile!r}", field="profile")
                base = Change(rate_down_kbps=row.rate_down_kbps, rate_up_kbps=row.rate_up_kbps,
                              session_timeout=row.session_timeout,
                              idle_timeout=row.idle_timeout, profile=row.name)
                change = change.over(base)
            if change.empty:
                raise ConfigError("nothing to change: give a rate, a timeout or a profile "
                                  "with values")
            planned = _plan(client, session, rows, COA, change, why=reason)
        return _carry_out(client, sessions, planned, actor)


def apply_subscriber_choice(database: Any, settings: Settings, *, actor: str, username: str,
                            isp: Any = KEEP, profile: Any = KEEP,
                            client: DynAuthClient | None = None) -> ChoiceResult:
    """Store the subscriber's choice (`isp`: a name, None for none, KEEP; `profile`: a
    name or KEEP; vpop.provisioning.choice), then apply it to the live sessions at once:
    a Disconnect where a session is with another ISP than the one now chosen (its next
    login goes there), a CoA where only the profile's values change, nothing where
    nothing does. ConfigError for an unknown subscriber, ISP or profile."""
    client = client or DynAuthClient(settings)
    with _database(database, settings) as sessions:
        with sessions.begin() as session:
            change = set_choice(session, username, isp=isp, profile=profile, now=_now())
        old, new = (change_from_profile(change.before.profile),
                    change_from_profile(change.after.profile))
        planned: list[_Planned] = []
        unchanged: list[int] = []
        with sessions() as session:
            for row in store.open_sessions_of(session, [username]):
                step = step_for_choice(session_isp=row.isp, new_isp=change.after.isp,
                                       old=old, new=new)
                if not step.kind:
                    unchanged.append(row.id)
                    continue
                planned += _plan(client, session, [row], step.kind, step.change,
                                 why=f"subscriber set: {step.why}", disconnect_instead=True)
        results = _carry_out(client, sessions, planned, actor)
    return ChoiceResult(change=change, sessions=tuple(results), unchanged=tuple(unchanged))
