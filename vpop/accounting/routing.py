"""How a session was routed, as the Access-Accept decided it and the NAS echoes it.

Every Access-Accept carries a Class attribute (RFC 2865 §5.25) that the NAS sends
back unchanged in its Accounting-Requests:

    vpop1;isp=<name>;mode=<proxy|tunnel|local>;reason=<url-quoted reason>

so accounting knows the ISP, the route mode and why it was chosen without a lookup.
(vpop.isp.stages.routing_class writes it; the ISP name is url-quoted as well.)
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

MODES = ("proxy", "tunnel", "local")
PREFIX = b"vpop1;"


@dataclass(frozen=True, slots=True, kw_only=True)
class Routing:
    isp: str | None
    mode: str  # proxy | tunnel | local
    reason: str = ""


LOCAL = Routing(isp=None, mode="local")


def parse_routing_class(value: bytes) -> Routing | None:
    """The routing decision in a Class value; None when the value is not vpop's."""
    if not value.startswith(PREFIX):
        return None
    try:
        text = value[len(PREFIX):].decode("utf-8")
    except UnicodeDecodeError:
        return None
    fields: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, item = part.partition("=")
        if not sep or name in fields:
            return None
        fields[name] = item
    mode = fields.get("mode")
    if mode not in MODES:
        return None
    # ISP names are at most 64 characters; anything longer was not written by vpop.
    isp = unquote(fields.get("isp", "")).replace("\0", "")
    if len(isp) > 64:
        return None
    return Routing(isp=isp or None, mode=mode,
                   reason=unquote(fields.get("reason", "")).replace("\0", "")[:255])


def own_class_index(values: list[bytes] | tuple[bytes, ...]) -> int | None:
    """Which of the Class values the NAS echoed is this vpop's: the last vpop Class.
    A vpop appends its own after a proxied reply's attributes, so when the ISP's server
    is a vpop too, its Class comes first (RFC 2865 §5: the order of Classes is kept)."""
    for index in range(len(values) - 1, -1, -1):
        if parse_routing_class(values[index]) is not None:
            return index
    return None


def routing_from_classes(values: list[bytes] | tuple[bytes, ...]) -> Routing:
    """This vpop's routing among the Classes the NAS echoed; LOCAL when there is none."""
    index = own_class_index(values)
    return LOCAL if index is None else parse_routing_class(values[index])
