"""Tunnel mode (VPDN): the Access-Accept tells the NAS to open an L2TP tunnel to the
ISP's LNS, with RFC 2868 tunnel attributes.

Each LNS is one tagged group (RFC 2868 §3: tags 1 to 31 group the attributes of one
tunnel), tags given in order of preference, lowest first:

    Tunnel-Type:n = L2TP, Tunnel-Medium-Type:n, Tunnel-Server-Endpoint:n,
    Tunnel-Password:n (salt-encrypted), Tunnel-Assignment-Id:n, Tunnel-Preference:n,
    Tunnel-Client-Endpoint:n, Tunnel-Client-Auth-Id:n

NAS types that want more (Cisco's VPDN AV-pairs) get it from the template
``tunnel/<nas_type>.j2`` (``generic.j2`` when there is none), rendered with ``isp``,
``tunnels`` (``TaggedTunnel`` values, in tag order) and ``nas_type``.

Tags on the wire (RFC 2868 §3.1-3.8): an integer attribute's first octet is always
the tag (the value is the other three); Tunnel-Password always starts with the tag;
a string attribute starts with a tag only if its first octet is 0x01-0x1F. pyrad
leaves the tag in decoded values, so ``decode_tagged`` reads them here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from vpop.aaa.reply import parse_pairs, template_environment
from vpop.errors import ConfigError, MalformedPacket
from vpop.isp.model import Isp, TunnelEndpoint
from vpop.radius.codec import Key, attribute
from vpop.radius.crypto import SALT_LENGTH, decrypt_salted, encrypt_salted
from vpop.radius.dictionary import Dictionary

SHIPPED = Path(__file__).resolve().parent.parent / "templates" / "tunnel"
MAX_TAG = 0x1F  # RFC 2868 §3.1: tags 0x01-0x1F
MEDIA = ("IPv4", "IPv6")  # Tunnel-Medium-Type values L2TP runs over (RFC 2868 §3.2)
MAX_PREFERENCE = 2 ** 24 - 1  # RFC 2868 §3.8: three octets after the tag
PASSWORD = "Tunnel-Password"
# Attribute order within a group; the integers carry the tag in their first octet.
ATTRIBUTES = ("Tunnel-Type", "Tunnel-Medium-Type", "Tunnel-Server-Endpoint", PASSWORD,
              "Tunnel-Assignment-Id", "Tunnel-Preference", "Tunnel-Client-Endpoint",
              "Tunnel-Client-Auth-Id")
_SALT_TRIES = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class TaggedTunnel:
    """One LNS as templates see it: its tag and its values as text."""
    tag: int
    address: str
    password: str  # cleartext: vendor AV-pairs carry it unencrypted
    medium: str
    assignment_id: str | None
    preference: int
    client_endpoint: str | None
    client_auth_id: str | None


def tagged_tunnels(isp: Isp) -> tuple[TaggedTunnel, ...]:
    """The ISP's LNS in order of preference (ties in listed order), tagged 1..n."""
    ordered = sorted(isp.tunnels, key=lambda t: t.preference)
    if len(ordered) > MAX_TAG:
        raise ValueError(f"at most {MAX_TAG} tunnels fit the tags of RFC 2868")
    return tuple(_tagged(tag, endpoint) for tag, endpoint in enumerate(ordered, 1))


def _tagged(tag: int, endpoint: TunnelEndpoint) -> TaggedTunnel:
    return TaggedTunnel(
        tag=tag, address=endpoint.address, password=endpoint.password.decode("utf-8"),
        medium=endpoint.medium, assignment_id=endpoint.assignment_id,
        preference=endpoint.preference, client_endpoint=endpoint.client_endpoint,
        client_auth_id=endpoint.client_auth_id)


def tunnel_password(tag: int, password: bytes, *, secret: bytes, request_authenticator: bytes,
                    salt: bytes) -> bytes:
    """The Tunnel-Password value: tag, salt, encrypted string (RFC 2868 §3.5)."""
    return bytes((tag,)) + encrypt_salted(password, secret, request_authenticator, salt)


def _salts(draw: Callable[[], bytes]) -> Callable[[], bytes]:
    """RFC 2868 §3.5: the salt's top bit set, and unique within the packet."""
    used: set[bytes] = set()

    def next_salt() -> bytes:
        for _ in range(_SALT_TRIES):
            raw = draw()
            if len(raw) != SALT_LENGTH:
                raise ValueError(f"salt must be {SALT_LENGTH} octets")
            salt = bytes((raw[0] | 0x80, raw[1]))
            if salt not in used:
                used.add(salt)
                return salt
        raise ValueError("the salt source keeps repeating itself")
    return next_salt


def tunnel_attributes(isp: Isp, dictionary: Dictionary, *, secret: bytes,
                      request_authenticator: bytes, salt: Callable[[], bytes],
                      nas_type: str = "generic",
                      templates: TunnelTemplates | None = None) -> bytes:
    """The tagged RFC 2868 attributes of every LNS, then the NAS type's extras.

    ``secret`` is the NAS's and ``request_authenticator`` the Access-Request's: the
    password is hidden for the NAS that receives the reply. ``salt()`` draws 2 octets.
    """
    next_salt = _salts(salt)
    out = []
    for tunnel in tagged_tunnels(isp):
        tag = tunnel.tag
        out.append(dictionary.encode("Tunnel-Type", "L2TP", tag=tag))
        out.append(dictionary.encode("Tunnel-Medium-Type", tunnel.medium, tag=tag))
        out.append(dictionary.encode("Tunnel-Server-Endpoint", tunnel.address, tag=tag))
        if tunnel.password:
            value = tunnel_password(tag, tunnel.password.encode("utf-8"), secret=secret,
                                    request_authenticator=request_authenticator,
                                    salt=next_salt())
            out.append(attribute(dictionary.key(PASSWORD), value))
        if tunnel.assignment_id:
            out.append(dictionary.encode("Tunnel-Assignment-Id", tunnel.assignment_id, tag=tag))
        out.append(dictionary.encode("Tunnel-Preference", tunnel.preference, tag=tag))
        if tunnel.client_endpoint:
            out.append(dictionary.encode("Tunnel-Client-Endpoint", tunnel.client_endpoint,
                                         tag=tag))
        if tunnel.client_auth_id:
            out.append(dictionary.encode("Tunnel-Client-Auth-Id", tunnel.client_auth_id,
                                         tag=tag))
    out.append((templates or shipped_templates(dictionary)).encoded(isp, nas_type))
    return b"".join(out)


class TunnelTemplates:
    """Per-NAS-type extras from ``tunnel/<nas_type>.j2``: ``extra_dir/tunnel`` first,
    then the shipped ones. Encoded bytes are cached per ISP value and NAS type (they
    hold no per-request data); build a new one on reload."""

    def __init__(self, dictionary: Dictionary, extra_dir: str = ""):
        search = [str(Path(extra_dir) / "tunnel")] if extra_dir else []
        self.env = template_environment(search + [str(SHIPPED)])
        self.dictionary = dictionary
        self._cache: dict[tuple[int, str], tuple[Isp, bytes]] = {}

    def template_for(self, nas_type: str) -> tuple[str, jinja2.Template]:
        name = f"{nas_type}.j2"
        try:
            return name, self.env.get_template(name)
        except jinja2.TemplateNotFound:
            return "generic.j2", self.env.get_template("generic.j2")

    def pairs(self, isp: Isp, nas_type: str) -> list[tuple[str, str]]:
        name = f"{nas_type}.j2"
        try:
            name, template = self.template_for(nas_type)
            text = template.render(isp=isp, tunnels=tagged_tunnels(isp), nas_type=nas_type)
        except jinja2.TemplateError as exc:
            raise ConfigError(f"tunnel template: {exc}", file=f"tunnel/{name}") from None
        return parse_pairs(text, f"tunnel/{name}", self.dictionary)

    def encoded(self, isp: Isp, nas_type: str) -> bytes:
        key = (id(isp), nas_type)
        cached = self._cache.get(key)
        if cached is not None and cached[0] is isp:  # holding isp keeps its id unique
            return cached[1]
        try:
            data = self.dictionary.encode_pairs(self.pairs(isp, nas_type))
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"tunnel template {nas_type}.j2: {exc}") from None
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = (isp, data)
        return data


@functools.lru_cache(maxsize=4)
def shipped_templates(dictionary: Dictionary) -> TunnelTemplates:
    """The shipped templates only, one set per dictionary (for callers without their own)."""
    return TunnelTemplates(dictionary)


# --- reading tagged attributes (replies from an ISP, tests) ---------------------------

@dataclass(frozen=True, slots=True)
class Tagged:
    tag: int  # 0: no tag
    value: bytes | int


def decode_tagged(raw: bytes, has_salt: bool = False, *, integer: bool = False,
                  secret: bytes = b"", request_authenticator: bytes = b"") -> Tagged:
    """One tagged attribute's tag and value (RFC 2868 §3).

    ``has_salt``: Tunnel-Password, decrypted with ``secret`` and the Access-Request's
    ``request_authenticator``. ``integer``: Tunnel-Type, -Medium-Type, -Preference.
    MalformedPacket if the value does not fit.
    """
    if has_salt:
        if not raw or raw[0] > MAX_TAG:
            raise MalformedPacket("Tunnel-Password without a valid tag octet")
        return Tagged(raw[0], decrypt_salted(raw[1:], secret, request_authenticator))
    if integer:
        if len(raw) != 4:
            raise MalformedPacket(f"tagged integer of {len(raw)} octets, expected 4")
        return Tagged(raw[0], int.from_bytes(raw[1:], "big"))
    if raw and raw[0] <= MAX_TAG:
        return Tagged(raw[0], raw[1:])
    return Tagged(0, raw)


def tunnel_groups(attrs: Mapping[Key, Iterable[bytes]], dictionary: Dictionary, *,
                  secret: bytes, request_authenticator: bytes) -> dict[int, dict[str, Any]]:
    """The tunnel attributes of a decoded packet by tag: {1: {"Tunnel-Type": "L2TP", ...}}.

    Integers come back as their VALUE names where the dictionary has one, strings as
    text, Tunnel-Password as the decrypted octets.
    """
    groups: dict[int, dict[str, Any]] = {}
    for name in ATTRIBUTES:
        definition = dictionary[name]
        integer = definition.type == "integer"
        for raw in attrs.get(definition.key, ()):
            tagged = decode_tagged(raw, name == PASSWORD, integer=integer, secret=secret,
                                   request_authenticator=request_authenticator)
            value: Any = tagged.value
            if integer:
                value = definition.value_names.get(value.to_bytes(4, "big"), value)
            elif name != PASSWORD:
                value = value.decode("utf-8", "replace")
            groups.setdefault(tagged.tag, {})[name] = value
    return dict(sorted(groups.items()))
