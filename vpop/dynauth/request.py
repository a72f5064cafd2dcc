"""A Disconnect-Request or CoA-Request for one live session, per NAS type (RFC 5176).

A request names the session the way its NAS finds sessions, and a CoA carries the
change the way the NAS reads a profile in an Access-Accept:

- the identification attributes come from vpop/templates/dynauth/<nas_type>.j2
  (generic.j2 for a type without one), rendered with the session's facts, as lines of
  `Name = value` like the reply templates; an operator's templates directory
  (`[radius] templates`) is searched first, in its dynauth/ subdirectory;
- the change attributes are the NAS type's reply template (vpop/templates/reply/)
  rendered with the change as the profile, so a rate is the same Mikrotik-Rate-Limit
  or Cisco-AVPair a login gets; the dynauth template picks the ones its NAS accepts in
  a CoA from that list (`changes`);
- Event-Timestamp goes on every request (RFC 5176 §3 recommends it, against replays)
  and Message-Authenticator first (RFC 5176 §3, the BlastRADIUS guidance). Proxy-State
  never: vpop originates these requests, and some NASes (hostapd) refuse it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path

import jinja2

from vpop.aaa.reply import ReplyRenderer, parse_pairs, template_environment
from vpop.aaa.subscribers import Account, ServiceProfile
from vpop.errors import ConfigError
from vpop.radius import codec
from vpop.radius.dictionary import Dictionary

SHIPPED = Path(__file__).resolve().parent.parent / "templates" / "dynauth"
DISCONNECT, COA = "disconnect", "coa"
KINDS = (DISCONNECT, COA)
CODES = {DISCONNECT: codec.DISCONNECT_REQUEST, COA: codec.COA_REQUEST}
DEFAULT_PORT = 3799  # RFC 5176 §3.1

_MAC = re.compile(r"^[0-9A-Fa-f]{2}([-:.]?[0-9A-Fa-f]{2}){5}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionFacts:
    """A live session as its NAS reported it in accounting (a radacct row) and the NAS
    client it belongs to."""

    radacct_id: int | None = None
    acct_session_id: str
    username: str
    nas_name: str  # the NAS client's name in vpop
    nas_type: str = "generic"
    # The NAS as it named itself: NAS-IP-Address, NAS-IPv6-Address or NAS-Identifier
    # (radacct.nas_address).
    nas_reported: str = ""
    nas_port: str | None = None  # NAS-Port-Id, else NAS-Port as text
    framed_ip: str | None = None
    calling_station_id: str | None = None
    isp: str | None = None

    def _reported_ip(self):
        try:
            return ipaddress.ip_address(self.nas_reported)
        except ValueError:
            return None

    @property
    def nas_ip_address(self) -> str | None:
        ip = self._reported_ip()
        return str(ip) if ip is not None and ip.version == 4 else None

    @property
    def nas_ipv6_address(self) -> str | None:
        ip = self._reported_ip()
        return str(ip) if ip is not None and ip.version == 6 else None

    @property
    def nas_identifier(self) -> str | None:
        return self.nas_reported if self.nas_reported and self._reported_ip() is None else None

    @property
    def nas_port_number(self) -> int | None:
        """NAS-Port, when what the NAS reported is a number."""
        port = self.nas_port
        return int(port) if port is not None and port.isdigit() and int(port) < 2**32 else None

    @property
    def nas_port_id(self) -> str | None:
        """NAS-Port-Id, when what the NAS reported is not a number."""
        return self.nas_port if self.nas_port and self.nas_port_number is None else None

    @property
    def calling_station_mac(self) -> str | None:
        """Calling-Station-Id when it is a MAC address (802.1X NASes match only those)."""
        caller = self.calling_station_id
        return caller if caller and _MAC.match(caller) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """What a CoA changes, in vpop's terms; None leaves a value as it is. `profile`
    names the profile the values came from (shown and audited)."""

    rate_down_kbps: int | None = None
    rate_up_kbps: int | None = None
    session_timeout: int | None = None
    idle_timeout: int | None = None
    profile: str | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self) if f.name != "profile")

    def over(self, base: "Change") -> "Change":
        """`base` with the values this change gives replacing its own."""
        given = {f.name: getattr(self, f.name) for f in fields(self)
                 if getattr(self, f.name) is not None}
        return replace(base, **given)

    def describe(self) -> str:
        parts = []
        if self.profile:
            parts.append(f"profile {self.profile}")
        for name, unit in (("rate_down_kbps", " kbit/s down"), ("rate_up_kbps", " kbit/s up"),
                           ("session_timeout", " s session timeout"),
                           ("idle_timeout", " s idle timeout")):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{value}{unit}")
        return ", ".join(parts) or "nothing"


def change_from_profile(profile: ServiceProfile) -> Change:
    """A profile's values as a change (the subscriber's overrides already applied)."""
    return Change(rate_down_kbps=profile.rate_down_kbps, rate_up_kbps=profile.rate_up_kbps,
                  session_timeout=profile.session_timeout, idle_timeout=profile.idle_timeout,
                  profile=profile.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class DynAuthRequest:
    """A request's contents; `datagram` frames it for one Identifier."""

    kind: str  # disconnect | coa
    pairs: tuple[tuple[str, str], ...]  # as rendered, Event-Timestamp last
    attrs: bytes  # encoded, without Message-Authenticator

    @property
    def code(self) -> int:
        return CODES[self.kind]

    def datagram(self, ident: int, secret: bytes) -> bytes:
        """RFC 5176 §2.3: the Request Authenticator hashed over the packet and secret,
        with a Message-Authenticator first (keyed with sixteen zero octets there)."""
        return codec.encode_request(self.code, ident, self.attrs, secret,
                                    message_authenticator=True)

    def text(self) -> str:
        """`Name = value` lines, for the audit."""
        return "\n".join(f"{name} = {value}" for name, value in self.pairs)


class NothingToChange(ConfigError):
    """A CoA whose change the NAS type's template carries none of."""


class RequestBuilder:
    """Renders requests; templates are read once and kept (like the reply renderer)."""

    def __init__(self, dictionary: Dictionary, extra_dir: str = "",
                 replies: ReplyRenderer | None = None):
        search = [str(Path(extra_dir) / "dynauth")] if extra_dir else []
        self.env = template_environment(search + [str(SHIPPED)])
        self.dictionary = dictionary
        self.replies = replies or ReplyRenderer(dictionary, extra_dir)

    def template_for(self, nas_type: str) -> tuple[jinja2.Template, str]:
        for name in (f"{nas_type}.j2", "generic.j2"):
            try:
                return self.env.get_template(name), name
            except jinja2.TemplateNotFound:
                continue
        raise ConfigError("no dynamic authorization template", file=f"dynauth/{nas_type}.j2")

    def change_pairs(self, facts: SessionFacts, change: Change) -> list[tuple[str, str]]:
        """The NAS type's reply attributes for the change as a profile."""
        profile = ServiceProfile(name=change.profile or "", rate_down_kbps=change.rate_down_kbps,
                                 rate_up_kbps=change.rate_up_kbps,
                                 session_timeout=change.session_timeout,
                                 idle_timeout=change.idle_timeout)
        return self.replies.pairs(Account(username=facts.username, profile=profile),
                                  facts.nas_type)

    def pairs(self, facts: SessionFacts, kind: str, change: Change | None = None, *,
              now: float) -> list[tuple[str, str]]:
        if kind not in KINDS:
            raise ValueError(f"unknown dynamic authorization kind {kind!r}")
        changes = self.change_pairs(facts, change) if kind == COA and change else []
        template, name = self.template_for(facts.nas_type)
        try:
            text = template.render(session=facts, kind=kind, changes=changes,
                                   nas_type=facts.nas_type)
        except jinja2.TemplateError as exc:
            raise ConfigError(f"dynamic authorization template: {exc}",
                              file=f"dynauth/{name}") from None
        pairs = parse_pairs(text, f"dynauth/{name}", self.dictionary)
        if kind == COA and not set(pairs) & set(changes):
            raise NothingToChange(
                f"a {facts.nas_type} NAS is sent none of this change "
                f"({(change or Change()).describe()}) by CoA", file=f"dynauth/{name}")
        # RFC 5176 §3: Event-Timestamp against replays; vpop's own, always last.
        pairs = [pair for pair in pairs if pair[0] != "Event-Timestamp"]
        pairs.append(("Event-Timestamp", str(int(now))))
        return pairs

    def build(self, facts: SessionFacts, kind: str, change: Change | None = None, *,
              now: float) -> DynAuthRequest:
        pairs = self.pairs(facts, kind, change, now=now)
        try:
            attrs = self.dictionary.encode_pairs(pairs)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"dynamic authorization template {facts.nas_type}: {exc}") from None
        return DynAuthRequest(kind=kind, pairs=tuple(pairs), attrs=attrs)
