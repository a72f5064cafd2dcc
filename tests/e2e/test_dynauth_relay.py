"""ISPs' CoA and Disconnect requests relayed by `vpop serve` to a NAS (RFC 5176 §3.1),
against a NAS stand-in that answers as told (support.das_peer) and ISP servers that
send from addresses of their own on the loopback network (127.0.0.2, 127.0.0.3).

The sessions are stored rows of radacct, as the ledger leaves them: the relay reads
the store, whichever way the sessions got there (the real NAS's own path is in
test_real_nas.py).
"""

from __future__ import annotations

import datetime as dt
import random
import time

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from e2e_support import SILENCE, Link, VpopServer, set_options
from support.das_peer import NasStandIn

from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.store.accounting_models import RadAcct
from vpop.store.dynauth_models import DynAuthAction
from vpop.store.engine import make_engine
from vpop.store.models import Nas

pytestmark = pytest.mark.e2e

ISP_A, ISP_B, STRANGER = "127.0.0.2", "127.0.0.3", "127.0.0.4"
SECRET_A, SECRET_B = b"coa-a-secret", b"coa-b-secret"
NAS_SECRET = b"nas-das-secret"
PLAN = f"""
[[nas]]
name = "bras-relay"
address = "192.0.2.77"
secret = "bras-relay-secret"

[[isp]]
name = "isp-a"
mode = "local"
realms = ["@a.example"]
dynauth_clients = [{{ address = "{ISP_A}", secret = "{SECRET_A.decode()}" }}]

[[isp]]
name = "isp-b"
mode = "local"
realms = ["@b.example"]
dynauth_clients = [{{ address = "{ISP_B}/32", secret = "{SECRET_B.decode()}" }}]
"""


@pytest.fixture(scope="module")
def nas():
    with NasStandIn(secret=NAS_SECRET) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def vpop(tmp_path_factory, nas):
    server = VpopServer.create(tmp_path_factory.mktemp("vpop-relay"))
    server.config.write_text(set_options(server.config.read_text(), {
        "dynauth": {"timeout": 0.5, "retries": 1}}))
    server.start()
    server.import_plan(PLAN)
    engine = make_engine(server.db_url)
    with Session(engine) as session, session.begin():
        session.execute(update(Nas).where(Nas.name == "bras-relay").values(
            das_address="127.0.0.1", das_port=nas.port, das_secret=NAS_SECRET.decode()))
        now = dt.datetime.now(dt.timezone.utc)
        for sid, user, isp, ip in (("A-1", "joe@a.example", "isp-a", "10.0.0.1"),
                                   ("A-2", "ann@a.example", "isp-a", "10.0.0.2"),
                                   ("B-1", "kim@b.example", "isp-b", "10.0.0.3")):
            session.add(RadAcct(unique_id=f"relay-{sid}", acct_session_id=sid, username=user,
                                nas_address="192.0.2.77", nas_port="7",
                                calling_station_id="02-00-00-00-00-01", framed_ip=ip,
                                isp=isp, start_time=now, update_time=now, status="open"))
    engine.dispose()
    yield server
    assert server.stop() == 0, server.diagnostics()


def request(code: int, pairs, secret: bytes, *, proxy_states=(), ma: bool = True) -> bytes:
    attrs = b"".join(codec.attribute(kind, value) for kind, value in pairs)
    attrs += b"".join(codec.attribute(A.PROXY_STATE, state) for state in proxy_states)
    return codec.encode_request(code, random.randrange(256), attrs, secret,
                                message_authenticator=ma)


def ask(vpop: VpopServer, source: str, data: bytes, secret: bytes, timeout: float = 5.0):
    """The ISP's server's exchange: its request, vpop's verified answer (None: none)."""
    with Link(vpop.coa(), source=source) as link:
        link.send(data)
        reply = link.receive(timeout)
    if reply is None:
        return None
    assert codec.reply_ok(reply, data[4:20], secret), "answer not signed with the ISP's secret"
    return codec.decode(reply)


def cause(packet: codec.Packet) -> int | None:
    raw = packet.first(A.ERROR_CAUSE)
    return int.from_bytes(raw, "big") if raw else None


def joe(extra=()):
    return [(A.ACCT_SESSION_ID, b"A-1"), (A.USER_NAME, b"joe"), *extra]


def audit(vpop: VpopServer, count: int) -> list[DynAuthAction]:
    """The audit once it has `count` rows: written just after the ISP is answered."""
    engine = make_engine(vpop.db_url)
    deadline = time.monotonic() + 10.0
    try:
        while True:
            with Session(engine) as session:
                rows = list(session.scalars(select(DynAuthAction).order_by(DynAuthAction.id)))
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)
    finally:
        engine.dispose()


@pytest.fixture
def audited(vpop):
    """How many audit rows there were before the test, and a way to wait for more."""
    before = len(audit(vpop, 0))
    return lambda more: audit(vpop, before + more)[before:]


def test_disconnect_relayed_and_acked_with_proxy_state_echoed(vpop, nas, audited):
    nas.script("ack")
    before = len(nas.requests)
    states = (b"isp-state-1", b"\x00\x01binary")
    answer = ask(vpop, ISP_A, request(codec.DISCONNECT_REQUEST, joe(), SECRET_A,
                                      proxy_states=states), SECRET_A)
    assert answer is not None, vpop.diagnostics()
    assert answer.code == codec.DISCONNECT_ACK, (answer, vpop.diagnostics())
    assert answer.attrs.get(A.PROXY_STATE) == list(states)  # in order (RFC 5176 §3.1)
    got = nas.requests[before:]
    assert len(got) == 1
    sent = got[0]
    # vpop's own request: signed with the NAS's secret, Message-Authenticator and
    # Event-Timestamp, the session named for the NAS, no Proxy-State of the ISP's.
    assert sent.packet.code == codec.DISCONNECT_REQUEST
    assert sent.authenticator_ok and sent.message_authenticator_ok
    assert sent.values(A.ACCT_SESSION_ID) == [b"A-1"]
    assert sent.values(A.USER_NAME) == [b"joe@a.example"]  # as the NAS knows it
    assert sent.values(A.EVENT_TIMESTAMP) and not sent.values(A.PROXY_STATE)
    (row,) = audited(1)
    assert (row.actor, row.direction, row.kind, row.outcome, row.isp, row.nas) == (
        "isp:isp-a", "relayed", "disconnect", "ack", "isp-a", "bras-relay")


def test_coa_relayed_with_the_isps_changes(vpop, nas, audited):
    nas.script("ack")
    before = len(nas.requests)
    answer = ask(vpop, ISP_A, request(codec.COA_REQUEST, [
        (A.FRAMED_IP_ADDRESS, bytes([10, 0, 0, 2])),
        (A.SESSION_TIMEOUT, (600).to_bytes(4, "big"))], SECRET_A), SECRET_A)
    assert answer is not None and answer.code == codec.COA_ACK, vpop.diagnostics()
    sent = nas.requests[before:][0]
    assert sent.packet.code == codec.COA_REQUEST
    assert sent.values(A.ACCT_SESSION_ID) == [b"A-2"]
    assert sent.values(A.SESSION_TIMEOUT) == [(600).to_bytes(4, "big")]
    assert [(row.kind, row.outcome) for row in audited(1)] == [("coa", "ack")]


def test_nak_relayed_with_its_error_cause(vpop, nas, audited):
    nas.script(("nak", 504))
    answer = ask(vpop, ISP_A, request(codec.DISCONNECT_REQUEST, joe(), SECRET_A), SECRET_A)
    assert answer is not None and answer.code == codec.DISCONNECT_NAK, vpop.diagnostics()
    assert cause(answer) == 504
    (row,) = audited(1)
    assert (row.outcome, row.error_cause) == ("nak", 504)


def test_a_silent_nas_is_answered_with_nak_506(vpop, nas, audited):
    nas.script("silent")
    before = len(nas.requests)
    answer = ask(vpop, ISP_A, request(codec.DISCONNECT_REQUEST, joe(), SECRET_A), SECRET_A)
    assert answer is not None and answer.code == codec.DISCONNECT_NAK, vpop.diagnostics()
    assert cause(answer) == 506
    tries = nas.requests[before:]
    assert len(tries) == 2 and tries[0].data == tries[1].data  # retransmitted as it was
    assert [row.outcome for row in audited(1)] == ["timeout"]


def test_another_isps_session_is_not_found_and_its_nas_hears_nothing(vpop, nas, audited):
    nas.script("ack")
    before = len(nas.requests)
    for pairs in (joe(), [(A.ACCT_SESSION_ID, b"A-1")], [(A.USER_NAME, b"joe@a.example")],
                  [(A.FRAMED_IP_ADDRESS, bytes([10, 0, 0, 1]))],
                  [(A.ACCT_SESSION_ID, b"no-such-session")]):
        answer = ask(vpop, ISP_B, request(codec.DISCONNECT_REQUEST, pairs, SECRET_B), SECRET_B)
        assert answer is not None and answer.code == codec.DISCONNECT_NAK, vpop.diagnostics()
        assert cause(answer) == 503
    # two of isp-a's sessions match: not one, so not found either
    answer = ask(vpop, ISP_A, request(codec.COA_REQUEST, [
        (A.CALLING_STATION_ID, b"02:00:00:00:00:01"),
        (A.SESSION_TIMEOUT, (60).to_bytes(4, "big"))], SECRET_A), SECRET_A)
    assert answer is not None and answer.code == codec.COA_NAK and cause(answer) == 503
    assert len(nas.requests) == before
    rows = audited(6)
    assert sorted(row.actor for row in rows) == ["isp:isp-a"] + ["isp:isp-b"] * 5
    assert all(row.outcome == "nak" and row.error_cause == 503 and row.session_id is None
               for row in rows), rows


def test_unknown_sources_and_bad_signatures_are_dropped_and_counted(vpop, nas):
    before = len(nas.requests)
    unknown = vpop.metric("vpop_dropped_total", reason="unknown client")
    assert ask(vpop, STRANGER, request(codec.DISCONNECT_REQUEST, joe(), SECRET_A), SECRET_A,
               timeout=SILENCE) is None
    assert vpop.wait_for_metric("vpop_dropped_total", unknown + 1,
                                reason="unknown client") == unknown + 1
    for data, reason in (
            (request(codec.DISCONNECT_REQUEST, joe(), b"wrong-secret"),
             "bad Message-Authenticator"),
            (request(codec.DISCONNECT_REQUEST, joe(), SECRET_A, ma=False),
             "missing Message-Authenticator")):
        counted = vpop.metric("vpop_dropped_total", reason=reason)
        assert ask(vpop, ISP_A, data, SECRET_A, timeout=SILENCE) is None
        assert vpop.wait_for_metric("vpop_dropped_total", counted + 1,
                                    reason=reason) == counted + 1
    tampered = bytearray(request(codec.DISCONNECT_REQUEST, joe(), SECRET_A))
    tampered[4] ^= 1  # the Request Authenticator no longer hashes the packet
    counted = vpop.metric("vpop_dropped_total", reason="bad Request Authenticator")
    assert ask(vpop, ISP_A, bytes(tampered), SECRET_A, timeout=SILENCE) is None
    assert vpop.wait_for_metric("vpop_dropped_total", counted + 1,
                                reason="bad Request Authenticator") == counted + 1
    assert len(nas.requests) == before


def test_a_nas_keeps_its_nak_405(vpop, nas):
    answer = ask(vpop, "127.0.0.1", request(codec.DISCONNECT_REQUEST, joe(), b"testing123"),
                 b"testing123")
    assert answer is not None and answer.code == codec.DISCONNECT_NAK and cause(answer) == 405
