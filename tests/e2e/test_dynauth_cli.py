"""`vpop session` and `vpop subscriber set` end to end: the demo served by `vpop serve`,
sessions started by Accounting-Requests, and the demo NAS's dynamic-authorization
endpoint moved to a NAS stand-in (a real UDP socket) that answers as told."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from e2e_support import METRIC_TIMEOUT, VpopServer, run_vpop, set_options
from support.das_peer import NasStandIn
from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.store.accounting_models import RadAcct
from vpop.store.dynauth_models import DynAuthAction
from vpop.store.engine import make_engine

pytestmark = pytest.mark.e2e

SECRET = b"testing123"  # the demo NAS's: its das_secret defaults to it


@pytest.fixture(scope="module")
def das():
    with NasStandIn(secret=SECRET) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def served(tmp_path_factory, das):
    server = VpopServer.create(tmp_path_factory.mktemp("vpop"))
    server.config.write_text(set_options(server.config.read_text(), {
        "dynauth": {"timeout": 0.5, "retries": 1, "stop_wait": 1.0}}))
    moved = server.home / "das.toml"
    moved.write_text(f'[[nas]]\nname = "localhost"\naddress = "127.0.0.1/32"\n'
                     f'secret = "testing123"\ndas_port = {das.port}\n')
    result = run_vpop(server.config, "import", str(moved), "--wait", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    server.start()
    yield server
    assert server.stop() == 0, server.diagnostics()


def start_session(server, nas, user: str, session_id: str, framed_ip: str) -> int:
    pairs = [("Acct-Status-Type", "Start"), ("Acct-Session-Id", session_id),
             ("User-Name", user), ("NAS-IP-Address", "127.0.0.1"), ("NAS-Port", 7),
             ("Framed-IP-Address", framed_ip), ("Calling-Station-Id", "+49 30 1234567")]
    assert nas.ask(nas.accounting(pairs), server.acct()).code == codec.ACCOUNTING_RESPONSE
    server.wait_for_ledger()
    return query(server, select(RadAcct.id).where(RadAcct.acct_session_id == session_id))[0][0]


def query(server, statement):
    engine = make_engine(server.db_url)
    try:
        with Session(engine) as session:
            return session.execute(statement).all()
    finally:
        engine.dispose()


def vpop(server, *args):
    return run_vpop(server.config, *args)


def test_list_and_show(served, nas):
    radacct_id = start_session(served, nas, "alice", "list-1", "198.51.100.11")
    listed = vpop(served, "session", "list", "--user", "alice", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    (row,) = [r for r in json.loads(listed.stdout) if r["id"] == radacct_id]
    assert (row["user"], row["nas"], row["port"], row["framed_ip"], row["state"]) == (
        "alice", "localhost", "7", "198.51.100.11", "online")
    table = vpop(served, "session", "list")
    assert table.stdout.splitlines()[0].split()[:3] == ["id", "user", "nas"]
    shown = vpop(served, "session", "show", str(radacct_id))
    assert shown.returncode == 0
    assert "acct_session_id:" in shown.stdout and "list-1" in shown.stdout
    assert "dynamic authorization requests: none" in shown.stdout


def test_disconnect_ack_then_stop_overdue(served, nas, das):
    radacct_id = start_session(served, nas, "alice", "kick-1", "198.51.100.12")
    das.script("ack")
    result = vpop(served, "session", "disconnect", str(radacct_id), "--reason", "test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == (f"session {radacct_id} (alice at localhost): "
                                             "Disconnect: ACK")
    sent = das.requests[-1]
    assert sent.authenticator_ok and sent.message_authenticator_ok
    assert sent.packet.first(A.ACCT_SESSION_ID) == b"kick-1"
    assert sent.packet.first(A.EVENT_TIMESTAMP) is not None
    assert A.PROXY_STATE not in sent.packet.attrs
    # No Stop comes: after stop_wait the server's tick says so.
    deadline = time.monotonic() + METRIC_TIMEOUT
    while time.monotonic() < deadline:
        (state,) = query(served, select(RadAcct.dynauth_state)
                         .where(RadAcct.id == radacct_id))[0]
        if state == "stop-overdue":
            break
        time.sleep(0.2)
    assert state == "stop-overdue", served.diagnostics()
    assert "marked stop-overdue" in served.log_text()
    listed = vpop(served, "session", "list", "--user", "alice")
    assert "ACKed but still online" in listed.stdout
    shown = vpop(served, "session", "show", str(radacct_id))
    assert "disconnect originated by cli:" in shown.stdout and ": ack (test)" in shown.stdout


def test_nak_timeout_and_unknown_session_exit_codes(served, nas, das):
    radacct_id = start_session(served, nas, "bob", "nak-1", "198.51.100.13")
    das.script(("nak", 503))
    result = vpop(served, "session", "disconnect", "--user", "bob")
    assert result.returncode == 1
    assert "Disconnect: NAK, Error-Cause 503 (Session-Context-Not-Found)" in result.stdout
    das.script("silent")
    result = vpop(served, "session", "coa", str(radacct_id), "--session-timeout", "600")
    assert result.returncode == 1
    assert "CoA: timeout: no answer from 127.0.0.1:" in result.stdout
    assert result.stdout.rstrip().endswith("after 2 tries")
    result = vpop(served, "session", "disconnect", "999999")
    assert (result.returncode, result.stderr) == (2, "vpop: no session 999999\n")
    result = vpop(served, "session", "coa", str(radacct_id), "--profile", "nope")
    assert result.returncode == 2 and "no profile 'nope'" in result.stderr
    outcomes = {row[0] for row in query(served, select(DynAuthAction.outcome).where(
        DynAuthAction.session_id == radacct_id))}
    assert outcomes == {"nak", "timeout"}


def test_subscriber_set_moves_a_session_or_changes_it_in_place(served, nas, das):
    das.script("ack")
    radacct_id = start_session(served, nas, "frank", "move-1", "198.51.100.14")
    (isp,) = query(served, select(RadAcct.isp).where(RadAcct.id == radacct_id))[0]
    other = "isp-tunnel" if isp != "isp-tunnel" else "isp-proxy"
    result = vpop(served, "subscriber", "set", "frank", "--isp", other)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"-> {other}" in result.stdout and "Disconnect: ACK" in result.stdout
    assert das.requests[-1].packet.code == codec.DISCONNECT_REQUEST
    # The same ISP again, another profile: a CoA in place.
    radacct_id = start_session(served, nas, "frank", "move-2", "198.51.100.15")
    engine = make_engine(served.db_url)
    with engine.begin() as connection:
        connection.execute(RadAcct.__table__.update().where(RadAcct.id == radacct_id)
                           .values(isp=other))
    engine.dispose()
    result = vpop(served, "subscriber", "set", "frank", "--profile", "business-100m")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CoA: ACK" in result.stdout
    coa = das.requests[-1].packet
    assert coa.code == codec.COA_REQUEST
    assert coa.first(A.USER_NAME) == b"frank"
    kinds = [row[0] for row in query(served, select(DynAuthAction.kind).where(
        DynAuthAction.username == "frank").order_by(DynAuthAction.id))]
    assert kinds[-2:] == ["disconnect", "coa"]
    result = vpop(served, "subscriber", "set", "nobody", "--isp", "none")
    assert result.returncode == 2 and "no subscriber 'nobody'" in result.stderr


def test_the_metrics_count_requests_sent_by_other_processes(served, nas, das):
    before = served.metric("vpop_dynauth_requests_total", nas="localhost",
                           direction="originated", result="ack")
    das.script("ack")
    radacct_id = start_session(served, nas, "bob", "metric-1", "198.51.100.16")
    assert vpop(served, "session", "disconnect", str(radacct_id)).returncode == 0
    after = served.metric("vpop_dynauth_requests_total", nas="localhost",
                          direction="originated", result="ack")
    assert after == before + 1
