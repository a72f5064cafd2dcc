"""Which lease a session counts against, and admission when a lease is full."""

import ipaddress
from dataclasses import dataclass, field

import pytest

from acct_support import T0
from vpop.accounting.leases import LeaseBook, LeaseIndex, LeaseTerms, PortRange, admit_by_lease
from vpop.pipeline.core import Rcode
from vpop.radius import codec
from vpop.radius.clients import NasClient
from vpop.radius.dictionary import Dictionary, shipped_dictionary

WHOLE = LeaseTerms(id=1, name="whole", isp="isp-a", nas=frozenset({"192.0.2.1", "bras-2"}),
                   sessions=2, policy="reject", reject_message="Lease full", starts=T0)
PORTS = LeaseTerms(id=2, name="ports", isp="isp-a",
                   ports=(PortRange(nas="192.0.2.9", first=100, last=199),), sessions=10,
                   starts=T0, ends=T0 + 86_400)
OTHER = LeaseTerms(id=3, name="other", isp="isp-b", nas=frozenset({"192.0.2.1"}), sessions=1,
                   starts=T0)
INDEX = LeaseIndex([WHOLE, PORTS, OTHER])


@pytest.mark.parametrize("isp, nas, port, at, lease", [
    ("isp-a", "192.0.2.1", 5, T0, WHOLE),
    ("isp-a", "bras-2", None, T0, WHOLE),
    ("isp-b", "192.0.2.1", 5, T0, OTHER),
    ("isp-a", "192.0.2.9", 150, T0, PORTS),
    ("isp-a", "192.0.2.9", 200, T0, None),  # outside the range
    ("isp-a", "192.0.2.9", None, T0, None),  # no NAS-Port
    ("isp-a", "192.0.2.9", 150, T0 + 86_400, None),  # after the lease
    ("isp-a", "192.0.2.1", 5, T0 - 1, None),  # before it
    ("isp-c", "192.0.2.1", 5, T0, None),
    (None, "192.0.2.1", 5, T0, None),  # local sessions use no lease
])
def test_matching(isp, nas, port, at, lease):
    assert INDEX.match(isp, nas, port, at) == lease


def test_a_port_range_is_preferred_to_the_whole_nas():
    whole = LeaseTerms(id=5, name="w", isp="isp-a", nas=frozenset({"192.0.2.9"}), starts=T0)
    assert LeaseIndex([whole, PORTS]).match("isp-a", "192.0.2.9", 150, T0) == PORTS
    assert LeaseIndex([whole, PORTS]).match("isp-a", "192.0.2.9", 99, T0) == whole


def test_the_book_counts_committed_sessions_and_reservations():
    book = LeaseBook(INDEX, {1: 1}, hold=60)
    assert book.admit("isp-a", "192.0.2.1", 1, T0) == (WHOLE, True)  # 1 + 1 reserved
    assert book.admit("isp-a", "192.0.2.1", 1, T0 + 1) == (WHOLE, False)
    book.started([1])  # its Start is stored: the reservation is used up ...
    book.set_counts({1: 2})  # ... and the count has it
    assert book.in_use(1, T0 + 2) == 2
    book.set_counts({1: 1})
    assert book.admit("isp-a", "192.0.2.1", 1, T0 + 3) == (WHOLE, True)
    # A reservation whose Start never came runs out.
    assert book.in_use(1, T0 + 3 + 59) == 2
    assert book.in_use(1, T0 + 3 + 60) == 1


def test_a_journaled_start_counts_until_the_ledger_has_applied_it():
    book = LeaseBook(INDEX, {1: 0}, hold=60)
    assert book.admit("isp-a", "192.0.2.1", 1, T0) == (WHOLE, True)
    assert book.admit("isp-a", "192.0.2.1", 1, T0) == (WHOLE, True)  # two reserved: full
    book.journaled([(1, 41), (1, 42)])  # both Starts journaled: reservations used up
    assert book.in_use(1, T0 + 61) == 2  # held by the journal, not by the reservation hold
    assert book.admit("isp-a", "192.0.2.1", 1, T0 + 61) == (WHOLE, False)
    book.set_counts({1: 1})  # the database has entry 41 so far ...
    book.applied(41)
    assert book.in_use(1, T0 + 62) == 2  # ... and 42 still counts from the journal
    book.set_counts({1: 2})
    book.applied(42)
    assert book.in_use(1, T0 + 63) == 2
    book.set_counts({1: 1})  # one session stopped
    assert book.admit("isp-a", "192.0.2.1", 1, T0 + 64) == (WHOLE, True)


def test_admit_policy_lets_sessions_in_beyond_the_lease():
    book = LeaseBook(INDEX, {3: 5})
    assert book.admit("isp-b", "192.0.2.1", 1, T0) == (OTHER, True)


DICT = Dictionary(shipped_dictionary())
CLIENT = NasClient(name="proxy", network=ipaddress.ip_network("198.51.100.1/32"),
                   secret=b"s3cret")


@dataclass
class Ctx:
    """What admit_by_lease reads of an AccessContext."""
    packet: codec.Packet
    isp: str | None
    client: NasClient = CLIENT
    now: float = T0
    reason: str = ""
    reply_message: str = ""
    rejected: bool = False

    def reject(self, reason, reply_message=""):
        self.rejected, self.reason, self.reply_message = True, reason, reply_message
        return Rcode.REJECT


@dataclass
class Deps:
    leases: LeaseBook | None = field(default_factory=lambda: LeaseBook(INDEX, {1: 2}))


def access_request(pairs):
    return codec.decode(codec.encode_request(codec.ACCESS_REQUEST, 1, DICT.encode_pairs(pairs),
                                             b"s3cret", authenticator=bytes(16)))


def test_stage_rejects_beyond_a_full_lease_with_its_reply_message():
    ctx = Ctx(access_request([("User-Name", "u@isp-a"), ("NAS-IP-Address", "192.0.2.1")]),
              isp="isp-a")
    assert admit_by_lease(ctx, Deps()) is Rcode.REJECT
    assert ctx.reply_message == "Lease full"
    assert ctx.reason == "lease whole full: 2 sessions in use"


def test_stage_uses_the_nas_identity_and_port_as_sent():
    deps = Deps()
    ctx = Ctx(access_request([("NAS-IP-Address", "192.0.2.9"), ("NAS-Port", 150)]),
              isp="isp-a")
    assert admit_by_lease(ctx, deps) is Rcode.OK
    assert deps.leases.in_use(2, T0) == 1


@pytest.mark.parametrize("isp, pairs, deps", [
    (None, [("NAS-IP-Address", "192.0.2.1")], Deps()),  # routed locally
    ("isp-a", [("NAS-IP-Address", "203.0.113.1")], Deps()),  # no lease there
    ("isp-a", [("NAS-IP-Address", "192.0.2.1")], Deps(leases=None)),  # no book at all
])
def test_stage_has_nothing_to_say_without_a_lease(isp, pairs, deps):
    assert admit_by_lease(Ctx(access_request(pairs), isp=isp), deps) is Rcode.NOOP
