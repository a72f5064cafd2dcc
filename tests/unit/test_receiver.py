"""The request front door without sockets: datagrams in, actions out."""

import dataclasses
import datetime as dt
import hashlib
import ipaddress
import random

import pytest

from vpop.aaa import credentials as cred
from vpop.aaa.reply import ReplyRenderer
from vpop.aaa.identify import first_found
from vpop.aaa.subscribers import Account, ServiceProfile, SubscriberSnapshot
from vpop.accounting.records import AccountingPolicy
from vpop.config import Settings, IdentificationSettings
from vpop.dispatch.deps import Deps
from vpop.dispatch.receiver import ACCT, AUTH, COA, Defer, Drop, Persist, Receiver, Send
from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.radius.clients import ClientTable, NasClient
from vpop.radius.crypto import decrypt_salted, encrypt_user_password
from vpop.radius.dictionary import Dictionary, shipped_dictionary

SECRET = b"s3cret"
NAS = ("192.0.2.1", 40000)
DICT = Dictionary(shipped_dictionary())
PROFILE = ServiceProfile(name="res", rate_down_kbps=10000, rate_up_kbps=2000,
                         address_pool="residential", session_timeout=3600, class_="res")
CLI = ServiceProfile(name="cli", caller_id_login=True)


def account(name, password=None, methods=("pap",), **kw):
    pw = password.encode() if password else None
    return Account(username=name, profile=kw.pop("profile", PROFILE), methods=frozenset(methods),
                   cleartext=pw if "chap" in methods else None,
                   nt_hash=cred.nt_hash(password) if {"mschap", "mschapv2"} & set(methods) else None,
                   password_hash=kw.pop("password_hash", None), **kw)


@pytest.fixture
def receiver():
    accounts = [
        account("alice", "alice-pass", ("pap", "chap", "mschap", "mschapv2")),
        account("bob", None, ("pap",),
                password_hash=cred.hash_password("bob-pass", salt=b"salt", iterations=1000)),
        account("carol", "carol-pass", ("pap", "chap")),
        account("dave", None, (), profile=CLI),
        account("erin", "erin-pass", ("pap", "chap"), enabled=False),
        account("frank", "frank-pass", ("pap", "chap"),
                expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)),
    ]
    directory = SubscriberSnapshot(accounts, {"4940555000": "dave", "49301234567": "alice"},
                                   {("circuit_id", "bras1 eth 0/1/2:100"): "carol"})
    settings = Settings(identification=IdentificationSettings(country_code="49"))
    deps = Deps(settings=settings, directory=directory, dictionary=DICT,
                replies=ReplyRenderer(DICT), accounting=AccountingPolicy(),
                rng=random.Random(1))
    clients = ClientTable([
        NasClient(name="nas1", network=ipaddress.ip_network("192.0.2.0/24"), secret=SECRET,
                  nas_type="mikrotik", require_message_authenticator="yes"),
        NasClient(name="legacy", network=ipaddress.ip_network("198.51.100.7/32"),
                  secret=SECRET, require_message_authenticator="auto"),
    ])
    return Receiver(deps, clients, dedup_window=30)


def request(pairs, *, ident=1, auth=None, ma=True, code=codec.ACCESS_REQUEST, raw=b""):
    auth = auth or random.randbytes(16)
    attrs = DICT.encode_pairs(pairs) + raw
    return codec.encode_request(code, ident, attrs, SECRET, authenticator=auth,
                                message_authenticator=ma), auth


def pap(user, password, *, extra=(), **kw):
    auth = random.randbytes(16)
    hidden = encrypt_user_password(password.encode(), SECRET, auth)
    return request([("User-Name", user), *extra], raw=codec.attribute(A.USER_PASSWORD, hidden),
                   auth=auth, **kw)


def answer(receiver, data, auth, addr=NAS, port=AUTH):
    action = receiver.datagram(data, addr, port)
    while isinstance(action, (Defer, Persist)):
        if isinstance(action, Defer):
            action = action.then(action.work())
        else:
            action.done(True)
            action = Send(action.reply)
    if isinstance(action, Drop):
        return action
    assert codec.reply_ok(action.data, auth, SECRET)
    return codec.decode(action.data)


def reply_message(packet):
    return (packet.first(A.REPLY_MESSAGE) or b"").decode()


def test_pap_accept_carries_the_rendered_profile(receiver):
    reply = answer(receiver, *pap("alice", "alice-pass"))
    assert reply.code == codec.ACCESS_ACCEPT
    assert reply.first(A.SESSION_TIMEOUT) == (3600).to_bytes(4, "big")
    assert reply.first((14988, 8)) == b"2000k/10000k"  # Mikrotik-Rate-Limit
    assert reply.first(A.CLASS) == b"res"


def test_wrong_password_is_rejected_with_a_reply_message(receiver):
    reply = answer(receiver, *pap("alice", "nope"))
    assert reply.code == codec.ACCESS_REJECT
    assert reply_message(reply) == "Authentication failed"


class RemoteDirectory:
    """A directory whose lookups may wait (a directory server): records what it is asked
    and by which thread, so the test sees that the event loop's stage never asks."""
    remote = True

    def __init__(self, snapshot):
        self.snapshot, self.asked = snapshot, []

    def by_name(self, name):
        self.asked.append(("name", name))
        return self.snapshot.by_name(name)

    def by_caller_id(self, number):
        self.asked.append(("caller_id", number))
        return self.snapshot.by_caller_id(number)

    def by_line(self, kind, value):
        self.asked.append((kind, value))
        return self.snapshot.by_line(kind, value)

    def at_once(self, wanted):
        return None  # nothing known without asking

    def lookup(self, wanted):
        return first_found(self, wanted)


def test_a_remote_directory_is_asked_off_the_event_loop_while_the_request_waits(receiver):
    remote = RemoteDirectory(receiver.deps.directory)
    receiver.deps = dataclasses.replace(receiver.deps, directory=remote)
    action = receiver.datagram(*pap("alice", "alice-pass")[:1], NAS, AUTH)
    assert isinstance(action, Defer) and remote.asked == []  # nothing asked on the loop
    assert answer(receiver, *pap("alice", "alice-pass")).code == codec.ACCESS_ACCEPT
    assert ("name", "alice") in remote.asked
    # A subscriber with a slow hash waits twice: for the directory, then for the hash.
    assert answer(receiver, *pap("bob", "bob-pass")).code == codec.ACCESS_ACCEPT
    assert answer(receiver, *pap("nobody", "x")).code == codec.ACCESS_REJECT
    line = [("User-Name", "x"), ("Agent-Circuit-Id", "bras1 eth 0/1/2:100")]
    hidden = encrypt_user_password(b"carol-pass", SECRET, b"\1" * 16)
    reply = answer(receiver, *request(line, auth=b"\1" * 16,
                                      raw=codec.attribute(A.USER_PASSWORD, hidden)))
    assert reply.code == codec.ACCESS_ACCEPT and remote.asked[-1] == (
        "circuit_id", "bras1 eth 0/1/2:100")


def test_slow_hash_is_deferred_then_cached(receiver):
    data, auth = pap("bob", "bob-pass")
    assert isinstance(receiver.datagram(data, NAS, AUTH), Defer)
    assert answer(receiver, *pap("bob", "bob-pass")).code == codec.ACCESS_ACCEPT
    # The second login is answered at once from the verified-fingerprint cache.
    assert isinstance(receiver.datagram(*pap("bob", "bob-pass")[:1], NAS, AUTH), Send)
    assert answer(receiver, *pap("bob", "bob-pas")).code == codec.ACCESS_REJECT


def test_chap(receiver):
    challenge = random.randbytes(16)
    digest = hashlib.md5(bytes((5,)) + b"alice-pass" + challenge).digest()
    raw = codec.attribute(A.CHAP_PASSWORD, bytes((5,)) + digest) + \
        codec.attribute(A.CHAP_CHALLENGE, challenge)
    assert answer(receiver, *request([("User-Name", "alice")], raw=raw)).code == codec.ACCESS_ACCEPT
    bad = codec.attribute(A.CHAP_PASSWORD, bytes((5,)) + bytes(16)) + \
        codec.attribute(A.CHAP_CHALLENGE, challenge)
    assert answer(receiver, *request([("User-Name", "alice")], raw=bad)).code == codec.ACCESS_REJECT


def test_chap_is_refused_for_a_pap_only_subscriber(receiver):
    raw = codec.attribute(A.CHAP_PASSWORD, bytes(17))
    reply = answer(receiver, *request([("User-Name", "bob")], raw=raw))
    assert reply.code == codec.ACCESS_REJECT


def test_mschapv2_accept_has_success_and_mppe_keys(receiver):
    auth_challenge, peer_challenge = random.randbytes(16), random.randbytes(16)
    nt_response = cred.mschapv2_nt_response(auth_challenge, peer_challenge, b"alice",
                                            cred.nt_hash("alice-pass"))
    value = bytes((7, 0)) + peer_challenge + bytes(8) + nt_response
    raw = codec.vendor_attribute(311, 11, auth_challenge) + codec.vendor_attribute(311, 25, value)
    data, auth = request([("User-Name", "alice")], raw=raw)
    reply = answer(receiver, data, auth)
    assert reply.code == codec.ACCESS_ACCEPT
    expected = cred.mschapv2_authenticator_response(cred.nt_hash("alice-pass"), nt_response,
                                                    peer_challenge, auth_challenge, b"alice")
    assert reply.first((311, 26)) == bytes((7,)) + expected.encode()
    send_key, recv_key = cred.mppe_session_keys(cred.nt_hash("alice-pass"), nt_response)
    assert decrypt_salted(reply.first((311, 16)), SECRET, auth)[:16] == send_key
    assert decrypt_salted(reply.first((311, 17)), SECRET, auth)[:16] == recv_key


def test_mschapv2_failure_has_ms_chap_error(receiver):
    raw = codec.vendor_attribute(311, 11, bytes(16)) + \
        codec.vendor_attribute(311, 25, bytes((7, 0)) + bytes(48))
    reply = answer(receiver, *request([("User-Name", "alice")], raw=raw))
    assert reply.code == codec.ACCESS_REJECT
    assert reply.first((311, 2)).startswith(b"\x07E=691")


def test_caller_id_login_needs_no_password(receiver):
    reply = answer(receiver, *request([("Calling-Station-Id", "040 555000")]))
    assert reply.code == codec.ACCESS_ACCEPT


def test_caller_id_alone_is_not_enough_without_the_profile_flag(receiver):
    reply = answer(receiver, *request([("Calling-Station-Id", "+49 30 1234567")]))
    assert reply.code == codec.ACCESS_REJECT


def test_line_identifies_the_subscriber_whatever_the_user_name(receiver):
    assert answer(receiver, *pap("anything", "carol-pass")).code == codec.ACCESS_REJECT
    line = [("Agent-Circuit-Id", "bras1 eth 0/1/2:100")]
    assert answer(receiver, *pap("anything", "carol-pass", extra=line)).code == codec.ACCESS_ACCEPT
    assert answer(receiver, *pap("anything", "wrong", extra=line)).code == codec.ACCESS_REJECT


@pytest.mark.parametrize("user, message", [("erin", "Account disabled"),
                                           ("frank", "Account expired")])
def test_disabled_and_expired(receiver, user, message):
    reply = answer(receiver, *pap(user, f"{user}-pass"))
    assert reply.code == codec.ACCESS_REJECT
    assert reply_message(reply) == message


def test_realm_is_stripped(receiver):
    assert answer(receiver, *pap("alice@isp.example", "alice-pass")).code == codec.ACCESS_ACCEPT


def test_unknown_client_is_dropped_and_counted(receiver):
    data, auth = pap("alice", "alice-pass")
    assert answer(receiver, data, auth, addr=("203.0.113.9", 1)) == Drop("unknown client")
    assert receiver.stats.drops["unknown client"] == 1


def test_missing_message_authenticator_is_dropped(receiver):
    data, auth = pap("alice", "alice-pass", ma=False)
    assert answer(receiver, data, auth) == Drop("missing Message-Authenticator")


def test_auto_mode_requires_it_once_seen(receiver):
    legacy = ("198.51.100.7", 1000)
    data, auth = pap("alice", "alice-pass", ma=False)
    assert answer(receiver, data, auth, addr=legacy).code == codec.ACCESS_ACCEPT
    data, auth = pap("alice", "alice-pass")
    assert answer(receiver, data, auth, addr=legacy).code == codec.ACCESS_ACCEPT
    data, auth = pap("alice", "alice-pass", ma=False)
    assert answer(receiver, data, auth, addr=legacy) == Drop("missing Message-Authenticator")


def test_wrong_secret_is_dropped(receiver):
    data, auth = pap("alice", "alice-pass")
    data = data[:20] + data[20:].replace(data[22:38], bytes(16))  # corrupt the signature
    assert answer(receiver, data, auth) == Drop("bad Message-Authenticator")


def test_retransmission_gets_the_cached_reply(receiver):
    data, auth = pap("alice", "alice-pass")
    first = receiver.datagram(data, NAS, AUTH)
    second = receiver.datagram(data, NAS, AUTH)
    assert first == second
    assert receiver.stats.duplicates == 1
    assert sum(receiver.stats.requests.values()) == 1  # processed once
    other_port = receiver.datagram(data, (NAS[0], NAS[1] + 1), AUTH)
    assert isinstance(other_port, Send) and receiver.stats.duplicates == 1


def test_status_server(receiver):
    data, auth = request([], code=codec.STATUS_SERVER)
    assert answer(receiver, data, auth).code == codec.ACCESS_ACCEPT
    data, auth = request([], code=codec.STATUS_SERVER, ma=False)
    assert isinstance(answer(receiver, data, auth), Drop)


def test_proxy_state_is_echoed_in_order(receiver):
    raw = codec.attribute(A.PROXY_STATE, b"first") + codec.attribute(A.PROXY_STATE, b"second")
    auth = random.randbytes(16)
    raw += codec.attribute(A.USER_PASSWORD, encrypt_user_password(b"alice-pass", SECRET, auth))
    reply = answer(receiver, *request([("User-Name", "alice")], raw=raw, auth=auth))
    assert reply.attrs[A.PROXY_STATE] == [b"first", b"second"]


@pytest.mark.parametrize("data", [b"\x01", b"\x01\x02\x00\x10" + bytes(16),
                                  b"\x01\x02\x00\x18" + bytes(16) + b"\x01\x00\x00\x00"])
def test_malformed_is_dropped_and_counted(receiver, data):
    assert receiver.datagram(data, NAS, AUTH) == Drop("malformed")
    assert receiver.stats.drops["malformed"] == 1


def test_codes_are_served_on_their_own_port(receiver):
    data, auth = pap("alice", "alice-pass")
    assert isinstance(receiver.datagram(data, NAS, ACCT), Drop)


def test_accounting_is_acknowledged_only_after_it_is_stored(receiver):
    attrs = DICT.encode_pairs([("Acct-Status-Type", "Start"), ("Acct-Session-Id", "abc"),
                               ("User-Name", "alice")])
    data = codec.encode_request(codec.ACCOUNTING_REQUEST, 1, attrs, SECRET)
    action = receiver.datagram(data, NAS, ACCT)
    assert isinstance(action, Persist)
    assert action.record.status == "start" and action.record.session_id == "abc"
    # Until stored, a retransmission is not processed again.
    assert receiver.datagram(data, NAS, ACCT) == Drop("duplicate in progress")
    action.done(False)  # the store failed: the retransmission is tried again
    again = receiver.datagram(data, NAS, ACCT)
    assert isinstance(again, Persist)
    again.done(True)
    assert receiver.datagram(data, NAS, ACCT) == Send(again.reply)


def test_a_retransmission_is_answered_once_its_record_is_marked_stored(receiver):
    attrs = DICT.encode_pairs([("Acct-Status-Type", "Start"), ("Acct-Session-Id", "abd"),
                               ("User-Name", "alice")])
    data = codec.encode_request(codec.ACCOUNTING_REQUEST, 1, attrs, SECRET)
    action = receiver.datagram(data, NAS, ACCT)
    assert receiver.datagram(data, NAS, ACCT) == Drop("duplicate in progress")
    # The storing thread marks it just before it sends the reply, ahead of the
    # event loop's bookkeeping (action.done).
    action.awaiting.stored = True
    assert receiver.datagram(data, NAS, ACCT) == Send(action.reply)
    action.done(True)
    assert receiver.datagram(data, NAS, ACCT) == Send(action.reply)
    assert receiver.stats.duplicates == 3


def test_accounting_with_a_bad_authenticator_is_dropped(receiver):
    attrs = DICT.encode_pairs([("Acct-Status-Type", "Start"), ("Acct-Session-Id", "abc")])
    data = codec.encode_request(codec.ACCOUNTING_REQUEST, 1, attrs, b"other",
                                message_authenticator=False)
    assert receiver.datagram(data, NAS, ACCT) == Drop("bad Request Authenticator")


@pytest.mark.parametrize("code, nak", [(codec.COA_REQUEST, codec.COA_NAK),
                                       (codec.DISCONNECT_REQUEST, codec.DISCONNECT_NAK)])
def test_dynamic_authorization_is_answered_with_a_nak(receiver, code, nak):
    attrs = DICT.encode_pairs([("User-Name", "alice")]) + codec.attribute(A.PROXY_STATE, b"p")
    data = codec.encode_request(code, 1, attrs, SECRET)
    action = receiver.datagram(data, NAS, COA)
    reply = codec.decode(action.data)
    assert reply.code == nak
    assert reply.first(A.ERROR_CAUSE) == (405).to_bytes(4, "big")
    assert reply.first(A.PROXY_STATE) == b"p"
    # RFC 5176 §2.3: signed by its Response Authenticator, over the request's; no
    # Message-Authenticator, whose key DACs disagree on (vpop/radius/codec.py).
    assert reply.ma_offset == -1 and A.MESSAGE_AUTHENTICATOR not in reply.attrs
    assert codec.reply_ok(action.data, data[4:20], SECRET)


def test_accounting_responses_carry_no_message_authenticator(receiver):
    attrs = DICT.encode_pairs([("Acct-Status-Type", "Start"), ("Acct-Session-Id", "ma"),
                               ("User-Name", "alice")])
    for data in (codec.encode_request(codec.ACCOUNTING_REQUEST, 1, attrs, SECRET),
                 codec.encode_request(codec.ACCOUNTING_REQUEST, 2, attrs, SECRET,
                                      message_authenticator=False)):
        reply = answer(receiver, data, data[4:20], port=ACCT)
        assert reply.code == codec.ACCOUNTING_RESPONSE
        assert reply.ma_offset == -1 and reply.raw == reply.raw[:20]


def test_status_server_on_the_accounting_port_is_answered_signed(receiver):
    data, auth = request([], code=codec.STATUS_SERVER)
    reply = answer(receiver, data, auth, port=ACCT)  # checks both authenticators
    assert reply.code == codec.ACCOUNTING_RESPONSE
    assert reply.ma_offset == 22  # first, keyed with the Status-Server's authenticator
    assert codec.message_authenticator_ok(reply, SECRET, auth)
