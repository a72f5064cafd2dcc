"""The RFC 5080 duplicate cache: what it keeps, for how long, and its bound."""

from vpop.radius.dedup import IN_PROGRESS, DuplicateCache, key

SOURCE = ("192.0.2.1", 1645)


def packet(ident: int, authenticator: bytes = bytes(16)) -> bytes:
    return bytes((1, ident, 0, 20)) + authenticator


def test_key_tells_apart_source_port_identifier_and_authenticator():
    base = key(SOURCE, packet(7))
    assert key(SOURCE, packet(7)) == base
    assert key(("192.0.2.1", 1646), packet(7)) != base
    assert key(("192.0.2.2", 1645), packet(7)) != base
    assert key(SOURCE, packet(8)) != base
    assert key(SOURCE, packet(7, bytes(15) + b"\x01")) != base


def test_reply_kept_for_at_least_the_window_and_at_most_two():
    cache = DuplicateCache(window=30)
    k = key(SOURCE, packet(1))
    cache.finish(k, b"reply", now=100.0)
    for t in (100.0, 115.0, 129.9):
        cache.finish(key(SOURCE, packet(2, t.hex().encode()[:16])), b"other", now=t)
        assert cache.get(k) == b"reply"
    # One window after the first entry the generations turn; the entry survives one more.
    cache.finish(key(SOURCE, packet(3)), b"x", now=130.0)
    assert cache.get(k) == b"reply"
    cache.finish(key(SOURCE, packet(4)), b"x", now=160.0)
    assert cache.get(k) is None
    assert cache.get(key(SOURCE, packet(4))) == b"x"


def test_in_progress_then_reply_or_forgotten():
    cache = DuplicateCache(window=30)
    k = key(SOURCE, packet(1))
    assert cache.get(k) is None
    cache.begin(k, now=0.0)
    assert cache.get(k) is IN_PROGRESS
    cache.finish(k, b"reply", now=1.0)
    assert cache.get(k) == b"reply"
    other = key(SOURCE, packet(2))
    cache.begin(other, now=1.0)
    cache.finish(other, None, now=2.0)  # no reply: a retransmission is processed anew
    assert cache.get(other) is None


def test_forgetting_works_across_a_generation_turn():
    cache = DuplicateCache(window=10)
    k = key(SOURCE, packet(1))
    cache.begin(k, now=0.0)
    cache.finish(key(SOURCE, packet(2)), b"x", now=11.0)  # k is now in the old generation
    assert cache.get(k) is IN_PROGRESS
    cache.finish(k, None, now=11.5)
    assert cache.get(k) is None


def test_bounded_by_max_entries():
    cache = DuplicateCache(window=1e9, max_entries=100)
    for i in range(1000):
        cache.finish(key(SOURCE, packet(i % 256, i.to_bytes(16, "big"))), b"r", now=float(i))
    assert len(cache) <= 100


def test_window_zero_keeps_nothing():
    cache = DuplicateCache(window=0)
    k = key(SOURCE, packet(1))
    cache.begin(k, now=0.0)
    cache.finish(k, b"reply", now=0.0)
    assert cache.get(k) is None and len(cache) == 0
