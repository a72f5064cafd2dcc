"""``vpop nas config NAS``: the configuration a NAS needs to work with vpop, in its
vendor's words (vpop/provisioning/nasconfig.py renders it; docs/nas-config.md)."""

from __future__ import annotations

import shlex
import sys

from vpop.errors import ConfigError
from vpop.provisioning import nasconfig


def add_arguments(parser) -> None:
    """The options of ``vpop nas config``."""
    parser.add_argument("nas", help="the NAS, by its provisioned name")
    parser.add_argument("--isp", metavar="ISP",
                        help="the L2TP part for this tunnel-mode ISP only (default: every "
                             "tunnel-mode ISP not disabled)")
    parser.add_argument("--show-secrets", action="store_true",
                        help="print the secrets instead of placeholders")
    parser.add_argument("--type", dest="nas_type", choices=nasconfig.CONFIG_TYPES,
                        help="render for this NAS type instead of the NAS's own")
    parser.add_argument("--vpop-address", action="append", metavar="ADDR",
                        help="vpop's address as the NAS reaches it, repeatable (default: "
                             "[server] listen, when not a wildcard)")
    parser.add_argument("--nas-address", metavar="ADDR",
                        help="the NAS's own address (NAS-IP-Address), for a NAS provisioned "
                             "as a network")
    parser.add_argument("--interface", metavar="IFACE",
                        help="hostapd: the wired interface it authenticates (default: a "
                             "placeholder)")
    parser.add_argument("--ctrl-interface", metavar="DIR",
                        help="hostapd: its control interface directory "
                             "(default: /var/run/hostapd)")


def nas_config(settings, args, *, out=None) -> int:
    """Print the configuration; ConfigError (exit 2) for an unknown NAS or ISP, or a NAS
    without a vendor type and no --type."""
    import ipaddress
    from vpop.store.engine import check_connection, make_engine, make_sessionmaker
    from vpop.store.isp_snapshot import load_isps
    from vpop.store.models import Nas
    from sqlalchemy import select
    out = out or sys.stdout
    for option, value in (("--vpop-address", args.vpop_address or ()),
                          ("--nas-address", [args.nas_address] if args.nas_address else ())):
        for address in value:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ConfigError(f"{option} {address!r} is not an IPv4 or IPv6 address") from None
    engine = make_engine(settings.database_url)
    try:
        check_connection(engine)
        with make_sessionmaker(engine)() as session:
            row = session.scalars(select(Nas).where(Nas.name == args.nas)).one_or_none()
            names = [] if row is not None else list(session.scalars(select(Nas.name).order_by(Nas.name)))
            isps = load_isps(session)
    finally:
        engine.dispose()
    if row is None:
        raise ConfigError(f"no NAS {args.nas!r} (NAS clients: {', '.join(names) or 'none'})")
    nas = nasconfig.NasEntry(
        name=row.name, address=row.address, secret=row.secret, nas_type=row.nas_type,
        das_address=row.das_address, das_port=row.das_port or nasconfig.DAS_PORT,
        das_secret=row.das_secret)
    nas_type = args.nas_type or nas.nas_type
    if nas_type not in nasconfig.CONFIG_TYPES:
        raise ConfigError(f"NAS {nas.name!r} is of type {nas_type!r}, which names no vendor: "
                          f"give --type, one of {', '.join(nasconfig.CONFIG_TYPES)}")
    setup = nasconfig.setup(
        nas, nas_type=nas_type, listen=settings.server.listen,
        auth_port=settings.server.auth_port, acct_port=settings.server.acct_port,
        interim_interval=settings.accounting.interim_interval,
        isps=nasconfig.tunnel_isps(isps, args.isp), show_secrets=args.show_secrets,
        show_command=_command(args, nas_type), servers=tuple(args.vpop_address or ()),
        own_address=args.nas_address, interface=args.interface or "",
        ctrl_interface=args.ctrl_interface or "")
    if setup.servers[0].startswith("<"):
        print(f"vpop: [server] listen names no address NAS {nas.name!r} can reach: "
              "give --vpop-address", file=sys.stderr)
    out.write(nasconfig.render(setup, settings.relative(settings.radius.templates)))
    return 0


def _command(args, nas_type: str) -> str:
    """The command as given, without --show-secrets: the one the placeholders name."""
    words = ["vpop", "nas", "config", args.nas]
    if args.nas_type:
        words += ["--type", nas_type]
    if args.isp:
        words += ["--isp", args.isp]
    return shlex.join(words)
