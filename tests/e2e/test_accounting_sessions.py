"""Accounting end to end: session life cycles sent by radclient, pyrad and vpop's codec,
the routing Class, Accounting-On, bad input, the reports of `vpop report`, and a ledger
that dies."""

from __future__ import annotations

import csv
import io
import os
import random
import signal
import socket
import time

import pytest
from pyrad.dictionary import Dictionary as PyradDictionary
from pyrad.packet import AcctPacket
from sqlalchemy import select
from sqlalchemy.orm import Session

from e2e_support import METRIC_TIMEOUT, REPLY_TIMEOUT, SECRET, run_vpop
from vpop.radius import codec
from vpop.radius.dictionary import shipped_dictionary
from vpop.store.accounting_models import AcctHistory, RadAcct, RoutingRecord
from vpop.store.engine import make_engine

pytestmark = pytest.mark.e2e

T0 = 1_772_323_200  # 2026-03-01T00:00:00Z
ROUTING = "vpop1;isp=isp-a;mode=proxy;reason=realm%20%40isp-a"


def query(server, statement):
    server.wait_for_ledger()  # acknowledged means journaled; the ledger applies it
    engine = make_engine(server.db_url)
    try:
        with Session(engine) as session:
            return session.execute(statement).all()
    finally:
        engine.dispose()


def session_row(server, session_id) -> RadAcct:
    (row,), = query(server, select(RadAcct).where(RadAcct.acct_session_id == session_id))
    return row


def pyrad_exchange(pairs, addr) -> int:
    """One Accounting-Request built, sent and checked by pyrad's own packet classes."""
    request = AcctPacket(dict=PYRAD_DICTIONARY, secret=SECRET, id=random.randrange(256))
    for name, value in pairs:
        request.AddAttribute(name, value)
    raw = request.RequestPacket()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(REPLY_TIMEOUT)
        sock.connect(addr)
        sock.send(raw)
        data = sock.recv(4096)
    reply = request.CreateReply(packet=data)
    assert request.VerifyReply(reply, data), "pyrad does not accept the reply"
    return reply.code


PYRAD_DICTIONARY = PyradDictionary(str(shipped_dictionary()))


def radclient_line(name, value) -> str:
    return f'{name} = "{value}"' if isinstance(value, str) else f"{name} = {value}"


def life(session_id, nas="192.0.2.60", start=T0 + 3600):
    common = [("Acct-Session-Id", session_id), ("User-Name", "alice@isp-a"),
              ("NAS-IP-Address", nas), ("NAS-Port", 7), ("Calling-Station-Id", "+49 30 1234567"),
              ("Framed-IP-Address", "192.0.2.77"), ("Class", ROUTING)]
    return [
        [("Acct-Status-Type", "Start"), ("Event-Timestamp", start), *common],
        [("Acct-Status-Type", "Interim-Update"), ("Event-Timestamp", start + 300),
         ("Acct-Session-Time", 300), ("Acct-Input-Octets", 1000), ("Acct-Output-Octets", 9000),
         *common],
        [("Acct-Status-Type", "Stop"), ("Event-Timestamp", start + 420),
         ("Acct-Delay-Time", 20), ("Acct-Session-Time", 400), ("Acct-Input-Octets", 1500),
         ("Acct-Input-Gigawords", 1), ("Acct-Output-Octets", 12000),
         ("Acct-Terminate-Cause", "Idle-Timeout"), *common],
    ]


@pytest.mark.parametrize("sender", ["codec", "radclient", "pyrad"])
def test_a_session_life_cycle(server, nas, freeradius, sender):
    session_id = f"life-{sender}-{random.randrange(1 << 32):08x}"
    for pairs in life(session_id):
        if sender == "pyrad":
            assert pyrad_exchange(pairs, server.acct()) == codec.ACCOUNTING_RESPONSE
        elif sender == "radclient":
            result = freeradius.radclient([radclient_line(*p) for p in pairs], server.acct(),
                                          "acct")
            assert result.reply == "Accounting-Response", result
        else:
            assert nas.ask(nas.accounting(pairs), server.acct()).code == codec.ACCOUNTING_RESPONSE
    # Acknowledged means stored (in the journal); applied, it is all there.
    row = session_row(server, session_id)
    assert (row.username, row.nas_address, row.nas_port, row.framed_ip) == (
        "alice@isp-a", "192.0.2.60", "7", "192.0.2.77")
    assert (row.isp, row.route_mode, row.route_reason) == ("isp-a", "proxy", "realm @isp-a")
    assert (row.status, row.closed_by, row.terminate_cause) == ("closed", "stop", "Idle-Timeout")
    assert (int(row.start_time.timestamp()), int(row.stop_time.timestamp())) == (
        T0 + 3600, T0 + 3600 + 400)  # Event-Timestamp minus Acct-Delay-Time
    assert (row.session_time, row.input_octets, row.output_octets) == (400, (1 << 32) + 1500,
                                                                       12000)
    history = query(server, select(AcctHistory.status).where(AcctHistory.radacct_id == row.id)
                    .order_by(AcctHistory.id))
    assert [h.status for h in history] == ["start", "interim", "stop"]
    (route,), = query(server, select(RoutingRecord).where(RoutingRecord.radacct_id == row.id))
    assert (route.username, route.isp, route.route_mode, route.session_time) == (
        "alice@isp-a", "isp-a", "proxy", 400)


def test_accounting_on_closes_the_sessions_of_that_nas(server, nas):
    tag = f"{random.randrange(1 << 32):08x}"
    nas_ip = "192.0.2.61"
    for n in range(3):
        start = [("Acct-Status-Type", "Start"), ("Acct-Session-Id", f"on-{tag}-{n}"),
                 ("User-Name", f"u{n}"), ("NAS-IP-Address", nas_ip if n < 2 else "192.0.2.62"),
                 ("Event-Timestamp", T0 + 7200)]
        assert nas.ask(nas.accounting(start), server.acct()).code == codec.ACCOUNTING_RESPONSE
    on = [("Acct-Status-Type", "Accounting-On"), ("NAS-IP-Address", nas_ip),
          ("Event-Timestamp", T0 + 7300)]
    assert nas.ask(nas.accounting(on), server.acct()).code == codec.ACCOUNTING_RESPONSE
    rows = [session_row(server, f"on-{tag}-{n}") for n in range(3)]
    assert [(r.status, r.closed_by, r.terminate_cause) for r in rows] == [
        ("closed", "nas-reboot", "NAS-Reboot"), ("closed", "nas-reboot", "NAS-Reboot"),
        ("open", None, None)]
    assert rows[0].session_time == 100


def test_stop_before_start_and_a_missing_status_type(server, nas):
    session_id = f"order-{random.randrange(1 << 32):08x}"
    stop, start = life(session_id, nas="192.0.2.63")[2], life(session_id, nas="192.0.2.63")[0]
    for pairs in (stop, start):
        assert nas.ask(nas.accounting(pairs), server.acct()).code == codec.ACCOUNTING_RESPONSE
    row = session_row(server, session_id)
    assert (row.status, row.flags) == ("closed", "no-start,late-start")
    assert int(row.start_time.timestamp()) == T0 + 3600
    # RFC 2866 §4.1: Acct-Status-Type is required; without it the request is dropped.
    before = server.metric("vpop_dropped_total", reason="malformed")
    request = nas.accounting([("Acct-Session-Id", "no-status"), ("User-Name", "x")])
    assert nas.exchange(request, server.acct(), timeout=1.0) is None
    assert server.wait_for_metric("vpop_dropped_total", before + 1, reason="malformed") >= before + 1


def test_reports_on_what_the_server_stored(server, nas):
    session_id = f"report-{random.randrange(1 << 32):08x}"
    for pairs in life(session_id, nas="192.0.2.64", start=T0 + 86_400 + 600):
        assert nas.ask(nas.accounting(pairs), server.acct()).code == codec.ACCOUNTING_RESPONSE
    server.wait_for_ledger()
    result = run_vpop(server.config, "report", "sessions", "--from", "2026-03-02",
                      "--to", "2026-03-03", "--grain", "day", "--by", "nas", "--nas",
                      "192.0.2.64", "--format", "csv")
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    assert (row["group"], row["starts"], row["stops"], row["hours"], row["input_octets"]) == (
        "192.0.2.64", "1", "1", "0.111111", str((1 << 32) + 1500))
    table = run_vpop(server.config, "report", "utilization", "--from", "2026-03-02")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:3] == ["bucket", "isp", "lease"]


def test_a_ledger_that_dies_is_replaced_and_nothing_acknowledged_is_lost(server, nas):
    """SIGKILL the ledger: the server starts a new one, which applies what the old one
    had not, while NASes are answered all along from the journal."""
    old = server.ledger_pid()
    os.kill(old, signal.SIGSTOP)  # first held still, so the journal has a backlog
    session_ids = [f"orphan-{random.randrange(1 << 32):08x}-{n}" for n in range(20)]
    for session_id in session_ids:
        start = [("Acct-Status-Type", "Start"), ("Acct-Session-Id", session_id),
                 ("User-Name", "alice"), ("NAS-IP-Address", "192.0.2.65")]
        assert nas.ask(nas.accounting(start), server.acct()).code == codec.ACCOUNTING_RESPONSE
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + METRIC_TIMEOUT
    while server.ledger_pid() == old:
        assert time.monotonic() < deadline, "no new ledger started"
        time.sleep(0.05)
    assert "the ledger exited" in server.log_text()
    rows = query(server, select(RadAcct.acct_session_id).where(
        RadAcct.acct_session_id.in_(session_ids)))
    assert sorted(r.acct_session_id for r in rows) == sorted(session_ids)
