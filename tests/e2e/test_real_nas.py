"""Replies as real NASes see them on the wire: FreeRADIUS's radclient, and hostapd as a
wired IEEE 802.1X NAS with wpa_supplicant as its client, in two network namespaces
joined by a veth pair.

Every datagram passes through a relay in the test process (support.relay), which
keeps them: no Accounting-Response may carry a Message-Authenticator (RFC 2866 defines
none; hostapd 2.11 drops one not keyed with the request's authenticator), every reply
must verify the way the strictest NAS checks it, and the NAS must have taken it.
"""

from __future__ import annotations

import random
import re

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from e2e_support import SECRET, VpopServer, required, run_vpop
from support.freeradius import FreeRadius
from support.hostapd import Hostapd, WiredSupplicant
from support.netns import WiredLink
from support.relay import Exchange, UdpRelay

from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.store.accounting_models import AcctHistory, RadAcct
from vpop.store.engine import make_engine

pytestmark = pytest.mark.e2e

STATUS_TYPES = {A.ACCT_START: "Start", A.ACCT_STOP: "Stop", A.ACCT_INTERIM: "Interim-Update",
                A.ACCT_ON: "Accounting-On", A.ACCT_OFF: "Accounting-Off"}
UPSTREAM_SECRET = "isp-e-secret"
IDENTITY, PASSWORD = "eve@eap.example", "secret-e"
INTERIM = 60  # hostapd's least radius_acct_interim_interval
WAIT = 30.0  # for what should come within a few seconds
INTERIM_WAIT = INTERIM + 60.0


def status_type(exchange: Exchange) -> str | None:
    packet = codec.decode(exchange.request)
    if packet.code != codec.ACCOUNTING_REQUEST:
        return None
    value = packet.first(A.ACCT_STATUS_TYPE)
    return STATUS_TYPES.get(int.from_bytes(value, "big")) if value else None


def radclient_line(name, value) -> str:
    return f'{name} = "{value}"' if isinstance(value, str) else f"{name} = {value}"


def verifies_strictly(exchange: Exchange, secret: bytes) -> bool:
    """Each reply as the strictest NAS checks it: its Response Authenticator over the
    request's authenticator, and a Message-Authenticator wherever one is present keyed
    with that authenticator too (RFC 3579 §3.2; hostapd 2.11)."""
    authenticator = exchange.request[4:20]
    for data in exchange.replies:
        reply = codec.decode(data)
        if not codec.reply_ok(data, authenticator, secret):
            return False
        if reply.ma_offset >= 0 and not codec.message_authenticator_ok(reply, secret,
                                                                       authenticator):
            return False
    return True


def answered(relay: UdpRelay) -> list[Exchange]:
    """Every exchange, once each has its reply (those still in flight get `WAIT` s)."""
    exchanges = relay.settle(WAIT)
    assert all(e.replies for e in exchanges), \
        [codec.decode(e.request) for e in exchanges if not e.replies]
    return exchanges


def accounting_replies(relay: UdpRelay) -> list[codec.Packet]:
    return [codec.decode(data) for e in relay.exchanges() for data in e.replies
            if data[0] == codec.ACCOUNTING_RESPONSE]


# --- radclient --------------------------------------------------------------------------------

def test_radclient_accounting_replies_carry_no_message_authenticator(server, freeradius):
    session_id = f"wire-{random.randrange(1 << 32):08x}"
    common = [("Acct-Session-Id", session_id), ("User-Name", "alice"),
              ("NAS-IP-Address", "192.0.2.90"), ("NAS-Port", 3)]
    with UdpRelay(server.acct()) as acct, UdpRelay(server.coa()) as coa:
        for status in ("Accounting-On", "Start", "Interim-Update", "Stop"):
            pairs = [("Acct-Status-Type", status), *common]
            if status != "Start":
                pairs.append(("Acct-Session-Time", 60))
            result = freeradius.radclient([radclient_line(*p) for p in pairs], acct.address,
                                          "acct")
            assert result.reply == "Accounting-Response", result.transcript
            assert "Message-Authenticator" not in result.attrs, result.transcript
        status = freeradius.radclient(["Message-Authenticator = 0x00"], acct.address, "status")
        assert status.reply == "Accounting-Response", status.transcript
        for command, expected in (("coa", "CoA-NAK"), ("disconnect", "Disconnect-NAK")):
            nak = freeradius.radclient(['User-Name = "alice"', "Message-Authenticator = 0x00"],
                                       coa.address, command)
            assert nak.reply == expected, nak.transcript
        exchanges = acct.exchanges() + coa.exchanges()

    for exchange in exchanges:
        assert exchange.replies, f"unanswered: {codec.decode(exchange.request)}"
        assert verifies_strictly(exchange, SECRET)
        request, reply = codec.decode(exchange.request), codec.decode(exchange.reply)
        if request.code == codec.STATUS_SERVER:
            # RFC 5997 §3: keyed with the Status-Server's authenticator, first attribute
            assert reply.code == codec.ACCOUNTING_RESPONSE and reply.ma_offset == 22
        else:  # RFC 2866 §3, RFC 5176 §2.3: the Response Authenticator alone signs these
            assert reply.ma_offset < 0 and A.MESSAGE_AUTHENTICATOR not in reply.attrs
    kinds = sorted(codec.decode(e.request).code for e in exchanges)
    assert kinds == [codec.ACCOUNTING_REQUEST] * 4 + [codec.STATUS_SERVER,
                                                      codec.DISCONNECT_REQUEST,
                                                      codec.COA_REQUEST]


# --- hostapd ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def upstream():
    """isp-e's RADIUS server: PEAP/MSCHAPv2 for eve, and accounting forwarded to it."""
    server = required(lambda: FreeRadius("isp-e", users={IDENTITY: PASSWORD},
                                         clients=[("127.0.0.1/32", UPSTREAM_SECRET)]))
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def vpop(tmp_path_factory, upstream):
    server = VpopServer.create(tmp_path_factory.mktemp("vpop-hostapd"))
    plan = server.home / "isp.toml"
    plan.write_text(f'''
[[isp]]
name = "isp-e"
mode = "proxy"
realms = ["@eap.example"]
strip_realm = false
servers = [{{ name = "isp-e/1", address = "127.0.0.1", auth_port = {upstream.auth_port}, \
acct_port = {upstream.acct_port}, secret = "{UPSTREAM_SECRET}" }}]
''')
    imported = run_vpop(server.config, "import", str(plan))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    server.start()
    yield server
    assert server.stop() == 0, server.diagnostics()


@pytest.fixture
def wired(tmp_path, vpop):
    """The NAS's and the supplicant's namespaces; relays from the NAS's loopback to
    vpop's auth and accounting ports; hostapd started. Everything stopped and deleted
    afterwards, whatever happened."""
    link = WiredLink()
    relays: list[UdpRelay] = []
    nas = None
    try:
        required(link.create)
        for target in (vpop.auth(), vpop.acct()):
            listener = link.nas.socket()
            listener.bind(("127.0.0.1", 0))
            relays.append(UdpRelay(target, sock=listener))
        das = link.nas.socket()  # a free port on the NAS's loopback, for its DAS
        das.bind(("127.0.0.1", 0))
        das_port = das.getsockname()[1]
        das.close()
        nas = required(lambda: Hostapd(link.nas, link.nas_interface, tmp_path,
                                       auth=relays[0].address, acct=relays[1].address,
                                       secret=SECRET.decode(), das_port=das_port,
                                       interim=INTERIM))
        nas.start()
        yield link, nas, relays[0], relays[1]
    finally:
        if nas is not None:
            nas.stop()
        for relay in relays:
            relay.close()
        link.delete()


def disconnect(link: WiredLink, nas: Hostapd, session_id: bytes) -> Exchange:
    """A Disconnect-Request (RFC 5176) for the session to hostapd's DAS, sent from the
    NAS's own loopback; the exchange as it was on the wire."""
    attrs = codec.attribute(A.USER_NAME, IDENTITY.encode()) + \
        codec.attribute(A.ACCT_SESSION_ID, session_id)
    request = codec.encode_request(codec.DISCONNECT_REQUEST, 1, attrs, SECRET)
    with link.nas.socket() as das:
        das.settimeout(WAIT)
        das.sendto(request, ("127.0.0.1", nas.das_port))
        return Exchange(("127.0.0.1", nas.das_port), request, [das.recv(4096)])


def session_rows(server: VpopServer, session_id: str):
    server.wait_for_ledger()  # acknowledged means journaled; the ledger applies it
    engine = make_engine(server.db_url)
    try:
        with Session(engine) as session:
            row = session.scalars(select(RadAcct).where(
                RadAcct.acct_session_id == session_id)).one()
            history = session.scalars(select(AcctHistory.status).where(
                AcctHistory.radacct_id == row.id).order_by(AcctHistory.id)).all()
            return row, history
    finally:
        engine.dispose()


def test_hostapd_takes_every_accounting_response(wired, vpop, upstream, tmp_path):
    link, nas, auth, acct = wired
    on = acct.wait_for(lambda e: status_type(e) == "Accounting-On" and e.replies, WAIT)
    assert on is not None, f"no Accounting-On answered\n{nas.diagnostics()}"

    peer = required(lambda: WiredSupplicant(link.supplicant, link.supplicant_interface,
                                            tmp_path, identity=IDENTITY, password=PASSWORD,
                                            ca_cert=upstream.ca_cert))
    try:
        peer.start()
        start = acct.wait_for(lambda e: status_type(e) == "Start" and e.replies, WAIT)
        assert start is not None, (f"no Accounting Start answered\n{nas.diagnostics()}\n"
                                   f"{peer.diagnostics()}\n{vpop.diagnostics()}")
        # hostapd starts accounting as it sends EAP-Success; the supplicant logs it after
        assert peer.wait_for_log("CTRL-EVENT-EAP-SUCCESS", WAIT), peer.diagnostics()
        session_id = codec.decode(start.request).first(A.ACCT_SESSION_ID)
        interim = acct.wait_for(lambda e: status_type(e) == "Interim-Update" and e.replies,
                                INTERIM_WAIT)
        assert interim is not None, f"no Interim-Update answered\n{nas.diagnostics()}"
        answer = disconnect(link, nas, session_id)  # hostapd ends the session
        stop = acct.wait_for(lambda e: status_type(e) == "Stop" and e.replies, WAIT)
        assert stop is not None, f"no Accounting Stop answered\n{nas.diagnostics()}"
    finally:
        peer.stop()

    # On the wire: no Accounting-Response carries a Message-Authenticator, and every
    # reply, EAP's Access-Challenges and Access-Accept too, verifies as hostapd 2.11
    # checks it.
    exchanges = answered(auth) + answered(acct)
    for exchange in exchanges:
        assert verifies_strictly(exchange, SECRET), exchange
    replies = accounting_replies(acct)
    assert len(replies) >= 4
    assert all(r.ma_offset < 0 and A.MESSAGE_AUTHENTICATOR not in r.attrs for r in replies)
    access = [codec.decode(d) for e in auth.exchanges() for d in e.replies]
    assert codec.ACCESS_ACCEPT in [r.code for r in access]
    assert all(r.ma_offset == 22 for r in access)  # first, as the BlastRADIUS guidance asks

    # hostapd took each one: counted as a response, none bad, none left pending.
    sent = len(acct.exchanges())
    mib = nas.wait_for_mib(lambda m: int(m["radiusAccClientResponses"]) >= sent and
                           m["radiusAccClientPendingRequests"] == "0", WAIT)
    assert int(mib["radiusAccClientResponses"]) >= sent, mib
    assert mib["radiusAccClientPendingRequests"] == "0", mib
    for counter in ("radiusAccClientBadAuthenticators", "radiusAccClientMalformedResponses",
                    "radiusAccClientPacketsDropped", "radiusAccClientUnknownTypes",
                    "radiusAccClientTimeouts"):
        assert mib[counter] == "0", (counter, mib)
    assert not re.search(r"Invalid Message-Authenticator|Response Authenticator invalid",
                         nas.log()), nas.diagnostics()

    # hostapd's DAS signs its answer as vpop's codec reads such answers: the Response
    # Authenticator and a Message-Authenticator over the request's authenticator (§3.4).
    ack = codec.decode(answer.reply)
    assert ack.code == codec.DISCONNECT_ACK and ack.ma_offset >= 0, ack
    assert verifies_strictly(answer, SECRET)

    # vpop stored the session: Start, Interim-Update and Stop, closed by the Stop.
    row, history = session_rows(vpop, session_id.decode())
    assert (row.username, row.status, row.closed_by) == (IDENTITY, "closed", "stop"), row
    assert history[0] == "start" and history[-1] == "stop" and "interim" in history, history
