"""The routing Class the Access-Accept carries and the NAS echoes in accounting."""

import pytest

from vpop.accounting.routing import LOCAL, Routing, parse_routing_class, routing_from_classes


@pytest.mark.parametrize("value, routing", [
    (b"vpop1;isp=isp-a;mode=proxy;reason=realm%20%40isp-a.example",
     Routing(isp="isp-a", mode="proxy", reason="realm @isp-a.example")),
    (b"vpop1;isp=isp%3Bb;mode=tunnel;reason=dialled%20number",
     Routing(isp="isp;b", mode="tunnel", reason="dialled number")),
    (b"vpop1;isp=;mode=local;reason=", Routing(isp=None, mode="local", reason="")),
    (b"vpop1;mode=local", Routing(isp=None, mode="local", reason="")),
    (b"vpop1;isp=a;mode=proxy;reason=cut%2", Routing(isp="a", mode="proxy", reason="cut%2")),
])
def test_vpop_class_values(value, routing):
    assert parse_routing_class(value) == routing


@pytest.mark.parametrize("value", [
    b"res-10m",  # a profile's own Class
    b"vpop1;isp=a;mode=teleport;reason=",  # no such mode
    b"vpop1;isp=a;reason=x",  # no mode
    b"vpop1;isp=a;isp=b;mode=proxy",  # a field twice
    b"vpop1;isp=a;mode=proxy;junk",  # not name=value
    b"vpop1;isp=\xff;mode=proxy",  # not UTF-8
    b"vpop1;isp=" + b"a" * 65 + b";mode=proxy",  # longer than any ISP's name
    b"",
])
def test_other_values_are_not_routing(value):
    assert parse_routing_class(value) is None


def test_the_last_vpop_class_among_several_wins_and_none_means_local():
    # An ISP's server that is a vpop too puts its own Class in its reply, which comes
    # before the one this vpop appends when it relays the reply to the NAS.
    values = [b"vpop1;isp=;mode=local;reason=", b"res-10m", b"vpop1;isp=b;mode=proxy;reason=r"]
    assert routing_from_classes(values) == Routing(isp="b", mode="proxy", reason="r")
    assert routing_from_classes([b"res-10m"]) == LOCAL
    assert routing_from_classes([]) == LOCAL
