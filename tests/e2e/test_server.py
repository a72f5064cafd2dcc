"""One `vpop serve` with the demo data, driven over loopback by radclient, radtest and
vpop's codec: every login method, the drops and their counters, accounting into the
database, hostile input, reload on SIGHUP."""

from __future__ import annotations

import random
import time

import pytest
from sqlalchemy import text

from e2e_support import (GRACE, SECRET, SILENCE, START_TIMEOUT, Link, VpopServer,
                         reply_message)
from vpop.aaa import credentials as cred
from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.radius.crypto import decrypt_salted
from vpop.store.engine import make_engine

pytestmark = pytest.mark.e2e

RES_10M = b"res-10m"  # Class of the residential-10m profile (alice, carol)
CLI = b"cli"  # Class of the callerid-login profile (dave)


def assert_dropped(server, request, addr, reason, *, source=None):
    """No answer, and the drop counted once under `reason`."""
    before = server.metric("vpop_dropped_total", reason=reason)
    with Link(addr, source) as link:
        link.send(request.data)
        after = server.wait_for_metric("vpop_dropped_total", before + 1, reason=reason)
        assert after == before + 1, f"vpop_dropped_total{{reason={reason!r}}}: {before} -> {after}"
        assert link.receive(SILENCE) is None, "the server answered a request it should drop"


# --- Status-Server (RFC 5997) -------------------------------------------------------------

@pytest.mark.parametrize("port, code", [("auth", codec.ACCESS_ACCEPT),
                                        ("acct", codec.ACCOUNTING_RESPONSE)])
def test_status_server_is_answered_on_auth_and_acct_ports(server, nas, port, code):
    reply = nas.ask(nas.status_server(), getattr(server, port)())
    assert reply.code == code
    assert reply.ma_offset >= 0  # RFC 5997 §3: the response carries one too


@pytest.mark.parametrize("port, expected", [("auth", "Access-Accept"),
                                            ("acct", "Accounting-Response")])
def test_status_server_with_radclient(server, freeradius, port, expected):
    result = freeradius.radclient(["Message-Authenticator = 0x00"], getattr(server, port)(),
                                  "status")
    assert result.returncode == 0, result.transcript
    assert result.reply == expected, result.transcript


def test_status_server_without_message_authenticator_is_dropped(server, nas):
    assert_dropped(server, nas.status_server(ma=False), server.auth(),
                   "Status-Server without Message-Authenticator")


# --- the login methods --------------------------------------------------------------------

def test_pap_with_radtest(server, freeradius):
    result = freeradius.radtest("alice", "alice-pass", server.auth())
    # radtest 3.2 adds Message-Authenticator itself, as the demo NAS requires.
    assert "Message-Authenticator = 0x00" in result.stdout, result.transcript
    assert result.returncode == 0, result.transcript
    assert result.reply == "Access-Accept", result.transcript
    assert result.attrs["Framed-Pool"] == ["residential"]
    assert result.attrs["Session-Timeout"] == ["86400"]
    assert "0x" + RES_10M.hex() in result.attrs["Class"]


def test_pap_against_a_pbkdf2_hash(server, freeradius):
    assert freeradius.radtest("bob", "bob-pass", server.auth()).reply == "Access-Accept"
    assert freeradius.radtest("bob", "bob-pas", server.auth()).reply == "Access-Reject"


@pytest.mark.parametrize("user, password, expected", [
    ("alice", "alice-pass", "Access-Accept"),
    ("carol", "carol-pass", "Access-Accept"),
    ("carol", "alice-pass", "Access-Reject"),
    ("bob", "bob-pass", "Access-Reject"),  # PAP only: no cleartext kept for CHAP
])
def test_chap_with_radclient(server, freeradius, user, password, expected):
    result = freeradius.radclient([f'User-Name = "{user}"', f'CHAP-Password = "{password}"',
                                   "Message-Authenticator = 0x00"], server.auth(), "auth")
    assert "CHAP-Password = 0x" in result.stdout, result.transcript  # sent hashed, not in the clear
    assert result.reply == expected, result.transcript


def test_mschap_v1_with_radtest(server, freeradius):
    result = freeradius.radtest("alice", "alice-pass", server.auth(), method="mschap")
    assert "MS-CHAP-Response = 0x" in result.stdout, result.transcript
    assert result.returncode == 0, result.transcript
    assert result.reply == "Access-Accept", result.transcript
    assert len(result.attrs["MS-CHAP-MPPE-Keys"]) == 1, result.transcript

    wrong = freeradius.radtest("alice", "not-alice", server.auth(), method="mschap")
    assert wrong.reply == "Access-Reject", wrong.transcript


def mschapv2_request(nas, user: str, password: str, rng: random.Random):
    auth_challenge, peer_challenge = rng.randbytes(16), rng.randbytes(16)
    nt_response = cred.mschapv2_nt_response(auth_challenge, peer_challenge, user.encode(),
                                            cred.nt_hash(password))
    ident = rng.randrange(256)
    response = bytes((ident, 0)) + peer_challenge + bytes(8) + nt_response
    raw = (codec.vendor_attribute(A.MICROSOFT, 11, auth_challenge)
           + codec.vendor_attribute(A.MICROSOFT, 25, response))
    request = nas.access([("User-Name", user)], raw=raw)
    return request, ident, auth_challenge, peer_challenge, nt_response


def test_mschap_v2_success_and_mppe_keys(server, nas):
    rng = random.Random(2759)
    request, ident, auth_challenge, peer_challenge, nt_response = mschapv2_request(
        nas, "alice", "alice-pass", rng)
    reply = nas.ask(request, server.auth())
    assert reply.code == codec.ACCESS_ACCEPT, reply_message(reply)

    nt_hash = cred.nt_hash("alice-pass")
    expected = cred.mschapv2_authenticator_response(nt_hash, nt_response, peer_challenge,
                                                    auth_challenge, b"alice")
    assert reply.first((A.MICROSOFT, 26)) == bytes((ident,)) + expected.encode()  # MS-CHAP2-Success
    send_key, recv_key = cred.mppe_session_keys(nt_hash, nt_response)
    # RFC 2548 §2.4.2-3: salted, encrypted with the secret and the request authenticator.
    assert decrypt_salted(reply.first((A.MICROSOFT, 16)), SECRET,
                          request.authenticator)[:16] == send_key
    assert decrypt_salted(reply.first((A.MICROSOFT, 17)), SECRET,
                          request.authenticator)[:16] == recv_key


def test_mschap_v2_wrong_password(server, nas):
    request, ident, *_ = mschapv2_request(nas, "alice", "wrong-pass", random.Random(7))
    reply = nas.ask(request, server.auth())
    assert reply.code == codec.ACCESS_REJECT
    error = reply.first(A.MS_CHAP_ERROR)
    assert error is not None and b"E=691" in error  # RFC 2759 §6: authentication failure


def test_caller_id_login_with_radclient(server, freeradius):
    result = freeradius.radclient(['Calling-Station-Id = "040555000"',
                                   "Message-Authenticator = 0x00"], server.auth(), "auth")
    assert result.reply == "Access-Accept", result.transcript
    assert "0x" + CLI.hex() in result.attrs["Class"], result.transcript


@pytest.mark.parametrize("number", ["040 555000", "+49 40 555000", "004940555000",
                                    "+49 (40) 555-000"])
def test_caller_id_login_in_any_spelling(server, nas, number):
    reply = nas.ask(nas.access([("Calling-Station-Id", number)]), server.auth())
    assert reply.code == codec.ACCESS_ACCEPT, reply_message(reply)
    assert reply.first(A.CLASS) == CLI


def test_caller_id_alone_needs_the_profile_flag(server, nas):
    # alice's number is known, but her profile does not allow login by caller ID.
    reply = nas.ask(nas.access([("Calling-Station-Id", "030 1234567")]), server.auth())
    assert reply.code == codec.ACCESS_REJECT


@pytest.mark.parametrize("line", ['Agent-Circuit-Id = "bras1 eth 0/1/2:100"',
                                  'Agent-Remote-Id = "carol-cpe-01"'])
def test_pppoe_line_login(server, freeradius, line):
    def login(password):
        return freeradius.radclient(['User-Name = "cpe-default@isp.example"',
                                     f'User-Password = "{password}"', line,
                                     "Message-Authenticator = 0x00"], server.auth(), "auth")
    accepted = login("carol-pass")
    assert accepted.reply == "Access-Accept", accepted.transcript
    assert "0x" + RES_10M.hex() in accepted.attrs["Class"], accepted.transcript
    assert login("alice-pass").reply == "Access-Reject"


def test_wrong_password_is_rejected_with_a_reply_message(server, nas, freeradius):
    result = freeradius.radtest("alice", "not-alice", server.auth())
    assert result.reply == "Access-Reject", result.transcript
    assert result.attrs.get("Reply-Message"), result.transcript

    reply = nas.ask(nas.access([("User-Name", "alice")], password="not-alice"), server.auth())
    assert reply.code == codec.ACCESS_REJECT
    assert reply_message(reply)
    assert "not-alice" not in reply_message(reply)


def test_unknown_user_is_rejected(server, nas):
    reply = nas.ask(nas.access([("User-Name", "mallory")], password="x"), server.auth())
    assert reply.code == codec.ACCESS_REJECT


@pytest.mark.parametrize("user, message", [("erin", "Account disabled"),
                                           ("frank", "Account expired")])
def test_disabled_and_expired_accounts(server, nas, user, message):
    reply = nas.ask(nas.access([("User-Name", user)], password=f"{user}-pass"), server.auth())
    assert reply.code == codec.ACCESS_REJECT
    assert reply_message(reply) == message


def test_proxy_state_is_echoed_in_order(server, nas):
    raw = codec.attribute(A.PROXY_STATE, b"first") + codec.attribute(A.PROXY_STATE, b"\x00two")
    request = nas.access([("User-Name", "alice")], password="alice-pass", raw=raw)
    reply = nas.ask(request, server.auth())
    assert reply.code == codec.ACCESS_ACCEPT
    assert reply.attrs[A.PROXY_STATE] == [b"first", b"\x00two"]


def test_ipv6(server, nas, freeradius):
    reply = nas.ask(nas.access([("User-Name", "alice")], password="alice-pass"),
                    server.auth("::1"))
    assert reply.code == codec.ACCESS_ACCEPT
    result = freeradius.radclient(['User-Name = "carol"', 'CHAP-Password = "carol-pass"',
                                   "Message-Authenticator = 0x00"], server.auth("::1"), "auth")
    assert result.reply == "Access-Accept", result.transcript
    assert server.metric("vpop_requests_total", client="localhost6", code="Access-Request",
                         outcome="accept") >= 2


@pytest.mark.parametrize("command, expected", [("coa", "CoA-NAK"),
                                               ("disconnect", "Disconnect-NAK")])
def test_dynamic_authorization_is_answered_with_a_nak(server, freeradius, command, expected):
    result = freeradius.radclient(['User-Name = "alice"', "Message-Authenticator = 0x00"],
                                  server.coa(), command)
    assert result.reply == expected, result.transcript
    assert result.attrs["Error-Cause"] == ["Unsupported-Service"], result.transcript


# --- what is dropped, and counted ---------------------------------------------------------

def test_unknown_client_gets_no_answer(server, nas):
    assert_dropped(server, nas.access([("User-Name", "alice")], password="alice-pass"),
                   server.auth(), "unknown client", source="127.0.0.2")


@pytest.mark.parametrize("kind, reason", [("access", "bad Message-Authenticator"),
                                          ("accounting", "bad Request Authenticator")])
def test_wrong_secret_gets_no_answer(server, nas, kind, reason):
    if kind == "access":
        request, addr = nas.access([("User-Name", "alice")], password="alice-pass",
                                   secret=b"not-the-secret"), server.auth()
    else:
        request, addr = nas.accounting([("Acct-Status-Type", "Start"),
                                        ("Acct-Session-Id", "wrong-secret")],
                                       secret=b"not-the-secret"), server.acct()
    assert_dropped(server, request, addr, reason)


def test_missing_message_authenticator_gets_no_answer(server, nas):
    assert_dropped(server, nas.access([("User-Name", "alice")], password="alice-pass", ma=False),
                   server.auth(), "missing Message-Authenticator")


def test_retransmission_gets_the_same_reply(server, nas):
    request = nas.access([("User-Name", "alice")], password="alice-pass")
    duplicates = server.metric("vpop_duplicates_total")
    answered = server.metric_sum("vpop_requests_total")
    with Link(server.auth()) as link:
        link.send(request.data)
        first = link.receive()
        assert first is not None, "no reply"
        link.send(request.data)
        second = link.receive()
    assert second == first
    assert nas.check(request, first).code == codec.ACCESS_ACCEPT
    assert server.wait_for_metric("vpop_duplicates_total", duplicates + 1) == duplicates + 1
    assert server.metric_sum("vpop_requests_total") == answered + 1  # processed once


def malformed_datagrams(valid: bytes) -> list[bytes]:
    header = lambda length: bytes((codec.ACCESS_REQUEST, 9)) + length.to_bytes(2, "big") + bytes(16)
    return [
        b"",  # empty
        b"\x01",  # one octet
        bytes(19),  # one short of a header
        valid[:len(valid) - 5],  # truncated: Length says more than arrived
        header(12),  # Length below the header's 20
        header(5000) + bytes(4980),  # Length above 4096
        header(24) + b"\x01\x00ab",  # attribute length 0
        header(24) + b"\x01\x01ab",  # attribute length 1
        header(24) + b"\x01\xc8ab",  # attribute runs past the packet
        header(21) + b"\x01",  # attribute header cut off
        header(30) + bytes((A.MESSAGE_AUTHENTICATOR, 10)) + bytes(8),  # bad Message-Authenticator
        b"\xff" * 100,  # garbage
        b"GET / HTTP/1.1\r\nHost: radius\r\n\r\n",  # the wrong protocol
        bytes(range(256)),
    ]


def test_malformed_packets_do_not_disturb_the_server(server, nas):
    valid = nas.access([("User-Name", "alice")], password="alice-pass")
    burst = malformed_datagrams(valid.data)
    before = server.metric("vpop_dropped_total", reason="malformed")
    for addr in (server.auth(), server.acct()):
        with Link(addr) as link:
            for data in burst:
                link.send(data)
            assert link.receive(SILENCE) is None
    # The server still answers, at once.
    assert nas.ask(valid, server.auth()).code == codec.ACCESS_ACCEPT
    expected = before + 2 * len(burst)
    assert server.wait_for_metric("vpop_dropped_total", expected, reason="malformed") == expected
    assert server.process.poll() is None
    assert server.metric("vpop_dropped_total", reason="internal error") == 0


# --- accounting ----------------------------------------------------------------------------

def radacct_row(server, session_id: str):
    """The session's row in radacct, read as another process would, once the ledger has
    applied what was acknowledged."""
    server.wait_for_ledger()
    engine = make_engine(server.db_url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT * FROM radacct WHERE acct_session_id = :id"),
                                      {"id": session_id}).mappings().one()
    finally:
        engine.dispose()


ACCT_START = [("User-Name", "alice"), ("NAS-IP-Address", "127.0.0.1"), ("NAS-Port", 7),
              ("Calling-Station-Id", "+49 30 1234567"), ("Framed-IP-Address", "192.0.2.77")]
ACCT_STOP = [("Acct-Session-Time", 120), ("Acct-Input-Octets", 1000),
             ("Acct-Output-Octets", 2000), ("Acct-Terminate-Cause", "User-Request")]


def radclient_line(name, value) -> str:
    return f'{name} = "{value}"' if isinstance(value, str) else f"{name} = {value}"


@pytest.mark.parametrize("sender", ["radclient", "codec"])
def test_accounting_start_and_stop_are_stored(server, nas, freeradius, sender):
    session_id = f"e2e-{sender}-{random.randrange(1 << 32):08x}"
    start = [("Acct-Status-Type", "Start"), ("Acct-Session-Id", session_id), *ACCT_START]
    stop = [("Acct-Status-Type", "Stop"), ("Acct-Session-Id", session_id), *ACCT_START,
            *ACCT_STOP]
    for pairs in (start, stop):
        if sender == "radclient":
            result = freeradius.radclient([radclient_line(*p) for p in pairs], server.acct(),
                                          "acct")
            assert result.reply == "Accounting-Response", result.transcript
            assert result.returncode == 0, result.transcript
        else:
            reply = nas.ask(nas.accounting(pairs), server.acct())
            assert reply.code == codec.ACCOUNTING_RESPONSE
    # RFC 2866 §4.1: the response promises the record is stored (in the journal, which
    # the ledger applies to the database).
    row = radacct_row(server, session_id)
    assert (row["username"], row["nas_address"], row["nas_port"]) == ("alice", "127.0.0.1", "7")
    assert row["framed_ip"] == "192.0.2.77"
    assert row["status"] == "closed"
    assert (row["session_time"], row["input_octets"], row["output_octets"]) == (120, 1000, 2000)
    assert row["terminate_cause"] == "User-Request"
    assert row["start_time"] is not None and row["stop_time"] is not None


# --- reload ------------------------------------------------------------------------------------

def test_sighup_loads_a_subscriber_imported_while_running(server, nas):
    assert nas.login("grace", "grace-pass", server.auth()) == codec.ACCESS_REJECT
    server.import_plan(GRACE)
    server.reload()
    assert nas.accepted_in_a_row("grace", "grace-pass", server.auth(), times=1), \
        "grace was not accepted after SIGHUP"
    # The reload kept everything else.
    assert nas.login("alice", "alice-pass", server.auth()) == codec.ACCESS_ACCEPT
    assert server.process.poll() is None


# --- ports -------------------------------------------------------------------------------------

def test_a_second_server_on_the_same_ports_refuses_to_start(server, tmp_path, nas):
    second = VpopServer.create(tmp_path / "second", metrics=False,
                               ports=(server.auth_port, server.acct_port, server.coa_port))
    second.spawn()
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while second.process.poll() is None and not second.ready_workers():
            assert time.monotonic() < deadline, "second vpop serve neither failed nor started"
            time.sleep(0.05)
        running = second.process.poll() is None
    finally:
        status = second.stop()  # it must not keep the first server's traffic
    assert not running, ("a second vpop serve started on ports the first one holds:\n"
                         f"{second.diagnostics()}")
    assert status != 0
    output = second.output_text()
    assert "cannot listen" in output and "in use" in output, output
    assert "Traceback" not in output
    # The first server is undisturbed.
    assert nas.login("alice", "alice-pass", server.auth()) == codec.ACCESS_ACCEPT
