"""Dynamic authorization against a real NAS: hostapd (Debian's, driver=wired, IEEE
802.1X) with wpa_supplicant (-D wired, PEAP/MSCHAPv2) as its client, each in a network
namespace of its own joined by a veth pair, and the NAS's namespace joined to this
host's by a routed veth pair (support.netns, uplink): vpop serves on this host and
reaches hostapd's dynamic-authorization server at the NAS's address, as over a
network, with nothing between them.

hostapd's configuration is the text `vpop nas config` prints for the NAS, unchanged.
The subscriber logs in through vpop, proxied to its ISP's RADIUS server (FreeRADIUS,
PEAP/MSCHAPv2); hostapd's accounting makes the session live in vpop; then:

- `vpop session disconnect ID`: hostapd ACKs, takes the port down and sends its Stop
  (without Acct-Terminate-Cause), which vpop closes as Admin-Reset;
- `vpop session coa ID --session-timeout 600`: hostapd takes no such change and NAKs;
- the ISP's own Disconnect-Request to vpop's CoA port, relayed by vpop to hostapd: the
  ISP gets hostapd's ACK with its Proxy-States, hostapd never sees them.

A local subscriber (the demo's alice) logs in through hostapd by EAP-MD5, which vpop
serves itself (no keys: hostapd authorizes a wired port on EAP-Success alone); her
session is live in vpop and `vpop session disconnect` ends it the same way.

If network namespaces cannot be made here (not root, no iproute2), the tests fail
saying so.
"""

from __future__ import annotations

import json
import random
import re
import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from e2e_support import Link, VpopServer, required, run_vpop, set_options
from support.freeradius import FreeRadius, MissingTool
from support.hostapd import ConfiguredHostapd, WiredSupplicant
from support.netns import WiredLink

from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.store.accounting_models import AcctHistory, RadAcct
from vpop.store.dynauth_models import DynAuthAction
from vpop.store.engine import make_engine

pytestmark = pytest.mark.e2e

NAS_NAME, NAS_SECRET = "hostapd-1", "hostapd-1-secret"
UPSTREAM_SECRET = "isp-e-secret"
IDENTITY, PASSWORD = "eve@eap.example", "secret-e"
LOCAL_USER, LOCAL_PASSWORD = "alice", "alice-pass"  # the demo's, allowed EAP-MD5
ISP_SERVER = "127.0.0.2"  # isp-e's RADIUS server, as it sends CoA and Disconnect
ISP_COA_SECRET = b"isp-e-coa-secret"
INTERIM = 60  # hostapd's least radius_acct_interim_interval
WAIT = 30.0  # for what should come within a few seconds
INTERIM_WAIT = INTERIM + 60.0


# --- the network, the ISP, vpop and the NAS -----------------------------------------------

@pytest.fixture(scope="module")
def link():
    """The NAS's and the supplicant's namespaces, and the NAS's uplink to this host."""
    made = WiredLink(uplink=True)
    try:
        try:
            made.create()
        except MissingTool as exc:
            pytest.fail(str(exc), pytrace=False)
        except (OSError, RuntimeError) as exc:
            pytest.fail(f"network namespaces cannot be created here (the tests need root "
                        f"and iproute2): {exc}", pytrace=False)
        yield made
    finally:
        made.delete()


@pytest.fixture(scope="module")
def upstream():
    """isp-e's RADIUS server: PEAP/MSCHAPv2 for eve, and accounting forwarded to it."""
    server = required(lambda: FreeRadius("isp-e", users={IDENTITY: PASSWORD},
                                         clients=[("127.0.0.1/32", UPSTREAM_SECRET)]))
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def vpop(tmp_path_factory, link, upstream):
    """vpop listening on loopback and on this host's end of the NAS's uplink; the NAS
    a hostapd, isp-e proxied, with its server allowed to send CoA and Disconnect."""
    server = VpopServer.create(tmp_path_factory.mktemp("vpop-dynauth-nas"))
    server.config.write_text(set_options(server.config.read_text(), {
        "server": {"listen": ["127.0.0.1", link.host_address]},
        "accounting": {"interim_interval": INTERIM}}))
    server.import_plan(f'''
[[nas]]
name = "{NAS_NAME}"
address = "{link.nas_address}"
secret = "{NAS_SECRET}"
nas_type = "hostapd"

[[isp]]
name = "isp-e"
mode = "proxy"
realms = ["@eap.example"]
strip_realm = false
servers = [{{ name = "isp-e/1", address = "127.0.0.1", auth_port = {upstream.auth_port}, \
acct_port = {upstream.acct_port}, secret = "{UPSTREAM_SECRET}" }}]
dynauth_clients = [{{ address = "{ISP_SERVER}", secret = "{ISP_COA_SECRET.decode()}" }}]
''')
    try:
        server.start()
        yield server
    finally:
        assert server.stop() == 0, server.diagnostics()
    assert "Traceback" not in server.log_text() + server.output_text(), server.diagnostics()


@pytest.fixture(scope="module")
def nas(tmp_path_factory, link, vpop):
    """hostapd with the configuration `vpop nas config` prints for it."""
    directory = tmp_path_factory.mktemp("hostapd")
    generated = run_vpop(vpop.config, "nas", "config", NAS_NAME, "--show-secrets",
                         "--vpop-address", link.host_address,
                         "--interface", link.nas_interface,
                         "--ctrl-interface", str(directory / "hostapd-ctrl"))
    assert generated.returncode == 0, generated.stderr
    hostapd = required(lambda: ConfiguredHostapd(link.nas, link.nas_interface, directory,
                                                 generated.stdout))
    try:
        hostapd.start()
        assert "Line " not in hostapd.log(), hostapd.diagnostics()  # complaints about the file
        yield hostapd
    finally:
        hostapd.stop()


def attached(peer: WiredSupplicant, nas: ConfiguredHostapd):
    """The supplicant for a test, logging in when it starts; after the test, logged off
    if its session is still up, and stopped once hostapd has forgotten its station.

    Stopped alone, a supplicant tells hostapd nothing, and hostapd would take the next
    test's supplicant, of the same MAC address, for this station re-authenticating. A
    session hostapd ended itself (a Disconnect) is not logged off: hostapd forgets that
    station five seconds later, and an EAPOL-Logoff coming after that makes it a station
    again, one it keeps (a wired port has no inactivity timer) with the Logoff's cause,
    User-Request, remembered; the next test's login would take that station, and
    hostapd's Stop after a Disconnect of it would carry the stale cause. (For five
    seconds after a session ends hostapd also ignores the station's EAPOL-Start.)"""
    try:
        yield peer
    finally:
        try:
            if peer.process is not None and peer.process.poll() is None \
                    and port_authorized(nas):
                peer.command("logoff")  # EAPOL-Logoff: hostapd ends the session
            assert poll(lambda: not nas.command("all_sta").strip(), WAIT), \
                f"hostapd kept the station\n{nas.diagnostics()}"
        finally:
            peer.stop()


@pytest.fixture
def supplicant(tmp_path, link, nas, upstream):
    """eve's wpa_supplicant: PEAP/MSCHAPv2, proxied to isp-e."""
    yield from attached(required(lambda: WiredSupplicant(
        link.supplicant, link.supplicant_interface, tmp_path, identity=IDENTITY,
        password=PASSWORD, ca_cert=upstream.ca_cert)), nas)


@pytest.fixture
def local_supplicant(tmp_path, link, nas):
    """alice's wpa_supplicant: EAP-MD5, served by vpop itself."""
    yield from attached(required(lambda: WiredSupplicant(
        link.supplicant, link.supplicant_interface, tmp_path, identity=LOCAL_USER,
        password=LOCAL_PASSWORD, method="MD5")), nas)


# --- what vpop and the peers say ---------------------------------------------------------------

def poll(condition, timeout: float, interval: float = 0.2):
    """condition()'s first true value within `timeout` seconds, else its last value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(interval)
    return value


def session_row(vpop: VpopServer, acct_session_id: str | None = None,
                user: str = IDENTITY) -> RadAcct | None:
    """The user's newest session at the NAS (or the one of that Acct-Session-Id)."""
    engine = make_engine(vpop.db_url)
    try:
        with Session(engine) as session:
            query = select(RadAcct).where(RadAcct.username == user)
            if acct_session_id is not None:
                query = query.where(RadAcct.acct_session_id == acct_session_id)
            return session.scalars(query.order_by(RadAcct.id.desc())).first()
    finally:
        engine.dispose()


def history(vpop: VpopServer, radacct_id: int) -> list[str]:
    engine = make_engine(vpop.db_url)
    try:
        with Session(engine) as session:
            return list(session.scalars(select(AcctHistory.status).where(
                AcctHistory.radacct_id == radacct_id).order_by(AcctHistory.id)))
    finally:
        engine.dispose()


def audit(vpop: VpopServer, radacct_id: int, count: int = 1) -> list[DynAuthAction]:
    """The session's dynauth_action rows, once there are `count` (a relayed request's
    is written just after the ISP is answered)."""
    def rows():
        engine = make_engine(vpop.db_url)
        try:
            with Session(engine) as session:
                return list(session.scalars(select(DynAuthAction).where(
                    DynAuthAction.session_id == radacct_id).order_by(DynAuthAction.id)))
        finally:
            engine.dispose()
    return poll(lambda: len(found := rows()) >= count and found, WAIT) or rows()


def listed(vpop: VpopServer) -> list[dict]:
    """`vpop session list --nas NAS --format json`: the NAS's live sessions."""
    result = run_vpop(vpop.config, "session", "list", "--nas", NAS_NAME, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def port_authorized(nas: ConfiguredHostapd) -> bool:
    """Whether hostapd has an authorized station on the port (`hostapd_cli all_sta`)."""
    return any(line.startswith("flags=") and "[AUTHORIZED]" in line
               for line in nas.command("all_sta").splitlines())


def logged_in(vpop: VpopServer, nas: ConfiguredHostapd, peer: WiredSupplicant,
              user: str = IDENTITY) -> RadAcct:
    """Start the user's supplicant; its new session once hostapd's Start has made it
    live in vpop."""
    earlier = session_row(vpop, user=user)
    peer.start()
    assert peer.wait_for_log("CTRL-EVENT-EAP-SUCCESS", WAIT), \
        f"{peer.diagnostics()}\n{nas.diagnostics()}\n{vpop.diagnostics()}"
    row = poll(lambda: (found := session_row(vpop, user=user)) is not None
               and found.status == "open"
               and found.start_time is not None
               and (earlier is None or found.id > earlier.id) and found, WAIT)
    assert row, f"no live session in vpop\n{nas.diagnostics()}\n{vpop.diagnostics()}"
    assert poll(lambda: port_authorized(nas), WAIT), nas.diagnostics()
    return row


def closed(vpop: VpopServer, row: RadAcct) -> RadAcct:
    """The session once hostapd's Stop has closed it in vpop."""
    done = poll(lambda: (found := session_row(vpop, row.acct_session_id, row.username)).status
                == "closed" and found, WAIT)
    assert done, f"session {row.id} not closed\n{vpop.diagnostics()}"
    return done


def port_down(nas: ConfiguredHostapd, mac: str) -> None:
    """hostapd has deauthorized the supplicant's station and forgotten it. On a wired
    port hostapd tells the supplicant nothing (no EAP-Failure, no EAPOL frame at all):
    the port's state is the authenticator's, and a frame the supplicant sends next
    starts a new authentication."""
    assert poll(lambda: not port_authorized(nas), WAIT), nas.diagnostics()
    assert f"AP-STA-DISCONNECTED {mac.replace('-', ':').lower()}" in nas.log(), \
        nas.diagnostics()


PROXY_STATES = (b"isp-e-state-1", b"isp-e-state-2")


def isp_asks(vpop: VpopServer, code: int, row: RadAcct, changes: bytes = b"") -> codec.Packet:
    """isp-e's server sends vpop's CoA port a request for eve's session, as it knows
    it (the User-Name it was sent, the Acct-Session-Id forwarded to it), with two
    Proxy-States; vpop's answer, checked to be signed with the ISP's secret."""
    attrs = codec.attribute(A.USER_NAME, IDENTITY.encode()) + \
        codec.attribute(A.ACCT_SESSION_ID, row.acct_session_id.encode()) + changes + \
        b"".join(codec.attribute(A.PROXY_STATE, state) for state in PROXY_STATES)
    request = codec.encode_request(code, random.randrange(256), attrs, ISP_COA_SECRET,
                                   message_authenticator=True)
    with Link(vpop.coa(), source=ISP_SERVER) as isp:
        isp.send(request)
        data = isp.receive(WAIT)
    assert data is not None, f"no answer to the ISP\n{vpop.diagnostics()}"
    assert codec.reply_ok(data, request[4:20], ISP_COA_SECRET)
    return codec.decode(data)


def cause(packet: codec.Packet) -> int | None:
    raw = packet.first(A.ERROR_CAUSE)
    return int.from_bytes(raw, "big") if raw else None


# --- the tests ----------------------------------------------------------------------------------

def test_login_accounting_and_disconnect_by_vpop(vpop, nas, supplicant):
    row = logged_in(vpop, nas, supplicant)
    assert (row.isp, row.route_mode) == ("isp-e", "proxy"), row
    assert row.calling_station_id, row  # the supplicant's MAC address, for hostapd's DAS
    sessions = listed(vpop)
    assert [(s["id"], s["user"], s["isp"], s["state"]) for s in sessions] == \
        [(row.id, IDENTITY, "isp-e", "online")], sessions

    # hostapd's Interim-Update every [accounting] interim_interval, as configured.
    assert poll(lambda: "interim" in history(vpop, row.id), INTERIM_WAIT, 1.0), \
        f"no Interim-Update\n{nas.diagnostics()}"

    result = run_vpop(vpop.config, "session", "disconnect", str(row.id))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"session {row.id} ({IDENTITY} at {NAS_NAME}): Disconnect: ACK" in result.stdout, \
        result.stdout
    port_down(nas, row.calling_station_id)

    # hostapd's Stop carries no Acct-Terminate-Cause; the Disconnect was ACKed, so vpop
    # closes the session as an administrator's reset (RFC 2866 §5.10).
    done = closed(vpop, row)
    assert (done.closed_by, done.terminate_cause, done.dynauth_state) == \
        ("stop", "Admin-Reset", "disconnect-acked"), done
    assert history(vpop, row.id)[-1] == "stop"
    assert all(s["id"] != row.id for s in listed(vpop))
    [action] = audit(vpop, row.id)
    assert (action.direction, action.kind, action.outcome) == ("originated", "disconnect",
                                                                "ack"), action
    assert "Proxy-State" not in action.sent and "NAS-Port" not in action.sent, action.sent


def test_a_local_subscriber_by_eap_md5_and_disconnect(vpop, nas, local_supplicant):
    # vpop serves EAP-MD5 itself; hostapd authorizes the wired port on its EAP-Success
    # with no MPPE keys (EAP-MD5 makes none) and sends the Start.
    row = logged_in(vpop, nas, local_supplicant, LOCAL_USER)
    assert (row.isp, row.route_mode) == (None, "local"), row
    assert "EAP-MD5" in local_supplicant.log(), local_supplicant.diagnostics()
    assert poll(lambda: re.search(rf"user={LOCAL_USER} caller=\S+ method=eap-md5 "
                                  "outcome=accept", vpop.log_text()), WAIT), vpop.diagnostics()
    assert [(s["id"], s["user"], s["state"]) for s in listed(vpop)] == \
        [(row.id, LOCAL_USER, "online")]

    result = run_vpop(vpop.config, "session", "disconnect", str(row.id))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"session {row.id} ({LOCAL_USER} at {NAS_NAME}): Disconnect: ACK" in result.stdout, \
        result.stdout
    port_down(nas, row.calling_station_id)
    done = closed(vpop, row)  # by hostapd's causeless Stop, as an administrator's reset
    assert (done.closed_by, done.terminate_cause, done.dynauth_state) == \
        ("stop", "Admin-Reset", "disconnect-acked"), done
    [action] = audit(vpop, row.id)
    assert (action.direction, action.kind, action.outcome) == ("originated", "disconnect",
                                                                "ack"), action


def test_coa_is_refused_by_hostapd(vpop, nas, supplicant):
    row = logged_in(vpop, nas, supplicant)
    result = run_vpop(vpop.config, "session", "coa", str(row.id), "--session-timeout", "600")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (f"session {row.id} ({IDENTITY} at {NAS_NAME}): CoA: NAK, Error-Cause 401 "
            "(Unsupported-Attribute)") in result.stdout, result.stdout
    # The ISP's own CoA, relayed: hostapd's NAK reaches the ISP, with its Proxy-State.
    answer = isp_asks(vpop, codec.COA_REQUEST, row, codec.attribute(
        A.SESSION_TIMEOUT, (600).to_bytes(4, "big")))
    assert (answer.code, cause(answer)) == (codec.COA_NAK, 401), answer
    assert list(answer.attrs[A.PROXY_STATE]) == list(PROXY_STATES)
    # Nothing changed: the session is live and the port still authorized.
    assert port_authorized(nas)
    assert session_row(vpop, row.acct_session_id).status == "open"
    originated, relayed = audit(vpop, row.id, 2)
    assert (originated.direction, originated.kind, originated.outcome,
            originated.error_cause) == ("originated", "coa", "nak", 401), originated
    assert "Session-Timeout = 600" in originated.sent, originated.sent
    assert (relayed.direction, relayed.kind, relayed.outcome, relayed.error_cause) == \
        ("relayed", "coa", "nak", 401), relayed


def test_isp_disconnect_relayed_to_hostapd(vpop, nas, supplicant):
    row = logged_in(vpop, nas, supplicant)
    answer = isp_asks(vpop, codec.DISCONNECT_REQUEST, row)
    assert answer.code == codec.DISCONNECT_ACK, answer
    assert list(answer.attrs[A.PROXY_STATE]) == list(PROXY_STATES)  # in order (§3.1)
    port_down(nas, row.calling_station_id)

    done = closed(vpop, row)
    assert (done.closed_by, done.terminate_cause) == ("stop", "Admin-Reset"), done
    [action] = audit(vpop, row.id)
    assert (action.direction, action.actor, action.kind, action.outcome) == \
        ("relayed", "isp:isp-e", "disconnect", "ack"), action
    # hostapd was sent none of the ISP's Proxy-States (it would have NAKed them, 401).
    assert "Proxy-State" not in action.sent, action.sent
    assert "in Disconnect-Request" not in nas.log(), nas.diagnostics()  # hostapd's 401s
