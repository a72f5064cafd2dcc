"""vpop serve with LDAP subscriber directories, against a real OpenLDAP slapd that the
tests start on loopback from a generated cn=config (tests/support/slapd.py), seeded with
1,000 subscribers and a group: PAP against every stored scheme and by binding, CHAP,
MS-CHAPv2 (radtest), caller-ID and line logins, group-to-profile mapping, an ISP's own
directory beside the global one, filter injection, entries that cannot be served, slapd
stopped mid-run (the outage policy, no hang) and started again (the pool recovers),
StartTLS with the right and a wrong CA, `vpop directory test` and `vpop check-config`.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from e2e_support import DICTIONARY, Nas, VpopServer, reply_message, run_vpop, set_options
from support.slapd import (ISP_BASE, ISP_SERVICE_DN, ISP_SERVICE_PASSWORD, SERVICE_DN,
                           SERVICE_PASSWORD, SUFFIX, Slapd, caller_id_of, circuit_of,
                           password_of, username_of)

from vpop.aaa import credentials as cred
from vpop.radius import codec

pytestmark = pytest.mark.e2e

PASSWORD_VARIABLE = "VPOP_TEST_LDAP_PASSWORD"
ISP_PASSWORD_VARIABLE = "VPOP_TEST_ISP_LDAP_PASSWORD"
UNAVAILABLE = "Subscriber directory unavailable, please try again later"
SUBSCRIBERS = 1000
RECOVERY = 30.0  # seconds allowed for the pool to find slapd again (health_interval 1 s)


def directory_options(ldap: Slapd, ca: str) -> dict:
    return {
        "servers": [ldap.url], "start_tls": True, "ca_file": ca, "bind_dn": SERVICE_DN,
        "bind_password": f"env:{PASSWORD_VARIABLE}", "base_dn": SUFFIX,
        "user_filter": "(&(objectClass=inetOrgPerson)(uid={user}))",
        "caller_id_filter": "(&(objectClass=vpopSubscriber)(vpopCallerId={value}))",
        "circuit_id_filter": "(&(objectClass=vpopSubscriber)(vpopCircuitId={value}))",
        "access_attribute": "vpopAccess", "profile_attribute": "vpopProfile",
        "default_profile": "residential-10m", "rate_down_attribute": "vpopRateDown",
        "framed_ip_attribute": "vpopFramedIP", "groups": "search",
        "health_interval": 1.0, "cache_ttl": 1.0, "negative_ttl": 1.0,
    }


GROUPS_AND_ISPS = """
[[directory.group]]
group = "business"
profile = "business-100m"

[[directory.isp]]
name = "isp-local"
servers = ["{ldaps}"]
start_tls = false
base_dn = "{isp_base}"
bind_dn = "{isp_dn}"
bind_password = "env:{isp_variable}"
groups = ""
pap = "bind"
"""


def configure(config, ldap: Slapd, ca: str) -> None:
    text = set_options(config.read_text(), {"directory": directory_options(ldap, ca)})
    text = text.replace("\ngroup = []\n", "\n").replace("\nisp = []\n", "\n")
    config.write_text(text + GROUPS_AND_ISPS.format(
        ldaps=ldap.ldaps_url, isp_base=ISP_BASE, isp_dn=ISP_SERVICE_DN,
        isp_variable=ISP_PASSWORD_VARIABLE))


@pytest.fixture(scope="module")
def ldap(tmp_path_factory):
    with Slapd(tmp_path_factory.mktemp("slapd"), subscribers=SUBSCRIBERS) as server:
        yield server


@pytest.fixture(scope="module")
def vpop(ldap, tmp_path_factory):
    os.environ[PASSWORD_VARIABLE] = SERVICE_PASSWORD
    os.environ[ISP_PASSWORD_VARIABLE] = ISP_SERVICE_PASSWORD
    server = VpopServer.create(tmp_path_factory.mktemp("vpop"))
    configure(server.config, ldap, str(ldap.certs.ca))
    server.start()
    yield server
    status = server.stop()
    assert status == 0, server.diagnostics()
    assert "Traceback" not in server.log_text() + server.output_text(), server.diagnostics()


def logged(vpop: VpopServer, text: str, timeout: float = 5.0) -> bool:
    """Whether the log holds the text within the timeout (request lines are written
    every 0.2 s)."""
    deadline = time.monotonic() + timeout
    while text not in vpop.log_text():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def login(nas: Nas, vpop: VpopServer, user: str, password: str, pairs=()) -> codec.Packet:
    return nas.ask(nas.access([("User-Name", user), *pairs], password=password), vpop.auth())


def test_pap_against_every_stored_scheme(vpop, nas, freeradius):
    # Subscribers 1-6 hold SSHA256, SSHA512, CRYPT ($6$), PBKDF2-SHA256, a cleartext, SSHA.
    for number in range(1, 7):
        result = freeradius.radtest(username_of(number), password_of(number), vpop.auth())
        assert result.reply == "Access-Accept", result.transcript
        assert login(nas, vpop, username_of(number), "wrong").code == codec.ACCESS_REJECT


def test_chap_only_with_a_readable_cleartext(vpop, freeradius):
    cleartext = freeradius.radtest(username_of(5), password_of(5), vpop.auth(), method="chap")
    assert cleartext.reply == "Access-Accept", cleartext.transcript
    hashed = freeradius.radtest(username_of(6), password_of(6), vpop.auth(), method="chap")
    assert hashed.reply == "Access-Reject", hashed.transcript
    assert logged(vpop, "no CHAP credential stored"), vpop.diagnostics()


def test_mschap_v1_with_the_nt_hash(vpop, freeradius):
    result = freeradius.radtest(username_of(11), password_of(11), vpop.auth(), method="mschap")
    assert result.reply == "Access-Accept", result.transcript
    assert "MS-CHAP-MPPE-Keys" in result.attrs, result.transcript
    wrong = freeradius.radtest(username_of(13), "wrong", vpop.auth(), method="mschap")
    assert wrong.reply == "Access-Reject", wrong.transcript


def test_mschapv2_with_the_nt_hash(vpop, nas):
    name, nt = username_of(12).encode(), cred.nt_hash(password_of(12))
    auth_challenge, peer_challenge = nas.rng.randbytes(16), nas.rng.randbytes(16)
    response = cred.mschapv2_nt_response(auth_challenge, peer_challenge, name, nt)
    value = bytes((7, 0)) + peer_challenge + bytes(8) + response
    raw = codec.vendor_attribute(311, 11, auth_challenge) + codec.vendor_attribute(311, 25, value)
    reply = nas.ask(nas.access([("User-Name", name.decode())], raw=raw), vpop.auth())
    assert reply.code == codec.ACCESS_ACCEPT, reply_message(reply)
    expected = cred.mschapv2_authenticator_response(nt, response, peer_challenge,
                                                    auth_challenge, name)
    assert reply.first((311, 26)) == bytes((7,)) + expected.encode()
    wrong = cred.mschapv2_nt_response(auth_challenge, peer_challenge, name, cred.nt_hash("x"))
    raw = codec.vendor_attribute(311, 11, auth_challenge) + codec.vendor_attribute(
        311, 25, bytes((8, 0)) + peer_challenge + bytes(8) + wrong)
    reply = nas.ask(nas.access([("User-Name", name.decode())], raw=raw), vpop.auth())
    assert reply.code == codec.ACCESS_REJECT


def test_caller_id_and_line_logins(vpop, nas):
    national = "0" + caller_id_of(7)[2:]  # as the NAS sends it; normalised with 49
    reply = login(nas, vpop, "anyone", password_of(7), [("Calling-Station-Id", national)])
    assert reply.code == codec.ACCESS_ACCEPT
    reply = login(nas, vpop, "anyone", password_of(9), [("Agent-Circuit-Id", circuit_of(9))])
    assert reply.code == codec.ACCESS_ACCEPT
    reply = login(nas, vpop, "anyone", password_of(8), [("Agent-Circuit-Id", circuit_of(9))])
    assert reply.code == codec.ACCESS_REJECT  # the line's subscriber, not the name's


def test_profiles_from_groups_attributes_and_the_default(vpop, nas):
    def replied(user, password, name):
        reply = login(nas, vpop, user, password)
        assert reply.code == codec.ACCESS_ACCEPT, reply_message(reply)
        return DICTIONARY.decode_value(DICTIONARY[name], reply.first(DICTIONARY.key(name)))
    assert replied(username_of(20), password_of(20), "Vpop-Profile") == "business-100m"
    assert replied(username_of(21), password_of(21), "Vpop-Profile") == "residential-10m"
    assert replied("static", "static-pass", "Framed-IP-Address") == "10.9.0.8"
    assert replied("static", "static-pass", "Vpop-Rate-Limit-Down") == 55555


def test_an_isps_own_directory_beside_the_global_one(vpop, nas):
    # hosted is in isp-local's directory only, checked by binding as him (pap = "bind").
    assert login(nas, vpop, "hosted@isp-local.example", "hosted-pass").code == codec.ACCESS_ACCEPT
    assert login(nas, vpop, "hosted@isp-local.example", "nope").code == codec.ACCESS_REJECT
    assert login(nas, vpop, "hosted", "hosted-pass").code == codec.ACCESS_REJECT
    # A global subscriber in isp-local's realm is looked up in isp-local's directory only.
    reply = login(nas, vpop, f"{username_of(1)}@isp-local.example", password_of(1))
    assert reply.code == codec.ACCESS_REJECT


def test_filter_injection_finds_nobody_else(vpop, nas):
    for name in ("*)(uid=*", "user*", "*", "user0001)(|(uid=*"):
        assert login(nas, vpop, name, password_of(1)).code == codec.ACCESS_REJECT, name
    # The entry whose uid is "*" is found as itself, by its own password only.
    assert login(nas, vpop, "*", "star-pass").code == codec.ACCESS_ACCEPT


def test_entries_that_cannot_be_served_are_refused_with_the_reason_logged(vpop, nas):
    for name, reason in (("disabled", "account disabled"), ("expired", "account expired"),
                         ("strange-access", "vpopAccess is 'maybe'"),
                         ("broken-ip", "not an IP address"),
                         ("nowhere", "profile 'no-such-profile' does not exist")):
        reply = login(nas, vpop, name, f"{name.split('-')[0]}-pass")
        assert reply.code == codec.ACCESS_REJECT, name
        assert logged(vpop, reason), vpop.diagnostics()


def test_an_outage_serves_recent_subscribers_and_refuses_others_at_once(vpop, nas, ldap):
    seen = [username_of(n) for n in (31, 32)]
    for name in seen:
        assert login(nas, vpop, name, password_of(int(name[4:]))).code == codec.ACCESS_ACCEPT
    assert login(nas, vpop, "hosted@isp-local.example", "hosted-pass").code == codec.ACCESS_ACCEPT
    ldap.stop()
    try:
        time.sleep(1.5)  # past cache_ttl: only the outage policy keeps them
        for name in seen:
            reply = login(nas, vpop, name, password_of(int(name[4:])))
            assert reply.code == codec.ACCESS_ACCEPT, reply_message(reply)
        assert login(nas, vpop, "hosted@isp-local.example", "hosted-pass").code == codec.ACCESS_ACCEPT
        assert login(nas, vpop, seen[0], "wrong").code == codec.ACCESS_REJECT
        unseen = login(nas, vpop, username_of(40), password_of(40))  # answered, no hang
        assert unseen.code == codec.ACCESS_REJECT
        assert reply_message(unseen) == UNAVAILABLE
        assert vpop.wait_for_metric("vpop_directory_state", 1, directory="global",
                                    state="down") == 1
        assert vpop.metric("vpop_directory_cache_total", directory="global",
                           answer="stale") >= 2
    finally:
        ldap.start()
    deadline = time.monotonic() + RECOVERY
    while login(nas, vpop, username_of(40), password_of(40)).code != codec.ACCESS_ACCEPT:
        assert time.monotonic() < deadline, vpop.diagnostics()
        time.sleep(0.2)


def test_directory_test_shows_the_lookup_and_the_answer(vpop):
    env = {**os.environ, "PW": password_of(20)}
    result = run_vpop(vpop.config, "directory", "test", username_of(20), "--password-env",
                      "PW", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "profile:    business-100m" in result.stdout
    assert "answer:     Access-Accept (PAP)" in result.stdout
    result = run_vpop(vpop.config, "directory", "test", "isp-local", "hosted", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "credentials: bind" in result.stdout
    result = run_vpop(vpop.config, "directory", "test", "nobody-at-all", env=env)
    assert result.returncode == 1 and "none found" in result.stdout
    result = run_vpop(vpop.config, "directory", "test", "disabled", env=env)
    assert result.returncode == 1 and "account disabled" in result.stdout


def test_check_config_connects_binds_and_searches(vpop, ldap):
    tmp_path = vpop.home  # beside the config: the same database
    env = dict(os.environ)
    result = run_vpop(vpop.config, "check-config", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(vpop.config.read_text().replace(str(ldap.certs.ca),
                                                     str(ldap.certs.wrong_ca)))
    result = run_vpop(wrong, "check-config", env=env)
    assert result.returncode == 2
    assert "does not verify against ca_file" in result.stderr, result.stderr
    (tmp_path / "not-a-ca.pem").write_text("not a certificate\n")
    bad = tmp_path / "bad.toml"
    bad.write_text(vpop.config.read_text().replace(str(ldap.certs.ca),
                                                   str(tmp_path / "not-a-ca.pem")))
    result = run_vpop(bad, "check-config", env=env)
    assert result.returncode == 2 and "directory.ca_file" in result.stderr, result.stderr
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(vpop.config.read_text().replace(
        'profile_attribute = "vpopProfile"', 'profile_attribute = "vpopNoSuchThing"').replace(
        'default_profile = "residential-10m"', 'default_profile = "gold"'))
    result = run_vpop(unknown, "check-config", env=env)
    assert result.returncode == 2 and "no profile 'gold'" in result.stderr, result.stderr
    unknown.write_text(vpop.config.read_text().replace(
        'profile_attribute = "vpopProfile"', 'profile_attribute = "vpopNoSuchThing"'))
    result = run_vpop(unknown, "check-config", env=env)
    assert result.returncode == 2 and "vpopNoSuchThing" in result.stderr, result.stderr
    assert json.dumps(SERVICE_PASSWORD) not in result.stderr
