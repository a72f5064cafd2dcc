"""The RADIUS dictionaries in radius-dictionaries/: numbers, types, flags, and file hygiene."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pyrad import tools
from pyrad.dictionary import Dictionary
from pyrad.packet import AccessAccept, AuthPacket

DICT_DIR = Path(__file__).resolve().parents[2] / "radius-dictionaries"
TOP = DICT_DIR / "dictionary"

# Vendor IDs (IANA Private Enterprise Numbers; 32473 is RFC 5612's documentation number)
DSL_FORUM = 3561
MICROSOFT = 311
CISCO = 9
JUNIPER = 2636
ERX = 4874
MIKROTIK = 14988
VPOP = 32473


@pytest.fixture(scope="module")
def dictionary() -> Dictionary:
    return Dictionary(str(TOP))


# (name, vendor id or 0, code, pyrad type)
KEY_ATTRIBUTES = [
    ("User-Name", 0, 1, "string"),
    ("User-Password", 0, 2, "string"),
    ("CHAP-Password", 0, 3, "octets"),
    ("NAS-IP-Address", 0, 4, "ipaddr"),
    ("Service-Type", 0, 6, "integer"),
    ("Framed-IP-Address", 0, 8, "ipaddr"),
    ("Class", 0, 25, "octets"),
    ("Calling-Station-Id", 0, 31, "string"),
    ("Proxy-State", 0, 33, "octets"),
    ("NAS-Port-Type", 0, 61, "integer"),
    ("Acct-Status-Type", 0, 40, "integer"),
    ("Acct-Session-Id", 0, 44, "string"),
    ("Acct-Terminate-Cause", 0, 49, "integer"),
    ("Acct-Input-Gigawords", 0, 52, "integer"),
    ("Event-Timestamp", 0, 55, "date"),
    ("Tunnel-Type", 0, 64, "integer"),
    ("Acct-Tunnel-Connection", 0, 68, "string"),
    ("Tunnel-Password", 0, 69, "string"),
    ("EAP-Message", 0, 79, "octets"),
    ("Message-Authenticator", 0, 80, "octets"),
    ("Tunnel-Server-Auth-Id", 0, 91, "string"),
    ("NAS-Port-Id", 0, 87, "string"),
    ("Chargeable-User-Identity", 0, 89, "octets"),
    ("Framed-Interface-Id", 0, 96, "ifid"),
    ("Framed-IPv6-Prefix", 0, 97, "ipv6prefix"),
    ("Error-Cause", 0, 101, "integer"),
    ("Digest-HA1", 0, 121, "string"),
    ("Delegated-IPv6-Prefix", 0, 123, "ipv6prefix"),
    ("Operator-Name", 0, 126, "string"),
    ("Framed-IPv6-Address", 0, 168, "ipv6addr"),
    ("Stateful-IPv6-Address-Pool", 0, 172, "string"),
    ("Agent-Circuit-Id", DSL_FORUM, 1, "string"),
    ("Agent-Remote-Id", DSL_FORUM, 2, "string"),
    ("Actual-Data-Rate-Upstream", DSL_FORUM, 129, "integer"),
    ("Actual-Data-Rate-Downstream", DSL_FORUM, 130, "integer"),
    ("MS-CHAP-Challenge", MICROSOFT, 11, "octets"),
    ("MS-CHAP-MPPE-Keys", MICROSOFT, 12, "octets"),
    ("MS-MPPE-Send-Key", MICROSOFT, 16, "octets"),
    ("MS-MPPE-Recv-Key", MICROSOFT, 17, "octets"),
    ("MS-CHAP2-Response", MICROSOFT, 25, "octets"),
    ("MS-CHAP2-Success", MICROSOFT, 26, "octets"),
    ("MS-Primary-DNS-Server", MICROSOFT, 28, "ipaddr"),
    ("Cisco-AVPair", CISCO, 1, "string"),
    ("Cisco-Command-Code", CISCO, 252, "octets"),
    ("Juniper-Local-User-Name", JUNIPER, 1, "string"),
    ("ERX-Virtual-Router-Name", ERX, 1, "string"),
    ("ERX-Primary-Dns", ERX, 4, "ipaddr"),
    ("ERX-Qos-Profile-Name", ERX, 26, "string"),
    ("ERX-Service-Bundle", ERX, 31, "string"),
    ("ERX-Input-Gigapkts", ERX, 42, "integer"),
    ("Mikrotik-Rate-Limit", MIKROTIK, 8, "string"),
    ("Mikrotik-Address-List", MIKROTIK, 19, "string"),
    ("Vpop-Profile", VPOP, 1, "string"),
    ("Vpop-ISP", VPOP, 2, "string"),
    ("Vpop-Route-Mode", VPOP, 3, "integer"),
    ("Vpop-Selection-Reason", VPOP, 4, "string"),
    ("Vpop-Session-Key", VPOP, 5, "string"),
    ("Vpop-Rate-Limit-Down", VPOP, 6, "integer"),
    ("Vpop-Rate-Limit-Up", VPOP, 7, "integer"),
    ("Vpop-Lease", VPOP, 8, "string"),
]


@pytest.mark.parametrize(("name", "vendor", "code", "datatype"), KEY_ATTRIBUTES)
def test_key_attribute(dictionary, name, vendor, code, datatype):
    attr = dictionary[name]
    assert attr.code == code
    assert attr.type == datatype
    assert dictionary.vendors.GetForward(attr.vendor) == vendor
    key = (vendor, code) if vendor else code
    assert dictionary.attrindex.GetBackward(key) == name


def test_only_vendor_specific_is_skipped_by_pyrad(dictionary):
    # Attribute 26 has FreeRADIUS's type "vsa"; pyrad decodes it by number.
    assert dictionary.skipped_attributes == {"Vendor-Specific"}


@pytest.mark.parametrize(
    "name",
    [
        "Tunnel-Type",
        "Tunnel-Medium-Type",
        "Tunnel-Client-Endpoint",
        "Tunnel-Server-Endpoint",
        "Tunnel-Password",
        "Tunnel-Private-Group-Id",
        "Tunnel-Assignment-Id",
        "Tunnel-Preference",
        "Tunnel-Client-Auth-Id",
        "Tunnel-Server-Auth-Id",
    ],
)
def test_rfc2868_attributes_are_tagged(dictionary, name):
    assert dictionary[name].has_tag


@pytest.mark.parametrize(
    ("name", "encrypt", "has_tag"),
    [
        ("User-Password", 1, False),  # RFC 2865 §5.2
        ("Tunnel-Password", 2, True),  # RFC 2868 §3.5
        ("MS-CHAP-MPPE-Keys", 1, False),  # RFC 2548, like User-Password
        ("MS-MPPE-Send-Key", 2, False),  # RFC 2548, salted like Tunnel-Password
        ("MS-MPPE-Recv-Key", 2, False),
    ],
)
def test_hidden_attributes(dictionary, name, encrypt, has_tag):
    assert dictionary[name].encrypt == encrypt
    assert dictionary[name].has_tag is has_tag


def test_no_other_attribute_is_hidden(dictionary):
    hidden = {name for name, attr in dictionary.attributes.items() if attr.encrypt}
    assert hidden == {
        "User-Password",
        "Tunnel-Password",
        "MS-CHAP-MPPE-Keys",
        "MS-MPPE-Send-Key",
        "MS-MPPE-Recv-Key",
    }


@pytest.mark.parametrize(
    ("attribute", "value", "number"),
    [
        ("Service-Type", "Framed-User", 2),
        ("Service-Type", "Authorize-Only", 17),
        ("Framed-Protocol", "PPP", 1),
        ("Framed-Compression", "Van-Jacobson-TCP-IP", 1),
        ("Login-Service", "TCP-Clear-Quiet", 8),
        ("Termination-Action", "RADIUS-Request", 1),
        ("NAS-Port-Type", "Virtual", 5),
        ("NAS-Port-Type", "Ethernet", 15),
        ("NAS-Port-Type", "PPPoEoVLAN", 33),
        ("NAS-Port-Type", "PPPoEoQinQ", 34),
        ("Acct-Status-Type", "Interim-Update", 3),
        ("Acct-Status-Type", "Accounting-On", 7),
        ("Acct-Status-Type", "Tunnel-Link-Stop", 13),
        ("Acct-Authentic", "RADIUS", 1),
        ("Acct-Terminate-Cause", "Lost-Carrier", 2),
        ("Acct-Terminate-Cause", "Admin-Reset", 6),
        ("Acct-Terminate-Cause", "Host-Request", 18),
        ("Tunnel-Type", "L2TP", 3),
        ("Tunnel-Medium-Type", "IPv4", 1),
        ("Error-Cause", "Residual-Context-Removed", 201),
        ("Error-Cause", "Session-Context-Not-Found", 503),
        ("Error-Cause", "Multiple-Session-Selection-Unsupported", 508),
        ("MS-MPPE-Encryption-Policy", "Encryption-Required", 2),
        ("Vpop-Route-Mode", "Proxy", 1),
        ("Vpop-Route-Mode", "Tunnel", 2),
        ("Vpop-Route-Mode", "Local", 3),
    ],
)
def test_named_value(dictionary, attribute, value, number):
    attr = dictionary[attribute]
    assert tools.DecodeAttr(attr.type, attr.values.GetForward(value)) == number


def test_dictionary_drives_pyrad_codec(dictionary):
    # Encode a reply with tagged, salt-encrypted and vendor attributes and decode it again.
    request = AuthPacket(secret=b"s3cret", dict=dictionary, authenticator=bytes(range(16)))
    reply = request.CreateReply()
    reply.code = AccessAccept
    reply["Tunnel-Type:1"] = "L2TP"
    reply["Tunnel-Password:1"] = "tunnel secret"
    reply["MS-MPPE-Send-Key"] = bytes(32)
    reply["Agent-Circuit-Id"] = "dslam1 eth 1/1/1:100"
    reply["Vpop-Route-Mode"] = "Tunnel"
    reply["Vpop-Rate-Limit-Down"] = 50_000
    reply["Delegated-IPv6-Prefix"] = "2001:db8:1::/56"

    received = AuthPacket(
        packet=reply.ReplyPacket(), secret=b"s3cret", dict=dictionary
    )
    received.request_authenticator = request.authenticator
    assert received["Tunnel-Type:1"] == ["L2TP"]
    assert received["Tunnel-Password:1"] == ["tunnel secret"]
    assert received["MS-MPPE-Send-Key"] == [bytes(32)]
    assert received["Agent-Circuit-Id"] == ["dslam1 eth 1/1/1:100"]
    assert received["Vpop-Route-Mode"] == ["Tunnel"]
    assert received["Vpop-Rate-Limit-Down"] == [50_000]
    assert received["Delegated-IPv6-Prefix"] == ["2001:db8:1::/56"]


# --- the files themselves ----------------------------------------------------

def _definition_files() -> list[Path]:
    return sorted(p for p in DICT_DIR.rglob("dictionary*") if p.is_file())


def _statements(path: Path):
    """Yield (path, line number, tokens, vendor) for the definitions in a file."""
    vendor = ""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            continue
        keyword = tokens[0].upper()
        if keyword == "BEGIN-VENDOR":
            vendor = tokens[1]
        elif keyword == "END-VENDOR":
            vendor = ""
        yield path, number, tokens, vendor


def _all_statements():
    for path in _definition_files():
        yield from _statements(path)


def _duplicates(items) -> list:
    return sorted(item for item, count in Counter(items).items() if count > 1)


def test_no_attribute_name_defined_twice():
    names = [tokens[1] for _, _, tokens, _ in _all_statements() if tokens[0] == "ATTRIBUTE"]
    assert names
    assert _duplicates(names) == []


def test_no_attribute_number_defined_twice():
    # An alias for a number would make pyrad decode to whichever name came last.
    keys = [
        (vendor, tokens[2])
        for _, _, tokens, vendor in _all_statements()
        if tokens[0] == "ATTRIBUTE"
    ]
    assert _duplicates(keys) == []


def test_no_value_defined_twice():
    values = [
        tuple(tokens[1:3]) for _, _, tokens, _ in _all_statements() if tokens[0] == "VALUE"
    ]
    numbers = [
        (tokens[1], int(tokens[3], 0))
        for _, _, tokens, _ in _all_statements()
        if tokens[0] == "VALUE"
    ]
    assert _duplicates(values) == []
    assert _duplicates(numbers) == []


def test_every_file_is_included_by_the_top_file():
    included = {
        tokens[1] for _, _, tokens, _ in _statements(TOP) if tokens[0] == "$INCLUDE"
    }
    # dictionary.local is an operator's optional addition ($INCLUDE-)
    in_directory = {p.name for p in DICT_DIR.glob("dictionary.*")} - {"dictionary.local"}
    assert included == in_directory


@pytest.mark.parametrize("path", _definition_files(), ids=lambda p: str(p.relative_to(DICT_DIR)))
def test_file_starts_with_a_comment(path):
    # Each file says where its definitions come from.
    assert path.read_text().startswith("# ")


def test_vendor_blocks_are_closed():
    for path in _definition_files():
        open_vendor = ""
        for _, number, tokens, _ in _statements(path):
            if tokens[0] == "BEGIN-VENDOR":
                assert not open_vendor, f"{path.name}:{number}: nested BEGIN-VENDOR"
                open_vendor = tokens[1]
            elif tokens[0] == "END-VENDOR":
                assert tokens[1] == open_vendor, f"{path.name}:{number}"
                open_vendor = ""
        assert not open_vendor, f"{path.name}: BEGIN-VENDOR {open_vendor} not closed"


def test_radclient_overlay_adds_only_internal_attributes():
    # radius-dictionaries/radclient/ is for radclient -D; its extra attributes
    # are FreeRADIUS-internal (above 255) so they never reach the wire.
    overlay = DICT_DIR / "radclient" / "dictionary"
    statements = list(_statements(overlay))
    assert ["$INCLUDE", "../dictionary"] in [tokens for _, _, tokens, _ in statements]
    codes = [int(tokens[2]) for _, _, tokens, _ in statements if tokens[0] == "ATTRIBUTE"]
    assert codes and all(code > 255 for code in codes)
