"""EAP-MD5 served by vpop itself for a local subscriber (the demo's alice), against
`vpop serve` with two workers: eapol_test (wpa_supplicant's RADIUS test client) logs
in, a wrong password and a method vpop does not serve locally are refused, and a
challenge's State is good across a restart, since it is signed with the installation's
key (var/eap-key), not remembered by the worker that sent it."""

from __future__ import annotations

import dataclasses
import hashlib
import time

import pytest

from e2e_support import Nas, VpopServer, required
from support.eapol import run_eapol_test

from vpop.aaa import eap
from vpop.radius import attributes as A
from vpop.radius import codec

pytestmark = pytest.mark.e2e

SECRET = "testing123"
LOG_WAIT = 10.0  # request lines are written to the log within a second or so


@pytest.fixture(scope="module")
def vpop(tmp_path_factory):
    server = VpopServer.create(tmp_path_factory.mktemp("vpop-eap-md5"), workers=2)
    server.start()
    yield server
    assert server.stop() == 0, server.diagnostics()
    assert "Traceback" not in server.log_text() + server.output_text(), server.diagnostics()


def eapol(vpop, user, password, method="MD5"):
    return required(lambda: run_eapol_test("127.0.0.1", vpop.auth_port, SECRET, user,
                                           password, method=method))


def logged(vpop, text):
    deadline = time.monotonic() + LOG_WAIT
    while text not in vpop.log_text():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_the_state_key_is_made_owner_only(vpop):
    key = vpop.home / "var" / "eap-key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(key.read_text().strip()) == 64


def test_eap_md5_login_with_eapol_test(vpop):
    result = eapol(vpop, "alice", "alice-pass")
    assert result.ok, str(result)
    assert "EAP: Received EAP-Success" in result.output
    assert "code=11 (Access-Challenge)" in result.output, str(result)
    # alice's profile, as for PAP: its name among the attributes eapol_test prints in hex.
    assert b"residential-10m".hex() in result.output, str(result)


def test_a_wrong_password_is_refused_with_eap_failure(vpop):
    result = eapol(vpop, "alice", "not-alice-pass")
    assert not result.ok
    assert "EAP: Received EAP-Failure" in result.output, str(result)
    assert logged(vpop, 'user=alice caller=02-00-00-00-00-01 method=eap-md5 outcome=reject '
                        'reason="wrong password"'), vpop.diagnostics()


def test_another_method_is_refused_saying_which(vpop):
    result = eapol(vpop, "alice", "alice-pass", method="PEAP")
    assert not result.ok
    assert "EAP: Received EAP-Failure" in result.output, str(result)
    assert logged(vpop, 'reason="EAP method PEAP is not served locally; only EAP-MD5"'), \
        vpop.diagnostics()


def test_a_subscriber_without_eap_md5_is_refused(vpop):
    result = eapol(vpop, "carol", "carol-pass")  # PAP and CHAP only
    assert not result.ok
    assert logged(vpop, 'reason="method eap-md5 not allowed"'), vpop.diagnostics()


def identity_request(nas: Nas, user: str, ident: int = 1, state: bytes | None = None,
                     message: bytes | None = None):
    raw = eap.message_attributes(message or eap.encode(eap.RESPONSE, ident, eap.IDENTITY,
                                                        user.encode()))
    if state is not None:
        raw += codec.attribute(A.STATE, state)
    return nas.access([("User-Name", user)], raw=raw)


def test_a_challenge_is_answered_after_a_restart_and_a_forged_state_counted(vpop):
    """Last in the module: it stops the module's server."""
    nas = Nas()
    reply = nas.ask(identity_request(nas, "alice"), vpop.auth())
    assert reply.code == codec.ACCESS_CHALLENGE, reply
    _, ident, _, data = eap.parse(b"".join(reply.attrs[A.EAP_MESSAGE]))
    state = reply.first(A.STATE)
    value = hashlib.md5(bytes((ident,)) + b"alice-pass" + data[1:17]).digest()
    answer = eap.encode(eap.RESPONSE, ident, eap.MD5_CHALLENGE, bytes((16,)) + value)

    # A State altered in one octet is refused and counted.
    forged = state[:-1] + bytes((state[-1] ^ 1,))
    reply = nas.ask(identity_request(nas, "alice", state=forged, message=answer), vpop.auth())
    assert reply.code == codec.ACCESS_REJECT
    assert vpop.wait_for_metric("vpop_eap_state_refused_total", 1, reason="forged") == 1

    # Another vpop process, as after a restart: the same key, so the same State holds.
    assert vpop.stop() == 0, vpop.diagnostics()
    fresh = dataclasses.replace(vpop, process=None, exit_status=None, _output_file=None)
    fresh.start()
    try:
        reply = nas.ask(identity_request(nas, "alice", state=state, message=answer),
                        fresh.auth())
        assert reply.code == codec.ACCESS_ACCEPT, reply
        assert eap.parse(b"".join(reply.attrs[A.EAP_MESSAGE]))[:2] == (eap.SUCCESS, ident)
    finally:
        assert fresh.stop() == 0, fresh.diagnostics()
