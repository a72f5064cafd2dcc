"""EAP-MD5 served locally (vpop/aaa/eap.py), through the receiver without sockets: the
conversation over two Access-Requests, its State checked by any worker holding the
installation's key, and what is refused."""

import hashlib
import io
import ipaddress
import random

import pytest

from vpop.aaa import eap
from vpop.aaa.eap import EapServer, MalformedEap
from vpop.aaa.reply import ReplyRenderer
from vpop.aaa.subscribers import Account, ServiceProfile, SubscriberSnapshot
from vpop.accounting.records import AccountingPolicy
from vpop.config import Settings
from vpop.dispatch.deps import Deps
from vpop.dispatch.receiver import AUTH, Drop, Receiver
from vpop.pipeline.requestlog import RequestLog
from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.radius.clients import ClientTable, NasClient
from vpop.radius.dictionary import Dictionary, shipped_dictionary

SECRET = b"s3cret"
NAS = ("192.0.2.1", 40000)
DICT = Dictionary(shipped_dictionary())
KEY = b"k" * 32
PROFILE = ServiceProfile(name="res", session_timeout=3600, class_="res")
T0 = 1_700_000_000.0


def subscriber(name, methods, cleartext=None):
    return Account(username=name, profile=PROFILE, methods=frozenset(methods),
                   cleartext=cleartext)


ACCOUNTS = [subscriber("alice", ("pap", "chap", "eap-md5"), b"alice-pass"),
            subscriber("carol", ("pap", "chap"), b"carol-pass"),
            subscriber("hashed", ("eap-md5",))]


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


def make_receiver(clock, key=KEY, accounts=ACCOUNTS):
    deps = Deps(settings=Settings(), directory=SubscriberSnapshot(accounts, {}, {}),
                dictionary=DICT, replies=ReplyRenderer(DICT), accounting=AccountingPolicy(),
                rng=random.Random(5), eap=EapServer(key) if key else None)
    clients = ClientTable([NasClient(name="nas1", network=ipaddress.ip_network("192.0.2.0/24"),
                                     secret=SECRET, require_message_authenticator="no")])
    return Receiver(deps, clients, dedup_window=30, wallclock=clock)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def receiver(clock):
    return make_receiver(clock)


def ask(receiver, user, message, *, state=None, ma=True, split=False):
    """One Access-Request carrying `message` (in two EAP-Message attributes when
    `split`); the decoded answer, its authenticators checked, or the Drop."""
    auth = random.randbytes(16)
    attrs = codec.attribute(A.USER_NAME, user.encode())
    if split:
        attrs += codec.attribute(A.EAP_MESSAGE, message[:3])
        attrs += codec.attribute(A.EAP_MESSAGE, message[3:])
    else:
        attrs += eap.message_attributes(message)
    if state is not None:
        attrs += codec.attribute(A.STATE, state)
    data = codec.encode_request(codec.ACCESS_REQUEST, random.randrange(256), attrs, SECRET,
                                authenticator=auth, message_authenticator=ma)
    action = receiver.datagram(data, NAS, AUTH)
    if isinstance(action, Drop):
        return action
    # Response Authenticator and Message-Authenticator (RFC 3579 §3.2) both check.
    assert codec.reply_ok(action.data, auth, SECRET)
    reply = codec.decode(action.data)
    assert reply.ma_offset >= 0
    return reply


def identity(user, ident=7):
    return eap.encode(eap.RESPONSE, ident, eap.IDENTITY, user.encode())


def eap_of(reply):
    return eap.parse(b"".join(reply.attrs[A.EAP_MESSAGE]))


def challenged(receiver, user="alice", ident=7):
    """The challenge: (its EAP Identifier, the challenge octets, the State)."""
    reply = ask(receiver, user, identity(user, ident))
    assert reply.code == codec.ACCESS_CHALLENGE, reply
    code, sent, kind, data = eap_of(reply)
    assert (code, sent, kind, data[0], len(data)) == (eap.REQUEST, (ident + 1) % 256,
                                                      eap.MD5_CHALLENGE, 16, 17)
    return sent, data[1:17], reply.first(A.STATE)


def md5_answer(ident, password, challenge):
    # RFC 1994 §4.1, computed here on its own: MD5 over Identifier, secret, challenge.
    value = hashlib.md5(bytes((ident,)) + password + challenge).digest()
    return eap.encode(eap.RESPONSE, ident, eap.MD5_CHALLENGE, bytes((16,)) + value)


def reply_message(reply):
    return (reply.first(A.REPLY_MESSAGE) or b"").decode()


def test_the_response_value_is_rfc_1994s():
    # MD5(0x07 || "alice-pass" || 00 01 .. 0f), from `openssl md5` over those octets.
    message = md5_answer(7, b"alice-pass", bytes(range(16)))
    assert message[6:] == bytes.fromhex("a2b6861b770b1c8f0c726ebaf55cc898")


def test_identity_challenge_answer_accept(receiver):
    ident, challenge, state = challenged(receiver)
    reply = ask(receiver, "alice", md5_answer(ident, b"alice-pass", challenge), state=state)
    assert reply.code == codec.ACCESS_ACCEPT, reply_message(reply)
    assert eap_of(reply) == (eap.SUCCESS, ident, 0, b"")
    # The profile, as for PAP and CHAP, and the routing Class.
    assert reply.first(A.SESSION_TIMEOUT) == (3600).to_bytes(4, "big")
    assert reply.attrs[A.CLASS][0] == b"res"


def test_challenges_are_random_and_states_differ(receiver):
    first, second = challenged(receiver), challenged(receiver)
    assert first[1] != second[1] and first[2] != second[2]


def test_an_eap_message_in_fragments_is_joined(receiver):
    ident, challenge, state = challenged(receiver)
    reply = ask(receiver, "alice", md5_answer(ident, b"alice-pass", challenge), state=state,
                split=True)
    assert reply.code == codec.ACCESS_ACCEPT


def test_another_worker_with_the_key_checks_the_answer(clock):
    ident, challenge, state = challenged(make_receiver(clock))
    other = make_receiver(clock)  # another process, or after a reload
    reply = ask(other, "alice", md5_answer(ident, b"alice-pass", challenge), state=state)
    assert reply.code == codec.ACCESS_ACCEPT


def test_wrong_password_is_rejected_with_eap_failure(receiver):
    ident, challenge, state = challenged(receiver)
    reply = ask(receiver, "alice", md5_answer(ident, b"wrong", challenge), state=state)
    assert reply.code == codec.ACCESS_REJECT
    assert eap_of(reply) == (eap.FAILURE, ident, 0, b"")
    assert reply_message(reply) == "Authentication failed"
    assert A.SESSION_TIMEOUT not in reply.attrs


def test_a_state_under_another_key_is_forged(clock):
    ident, challenge, state = challenged(make_receiver(clock, key=b"other" * 8))
    receiver = make_receiver(clock)
    reply = ask(receiver, "alice", md5_answer(ident, b"alice-pass", challenge), state=state)
    assert (reply.code, receiver.deps.eap.refused) == (codec.ACCESS_REJECT, {"forged": 1})
    assert eap_of(reply)[0] == eap.FAILURE


@pytest.mark.parametrize("change", [
    lambda s: s[:5] + bytes((s[5] ^ 1,)) + s[6:],  # the challenge altered
    lambda s: s[:1] + (0xFFFFFFFF).to_bytes(4, "big") + s[5:],  # the expiry pushed back
    lambda s: s[:-1],  # the MAC cut short
    lambda s: b"x",
])
def test_an_altered_state_is_forged(receiver, change):
    ident, challenge, state = challenged(receiver)
    reply = ask(receiver, "alice", md5_answer(ident, b"alice-pass", challenge),
                state=change(state))
    assert reply.code == codec.ACCESS_REJECT
    assert receiver.deps.eap.refused == {"forged": 1}


def test_a_state_issued_to_another_user_is_forged(receiver):
    ident, challenge, state = challenged(receiver, "alice")
    reply = ask(receiver, "carol", md5_answer(ident, b"alice-pass", challenge), state=state)
    assert reply.code == codec.ACCESS_REJECT  # carol may not use EAP-MD5 anyway
    # One who may, with the same password: the State still names alice.
    other = make_receiver(Clock(), accounts=[subscriber("alice2", ("eap-md5",), b"alice-pass")])
    reply = ask(other, "alice2", md5_answer(ident, b"alice-pass", challenge), state=state)
    assert reply.code == codec.ACCESS_REJECT
    assert other.deps.eap.refused == {"forged": 1}


def test_an_expired_state_is_refused(receiver, clock):
    ident, challenge, state = challenged(receiver)
    clock.now += eap.STATE_LIFETIME + 1
    reply = ask(receiver, "alice", md5_answer(ident, b"alice-pass", challenge), state=state)
    assert (reply.code, receiver.deps.eap.refused) == (codec.ACCESS_REJECT, {"expired": 1})


def test_an_answer_within_the_lifetime_is_accepted(receiver, clock):
    ident, challenge, state = challenged(receiver)
    clock.now += eap.STATE_LIFETIME - 1
    reply = ask(receiver, "alice", md5_answer(ident, b"alice-pass", challenge), state=state)
    assert reply.code == codec.ACCESS_ACCEPT


def test_a_nak_for_another_method_is_refused_saying_so(receiver):
    ident, _, state = challenged(receiver)
    nak = eap.encode(eap.RESPONSE, ident, eap.NAK, bytes((25, 21)))  # PEAP, TTLS
    reply = ask(receiver, "alice", nak, state=state)
    assert reply.code == codec.ACCESS_REJECT
    assert reply_message(reply) == "EAP method PEAP, TTLS is not served locally; only EAP-MD5"
    assert eap_of(reply) == (eap.FAILURE, ident, 0, b"")


def test_an_answer_to_another_identifier_is_refused(receiver):
    ident, challenge, state = challenged(receiver)
    answer = md5_answer((ident + 1) % 256, b"alice-pass", challenge)
    assert ask(receiver, "alice", answer, state=state).code == codec.ACCESS_REJECT


def test_an_answer_without_state_is_refused(receiver):
    ident, challenge, _ = challenged(receiver)
    reply = ask(receiver, "alice", md5_answer(ident, b"alice-pass", challenge))
    assert reply.code == codec.ACCESS_REJECT
    assert eap_of(reply)[0] == eap.FAILURE


@pytest.mark.parametrize("user, why", [("carol", "method eap-md5 not allowed"),
                                       ("hashed", "no EAP-MD5 credential stored"),
                                       ("nobody", "unknown subscriber")])
def test_who_cannot_use_eap_md5_gets_eap_failure(receiver, user, why):
    log = io.StringIO()
    receiver.request_log = RequestLog(log)
    reply = ask(receiver, user, identity(user, 3))
    assert reply.code == codec.ACCESS_REJECT
    assert eap_of(reply) == (eap.FAILURE, 3, 0, b"")
    assert reply_message(reply) == "Authentication failed"
    receiver.request_log.flush()
    assert f'reason="{why}"' in log.getvalue(), log.getvalue()


def test_without_a_key_eap_md5_is_refused(clock):
    reply = ask(make_receiver(clock, key=None), "alice", identity("alice"))
    assert reply.code == codec.ACCESS_REJECT


def test_eap_without_message_authenticator_is_dropped(receiver):
    # RFC 3579 §3.3, even from a NAS whose PAP needs none.
    action = ask(receiver, "alice", identity("alice"), ma=False)
    assert isinstance(action, Drop) and action.reason == "missing Message-Authenticator"


@pytest.mark.parametrize("message", [b"\x02", b"\x02\x01\x00\x09\x01ab",
                                     b"\x02\x01\x00\x04", b"\x09\x01\x00\x05\x01"])
def test_a_malformed_eap_message_is_refused(receiver, message):
    with pytest.raises(MalformedEap):
        eap.parse(message)
    assert ask(receiver, "alice", message).code == codec.ACCESS_REJECT


def test_padding_beyond_the_eap_length_is_ignored():
    assert eap.parse(b"\x03\x05\x00\x04\x00\x00") == (eap.SUCCESS, 5, 0, b"")


def test_long_messages_are_split_in_attributes_of_253_octets():
    message = bytes(600)
    attrs = eap.message_attributes(message)
    assert [attrs[0], attrs[255], attrs[510]] == [A.EAP_MESSAGE] * 3
    assert [attrs[1], attrs[256], attrs[511]] == [255, 255, 96]
    packet = codec.decode(codec.encode_reply(codec.ACCESS_CHALLENGE, 1, bytes(16), attrs, SECRET))
    assert b"".join(packet.attrs[A.EAP_MESSAGE]) == message
