"""Read the ISPs into the pure values of vpop/isp/model.py, and check stored ones."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from vpop.errors import ConfigError
from vpop.isp import model
from vpop.isp.checks import check_isps
from vpop.isp.realms import REGEX, parse_realm
from vpop.store.dynauth_models import IspDynAuthClient
from vpop.store.isp_models import IspRecord, IspRealm, IspServer, IspTunnel, IspWindow


def realm_value(row: IspRealm) -> model.RealmRule:
    if row.kind == REGEX:
        return parse_realm("~" + row.pattern)  # compiles it
    return model.RealmRule(kind=row.kind, pattern=row.pattern)


def server_value(row: IspServer) -> model.UpstreamServer:
    return model.UpstreamServer(
        name=row.name, address=row.address, auth_port=row.auth_port, acct_port=row.acct_port,
        secret=row.secret.encode("utf-8"), priority=row.priority, weight=row.weight,
        require_message_authenticator=row.require_message_authenticator)


def tunnel_value(row: IspTunnel) -> model.TunnelEndpoint:
    return model.TunnelEndpoint(
        address=row.address, password=(row.password or "").encode("utf-8"), medium=row.medium,
        assignment_id=row.assignment_id, preference=row.preference,
        client_endpoint=row.client_endpoint, client_auth_id=row.client_auth_id)


def dynauth_client_value(row: IspDynAuthClient) -> model.DynAuthClient:
    return model.DynAuthClient(address=row.address, secret=row.secret.encode("utf-8"))


def window_value(row: IspWindow) -> model.Window:
    return model.Window(weekdays=frozenset(int(d) for d in row.weekdays.split(",") if d),
                        start=row.start, end=row.end)


def isp_value(row: IspRecord) -> model.Isp:
    """Servers, tunnels, windows and dynamic-authorization clients in the order they
    were provisioned (the file's)."""
    return model.Isp(
        name=row.name, mode=row.mode, realms=tuple(realm_value(r) for r in row.realms),
        numbers=tuple(n.number for n in row.numbers), strip_realm=row.strip_realm,
        rewrite=row.rewrite, servers=tuple(server_value(s) for s in row.servers),
        balance=row.balance, tunnels=tuple(tunnel_value(t) for t in row.tunnels),
        price_per_minute=row.price_per_minute, price_per_gb=row.price_per_gb,
        schedule=tuple(window_value(w) for w in row.windows), status=row.status,
        template=row.template, timeout_reject=row.timeout_reject, ranked=row.ranked,
        dynauth_clients=tuple(dynauth_client_value(c) for c in row.dynauth_clients))


def load_isps(session: Session) -> tuple[model.Isp, ...]:
    """Every ISP, by name."""
    query = select(IspRecord).order_by(IspRecord.name).options(
        selectinload(IspRecord.realms), selectinload(IspRecord.numbers),
        selectinload(IspRecord.servers), selectinload(IspRecord.tunnels),
        selectinload(IspRecord.windows), selectinload(IspRecord.dynauth_clients))
    return tuple(isp_value(row) for row in session.scalars(query))


def check_stored_isps(session: Session, replies, tunnels=None) -> list[ConfigError]:
    """What ``vpop check-config`` reports about the ISPs in the database: missing
    servers or LNS, regexes without a user group, templates that no longer render
    (``replies``: vpop.aaa.reply.ReplyRenderer; ``tunnels``: vpop.isp.tunnel.TunnelTemplates).
    A stored regex that no longer compiles is reported, not raised."""
    try:
        isps = load_isps(session)
    except ValueError as exc:
        return [ConfigError(f"a stored realm is not valid: {exc}", field="isp_realm")]
    return check_isps(isps, replies, tunnels)
