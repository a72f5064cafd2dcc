"""The rendered-reply cache: a provisioned subscriber's reply is rendered once per
renderer; a directory subscriber's again whenever the entry found differs (its profile,
group or address changed in the directory), never from a stale render."""

import functools

from vpop.aaa import reply
from vpop.aaa.reply import ReplyRenderer
from vpop.aaa.subscribers import Account, DirectoryAccount, ServiceProfile
from vpop.radius.dictionary import Dictionary, shipped_dictionary

DICT = Dictionary(shipped_dictionary())
SLOW = ServiceProfile(name="residential", rate_down_kbps=10_000, rate_up_kbps=2_000)
FAST = ServiceProfile(name="business", rate_down_kbps=100_000, rate_up_kbps=50_000)


def found(profile: ServiceProfile, framed_ip: str | None = None) -> DirectoryAccount:
    # each lookup makes its own bind check, as the directory does
    return DirectoryAccount(username="ann", profile=profile, framed_ip=framed_ip,
                            dn="uid=ann,ou=subscribers,dc=example,dc=net",
                            check_password=functools.partial(print, "bind"))


def test_a_directory_subscriber_whose_entry_changed_gets_the_new_reply():
    renderer = ReplyRenderer(DICT)
    slow = renderer.encoded(found(SLOW), "generic")
    fast = renderer.encoded(found(FAST), "generic")
    assert fast != slow
    assert fast == ReplyRenderer(DICT).encoded(found(FAST), "generic")
    assert renderer.encoded(found(SLOW), "generic") == slow  # moved back
    addressed = renderer.encoded(found(SLOW, "10.9.0.8"), "generic")
    assert addressed != slow


def test_an_entry_found_again_unchanged_is_not_rendered_again(monkeypatch):
    renderer = ReplyRenderer(DICT)
    renders = []
    render = renderer.pairs
    monkeypatch.setattr(renderer, "pairs", lambda *args: renders.append(args) or render(*args))
    first = renderer.encoded(found(SLOW), "generic")
    assert renderer.encoded(found(SLOW), "generic") == first  # equal, not the same object
    provisioned = Account(username="bob", profile=SLOW)
    assert renderer.encoded(provisioned, "generic") == renderer.encoded(provisioned, "generic")
    assert len(renders) == 2


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(reply, "REPLIES_HELD", 3)
    renderer = ReplyRenderer(DICT)
    for number in range(10):
        renderer.encoded(Account(username=f"user{number}", profile=SLOW), "generic")
        assert len(renderer._cache) <= 3
