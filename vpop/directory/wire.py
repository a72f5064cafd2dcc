"""The LDAP messages a lookup needs, as bytes (RFC 4511 §4, BER per X.690), without I/O.

A subscriber lookup sends a SearchRequest, and PAP by bind a simple BindRequest, and
reads back SearchResultEntry, SearchResultReference, SearchResultDone and BindResponse.
Built here directly, each costs a few microseconds where a general ASN.1 library takes
hundreds; the shell (server/ldap_directory.py) writes them on the connections it opened,
bound and secured with ldap3, which keeps everything else (StartTLS, the service bind,
health checks, check-config).

Filters are parsed as ldap3 parses them (RFC 4515 with its leniencies: blanks between
items, around an item's attribute and value), so the bytes on the wire are the ones
ldap3 sends for the same search; tests/unit/test_directory_wire.py compares them.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

# RFC 4511 §4.2, §4.5.1: protocolOp tags ([APPLICATION n], constructed or primitive).
BIND_REQUEST, BIND_RESPONSE, UNBIND_REQUEST = 0x60, 0x61, 0x42
SEARCH_REQUEST, SEARCH_ENTRY, SEARCH_DONE, SEARCH_REFERENCE = 0x63, 0x64, 0x65, 0x73
EXTENDED_RESPONSE = 0x78
SCOPES = {"base": 0, "one": 1, "subtree": 2}
DEREF_ALWAYS = 3  # ldap3's default, kept so that lookups find what they found before
REFERRAL = 10  # RFC 4511 §4.1.9 resultCode referral
_BLANKS = " \t\n\r\x0b\x0c"  # what ldap3 skips between filter items (string.whitespace)
_ESCAPE = re.compile(r"\\([^0-9a-fA-F]|(.[^0-9a-fA-F]))")  # a backslash not before \XX
_HEX = frozenset("0123456789abcdefABCDEF")
_TOKEN = re.compile(r"{0}*(?:\({0}*([&|!])|\(([^()]*)\)|(\)))".format(
    "[" + re.escape(_BLANKS) + "]"))
_SETS = {"&": 0xA0, "|": 0xA1, "!": 0xA2}  # and [0], or [1], not [2]


class WireError(ValueError):
    """Bytes that are not the LDAP message expected (from the peer), or a filter that
    cannot be encoded (from the configuration)."""


# --- BER -------------------------------------------------------------------------------

def _tlv(tag: int, content: bytes) -> bytes:
    """Tag, definite length (X.690 §8.1.3: short form below 128), content."""
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    return bytes((tag,)) + _long_length(size) + content


def _long_length(size: int) -> bytes:
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


# The length octets of each size below 256, looked up where a request is encoded without
# a call per element (SearchRequests.encode).
_LENGTHS = tuple(bytes((size,)) if size < 0x80 else bytes((0x81, size)) for size in range(256))


def _integer(tag: int, value: int) -> bytes:
    """INTEGER or ENUMERATED in the fewest octets of two's complement (X.690 §8.3.2)."""
    return _tlv(tag, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _string(tag: int, text: str | bytes) -> bytes:
    return _tlv(tag, text.encode("utf-8") if type(text) is str else text)


# --- requests ----------------------------------------------------------------------------

def _message(message_id: int, operation: bytes) -> bytes:
    """LDAPMessage (RFC 4511 §4.2.1) without controls."""
    return _tlv(0x30, _integer(0x02, message_id) + operation)


def search_request(message_id: int, base: str, filter_text: str, attributes, *,
                   scope: int = 2, size_limit: int = 0, time_limit: int = 0,
                   deref: int = DEREF_ALWAYS, types_only: bool = False) -> bytes:
    """SearchRequest (RFC 4511 §4.5.1); filter_text as RFC 4515, its values escaped."""
    before, after = _search_parts(base, tuple(attributes), scope, size_limit, time_limit,
                                  deref, types_only)
    return _message(message_id, _tlv(SEARCH_REQUEST,
                                     before + encode_filter(filter_text) + after))


@functools.lru_cache(maxsize=64)
def _search_parts(base: str, attributes: tuple[str, ...], scope: int, size_limit: int,
                  time_limit: int, deref: int, types_only: bool) -> tuple[bytes, bytes]:
    """A SearchRequest's fields before and after its filter: a directory's are the same
    for every lookup."""
    before = (_string(0x04, base) + _integer(0x0A, scope) + _integer(0x0A, deref)
              + _integer(0x02, size_limit) + _integer(0x02, time_limit)
              # BOOLEAN TRUE as 0x01, as pyasn1 writes it (X.690 §8.2.2: any non-zero)
              + (b"\x01\x01\x01" if types_only else b"\x01\x01\x00"))
    return before, _tlv(0x30, b"".join(_string(0x04, name) for name in attributes))


class SearchRequests:
    """A directory's SearchRequests, its fields around the filter encoded once. Filters
    rendered from a template with one value (`before` + value + `after`, as
    filters.render makes them) are encoded around that value: the template's items
    and sets are encoded once, and a lookup encodes its value's item and the lengths
    around it, the same bytes as search_request. Any other filter is encoded whole."""

    def __init__(self, base: str, attributes, *, scope: int = 2, size_limit: int = 0,
                 time_limit: int = 0, deref: int = DEREF_ALWAYS, types_only: bool = False,
                 templates: tuple[tuple[str, str], ...] = ()):
        self.before, self.after = _search_parts(base, tuple(attributes), scope, size_limit,
                                                time_limit, deref, types_only)
        self.templates = [(before, after, len(before) + len(after), shape)
                          for before, after in templates
                          for shape in [_filter_shape(before, after)] if shape is not None]

    def encode(self, message_id: int, filter_text: str) -> bytes:
        """The SearchRequest; WireError for a filter that is not one."""
        encoded = None
        for before, after, fixed, (item_before, item_after, sets, attribute,
                                   equal) in self.templates:
            if (len(filter_text) >= fixed and filter_text.startswith(before)
                    and filter_text.endswith(after)):
                value = filter_text[len(before):len(filter_text) - len(after)]
                if "(" in value or ")" in value:
                    break  # the items may differ: encoded whole
                # Each element's tag and length written here (_LENGTHS), as _tlv would.
                if attribute is not None:  # an equality item unless the value has a *
                    right = (item_before[equal:] + value + item_after).strip()
                    if "*" not in right:
                        octets = _value(right)
                        size = len(octets)
                        content = attribute + b"\x04" + (
                            _LENGTHS[size] if size < 256 else _long_length(size)) + octets
                        size = len(content)
                        encoded = b"\xa3" + (
                            _LENGTHS[size] if size < 256 else _long_length(size)) + content
                if encoded is None:
                    encoded = _item(item_before + value + item_after)
                for tag, first, last in sets:
                    content = first + encoded + last
                    size = len(content)
                    encoded = tag + (_LENGTHS[size] if size < 256 else _long_length(size)
                                     ) + content
                break
        if encoded is None:
            encoded = encode_filter(filter_text)
        body = self.before + encoded + self.after
        size = len(body)
        content = (b"\x02" + _LENGTHS[message_id.bit_length() // 8 + 1]
                   + message_id.to_bytes(message_id.bit_length() // 8 + 1, "big", signed=True)
                   + b"\x63" + (_LENGTHS[size] if size < 256 else _long_length(size)) + body)
        size = len(content)
        return b"\x30" + (_LENGTHS[size] if size < 256 else _long_length(size)) + content


_MARK = "\ue000"  # stands for the value while a template is compiled: no filter syntax


def _filter_shape(before: str, after: str):
    """(the value's item text before and after it, the enclosing sets innermost first
    as (tag octet, encoded before, encoded after), ...) for the filter before + value + after, or
    None when the value is not inside one item's assertion value (after its "="),
    where any value without parentheses tokenizes as the template does."""
    if _MARK in before or _MARK in after:
        return None
    text = before + _MARK + after
    try:
        encode_filter(text)
    except WireError:
        return None
    text = text.strip()
    # Tokenized as encode_filter does, keeping the sets open around the value's item.
    open_sets: list[tuple[str, list[bytes], int | None]] = []
    path: list[tuple[str, list[bytes]]] = []
    found = None
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        position = match.end()
        operator, item, _ = match.groups()
        if operator:
            open_sets.append((operator, [], None))
            continue
        if item is not None:
            if _MARK in item:
                left, _, right = item.partition(_MARK)
                if "=" not in left or _MARK in right:
                    return None
                found = (left, right)
                encoded = None
            else:
                encoded = _item(item)
        else:
            operator, parts, hole = open_sets.pop()
            if hole is not None:
                path.append((bytes((_SETS[operator],)), b"".join(parts[:hole]),
                             b"".join(parts[hole + 1:])))
                encoded = None
            else:
                encoded = _tlv(_SETS[operator], b"".join(parts))
        if open_sets:
            operator, parts, hole = open_sets[-1]
            if encoded is None:
                open_sets[-1] = (operator, parts, len(parts))
                parts.append(b"")
            else:
                parts.append(encoded)
    if found is None:
        return None
    # The attribute of an item with a plain "=" (not ~=, >=, <=, :=), encoded once:
    # _item makes it an equality match unless the value is or has a *.
    left = found[0].strip().partition("=")[0]
    attribute = None if left.endswith(("~", ">", "<", ":")) else _string(0x04, left.strip())
    return found[0], found[1], tuple(path), attribute, found[0].index("=") + 1


def bind_request(message_id: int, dn: str, password: str | bytes) -> bytes:
    """A simple BindRequest, LDAP version 3 (RFC 4511 §4.2)."""
    name = dn.encode("utf-8")
    secret = password.encode("utf-8") if type(password) is str else password
    size = len(name) + len(secret) + 7
    if size < 0x80 and len(name) < 0x80 and len(secret) < 0x80:  # short-form lengths
        operation = (bytes((BIND_REQUEST, size, 0x02, 0x01, 0x03, 0x04, len(name))) + name
                     + bytes((0x80, len(secret))) + secret)
    else:
        operation = _tlv(BIND_REQUEST, b"\x02\x01\x03" + _tlv(0x04, name) + _tlv(0x80, secret))
    return _tlv(0x30, _integer(0x02, message_id) + operation)


def unbind_request(message_id: int) -> bytes:
    return _message(message_id, b"\x42\x00")


# --- filters (RFC 4515) -------------------------------------------------------------

def encode_filter(text: str) -> bytes:
    """The Filter (RFC 4511 §4.5.1.7) for a filter string; WireError if it is not one."""
    text = text.strip()
    if not (text.startswith("(") and text.endswith(")")):
        raise WireError(f"{text!r}: not a parenthesised filter")
    # Each token: "(" with &, | or !, a whole item "(...)", or the ")" closing a set.
    open_sets: list[tuple[str, list[bytes]]] = []
    done: list[bytes] = []
    position, end = 0, len(text)
    while position < end:
        match = _TOKEN.match(text, position)
        if match is None:
            raise WireError(f"{text!r}: not a filter at {position}")
        position = match.end()
        operator, item, _ = match.groups()
        if operator:
            open_sets.append((operator, []))
            continue
        if item is not None:
            encoded = _item(item)
        else:
            if not open_sets:
                raise WireError(f"{text!r}: unbalanced parentheses")
            operator, parts = open_sets.pop()
            if not parts or (operator == "!" and len(parts) != 1):
                raise WireError(f"{text!r}: {operator} must be followed by "
                                + ("one filter" if operator == "!" else "filters"))
            encoded = _tlv(_SETS[operator], b"".join(parts))
        if open_sets:
            open_sets[-1][1].append(encoded)
        elif done:
            raise WireError(f"{text!r}: more than one filter")
        else:
            done.append(encoded)
    if open_sets or not done:
        raise WireError(f"{text!r}: unbalanced parentheses")
    return done[0]


def _item(item: str) -> bytes:
    """A simple item (RFC 4515 §3): equality, substrings, >=, <=, presence, ~=, or an
    extensible match."""
    left, equal, right = item.strip().partition("=")
    if not equal:
        raise WireError(f"({item}): no '='")
    if left.endswith(("~", ">", "<")):
        tag = {"~": 0xA8, ">": 0xA5, "<": 0xA6}[left[-1]]
        return _tlv(tag, _string(0x04, left[:-1].strip()) + _string(0x04, _value(right.strip())))
    if left.endswith(":"):
        return _extensible(left[:-1].strip(), right.strip())
    if right == "*":
        return _string(0x87, left.strip())  # present
    left, right = left.strip(), right.strip()
    if "*" in right:
        pieces = right.split("*")
        parts = [_string(0x80, _value(pieces[0]))] if pieces[0] else []
        parts += [_string(0x81, _value(piece)) for piece in pieces[1:-1] if piece]
        if pieces[-1]:
            parts.append(_string(0x82, _value(pieces[-1])))
        return _tlv(0xA4, _string(0x04, left) + _tlv(0x30, b"".join(parts)))
    return _tlv(0xA3, _string(0x04, left) + _string(0x04, _value(right)))


def _extensible(left: str, value: str) -> bytes:
    """MatchingRuleAssertion (RFC 4511 §4.5.1.7.7): attr[:dn][:rule]:= or [:dn]:rule:=."""
    parts = left.split(":")
    attribute = rule = ""
    dn = False
    if parts[0] == "":
        if len(parts) == 2 and parts[1].strip().lower() != "dn":
            rule = parts[1]
        elif len(parts) == 3 and parts[1].strip().lower() == "dn":
            dn, rule = True, parts[2]
        else:
            raise WireError(f"{left}:={value}: not an extensible match")
    elif len(parts) == 1:
        attribute = parts[0]
    elif len(parts) == 2:
        attribute = parts[0]
        if parts[1].strip().lower() == "dn":
            dn = True
        else:
            rule = parts[1]
    elif len(parts) == 3 and parts[1].strip().lower() == "dn":
        attribute, dn, rule = parts[0], True, parts[2]
    else:
        raise WireError(f"{left}:={value}: not an extensible match")
    attribute, rule = attribute.strip(), rule.strip()
    if not attribute and not rule:
        raise WireError(f"{left}:={value}: not an extensible match")
    body = ((_string(0x81, rule) if rule else b"") + (_string(0x82, attribute) if attribute
                                                      else b"")
            + _string(0x83, _value(value)) + (b"\x84\x01\x01" if dn else b""))
    return _tlv(0xA9, body)


def _value(text: str) -> bytes:
    """An assertion value's octets: each \\XX as that octet (RFC 4515 §3). A value with a
    backslash that starts no \\XX is sent as written, as ldap3 does."""
    if "\\" not in text:
        return text.encode("utf-8")
    if _ESCAPE.search(text):
        return text.encode("utf-8")
    out = bytearray()
    position = 0
    while position < len(text):
        char = text[position]
        if (char == "\\" and position + 2 < len(text) and text[position + 1] in _HEX
                and text[position + 2] in _HEX):
            out.append(int(text[position + 1:position + 3], 16))
            position += 3
        else:
            out += char.encode("utf-8")
            position += 1
    return bytes(out)


# --- responses -------------------------------------------------------------------------

class Result(NamedTuple):
    """LDAPResult (RFC 4511 §4.1.9)."""
    code: int
    matched_dn: str
    message: str


class Response(NamedTuple):
    """One LDAPMessage read back: its id, its protocolOp tag, and what it says: a
    Result, (dn, {attribute: values}) for an entry, or the URIs of a reference."""
    message_id: int
    tag: int
    value: object


def message_length(data, start: int = 0) -> int | None:
    """The length of the LDAPMessage at `start` in the buffer, tag and length octets
    included, or None while more octets are needed. WireError if it is not one."""
    available = len(data) - start
    if available < 2:
        return None
    if data[start] != 0x30:
        raise WireError(f"not an LDAPMessage (tag {data[start]:#04x})")
    first = data[start + 1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4:
        raise WireError("LDAPMessage with an indefinite or oversized length")
    if available < 2 + count:
        return None
    return 2 + count + int.from_bytes(data[start + 2:start + 2 + count], "big")


def _header(data: bytes, position: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the element at `position`, which must end
    by `end`."""
    try:
        tag = data[position]
        first = data[position + 1]
        if first < 0x80:
            start = position + 2
            last = start + first
        else:
            start = position + 2 + (first & 0x7F)
            last = start + int.from_bytes(data[position + 2:start], "big")
    except IndexError:
        raise WireError("an element ends early") from None
    if last > end or first == 0x80:
        raise WireError("an element ends early")
    return tag, start, last


def decode(message: bytes) -> Response:
    """One whole LDAPMessage (message_length long)."""
    tag, start, end = _header(message, 0, len(message))
    if tag != 0x30:
        raise WireError(f"not an LDAPMessage (tag {tag:#04x})")
    return _read_message(message, start, end)


def decode_next(data, position: int) -> tuple[Response, int] | None:
    """The LDAPMessage at `position` in the buffer and the position after it, read in
    place; None while more octets are needed. WireError if it is not one."""
    available = len(data) - position
    if available < 2:
        return None
    first = data[position + 1]
    if data[position] == 0x30 and first < 0x80:  # the usual lengths, read here
        start = position + 2
        end = start + first
    elif data[position] == 0x30 and first == 0x81 and available > 2:
        start = position + 3
        end = start + data[position + 2]
    else:
        size = message_length(data, position)
        if size is None or size > available:
            return None
        return decode(bytes(data[position:position + size])), position + size
    if end > len(data):
        return None
    return _read_message(data, start, end), end


def _read_message(data, start: int, end: int) -> Response:
    """An LDAPMessage's content, data[start:end]: its id and its operation."""
    if start >= end:
        raise WireError("an LDAPMessage without its messageID")
    size = data[start + 1] if start + 1 < end else 0x80
    if data[start] == 0x02 and size < 0x80:  # messageID, read here
        id_start = start + 2
        id_end = id_start + size
        if id_end > end:
            raise WireError("an element ends early")
    else:
        id_tag, id_start, id_end = _header(data, start, end)
        if id_tag != 0x02:
            raise WireError("an LDAPMessage without its messageID and operation")
    if id_end >= end:
        raise WireError("an LDAPMessage without its messageID and operation")
    size = data[id_end + 1] if id_end + 1 < end else 0x80
    if size < 0x80:  # the operation's length, short form, read here
        op_tag, op_start = data[id_end], id_end + 2
        op_end = op_start + size
        if op_end > end:
            raise WireError("an element ends early")
    else:
        op_tag, op_start, op_end = _header(data, id_end, end)
    if id_end - id_start == 1 and data[id_start] < 0x80:
        message_id = data[id_start]
    else:
        message_id = int.from_bytes(data[id_start:id_end], "big", signed=True)
    if op_tag == SEARCH_ENTRY:
        value = _entry(data, op_start, op_end)
    elif op_tag == SEARCH_DONE or op_tag == BIND_RESPONSE or op_tag == EXTENDED_RESPONSE:
        value = _result(data, op_start, op_end)
    elif op_tag == SEARCH_REFERENCE:
        value = tuple(data[a:b].decode("utf-8", "replace")
                      for a, b in _contents(data, op_start, op_end))
    else:
        value = None
    return Response(message_id, op_tag, value)


def _contents(data: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """(start, end) of the content of each element in data[start:end]."""
    found = []
    while start < end:
        _, first, last = _header(data, start, end)
        found.append((first, last))
        start = last
    return found


def _result(data: bytes, start: int, end: int) -> Result:
    # the usual result, its three elements under 128 octets each, read here
    if start + 2 <= end and data[start] == 0x0A:
        b = start + 2 + data[start + 1]
        if data[start + 1] < 0x80 and b + 2 <= end:
            d = b + 2 + data[b + 1]
            if data[b + 1] < 0x80 and d + 2 <= end:
                f = d + 2 + data[d + 1]
                if data[d + 1] < 0x80 and f <= end:
                    return Result(int.from_bytes(data[start + 2:b], "big", signed=True),
                                  data[b + 2:d].decode("utf-8", "replace"),
                                  data[d + 2:f].decode("utf-8", "replace"))
    return _any_result(data, start, end)


def _any_result(data: bytes, start: int, end: int) -> Result:
    if start >= end:
        raise WireError("an LDAPResult without resultCode, matchedDN and message")
    tag, a, b = _header(data, start, end)
    if tag != 0x0A or b >= end:
        raise WireError("an LDAPResult without resultCode, matchedDN and message")
    _, c, d = _header(data, b, end)
    if d >= end:
        raise WireError("an LDAPResult without its message")
    _, e, f = _header(data, d, end)
    return Result(int.from_bytes(data[a:b], "big", signed=True),
                  data[c:d].decode("utf-8", "replace"), data[e:f].decode("utf-8", "replace"))


def _entry(data: bytes, start: int, end: int) -> tuple[str, dict[str, tuple[bytes, ...]]]:
    """SearchResultEntry (RFC 4511 §4.5.2): the DN and each attribute's values, the
    attribute names lower-cased."""
    found = _short_entry(data, start, end)
    return found if found is not None else _any_entry(data, start, end)


def _short_entry(data: bytes, start: int, end: int):
    """_entry for the usual entry, whose attributes, types and values are each under 128
    octets (short-form lengths): read without a call per element. None for any other,
    which _any_entry reads (or refuses) instead."""
    if start + 2 > end or data[start] != 0x04 or data[start + 1] >= 0x80:
        return None
    a = start + 2
    b = a + data[start + 1]  # the DN
    if b + 2 > end or data[b] != 0x30:
        return None
    size = data[b + 1]  # the attributes
    if size < 0x80:
        position = b + 2
    elif size == 0x81 and b + 3 <= end:
        position = b + 3
        size = data[b + 2]
    else:
        return None
    stop = position + size
    if stop > end:
        return None
    attributes: dict[str, tuple[bytes, ...]] = {}
    while position < stop:
        if position + 2 > stop:
            return None
        size = data[position + 1]  # PartialAttribute
        p = position + 2
        position = p + size
        if size >= 0x80 or position > stop or p + 2 > position:
            return None
        size = data[p + 1]  # its type
        t = p + 2
        u = t + size
        if size >= 0x80 or u + 2 > position:
            return None
        size = data[u + 1]  # its values
        v = u + 2
        w = v + size
        if size >= 0x80 or w > position:
            return None
        values = []
        while v < w:
            if v + 2 > w:
                return None
            size = data[v + 1]
            x = v + 2
            v = x + size
            if size >= 0x80 or v > w:
                return None
            values.append(data[x:v])
        attributes[data[t:u].decode("utf-8", "replace").lower()] = tuple(values)
    return _text(data[a:b]), attributes


def _any_entry(data: bytes, start: int, end: int) -> tuple[str, dict[str, tuple[bytes, ...]]]:
    if start >= end:
        raise WireError("a SearchResultEntry without its name")
    dn_tag, a, b = _header(data, start, end)
    if dn_tag != 0x04 or b >= end:
        raise WireError("a SearchResultEntry without its name and attributes")
    list_tag, position, stop = _header(data, b, end)
    if list_tag != 0x30:
        raise WireError("a SearchResultEntry without its attributes")
    attributes: dict[str, tuple[bytes, ...]] = {}
    while position < stop:
        _, p, position = _header(data, position, stop)  # PartialAttribute
        if p >= position:
            raise WireError("a PartialAttribute without its type and values")
        _, t, u = _header(data, p, position)
        if u >= position:
            raise WireError("a PartialAttribute without its values")
        _, v, w = _header(data, u, position)
        values = []
        while v < w:
            _, x, v = _header(data, v, w)
            values.append(data[x:v])
        attributes[data[t:u].decode("utf-8", "replace").lower()] = tuple(values)
    return _text(data[a:b]), attributes


def _text(octets: bytes) -> str:
    """A DN as text: UTF-8 (RFC 4514), or Latin-1 from servers that do not keep to it."""
    try:
        return octets.decode("utf-8")
    except UnicodeDecodeError:
        return octets.decode("latin-1")
