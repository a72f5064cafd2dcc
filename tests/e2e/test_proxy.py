"""ISP selection and proxying against real FreeRADIUS servers as the ISPs' RADIUS.

Two FreeRADIUS processes are isp-a's primary and secondary server; vpop proxies
PAP, CHAP, MS-CHAPv2 and PEAP (eapol_test) to them, with isp-a's default
`strip_realm`: PAP and CHAP arrive without the realm, MS-CHAPv2 and PEAP with the
name the client used, which the ISP's server strips itself (as FreeRADIUS's suffix
realms do). vpop fails over when the primary stops and goes back when it returns,
and forwards accounting from its durable queue. Tunnel-mode ISPs are chosen by dialled number, by the subscriber's choice
and by score; their replies are decoded attribute by attribute.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import tomllib

import pytest

from e2e_support import Link, Nas, VpopServer, reply_message, run_vpop, set_options
from support.eapol import run_eapol_test
from support.freeradius import FreeRadius

from vpop.aaa import credentials as cred
from vpop.isp.tunnel import tunnel_groups
from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.radius.crypto import decrypt_salted
from vpop.radius.dictionary import Dictionary, shipped_dictionary
from vpop.store.demo import demo_plan_path

pytestmark = pytest.mark.e2e

UPSTREAM_SECRET = "isp-a-secret"
USERS = {"alice": "secret-a", "eve@eap.example": "secret-e"}
DICT = Dictionary(shipped_dictionary())


class Liar:
    """An 'ISP server' that answers every request at once, signed with the wrong secret."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:
                return
            request = codec.decode(data)
            states = b"".join(codec.attribute(A.PROXY_STATE, v)
                              for v in request.attrs.get(A.PROXY_STATE, ()))
            self.sock.sendto(codec.encode_reply(codec.ACCESS_ACCEPT, request.ident,
                                                request.authenticator, states, b"not-it"), addr)
            self.sock.sendto(b"\x02garbage", addr)

    def close(self):
        self.sock.close()


def plan(primary: FreeRadius, secondary: FreeRadius, liar: Liar, unsigned: FreeRadius) -> str:
    def server(name, up):
        return (f'{{ name = "{name}", address = "127.0.0.1", auth_port = {up.auth_port}, '
                f'acct_port = {up.acct_port}, secret = "{UPSTREAM_SECRET}" }}')
    return f'''
[[isp]]
name = "isp-a"
mode = "proxy"
realms = ["@isp-a.example"]
servers = [{server("isp-a/primary", primary)},
           {server("isp-a/secondary", secondary).replace("}", ", priority = 2 }")}]

[[isp]]
name = "isp-bad"
mode = "proxy"
realms = ["@bad.example"]
servers = [{{ name = "isp-bad/1", address = "127.0.0.1", auth_port = {liar.port}, secret = "s" }}]

# One FreeRADIUS 3.2.1 that signs no PAP or Status-Server reply, as two ISPs' server:
# one requires signed replies (the default), one does not.
[[isp]]
name = "isp-strict"
realms = ["@strict.example"]
servers = [{{ name = "isp-strict/1", address = "127.0.0.1", auth_port = {unsigned.auth_port}, acct_port = 0, secret = "{UPSTREAM_SECRET}" }}]

[[isp]]
name = "isp-lenient"
realms = ["@lenient.example"]
servers = [{{ name = "isp-lenient/1", address = "127.0.0.1", auth_port = {unsigned.auth_port}, acct_port = 0, secret = "{UPSTREAM_SECRET}", require_message_authenticator = false }}]

[[isp]]
name = "isp-e"
mode = "proxy"
realms = ["@eap.example"]
strip_realm = false
servers = [{server("isp-e/1", primary)}]

[[isp]]
name = "lns-b"
mode = "tunnel"
numbers = ["+49 30 999 000"]
tunnels = [{{ address = "198.51.100.1", password = "lns-b-secret", assignment_id = "b", preference = 1 }},
           {{ address = "198.51.100.2", password = "lns-b-secret", preference = 2 }}]

[[isp]]
name = "lns-chosen"
mode = "tunnel"
tunnels = [{{ address = "198.51.100.20", password = "chosen" }}]

[[isp]]
name = "lns-cheap"
mode = "tunnel"
ranked = true
price_per_minute = "0.01"
tunnels = [{{ address = "198.51.100.30", password = "cheap" }}]

[[isp]]
name = "lns-dear"
mode = "tunnel"
ranked = true
price_per_minute = "0.05"
tunnels = [{{ address = "198.51.100.40", password = "dear" }}]

[[lease]]
name = "lns-b-small"
isp = "lns-b"
nas = ["192.0.2.77"]
sessions = 1
starts = 2026-01-01
policy = "reject"
reject_message = "Leased capacity exhausted"

[[profile]]
name = "chooser"
isp = "lns-chosen"

[[subscriber]]
username = "henry"
password = "henry-pass"
profile = "chooser"
'''


@pytest.fixture(scope="module")
def upstreams():
    servers = [FreeRadius(name, users=USERS, clients=[("127.0.0.1/32", UPSTREAM_SECRET)],
                          local_realms=["isp-a.example"])
               for name in ("isp-a-primary", "isp-a-secondary")]
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.stop()
        server.cleanup()


@pytest.fixture(scope="module")
def unsigned():
    server = FreeRadius("unsigned", users=USERS, clients=[("127.0.0.1/32", UPSTREAM_SECRET)],
                        sign_replies=False)
    server.start()
    yield server
    server.stop()
    server.cleanup()


@pytest.fixture(scope="module")
def liar():
    server = Liar()
    yield server
    server.close()


@pytest.fixture(scope="module")
def vpop(tmp_path_factory, upstreams, liar, unsigned):
    server = VpopServer.create(tmp_path_factory.mktemp("vpop-proxy"))
    server.config.write_text(set_options(server.config.read_text(), {
        "isp": {"response_window": 0.5, "zombie_period": 2.0, "probe_interval": 0.3,
                "revive_probes": 3, "budget": 3.0}}))
    plan_file = server.home / "isps.toml"
    plan_file.write_text(plan(*upstreams, liar, unsigned))
    imported = run_vpop(server.config, "import", str(plan_file))
    assert imported.returncode == 0, imported.stderr
    server.start()
    yield server
    assert server.stop() == 0, server.diagnostics()


@pytest.fixture
def nas():
    return Nas()


def login(nas, vpop, user, password, **extra):
    pairs = [("User-Name", user), *extra.items()]
    return nas.ask(nas.access(pairs, password=password), vpop.auth())


def logins_ok(server: FreeRadius, user: str = "") -> int:
    """Successful logins in the server's log; of `user` (the User-Name it received) if given."""
    return server.log().count(f"Login OK: [{user}]" if user else "Login OK")


def test_pap_is_proxied_and_the_reply_relayed(nas, vpop, upstreams):
    before = logins_ok(upstreams[0], "alice")
    reply = login(nas, vpop, "alice@isp-a.example", "secret-a")
    assert reply.code == codec.ACCESS_ACCEPT
    # The realm was stripped on the way: the ISP was sent "alice".
    assert logins_ok(upstreams[0], "alice") == before + 1
    classes = reply.attrs.get(A.CLASS, [])
    assert any(c.startswith(b"vpop1;isp=isp-a;mode=proxy;") for c in classes)
    assert login(nas, vpop, "alice@isp-a.example", "wrong").code == codec.ACCESS_REJECT


def test_chap_is_proxied_with_its_challenge(nas, vpop):
    challenge_from_authenticator = nas.rng.randbytes(16)
    response = hashlib.md5(b"\x07" + b"secret-a" + challenge_from_authenticator).digest()
    raw = codec.attribute(A.CHAP_PASSWORD, b"\x07" + response)
    request = nas.access([("User-Name", "alice@isp-a.example")], raw=raw,
                         authenticator=challenge_from_authenticator)
    assert nas.ask(request, vpop.auth()).code == codec.ACCESS_ACCEPT


def test_mschapv2_is_proxied_and_mppe_keys_rehidden_for_the_nas(nas, vpop, upstreams):
    auth_challenge, peer_challenge = nas.rng.randbytes(16), nas.rng.randbytes(16)
    nt = cred.nt_hash("secret-a")
    # RFC 2759 §8.2: the challenge hash covers the user name the peer typed, realm
    # included; the ISP checks it against the User-Name it receives, so vpop sends that
    # name as it came, whatever strip_realm says.
    name = b"alice@isp-a.example"
    response = cred.mschapv2_nt_response(auth_challenge, peer_challenge, name, nt)
    value = bytes((9, 0)) + peer_challenge + bytes(8) + response
    raw = codec.vendor_attribute(311, 11, auth_challenge) + codec.vendor_attribute(311, 25, value)
    before = logins_ok(upstreams[0], name.decode())
    request = nas.access([("User-Name", name.decode())], raw=raw)
    reply = nas.ask(request, vpop.auth())
    assert reply.code == codec.ACCESS_ACCEPT, reply_message(reply)
    assert logins_ok(upstreams[0], name.decode()) == before + 1
    expected = cred.mschapv2_authenticator_response(nt, response, peer_challenge,
                                                    auth_challenge, name)
    assert reply.first((311, 26)) == bytes((9,)) + expected.encode()
    send_key, recv_key = cred.mppe_session_keys(nt, response)
    secret = nas.secret
    assert decrypt_salted(reply.first((311, 16)), secret, request.authenticator)[:16] == send_key
    assert decrypt_salted(reply.first((311, 17)), secret, request.authenticator)[:16] == recv_key


def test_mschap_v1_is_proxied_with_the_realm_stripped(nas, vpop, upstreams):
    # MS-CHAP v1's response does not cover the name (RFC 2433), so strip_realm applies.
    challenge = nas.rng.randbytes(8)
    response = cred.mschap_nt_response(challenge, cred.nt_hash("secret-a"))
    value = bytes((1, 1)) + bytes(24) + response
    raw = codec.vendor_attribute(311, 11, challenge) + codec.vendor_attribute(311, 1, value)
    before = logins_ok(upstreams[0], "alice")
    reply = nas.ask(nas.access([("User-Name", "alice@isp-a.example")], raw=raw), vpop.auth())
    assert reply.code == codec.ACCESS_ACCEPT, reply_message(reply)
    assert logins_ok(upstreams[0], "alice") == before + 1


def test_peap_with_the_isps_realm_keeps_the_name_eap_carries(vpop, upstreams):
    # isp-a strips realms (the default), but an EAP server compares the User-Name with
    # the identity inside EAP: the name goes upstream as the supplicant sent it.
    result = run_eapol_test("127.0.0.1", vpop.auth_port, "testing123", "alice@isp-a.example",
                            "secret-a", ca_cert=upstreams[0].ca_cert)
    assert result.ok, result.output[-3000:]
    assert result.mppe_keys_match, "the MSK the NAS got is not the supplicant's"


def test_peap_through_vpop_with_eapol_test(vpop, upstreams):
    result = run_eapol_test("127.0.0.1", vpop.auth_port, "testing123", "eve@eap.example",
                            "secret-e", ca_cert=upstreams[0].ca_cert)
    assert result.ok, result.output[-3000:]
    assert result.mppe_keys_match, "the MSK the NAS got is not the supplicant's"


def tunnels(nas, vpop, pairs):
    request = nas.access(pairs, password="whatever")
    reply = nas.ask(request, vpop.auth())
    assert reply.code == codec.ACCESS_ACCEPT, reply_message(reply)
    return tunnel_groups(reply.attrs, DICT, secret=nas.secret,
                         request_authenticator=request.authenticator)


def test_tunnel_by_dialled_number_attribute_by_attribute(nas, vpop):
    groups = tunnels(nas, vpop, [("User-Name", "anyone"), ("Called-Station-Id", "030999000")])
    assert sorted(groups) == [1, 2]
    first, second = groups[1], groups[2]
    assert first["Tunnel-Type"] in ("L2TP", 3)
    assert first["Tunnel-Medium-Type"] in ("IPv4", 1)
    assert first["Tunnel-Server-Endpoint"] == "198.51.100.1"
    assert second["Tunnel-Server-Endpoint"] == "198.51.100.2"
    assert first["Tunnel-Assignment-Id"] == "b"
    assert (first["Tunnel-Preference"], second["Tunnel-Preference"]) == (1, 2)
    # RFC 2868 §3.5: salted with this NAS's secret and this request's authenticator
    assert first["Tunnel-Password"] in (b"lns-b-secret", "lns-b-secret")


def test_tunnel_by_the_subscribers_choice(nas, vpop):
    groups = tunnels(nas, vpop, [("User-Name", "henry")])
    assert groups[1]["Tunnel-Server-Endpoint"] == "198.51.100.20"


def test_ranked_choice_takes_the_cheaper_isp(nas, vpop):
    groups = tunnels(nas, vpop, [("User-Name", "walk-in")])
    assert groups[1]["Tunnel-Server-Endpoint"] == "198.51.100.30"


def test_local_subscribers_stay_local(nas, vpop):
    reply = login(nas, vpop, "alice", "alice-pass")
    assert reply.code == codec.ACCESS_ACCEPT


def wait_for_log(vpop, text, timeout=15.0):
    deadline = time.monotonic() + timeout
    while text not in vpop.log_text():
        assert time.monotonic() < deadline, f"no {text!r} in the log\n{vpop.diagnostics()}"
        time.sleep(0.1)


def wait_for_state(vpop, isp, server, state, timeout=10.0):
    """`vpop isp status` shows the server in `state`: stored when it changes, not with the
    QoS monitor's next per-minute bucket."""
    deadline = time.monotonic() + timeout
    while True:
        result = run_vpop(vpop.config, "isp", "status", isp, "--json")
        assert result.returncode == 0, result.stderr
        servers = {s["name"]: s for s in json.loads(result.stdout)["isps"][0]["servers"]}
        if servers[server]["state"] == state:
            return servers[server]
        assert time.monotonic() < deadline, f"{server} is {servers[server]}, not {state}"
        time.sleep(0.1)


def test_failover_to_the_secondary_and_back(nas, vpop, upstreams):
    primary, secondary = upstreams
    assert wait_for_state(vpop, "isp-a", "isp-a/primary", "alive")["reason"] == "vpop started"
    primary.stop()
    try:
        # The first request waits out the response window, then the secondary answers.
        for _ in range(5):
            assert login(nas, vpop, "alice@isp-a.example", "secret-a").code == codec.ACCESS_ACCEPT
        assert logins_ok(secondary) >= 5
        wait_for_log(vpop, "upstream isp-a/primary: alive -> zombie")
        wait_for_log(vpop, "upstream isp-a/primary: zombie -> dead")
        dead = wait_for_state(vpop, "isp-a", "isp-a/primary", "dead")
        assert dead["reason"] == "no answer for the zombie period"
    finally:
        primary.start()
    wait_for_log(vpop, "upstream isp-a/primary: dead -> alive")
    wait_for_state(vpop, "isp-a", "isp-a/primary", "alive")
    before = logins_ok(primary)
    assert login(nas, vpop, "alice@isp-a.example", "secret-a").code == codec.ACCESS_ACCEPT
    assert logins_ok(primary) == before + 1
    assert vpop.wait_for_metric("vpop_upstream_replies_total", 1, server="isp-a/primary",
                                outcome="timeouts") >= 1
    assert vpop.metric("vpop_upstream_up", server="isp-a/primary") == 1


def test_status_server_answers_revive_only_servers_whose_rule_they_meet(nas, vpop, unsigned):
    assert login(nas, vpop, "alice@lenient.example", "secret-a").code == codec.ACCESS_ACCEPT
    unsigned.stop()
    try:
        for user in ("alice@strict.example", "alice@lenient.example"):
            login(nas, vpop, user, "secret-a")  # unanswered: the server becomes a zombie
        wait_for_log(vpop, "upstream isp-strict/1: zombie -> dead")
        wait_for_log(vpop, "upstream isp-lenient/1: zombie -> dead")
        bad_before = vpop.metric("vpop_upstream_replies_total", server="isp-strict/1",
                                 outcome="bad_replies")
    finally:
        unsigned.start()
    # Both are probed alike; the answers carry no Message-Authenticator.
    wait_for_log(vpop, "upstream isp-lenient/1: dead -> alive")
    revive = 3  # revive_probes
    assert vpop.wait_for_metric("vpop_upstream_replies_total", bad_before + revive + 1,
                                server="isp-strict/1", outcome="bad_replies") \
        >= bad_before + revive + 1
    assert "isp-strict/1: dead -> alive" not in vpop.log_text()
    assert vpop.metric("vpop_upstream_up", server="isp-strict/1") == 0


def test_accounting_while_the_isp_is_down_is_delivered_once_it_returns(nas, vpop, upstreams):
    primary, secondary = upstreams
    for server in upstreams:
        server.stop()
    records = []
    try:
        for n in range(5):
            for status in ("Start", "Stop"):
                pairs = [("Acct-Status-Type", status), ("Acct-Session-Id", f"fwd-{n}"),
                         ("User-Name", "alice@isp-a.example"), ("NAS-IP-Address", "192.0.2.1"),
                         ("Acct-Session-Time", 0 if status == "Start" else 30),
                         ("Class", "vpop1;isp=isp-a;mode=proxy;reason=realm")]
                reply = nas.ask(nas.accounting(pairs), vpop.acct())
                assert reply.code == codec.ACCOUNTING_RESPONSE  # stored, not yet delivered
                records.append((f"fwd-{n}", status))
        time.sleep(1.0)
    finally:
        for server in upstreams:
            server.start()
    deadline = time.monotonic() + 30
    while True:
        got = [(r.get("Acct-Session-Id", "").strip('"'), r.get("Acct-Status-Type"))
               for server in upstreams for r in server.detail_records()
               if r.get("Acct-Session-Id", "").strip('"').startswith("fwd-")]
        if len(got) >= len(records) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(got) == sorted(records), vpop.diagnostics()  # each exactly once
    delays = [int(r["Acct-Delay-Time"]) for server in upstreams for r in server.detail_records()
              if r.get("Acct-Session-Id", "").strip('"').startswith("fwd-")]
    assert max(delays) >= 1  # the time spent queued is told to the ISP


def test_an_upstream_answering_garbage_is_counted_and_blocks_nobody(nas, vpop):
    request = nas.access([("User-Name", "mallory@bad.example")], password="x")
    with Link(vpop.auth(), None) as link:
        link.send(request.data)
        # Meanwhile other sessions are served as usual.
        assert login(nas, vpop, "alice", "alice-pass").code == codec.ACCESS_ACCEPT
        reply = nas.check(request, link.receive(timeout=10))
    assert reply.code == codec.ACCESS_REJECT  # nothing valid came back in the budget
    assert reply_message(reply) == "Service unavailable"
    assert vpop.wait_for_metric("vpop_upstream_replies_total", 2, server="isp-bad/1",
                                outcome="bad_replies") >= 2


def test_a_session_beyond_a_full_lease_is_rejected(nas, vpop):
    demo_leases = len(tomllib.loads(demo_plan_path().read_text()).get("lease", []))
    wait_for_log(vpop, f"accounting: {demo_leases + 1} leases")  # the demo's and lns-b-small
    pairs = [("User-Name", "anyone"), ("Called-Station-Id", "030999000"),
             ("NAS-IP-Address", "192.0.2.77")]
    first = nas.ask(nas.access(pairs, password="x"), vpop.auth())
    assert first.code == codec.ACCESS_ACCEPT  # the lease's one session, reserved
    second = nas.ask(nas.access(pairs, password="x"), vpop.auth())
    assert second.code == codec.ACCESS_REJECT
    assert reply_message(second) == "Leased capacity exhausted"
    # Another NAS is outside the lease.
    other = [("User-Name", "anyone"), ("Called-Station-Id", "030999000"),
             ("NAS-IP-Address", "192.0.2.78")]
    assert nas.ask(nas.access(other, password="x"), vpop.auth()).code == codec.ACCESS_ACCEPT
