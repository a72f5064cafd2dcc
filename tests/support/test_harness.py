"""The upstream test harness proven against FreeRADIUS directly, with no vpop in between.

Whatever the proxy tests later conclude rests on these: that the generated
FreeRADIUS answers PAP, CHAP, MS-CHAP v1 and v2, Status-Server and EAP-PEAP as an
ISP's server does, writes each accounting record once to its detail file, and
can be stopped, killed and restarted on the same ports. A missing radclient,
radtest, freeradius, eapol_test or openssl fails these tests with the reason.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import socket
import subprocess

import pytest

from support.eapol import run_eapol_test
from support.freeradius import (FreeRadius, FreeRadiusError, MissingTool, find_tool,
                                free_udp_port, parse_detail, users_file)
from vpop.aaa import credentials as cred
from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.radius.crypto import decrypt_salted, encrypt_user_password
from vpop.radius.dictionary import Dictionary, shipped_dictionary

pytestmark = pytest.mark.e2e

SECRET = "isp-a-secret"
USERS = {"alice": "alice-pass", "alice@isp-a.example": "alice-pass",
         "quote'user": "pa'ss %{User-Name} \\ \"x\""}
REPLIES = {"alice": {"Framed-IP-Address": "192.0.2.7", "Reply-Message": "welcome to ISP A",
                     "Session-Timeout": 3600}}
DICTIONARY = Dictionary(shipped_dictionary())
REPLY_TIMEOUT = 3.0  # waiting for an answer that should come
SILENCE = 1.0  # listening for an answer that must not come


def tool(name: str) -> str:
    try:
        return find_tool(name)
    except MissingTool as exc:
        pytest.fail(str(exc), pytrace=False)


def started(server_factory) -> FreeRadius:
    try:
        server = server_factory()
        server.start()
    except (MissingTool, FreeRadiusError) as exc:
        pytest.fail(str(exc), pytrace=False)
    return server


@pytest.fixture(scope="module")
def isp():
    """ISP A's server, strict like a current FreeRADIUS: Message-Authenticator required."""
    server = started(lambda: FreeRadius("isp-a", users=USERS, replies=REPLIES,
                                        clients=[("127.0.0.1/32", SECRET)],
                                        require_message_authenticator=True))
    yield server
    status = server.stop()
    log = server.log()
    server.cleanup()
    assert status == 0, f"FreeRADIUS exited with {status} on SIGTERM\n{log}"


@pytest.fixture
def scratch():
    """A server a test may stop, kill and restart."""
    server = started(lambda: FreeRadius("scratch", users={"bob": "bob-pass"},
                                        clients=[("127.0.0.0/8", "s3cret")]))
    yield server
    server.cleanup()


# --- talking RADIUS from Python ------------------------------------------------------------

def exchange(addr, data: bytes, timeout: float = REPLY_TIMEOUT) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect(addr)
        sock.send(data)
        try:
            return sock.recv(4096)
        except (socket.timeout, ConnectionRefusedError):
            return None


def access(addr, secret: str, attrs: bytes = b"", *, password: str | None = None,
           authenticator: bytes | None = None, ma: bool = True,
           timeout: float = REPLY_TIMEOUT) -> codec.Packet | None:
    """Send an Access-Request (with User-Password hidden if given); the verified reply,
    or None when none came within `timeout`."""
    authenticator = authenticator or random.randbytes(16)
    if password is not None:
        attrs += codec.attribute(A.USER_PASSWORD, encrypt_user_password(
            password.encode(), secret.encode(), authenticator))
    data = codec.encode_request(codec.ACCESS_REQUEST, random.randrange(256), attrs,
                                secret.encode(), authenticator=authenticator,
                                message_authenticator=ma)
    reply = exchange(addr, data, timeout)
    if reply is None:
        return None
    assert codec.reply_ok(reply, authenticator, secret.encode()), "reply does not verify"
    return codec.decode(reply)


def access_pap(addr, secret: str, user: str, password: str, **kwargs) -> codec.Packet | None:
    return access(addr, secret, codec.attribute(A.USER_NAME, user.encode()), password=password,
                  **kwargs)


def radclient(addr, command: str, secret: str, lines: list[str]) -> subprocess.CompletedProcess:
    host, port = addr
    return subprocess.run([tool("radclient"), "-x", "-t", "2", "-r", "1", f"{host}:{port}",
                           command, secret], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, timeout=30)


def received(result: subprocess.CompletedProcess) -> str | None:
    match = re.search(r"^Received (\S+) Id", result.stdout, re.M)
    return match.group(1) if match else None


# --- the tools are there ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["freeradius", "radclient", "radtest", "eapol_test", "openssl"])
def test_tool_is_installed(name):
    assert os.access(tool(name), os.X_OK)


def test_missing_tool_names_the_package(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(MissingTool, match=r"apt-get install eapoltest"):
        find_tool("eapol_test")


# --- authentication ------------------------------------------------------------------------

def test_pap_accept_with_reply_attributes_via_radclient(isp):
    result = radclient(isp.auth_addr, "auth", SECRET, [
        'User-Name = "alice"', 'User-Password = "alice-pass"', "Message-Authenticator = 0x00"])
    assert received(result) == "Access-Accept", result.stdout + result.stderr
    assert "Framed-IP-Address = 192.0.2.7" in result.stdout
    assert 'Reply-Message = "welcome to ISP A"' in result.stdout
    assert "Session-Timeout = 3600" in result.stdout


def test_pap_wrong_password_is_rejected_via_radtest(isp):
    result = subprocess.run([tool("radtest"), "alice", "wrong", f"127.0.0.1:{isp.auth_port}",
                             "0", SECRET, "0", "127.0.0.1"], capture_output=True, text=True,
                            timeout=30)
    assert received(result) == "Access-Reject", result.stdout + result.stderr


@pytest.mark.parametrize("method", ["pap", "chap", "mschap"])
def test_radtest_methods_accept(isp, method):
    # radtest -t mschap is MS-CHAP v1 (MS-CHAP-Challenge + MS-CHAP-Response).
    result = subprocess.run([tool("radtest"), "-t", method, "alice", "alice-pass",
                             f"127.0.0.1:{isp.auth_port}", "0", SECRET, "0", "127.0.0.1"],
                            capture_output=True, text=True, timeout=30)
    assert received(result) == "Access-Accept", result.stdout + result.stderr


def test_pap_realm_user_and_literal_quoting_from_python(isp):
    reply = access_pap(isp.auth_addr, SECRET, "alice@isp-a.example", "alice-pass")
    assert reply is not None and reply.code == codec.ACCESS_ACCEPT
    # Quotes, backslashes and %{...} in names and passwords are taken literally.
    reply = access_pap(isp.auth_addr, SECRET, "quote'user", USERS["quote'user"])
    assert reply is not None and reply.code == codec.ACCESS_ACCEPT
    reply = access_pap(isp.auth_addr, SECRET, "quote'user", "pa'ss quote'user \\ \"x\"")
    assert reply is not None and reply.code == codec.ACCESS_REJECT


def test_pap_reply_attributes_decode(isp):
    reply = access_pap(isp.auth_addr, SECRET, "alice", "alice-pass")
    assert reply is not None and reply.code == codec.ACCESS_ACCEPT
    assert reply.first(A.FRAMED_IP_ADDRESS) == socket.inet_aton("192.0.2.7")
    assert reply.first(A.REPLY_MESSAGE) == b"welcome to ISP A"
    assert reply.ma_offset >= 0  # sign_replies: as FreeRADIUS 3.2.5+ does


def test_unsigned_replies_like_freeradius_3_2_1():
    server = started(lambda: FreeRadius("unsigned", users={"a": "b"}, sign_replies=False))
    try:
        for password, code in (("b", codec.ACCESS_ACCEPT), ("x", codec.ACCESS_REJECT)):
            reply = access_pap(server.auth_addr, server.secret, "a", password)
            assert reply.code == code and reply.ma_offset == -1
    finally:
        server.cleanup()


def test_chap_from_python(isp):
    challenge, chap_id = random.randbytes(16), 7
    response = hashlib.md5(bytes((chap_id,)) + b"alice-pass" + challenge).digest()
    attrs = (codec.attribute(A.USER_NAME, b"alice")
             + codec.attribute(A.CHAP_PASSWORD, bytes((chap_id,)) + response)
             + codec.attribute(A.CHAP_CHALLENGE, challenge))
    assert access(isp.auth_addr, SECRET, attrs).code == codec.ACCESS_ACCEPT
    bad = hashlib.md5(bytes((chap_id,)) + b"wrong" + challenge).digest()
    attrs = attrs.replace(response, bad)
    assert access(isp.auth_addr, SECRET, attrs).code == codec.ACCESS_REJECT


def mschapv2_attrs(user: str, password: str, challenge: bytes, peer: bytes) -> bytes:
    nt_response = cred.mschapv2_nt_response(challenge, peer, user.encode(),
                                            cred.nt_hash(password))
    value = bytes((1, 0)) + peer + bytes(8) + nt_response  # RFC 2548 §2.3.2
    return (codec.attribute(A.USER_NAME, user.encode())
            + codec.vendor_attribute(A.MICROSOFT, A.MS_CHAP_CHALLENGE[1], challenge)
            + codec.vendor_attribute(A.MICROSOFT, A.MS_CHAP2_RESPONSE[1], value))


def test_mschapv2_accept_with_success_and_mppe_keys(isp):
    challenge, peer = random.randbytes(16), random.randbytes(16)
    authenticator = random.randbytes(16)
    reply = access(isp.auth_addr, SECRET, mschapv2_attrs("alice", "alice-pass", challenge, peer),
                   authenticator=authenticator)
    assert reply.code == codec.ACCESS_ACCEPT
    nt_hash = cred.nt_hash("alice-pass")
    nt_response = cred.mschapv2_nt_response(challenge, peer, b"alice", nt_hash)
    expected = cred.mschapv2_authenticator_response(nt_hash, nt_response, peer, challenge,
                                                    b"alice")
    assert reply.first((A.MICROSOFT, 26)) == cred.ms_chap2_success_value(1, expected)
    send_key, recv_key = cred.mppe_session_keys(nt_hash, nt_response)
    secret = SECRET.encode()
    # RFC 2548 §2.4.2-3: MS-MPPE-Send-Key and MS-MPPE-Recv-Key, salt-encrypted.
    assert decrypt_salted(reply.first((A.MICROSOFT, 16)), secret, authenticator) == send_key
    assert decrypt_salted(reply.first((A.MICROSOFT, 17)), secret, authenticator) == recv_key


def test_mschapv2_wrong_password_is_rejected(isp):
    attrs = mschapv2_attrs("alice", "wrong", random.randbytes(16), random.randbytes(16))
    reply = access(isp.auth_addr, SECRET, attrs)
    assert reply.code == codec.ACCESS_REJECT and reply.ma_offset >= 0
    assert reply.first((A.MICROSOFT, 2)) is not None  # MS-CHAP-Error


def test_require_message_authenticator_drops_unsigned_requests(isp):
    assert access_pap(isp.auth_addr, SECRET, "alice", "alice-pass", ma=False,
                      timeout=SILENCE) is None
    lenient = started(lambda: FreeRadius("lenient", users={"alice": "alice-pass"}))
    try:
        reply = access_pap(lenient.auth_addr, lenient.secret, "alice", "alice-pass", ma=False)
        assert reply is not None and reply.code == codec.ACCESS_ACCEPT
    finally:
        lenient.cleanup()


def test_wrong_secret_gets_no_valid_answer(isp):
    # FreeRADIUS cannot tell a wrong secret from a bad password for PAP, but the
    # Message-Authenticator check fails first and the request is dropped.
    assert access_pap(isp.auth_addr, "not-the-secret", "alice", "alice-pass",
                      timeout=SILENCE) is None
    assert "invalid Message-Authenticator" in isp.log()


def test_unknown_client_is_ignored(isp):
    # 127.0.0.2 is loopback too, but not among isp's clients (127.0.0.1/32).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.2", 0))
        sock.settimeout(SILENCE)
        sock.connect(isp.auth_addr)
        sock.send(codec.encode_request(codec.STATUS_SERVER, 1, b"", SECRET.encode(),
                                       authenticator=random.randbytes(16)))
        with pytest.raises(socket.timeout):
            sock.recv(4096)


# --- Status-Server (RFC 5997) --------------------------------------------------------------

def test_status_server_answered_on_both_ports(isp):
    assert isp.ping() == codec.ACCESS_ACCEPT
    assert isp.ping(acct=True) == codec.ACCOUNTING_RESPONSE


def test_status_server_via_radclient(isp):
    result = radclient(isp.auth_addr, "status", SECRET, ["Message-Authenticator = 0x00"])
    assert received(result) == "Access-Accept", result.stdout + result.stderr


def test_status_server_can_be_turned_off():
    server = started(lambda: FreeRadius("no-status", users={"a": "b"}, status_server=False))
    try:
        assert server.ping(timeout=0.5) is None
        assert access_pap(server.auth_addr, server.secret, "a", "b").code == codec.ACCESS_ACCEPT
    finally:
        server.cleanup()


# --- EAP-PEAP / MSCHAPv2 -------------------------------------------------------------------

def test_eapol_test_peap_mschapv2_succeeds(isp):
    tool("eapol_test")
    result = run_eapol_test("127.0.0.1", isp.auth_port, SECRET, "alice", "alice-pass",
                            anonymous_identity="anonymous@isp-a.example", ca_cert=isp.ca_cert)
    assert result.ok, str(result)
    assert result.mppe_keys_match is True
    assert result.msk is not None and len(result.msk) == 64
    assert "Login OK: [alice]" in isp.log() and "via TLS tunnel" in isp.log()


def test_eapol_test_wrong_password_fails(isp):
    tool("eapol_test")
    result = run_eapol_test("127.0.0.1", isp.auth_port, SECRET, "alice", "wrong",
                            ca_cert=isp.ca_cert, timeout=5)
    assert not result.ok
    assert result.msk is not None  # the TLS tunnel was up; the inner MSCHAPv2 failed
    assert result.mppe_keys_match is False  # no Access-Accept, so no keys to match


# --- accounting into the detail file ------------------------------------------------------

def accounting_request(session: str, status: int, ident: int, delay: int = 0) -> bytes:
    pairs = [("User-Name", "alice"), ("Acct-Session-Id", session),
             ("Acct-Status-Type", status), ("NAS-IP-Address", "127.0.0.1"),
             ("Acct-Delay-Time", delay)]
    if status != A.ACCT_START:
        pairs += [("Acct-Session-Time", 60), ("Acct-Input-Octets", 1000)]
    return codec.encode_request(codec.ACCOUNTING_REQUEST, ident, DICTIONARY.encode_pairs(pairs),
                                SECRET.encode(), message_authenticator=False)


def test_accounting_records_land_in_the_detail_file_exactly_once(isp):
    nonce = random.randbytes(4).hex()
    sessions = [f"{nonce}-{n}" for n in range(5)]
    answers: dict[int, bytes] = {}  # Identifier -> the Accounting-Response
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(REPLY_TIMEOUT)
        sock.connect(isp.acct_addr)

        def answer_to(ident: int) -> bytes:
            while True:
                reply = sock.recv(4096)
                if reply[1] == ident:
                    return reply
                # The answer to an earlier retransmission: the cached response, unchanged.
                assert reply == answers[reply[1]]

        ident = 0
        for session in sessions:
            for status in (A.ACCT_START, A.ACCT_INTERIM, A.ACCT_STOP):
                data = accounting_request(session, status, ident)
                sock.send(data)
                answers[ident] = reply = answer_to(ident)
                assert reply[0] == codec.ACCOUNTING_RESPONSE
                assert codec.reply_ok(reply, data[4:20], SECRET.encode())
                # A NAS retransmission (same Identifier and authenticator from the same
                # port) is answered from the duplicate cache, or ignored while FreeRADIUS
                # finishes the request ("unfinished request"); never written twice.
                sock.send(data)
                ident += 1
    mine = [r for r in isp.detail_records() if r.get("Acct-Session-Id", "").startswith(nonce)]
    seen = sorted((r["Acct-Session-Id"], r["Acct-Status-Type"]) for r in mine)
    assert seen == sorted((s, t) for s in sessions for t in ("Start", "Interim-Update", "Stop"))
    record = next(r for r in mine if r["Acct-Status-Type"] == "Stop")
    assert record["User-Name"] == "alice"
    assert record["Acct-Session-Time"] == "60"
    assert record["NAS-IP-Address"] == "127.0.0.1"
    assert re.match(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$", record.header)


def test_accounting_via_radclient(isp):
    session = "radclient-" + random.randbytes(4).hex()
    result = radclient(isp.acct_addr, "acct", SECRET, [
        'User-Name = "alice"', f'Acct-Session-Id = "{session}"', "Acct-Status-Type = Start"])
    assert received(result) == "Accounting-Response", result.stdout + result.stderr
    assert [r["Acct-Status-Type"] for r in isp.detail_records()
            if r.get("Acct-Session-Id") == session] == ["Start"]


def test_parse_detail_fixture():
    text = ('Mon Mar  4 10:00:00 2024\n\tAcct-Status-Type = Start\n\tUser-Name = "a\\"b"\n'
            '\tClass = 0x01\n\tClass = 0x02\n\tTimestamp = 1709546400\n\n'
            'Mon Mar  4 10:00:01 2024\n\tAcct-Status-Type = Stop\n\n')
    first, second = parse_detail(text)
    assert first["User-Name"] == 'a"b' and first.all("Class") == ("0x01", "0x02")
    assert first.header == "Mon Mar  4 10:00:00 2024"
    assert dict(second) == {"Acct-Status-Type": "Stop"}


def test_users_file_refuses_replies_for_unknown_users():
    with pytest.raises(ValueError, match="without a password"):
        users_file({"a": "b"}, {"c": {"Reply-Message": "x"}})


# --- life cycle ----------------------------------------------------------------------------

def test_stop_and_restart_on_the_same_ports(scratch):
    port, pid = scratch.auth_port, scratch.pid
    assert access_pap(scratch.auth_addr, "s3cret", "bob", "bob-pass").code == codec.ACCESS_ACCEPT
    assert scratch.stop() == 0
    assert not scratch.running
    assert access_pap(scratch.auth_addr, "s3cret", "bob", "bob-pass", timeout=SILENCE) is None
    scratch.start()
    assert scratch.auth_port == port and scratch.pid != pid
    assert access_pap(scratch.auth_addr, "s3cret", "bob", "bob-pass").code == codec.ACCESS_ACCEPT


def test_kill_then_restart_keeps_the_detail_file(scratch):
    data = codec.encode_request(codec.ACCOUNTING_REQUEST, 1, DICTIONARY.encode_pairs(
        [("User-Name", "bob"), ("Acct-Session-Id", "k1"), ("Acct-Status-Type", "Start")]),
        b"s3cret", message_authenticator=False)
    assert exchange(scratch.acct_addr, data)[0] == codec.ACCOUNTING_RESPONSE
    assert scratch.kill() == -9
    assert scratch.ping(timeout=0.3) is None
    scratch.restart()
    assert scratch.ping() == codec.ACCESS_ACCEPT
    data = codec.encode_request(codec.ACCOUNTING_REQUEST, 2, DICTIONARY.encode_pairs(
        [("User-Name", "bob"), ("Acct-Session-Id", "k2"), ("Acct-Status-Type", "Start")]),
        b"s3cret", message_authenticator=False)
    assert exchange(scratch.acct_addr, data)[0] == codec.ACCOUNTING_RESPONSE
    assert [r["Acct-Session-Id"] for r in scratch.detail_records()] == ["k1", "k2"]


def test_set_users_takes_effect_on_restart(scratch):
    scratch.set_users({"carol": "carol-pass"})
    scratch.restart()
    assert access_pap(scratch.auth_addr, "s3cret", "carol", "carol-pass").code == \
        codec.ACCESS_ACCEPT
    assert access_pap(scratch.auth_addr, "s3cret", "bob", "bob-pass").code == \
        codec.ACCESS_REJECT


def test_context_manager_stops_and_removes_the_directory():
    with FreeRadius("ctx", users={"a": "b"}) as server:
        pid, home = server.pid, server.home
        assert server.ping() == codec.ACCESS_ACCEPT
    assert not server.running and not home.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_start_failure_raises_with_freeradius_output():
    port = free_udp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", port))
        server = FreeRadius("clash", users={"a": "b"}, auth_port=port)
        try:
            with pytest.raises(FreeRadiusError) as failure:
                server.start(timeout=10)
        finally:
            server.cleanup()
    message = str(failure.value)
    assert "exited with status" in message
    assert re.search(r"[Aa]ddress already in use", message), message

