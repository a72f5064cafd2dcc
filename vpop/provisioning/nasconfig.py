"""What a NAS needs to work with vpop, as its vendor's configuration text.

`vpop nas config NAS` gathers the values (the NAS's row, vpop's addresses and ports,
the interim interval, the tunnel-mode ISPs' LNS) into a `NasSetup` with `setup()`,
and `render()` turns that into text with ``templates/nasconfig/<type>.j2``. Both are
pure: values in, values or text out. Secrets stay placeholders naming the command
that shows them unless they are asked for.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from vpop.dynauth.request import DEFAULT_PORT as DAS_PORT  # noqa: F401 (the CLI's default)
from vpop.dynauth.session import NasEntry  # the NAS as provisioned, its DAS columns included
from vpop.errors import ConfigError
from vpop.isp.model import Isp
from vpop.radius.clients import NAS_TYPES

SHIPPED = Path(__file__).resolve().parent.parent / "templates" / "nasconfig"
# The types a configuration can be rendered for: every NAS type but generic, which
# stands for "replies of RFC attributes only" and names no vendor.
CONFIG_TYPES = tuple(t for t in NAS_TYPES if t != "generic")


@dataclass(frozen=True, slots=True, kw_only=True)
class Lns:
    """One L2TP network server of a tunnel-mode ISP, as the LAC must reach it."""
    address: str
    password: str  # or its placeholder
    preference: int
    assignment_id: str | None
    client_auth_id: str | None  # the name the LAC gives itself toward this LNS


@dataclass(frozen=True, slots=True, kw_only=True)
class TunnelIsp:
    name: str
    domains: tuple[str, ...]  # its suffix realms without the delimiter, "isp.example"
    lns: tuple[Lns, ...]  # in order of preference


@dataclass(frozen=True, slots=True, kw_only=True)
class NasSetup:
    """Everything a template uses: ``nas`` in templates/nasconfig/*.j2."""
    name: str
    nas_type: str
    own_address: str  # the NAS's address toward vpop (NAS-IP-Address), or a placeholder
    servers: tuple[str, ...]  # vpop's addresses as the NAS reaches them, or a placeholder
    auth_port: int
    acct_port: int
    secret: str  # the RADIUS secret, or its placeholder
    interim_interval: int  # seconds
    das_address: str  # where the NAS listens for CoA and Disconnect, or a placeholder
    das_port: int
    das_secret: str  # or its placeholder
    das_secret_is_radius_secret: bool
    tunnel_isps: tuple[TunnelIsp, ...]
    show_command: str  # the command that prints this with the secrets
    interface: str  # hostapd: the wired interface
    ctrl_interface: str  # hostapd: its control socket directory

    @property
    def interim_minutes(self) -> int:
        """The interval in whole minutes, rounded up (Cisco, Junos count minutes)."""
        return max(1, math.ceil(self.interim_interval / 60))


def placeholder(what: str, hint: str) -> str:
    """Text that cannot pass for a value: what belongs there and how to get it."""
    return f"<{what}: {hint}>"


def host_address(network: str) -> str | None:
    """The address of a NAS provisioned as one host (192.0.2.1 or 192.0.2.1/32)."""
    try:
        net = ipaddress.ip_network(network, strict=False)
    except ValueError:
        return None
    return str(net.network_address) if net.num_addresses == 1 else None


def vpop_addresses(listen: Sequence[str], nas_network: str) -> tuple[str, ...]:
    """vpop's addresses as this NAS reaches them, from ``[server] listen``: the
    addresses of the NAS's family (all of them when none is); a wildcard stands for a
    known address only for a NAS on loopback (it is on this host). Empty: unknown."""
    try:
        nas = ipaddress.ip_network(nas_network, strict=False)
    except ValueError:
        nas = None
    parsed = [ipaddress.ip_address(a) for a in listen]
    named = [ip for ip in parsed if not ip.is_unspecified]
    same_family = [ip for ip in named if nas is not None and ip.version == nas.version]
    found = same_family or named
    if nas is not None and nas.network_address.is_loopback and not same_family:
        if any(ip.is_unspecified and ip.version == nas.version for ip in parsed):
            found = [ipaddress.ip_address("127.0.0.1" if nas.version == 4 else "::1")]
    return tuple(str(ip) for ip in found)


def tunnel_isps(isps: Sequence[Isp], only: str | None) -> tuple[Isp, ...]:
    """The ISPs whose L2TP part is rendered: ``only`` (which must be a tunnel-mode ISP),
    else every tunnel-mode ISP not disabled. ConfigError names the problem."""
    if only is None:
        return tuple(i for i in isps if i.mode == "tunnel" and i.status != "disabled")
    found = [i for i in isps if i.name == only]
    if not found:
        known = ", ".join(i.name for i in isps) or "none"
        raise ConfigError(f"no ISP {only!r} (ISPs: {known})")
    if found[0].mode != "tunnel":
        tunnels = ", ".join(i.name for i in isps if i.mode == "tunnel") or "none"
        raise ConfigError(f"ISP {only!r} is in {found[0].mode} mode: only tunnel-mode ISPs "
                          f"have a part on the NAS (tunnel-mode ISPs: {tunnels})")
    return (found[0],)


def setup(nas: NasEntry, *, nas_type: str, listen: Sequence[str], auth_port: int,
          acct_port: int, interim_interval: int, isps: Sequence[Isp],
          show_secrets: bool, show_command: str, servers: Sequence[str] = (),
          own_address: str | None = None, interface: str = "",
          ctrl_interface: str = "") -> NasSetup:
    """The values of ``nas``'s configuration. ``servers``: vpop's addresses when given
    (else from ``listen``); ``own_address``: the NAS's when it is provisioned as a
    network; ``isps``: the ISPs whose tunnels it carries (`tunnel_isps`)."""
    if nas_type not in CONFIG_TYPES:
        raise ConfigError(f"no configuration for NAS type {nas_type!r}: give --type, one of "
                          f"{', '.join(CONFIG_TYPES)}")
    hint = f"{show_command} --show-secrets"

    def secret(what: str, value: str) -> str:
        return value if show_secrets else placeholder(what, hint)

    own = own_address or host_address(nas.address) or placeholder(
        f"address of NAS {nas.name} (provisioned as {nas.address})", "--nas-address ADDR")
    found = tuple(servers) or vpop_addresses(listen, nas.address)
    if not found:
        found = (placeholder("vpop's address ([server] listen is a wildcard)",
                             "--vpop-address ADDR"),)
    das_secret = nas.das_secret if nas.das_secret is not None else nas.secret
    tunnels = []
    for isp in isps:
        ordered = sorted(isp.tunnels, key=lambda t: t.preference)
        tunnels.append(TunnelIsp(
            name=isp.name,
            domains=tuple(r.pattern[1:] for r in isp.realms
                          if r.kind == "suffix" and r.pattern.startswith("@")),
            lns=tuple(Lns(address=t.address, preference=t.preference,
                          password=secret(f"tunnel password of ISP {isp.name} LNS {t.address}",
                                          t.password.decode("utf-8")) if t.password else "",
                          assignment_id=t.assignment_id, client_auth_id=t.client_auth_id)
                      for t in ordered)))
    return NasSetup(
        name=nas.name, nas_type=nas_type, own_address=own, servers=found,
        auth_port=auth_port, acct_port=acct_port,
        secret=secret(f"secret of NAS {nas.name}", nas.secret),
        interim_interval=interim_interval,
        das_address=nas.das_address or own, das_port=nas.das_port,
        das_secret=secret(f"dynamic-authorization secret of NAS {nas.name}", das_secret),
        das_secret_is_radius_secret=das_secret == nas.secret,
        tunnel_isps=tuple(tunnels), show_command=show_command,
        interface=interface or placeholder("wired interface", "--interface IFACE"),
        ctrl_interface=ctrl_interface or "/var/run/hostapd")


def _quoted(value: str) -> str:
    """A double-quoted string as RouterOS and Junos read one."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _bare(value: str, what: str, forbidden: str) -> str:
    """A value written unquoted into a list the vendor splits at ``forbidden``."""
    bad = [c for c in forbidden if c in value]
    if bad:
        raise ConfigError(f"{what} contains {bad[0]!r}, which this NAS type's configuration "
                          "cannot carry: choose another")
    return value


def template_environment(extra_dir: str = "") -> jinja2.Environment:
    """Templates looked for in ``extra_dir``/nasconfig first, then the shipped ones."""
    search = [str(Path(extra_dir) / "nasconfig")] if extra_dir else []
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search + [str(SHIPPED)]),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        autoescape=False, keep_trailing_newline=True)
    env.filters["quoted"] = _quoted
    env.filters["bare"] = _bare
    return env


def render(nas: NasSetup, extra_dir: str = "") -> str:
    """The configuration text for ``nas.nas_type``."""
    env = template_environment(extra_dir)
    name = f"{nas.nas_type}.j2"
    try:
        text = env.get_template(name).render(nas=nas)
    except jinja2.TemplateNotFound:
        raise ConfigError(f"no template nasconfig/{name}") from None
    except jinja2.TemplateError as exc:
        raise ConfigError(f"template nasconfig/{name}: {exc}") from None
    return text if text.endswith("\n") else text + "\n"
