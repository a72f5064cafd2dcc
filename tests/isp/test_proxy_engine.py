"""The proxy engine and both legs' rewriting, with a scripted upstream: no sockets."""

import hashlib
import random

import pytest

from support.radius_peer import reply_to
from vpop.isp.forwarding import downstream_attributes
from vpop.isp.model import Isp, UpstreamServer
from vpop.isp.pool import ALIVE, DEAD, ZOMBIE, PoolSettings, Pools
from vpop.isp.proxy import Finished, ProxyEngine, ProxyJob
from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.radius.crypto import (decrypt_salted, decrypt_user_password, encrypt_salted,
                                encrypt_user_password)
from vpop.radius.exchange import Transmit

NAS_SECRET, UP_SECRET = b"nas-secret", b"isp-secret"
PRIMARY = UpstreamServer(name="isp-a/1", address="127.0.0.1", auth_port=18121,
                         secret=UP_SECRET, priority=1)
SECONDARY = UpstreamServer(name="isp-a/2", address="127.0.0.1", auth_port=18122,
                           secret=UP_SECRET, priority=2)
ISP = Isp(name="isp-a", servers=(PRIMARY, SECONDARY))
SETTINGS = PoolSettings(response_window=1.0, zombie_period=5.0, probe_interval=1.0,
                        revive_probes=3)


def engine(isp=ISP, budget=5.0):
    return ProxyEngine(Pools((isp,), SETTINGS), budget=budget, rng=random.Random(7))


def nas_request(*, password=b"alice-pass", extra=b"", state=None):
    auth = random.randbytes(16)
    attrs = codec.attribute(A.USER_NAME, b"alice@isp-a.example") + extra
    if password is not None:
        attrs += codec.attribute(A.USER_PASSWORD,
                                 encrypt_user_password(password, NAS_SECRET, auth))
    if state is not None:
        attrs += codec.attribute(A.STATE, state)
    attrs += codec.attribute(A.PROXY_STATE, b"from-an-earlier-proxy")
    return codec.decode(codec.encode_request(codec.ACCESS_REQUEST, 9, attrs, NAS_SECRET,
                                             authenticator=auth))


def job(packet, isp=ISP):
    return ProxyJob(packet=packet, nas_secret=NAS_SECRET, isp=isp, user_name=b"alice",
                    key="4930123")


def upstream_reply(send: Transmit, code=codec.ACCESS_ACCEPT, *, secret=UP_SECRET, **kw) -> bytes:
    """What a RADIUS server would answer to the datagram vpop sent it."""
    return reply_to(send, code, secret=secret, **kw)


def test_request_is_rewritten_for_the_upstream_leg():
    packet = nas_request(extra=codec.attribute(A.CHAP_PASSWORD, bytes(17)))
    (send,) = engine().forward(job(packet), now=0.0)
    assert send.addr == ("127.0.0.1", 18121)
    sent = codec.decode(send.data)
    assert codec.message_authenticator_ok(sent, UP_SECRET)
    assert sent.authenticator != packet.authenticator
    assert sent.first(A.USER_NAME) == b"alice"  # realm stripped
    assert decrypt_user_password(sent.first(A.USER_PASSWORD), UP_SECRET,
                                 sent.authenticator) == b"alice-pass"
    # RFC 2865 §5.40: the NAS's authenticator was the CHAP challenge; it travels along.
    assert sent.first(A.CHAP_CHALLENGE) == packet.authenticator
    states = sent.attrs[A.PROXY_STATE]
    assert states[0] == b"from-an-earlier-proxy" and len(states) == 2


def test_the_upstream_leg_passes_other_attributes_as_they_came():
    # A VSA with two sub-attributes and two EAP-Messages: unchanged, in their order.
    vsa = bytes((26, 16)) + (9).to_bytes(4, "big") + bytes((1, 5)) + b"abc" + bytes((2, 5)) + b"xyz"
    eap = codec.attribute(79, b"first") + codec.attribute(79, b"second")
    packet = nas_request(extra=vsa + eap, password=None)
    (send,) = engine().forward(job(packet), now=0.0)
    assert vsa + eap in send.data
    sent = codec.decode(send.data)
    assert sent.attrs[79] == [b"first", b"second"]
    assert sent.first(A.USER_NAME) == b"alice@isp-a.example"  # EAP: as it came (below)
    assert sent.attrs[A.PROXY_STATE][0] == b"from-an-earlier-proxy"


@pytest.mark.parametrize("credentials, upstream_name", [
    (codec.attribute(A.CHAP_PASSWORD, bytes(17)), b"alice"),
    (codec.vendor_attribute(311, 11, bytes(8)) + codec.vendor_attribute(311, 1, bytes(50)),
     b"alice"),  # MS-CHAP v1: the name is not part of the response
    # MS-CHAPv2 hashes the name (RFC 2759 §8.2); an EAP server compares it with the
    # identity in EAP (RFC 3579 §2.1): a stripped name would fail either.
    (codec.vendor_attribute(311, 11, bytes(16)) + codec.vendor_attribute(311, 25, bytes(50)),
     b"alice@isp-a.example"),
    (codec.attribute(A.EAP_MESSAGE, b"\x02\x01\x00\x06\x01a"), b"alice@isp-a.example"),
])
def test_the_realm_is_stripped_only_where_the_credentials_do_not_cover_the_name(
        credentials, upstream_name):
    packet = nas_request(extra=credentials, password=None)
    (send,) = engine().forward(job(packet), now=0.0)
    assert codec.decode(send.data).first(A.USER_NAME) == upstream_name


def test_a_reply_without_hidden_values_passes_as_it_came():
    packet = nas_request()
    proxy = engine()
    (send,) = proxy.forward(job(packet), now=0.0)
    vsa = bytes((26, 16)) + (9).to_bytes(4, "big") + bytes((1, 5)) + b"abc" + bytes((2, 5)) + b"xyz"
    attrs = codec.attribute(A.SESSION_TIMEOUT, (60).to_bytes(4, "big")) + vsa
    (finished,) = proxy.on_reply(upstream_reply(send, attrs=attrs), send.addr, 0.01, send.sock)
    out = downstream_attributes(finished.reply, secret=UP_SECRET,
                                authenticator=finished.authenticator, nas_secret=NAS_SECRET,
                                nas_authenticator=packet.authenticator, salt=lambda: b"\x90\x03")
    assert out == attrs  # no Message-Authenticator, no Proxy-State, the rest unchanged


def test_reply_is_matched_checked_and_keys_rehidden_for_the_nas():
    packet = nas_request()
    proxy = engine()
    (send,) = proxy.forward(job(packet), now=0.0)
    sent = codec.decode(send.data)
    key = bytes(range(16))
    hidden = encrypt_salted(key, UP_SECRET, sent.authenticator, b"\x80\x01")
    tunnel_pw = b"\x01" + encrypt_salted(b"lns-secret", UP_SECRET, sent.authenticator, b"\x81\x02")
    attrs = codec.vendor_attribute(311, 16, hidden) + codec.attribute(69, tunnel_pw) + \
        codec.attribute(A.SESSION_TIMEOUT, (3600).to_bytes(4, "big"))
    (finished,) = proxy.on_reply(upstream_reply(send, attrs=attrs), send.addr, 0.01, send.sock)
    assert isinstance(finished, Finished) and finished.server == PRIMARY
    assert finished.reply.code == codec.ACCESS_ACCEPT
    out = downstream_attributes(finished.reply, secret=UP_SECRET,
                                authenticator=finished.authenticator, nas_secret=NAS_SECRET,
                                nas_authenticator=packet.authenticator,
                                salt=lambda: b"\x90\x03")
    relayed = codec.decode(codec.encode_reply(2, 9, packet.authenticator, out, NAS_SECRET))
    assert decrypt_salted(relayed.first((311, 16)), NAS_SECRET, packet.authenticator) == key
    tagged = relayed.first(69)
    assert tagged[0] == 1
    assert decrypt_salted(tagged[1:], NAS_SECRET, packet.authenticator) == b"lns-secret"
    assert A.PROXY_STATE not in relayed.attrs  # the NAS's own are added by the receiver
    assert relayed.first(A.SESSION_TIMEOUT) == (3600).to_bytes(4, "big")
    assert proxy.pending == {}


@pytest.mark.parametrize("forge", [
    dict(secret=b"wrong-secret"),          # Response Authenticator fails
    dict(signed=False),                    # no Message-Authenticator (BlastRADIUS)
    dict(echo=False),                      # not our Proxy-State
])
def test_bad_replies_are_counted_and_the_real_one_still_wins(forge):
    proxy = engine()
    (send,) = proxy.forward(job(nas_request()), now=0.0)
    assert proxy.on_reply(upstream_reply(send, **forge), send.addr, 0.01, send.sock) == []
    assert proxy.counters["bad_replies"] == 1
    assert proxy.pools.health[PRIMARY.name].bad_replies == 1
    (finished,) = proxy.on_reply(upstream_reply(send), send.addr, 0.02, send.sock)
    assert finished.reply.code == codec.ACCESS_ACCEPT


def test_garbage_and_unmatched_replies_are_dropped():
    proxy = engine()
    (send,) = proxy.forward(job(nas_request()), now=0.0)
    assert proxy.on_reply(b"\x02\x00", send.addr, 0.01, send.sock) == []
    assert proxy.on_reply(upstream_reply(send), ("127.0.0.9", 1), 0.01, send.sock) == []
    assert proxy.counters["unmatched"] == 1


def test_timeout_fails_over_and_the_primary_becomes_zombie_then_alive_again():
    proxy = engine()
    (first,) = proxy.forward(job(nas_request()), now=0.0)
    assert proxy.poll(now=0.5) == []
    actions = proxy.poll(now=1.0)
    (retry,) = [a for a in actions if codec.decode(a.data).code == codec.ACCESS_REQUEST]
    assert retry.addr == ("127.0.0.1", 18122)  # the secondary
    # The new zombie is probed at once (RFC 5997 Status-Server).
    (probe,) = [a for a in actions if codec.decode(a.data).code == codec.STATUS_SERVER]
    assert probe.addr == first.addr
    assert proxy.pools.health[PRIMARY.name].status == ZOMBIE
    (finished,) = proxy.on_reply(upstream_reply(retry), retry.addr, 1.1, retry.sock)
    assert finished.server == SECONDARY
    # New requests avoid the zombie while the secondary is alive.
    (send,) = proxy.forward(job(nas_request()), now=1.2)
    assert send.addr == retry.addr
    proxy.on_reply(upstream_reply(send), send.addr, 1.3, send.sock)
    # The zombie is probed with Status-Server (RFC 5997) and revived after 3 answers.
    proxy.on_reply(upstream_reply(probe), probe.addr, 1.05, probe.sock)
    now = 1.3
    for _ in range(2):
        now += 1.0
        probes = [a for a in proxy.poll(now) if codec.decode(a.data).code == codec.STATUS_SERVER]
        (probe,) = probes
        assert probe.addr == first.addr
        assert codec.message_authenticator_ok(codec.decode(probe.data), UP_SECRET)
        proxy.on_reply(upstream_reply(probe), probe.addr, now + 0.01, probe.sock)
    assert proxy.pools.health[PRIMARY.name].status == ALIVE
    assert [(t.old, t.new) for t in proxy.pools.take_changes()] == [(ALIVE, ZOMBIE), (ZOMBIE, ALIVE)]
    assert proxy.pools.changes == []


def revive_by_probes(proxy, *, signed, start=2.0):
    """The primary made a zombie, then probed revive_probes times, each probe answered."""
    proxy.forward(job(nas_request()), now=0.0)
    proxy.poll(now=1.0)
    assert proxy.pools.health[PRIMARY.name].status == ZOMBIE
    now = start
    for _ in range(SETTINGS.revive_probes):
        probes = [a for a in proxy.poll(now) if isinstance(a, Transmit)
                  and codec.decode(a.data).code == codec.STATUS_SERVER]
        for probe in probes:
            proxy.on_reply(upstream_reply(probe, signed=signed), probe.addr, now + 0.01,
                           probe.sock)
        now += SETTINGS.probe_interval
    return proxy.pools.health[PRIMARY.name]


def test_an_unsigned_status_server_answer_revives_no_server_that_must_sign():
    # BlastRADIUS: an answer without Message-Authenticator could be forged, and a forged
    # probe answer would bring a dead server back into use.
    proxy = engine()
    health = revive_by_probes(proxy, signed=False)
    assert health.status == ZOMBIE
    assert health.bad_replies == SETTINGS.revive_probes
    assert revive_by_probes(engine(), signed=True).status == ALIVE


def test_an_unsigned_status_server_answer_revives_a_server_not_required_to_sign():
    lenient = UpstreamServer(name="isp-a/1", address="127.0.0.1", auth_port=18121,
                             secret=UP_SECRET, priority=1, require_message_authenticator=False)
    proxy = engine(isp=Isp(name="isp-a", servers=(lenient, SECONDARY)))
    assert revive_by_probes(proxy, signed=False).status == ALIVE


def test_a_silent_zombie_is_declared_dead():
    proxy = engine()
    proxy.forward(job(nas_request()), now=0.0)
    proxy.poll(now=1.0)
    now = 1.0
    while now < 8.0:
        now += 0.5
        proxy.poll(now)
    assert proxy.pools.health[PRIMARY.name].status == DEAD


def test_budget_exhausted_finishes_without_reply():
    proxy = engine(budget=1.5)
    proxy.forward(job(nas_request()), now=0.0)
    proxy.poll(now=1.0)  # retried on the secondary, with what is left of the budget
    actions = proxy.poll(now=1.6)
    finished = [a for a in actions if isinstance(a, Finished)]
    assert finished and finished[0].reply is None
    assert proxy.counters["exhausted"] == 1


def test_eap_conversation_stays_on_its_server():
    proxy = engine(isp=Isp(name="isp-b", balance="weighted", servers=(
        PRIMARY, UpstreamServer(name="isp-b/2", address="127.0.0.1", auth_port=18123,
                                secret=UP_SECRET, priority=1))))
    eap = codec.attribute(A.EAP_MESSAGE, b"\x02\x01\x00\x06\x01a")
    (send,) = proxy.forward(job(nas_request(password=None, extra=eap), isp=proxy.pools.isps["isp-b"]), 0.0)
    challenge = codec.attribute(A.STATE, b"round-1") + eap
    reply = upstream_reply(send, codec.ACCESS_CHALLENGE, attrs=challenge)
    proxy.on_reply(reply, send.addr, 0.1, send.sock)
    for i in range(20):
        follow = nas_request(password=None, extra=eap, state=b"round-1")
        (again,) = proxy.forward(job(follow, isp=proxy.pools.isps["isp-b"]), 0.2 + i)
        assert again.addr == send.addr
        proxy.on_reply(upstream_reply(again), again.addr, 0.3 + i, again.sock)


def test_keyed_balance_is_stable_per_caller():
    servers = tuple(UpstreamServer(name=f"k/{i}", address="127.0.0.1", auth_port=19000 + i,
                                   secret=UP_SECRET) for i in range(3))
    pools = Pools((Isp(name="k", balance="keyed", servers=servers),), SETTINGS)
    isp = pools.isps["k"]
    rng = random.Random(1)
    picks = {pools.choose(isp, key=f"caller{n}", rng=rng).name for n in range(50)}
    assert len(picks) == 3
    for n in range(10):
        assert len({pools.choose(isp, key=f"caller{n}", rng=rng).name for _ in range(5)}) == 1


def test_weighted_balance_follows_weights():
    servers = (UpstreamServer(name="w/1", address="127.0.0.1", weight=3, secret=UP_SECRET),
               UpstreamServer(name="w/2", address="127.0.0.2", weight=1, secret=UP_SECRET))
    pools = Pools((Isp(name="w", balance="weighted", servers=servers),), SETTINGS)
    rng = random.Random(3)
    picks = [pools.choose(pools.isps["w"], rng=rng).name for _ in range(4000)]
    share = picks.count("w/1") / len(picks)
    assert 0.7 < share < 0.8


def test_chap_with_own_challenge_passes_unchanged():
    challenge = hashlib.md5(b"c").digest()
    extra = codec.attribute(A.CHAP_PASSWORD, bytes(17)) + codec.attribute(A.CHAP_CHALLENGE, challenge)
    (send,) = engine().forward(job(nas_request(password=None, extra=extra)), 0.0)
    sent = codec.decode(send.data)
    assert sent.attrs[A.CHAP_CHALLENGE] == [challenge]
    assert sent.first(A.CHAP_PASSWORD) == bytes(17)


def test_more_than_256_requests_in_flight_use_several_source_sockets():
    proxy = engine()
    sends = [proxy.forward(job(nas_request()), now=0.0)[0] for _ in range(1000)]
    assert {s.addr for s in sends} == {("127.0.0.1", 18121)}
    assert len({(s.sock, codec.decode(s.data).ident) for s in sends}) == 1000
    answered = [proxy.on_reply(upstream_reply(s), s.addr, 0.1, s.sock) for s in sends]
    assert all(isinstance(a[0], Finished) for a in answered)


def test_two_isps_naming_one_server_share_its_identifiers():
    # The server tells requests apart by source port and Identifier, whatever name
    # each ISP gives it (RFC 2865 §3).
    twin = UpstreamServer(name="isp-b/1", address=PRIMARY.address, auth_port=PRIMARY.auth_port,
                          secret=b"other-secret")
    other = Isp(name="isp-b", servers=(twin,))
    proxy = ProxyEngine(Pools((ISP, other), SETTINGS), budget=5.0, rng=random.Random(7),
                        sockets=1)
    sends = [proxy.forward(job(nas_request(), isp=isp), now=0.0)[0]
             for isp in (ISP, other) * 128]
    assert len({(s.sock, codec.decode(s.data).ident) for s in sends}) == 256
    (exhausted,) = proxy.forward(job(nas_request(), isp=other), now=0.0)
    assert type(exhausted) is Finished and exhausted.reply is None
    # Each reply is checked with the secret of the server it answers.
    first, second = sends[0], sends[1]
    assert type(proxy.on_reply(upstream_reply(second, secret=b"other-secret"), second.addr,
                               0.1, second.sock)[0]) is Finished
    assert type(proxy.on_reply(upstream_reply(first), first.addr, 0.1, first.sock)[0]) is Finished


def test_a_server_removed_by_a_reload_may_still_answer_or_time_out():
    proxy = engine()
    (send,) = proxy.forward(job(nas_request()), now=0.0)
    proxy.forward(job(nas_request()), now=0.0)
    proxy.replace_pools(Pools((Isp(name="isp-a", servers=(SECONDARY,)),), SETTINGS,
                              previous=proxy.pools))
    (finished,) = proxy.on_reply(upstream_reply(send), send.addr, 0.1, send.sock)
    assert finished.server == PRIMARY and finished.reply.code == codec.ACCESS_ACCEPT
    (retry,) = proxy.poll(now=1.0)  # the other one goes to the server that is left
    assert retry.addr == (SECONDARY.address, SECONDARY.auth_port)
