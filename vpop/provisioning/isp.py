"""[[isp]]: upstream ISPs with their realms, dialled numbers, RADIUS servers, tunnel
endpoints and schedule (format in docs/provisioning.md)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from vpop.errors import ConfigError
from vpop.isp import model
from vpop.isp.checks import isp_problems, template_problem
from vpop.isp.realms import check_rewrite, parse_realm, realm_text
from vpop.isp.tunnel import MAX_PREFERENCE, MEDIA
from vpop.provisioning.fields import (DESCRIPTION, NAME, SECRET, Check, Context, Field,
                                      Invalid, boolean, checked_text, choice, fold_env,
                                      from_env, integer, ip_address, numbers, text)
from vpop.provisioning.hashing import Hashing
from vpop.provisioning.nas import address_or_network, client_network
from vpop.provisioning.records import assign, columns, held_elsewhere, rows_by_keys
from vpop.provisioning.sections import Claim, Counts, Entry, Plan, Reference, Section
from vpop.radius.crypto import MAX_SALTED_VALUE
from vpop.store.dynauth_models import IspDynAuthClient
from vpop.store.isp_models import IspRecord, IspNumber, IspRealm, IspServer, IspTunnel, IspWindow
from vpop.store.isp_snapshot import (dynauth_client_value, server_value, tunnel_value,
                                     window_value)

MAX_PRICE = Decimal(10) ** 6  # Numeric(12, 6)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


# --- field checks ---------------------------------------------------------------------

def _range(minimum: int, maximum: int) -> Check:
    def check(value: Any, ctx: Context) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid("must be an integer")
        if not minimum <= value <= maximum:
            raise Invalid(f"must be from {minimum} to {maximum}")
        return value
    return check


def _realms(value: Any, ctx: Context) -> tuple[model.RealmRule, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid("must be a list of strings: '@realm', 'realm/' or '~regex'")
    rules: list[model.RealmRule] = []
    for index, written in enumerate(value, 1):
        try:
            rule = parse_realm(written)
        except ValueError as exc:
            raise Invalid(str(exc), f"realms[{index}]") from None
        if all((r.kind, r.pattern) != (rule.kind, rule.pattern) for r in rules):
            rules.append(rule)
    return tuple(rules)


def _rewrite(value: Any, ctx: Context) -> str:
    given = checked_text(value, 253, name=True)
    try:
        check_rewrite(given)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    return given


def _price(value: Any, ctx: Context) -> Decimal:
    """A number, or a string to keep every digit: "0.015". Floats are read as written."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Invalid('must be a number, or a string such as "0.015"')
    try:
        amount = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        raise Invalid(f"{value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise Invalid("must be a number from 0")
    if amount >= MAX_PRICE:
        raise Invalid(f"must be less than {MAX_PRICE}")
    if amount.as_tuple().exponent < -6:
        raise Invalid("has more than 6 decimal places")
    return amount


def _endpoint(value: Any, ctx: Context) -> str:
    """An IP address (canonical spelling) or a host name (RFC 2868 §3.3 allows both)."""
    if not isinstance(value, str):
        raise Invalid("must be a string")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if len(value) > 253 or not _HOSTNAME.fullmatch(value):
        raise Invalid("is not an IP address or host name")
    return value.lower()


def _tunnel_password(value: Any, ctx: Context) -> str:
    given = checked_text(value, MAX_SALTED_VALUE, name=True)
    if len(given.encode("utf-8")) > MAX_SALTED_VALUE:
        raise Invalid(f"is longer than {MAX_SALTED_VALUE} octets in UTF-8 (RFC 2868 §3.5)")
    return given


def _days(value: Any, ctx: Context) -> frozenset[int]:
    """"mon-fri", "sat,sun", ["mon", "wed-thu"]; a range may wrap ("fri-mon")."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise Invalid('must be days such as "mon-fri" or a list like ["sat", "sun"]')
    days: set[int] = set()
    for part in (p.strip().lower() for item in items for p in item.split(",")):
        first, dash, last = part.partition("-")
        try:
            start = _day(first)
            end = _day(last) if dash else start
        except ValueError:
            raise Invalid(f"unknown day {part!r}: use {', '.join(DAYS)} and ranges "
                           "such as mon-fri") from None
        days.update((start + step) % 7 for step in range((end - start) % 7 + 1))
    return frozenset(days)


def _day(text: str) -> int:
    text = text.strip()
    if text in DAYS:
        return DAYS.index(text)
    return _FULL_DAYS.index(text)


def _clock(value: Any, ctx: Context) -> dt.time:
    """"08:00" or a TOML time; "24:00" is the end of the day (stored as 00:00)."""
    if isinstance(value, dt.time):
        if value.tzinfo is not None:
            raise Invalid("must be a time of day without offset (UTC is meant)")
        return value
    found = _CLOCK.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        raise Invalid('must be a time of day such as "08:00"')
    hour, minute, second = int(found.group(1)), int(found.group(2)), int(found.group(3) or 0)
    if (hour, minute, second) == (24, 0, 0):
        return dt.time(0)
    if hour > 23 or minute > 59 or second > 59:
        raise Invalid('must be a time of day from "00:00" to "24:00"')
    return dt.time(hour, minute, second)


def _either(values: dict[str, Any], name: str, env_name: str, *, required: bool) -> Any:
    """A value given directly or through an environment variable, not both."""
    if reason := fold_env(values, name, env_name):
        raise Invalid(reason, env_name)
    if values[name] is None and required:
        raise Invalid(f"is required (or {env_name} naming an environment variable)", name)
    return values[name]


def _tables(field_name: str, fields: tuple[Field, ...],
            build: Callable[[dict[str, Any]], Any]) -> Check:
    """A list of tables, each checked field by field like a section's, then built into
    one value. The first problem is reported with its place: servers[2].secret."""
    known = {f.name: f for f in fields}

    def check(value: Any, ctx: Context) -> tuple:
        if not isinstance(value, list):
            raise Invalid(f"must be a list of tables with: {', '.join(known)}")
        out = []
        for index, item in enumerate(value, 1):
            where = f"{field_name}[{index}]"
            if not isinstance(item, dict):
                raise Invalid(f"must be a table with: {', '.join(known)}", where)
            for key in item:
                if key not in known:
                    raise Invalid(f"unknown field: use {', '.join(known)}", f"{where}.{key}")
            values: dict[str, Any] = {}
            for spec in fields:
                if spec.name not in item:
                    if spec.required:
                        raise Invalid("is required", f"{where}.{spec.name}")
                    values[spec.name] = spec.default
                    continue
                try:
                    values[spec.name] = spec.check(item[spec.name], ctx)
                except Invalid as exc:
                    raise Invalid(exc.reason, f"{where}.{exc.where or spec.name}") from None
            try:
                out.append(build(values))
            except Invalid as exc:
                raise Invalid(exc.reason, f"{where}.{exc.where}" if exc.where else where) \
                    from None
        return tuple(out)
    return check


def _server(values: dict[str, Any]) -> model.UpstreamServer:
    secret = _either(values, "secret", "secret_env", required=True)
    return model.UpstreamServer(
        name=values["name"] or "", address=values["address"], auth_port=values["auth_port"],
        acct_port=values["acct_port"], secret=secret.encode("utf-8"),
        priority=values["priority"], weight=values["weight"],
        require_message_authenticator=values["require_message_authenticator"])


def _tunnel(values: dict[str, Any]) -> model.TunnelEndpoint:
    password = _either(values, "password", "password_env", required=False)
    address, medium = values["address"], values["medium"]
    try:
        family = "IPv6" if ipaddress.ip_address(address).version == 6 else "IPv4"
    except ValueError:
        family = None  # a host name
    if medium is None:
        medium = family or "IPv4"
    elif family is not None and medium != family:
        raise Invalid(f"is {medium}, but the address {address} is {family}", "medium")
    return model.TunnelEndpoint(
        address=address, password=(password or "").encode("utf-8"), medium=medium,
        assignment_id=values["assignment_id"], preference=values["preference"],
        client_endpoint=values["client_endpoint"], client_auth_id=values["client_auth_id"])


def _dynauth_client(values: dict[str, Any]) -> model.DynAuthClient:
    secret = _either(values, "secret", "secret_env", required=True)
    return model.DynAuthClient(address=values["address"], secret=secret.encode("utf-8"))


def _window(values: dict[str, Any]) -> model.Window:
    return model.Window(weekdays=values["days"], start=values["from"], end=values["to"])


_SERVERS = _tables("servers", (
    Field("name", text(64, name=True)),
    Field("address", ip_address, required=True),
    Field("auth_port", _range(1, 65535), default=1812),
    Field("acct_port", _range(0, 65535), default=1813),
    Field("secret", SECRET),
    Field("secret_env", from_env(SECRET)),
    Field("priority", integer(0), default=1),
    Field("weight", integer(1), default=1),
    Field("require_message_authenticator", boolean, default=True),
), _server)

_TUNNELS = _tables("tunnels", (
    Field("address", _endpoint, required=True),
    Field("password", _tunnel_password),
    Field("password_env", from_env(_tunnel_password)),
    Field("medium", choice(MEDIA)),
    Field("assignment_id", text(253, name=True)),
    Field("preference", _range(0, MAX_PREFERENCE), default=1),
    Field("client_endpoint", _endpoint),
    Field("client_auth_id", text(253, name=True)),
), _tunnel)

_DYNAUTH_CLIENTS = _tables("dynauth_clients", (
    Field("address", address_or_network, required=True),
    Field("secret", SECRET),
    Field("secret_env", from_env(SECRET)),
), _dynauth_client)

_SCHEDULE = _tables("schedule", (
    Field("days", _days, required=True),
    Field("from", _clock, default=dt.time(0)),
    Field("to", _clock, default=dt.time(0)),
), _window)


# --- checks across fields, the file and the database ------------------------------------

def isp_value(values: dict[str, Any]) -> model.Isp:
    """The ISP a checked [[isp]] table describes, as the pipeline will see it."""
    return model.Isp(
        name=values["name"], mode=values["mode"], realms=values["realms"],
        numbers=values["numbers"], strip_realm=values["strip_realm"],
        rewrite=values["rewrite"], servers=values["servers"], balance=values["balance"],
        tunnels=values["tunnels"], price_per_minute=values["price_per_minute"],
        price_per_gb=values["price_per_gb"], schedule=values["schedule"],
        status=values["status"], template=values["template"],
        timeout_reject=values["timeout_reject"], ranked=values["ranked"],
        dynauth_clients=values["dynauth_clients"])


def _finish_isp(values: dict[str, Any]) -> Iterator[tuple[str, str]]:
    # A server without a name is named after its ISP and address: QoS is kept by name.
    servers = []
    for index, server in enumerate(values["servers"], 1):
        if not server.name:
            server = dataclasses.replace(server, name=f"{values['name']}/{server.address}")
            if len(server.name) > 64:
                yield (f"servers[{index}].name",
                       f"is required: {server.name!r} would be longer than 64 characters")
        servers.append(server)
    values["servers"] = tuple(servers)
    seen: dict[Any, int] = {}
    for index, client in enumerate(values["dynauth_clients"], 1):
        first = seen.setdefault(client_network(client.address), index)
        if first != index:
            yield (f"dynauth_clients[{index}].address",
                   f"{client.address} is also dynauth_clients[{first}]'s")
    yield from isp_problems(isp_value(values))


def _isp_claims(entry: Entry) -> Iterator[Claim]:
    for rule in entry.values["realms"]:
        yield Claim(what="realm", value=(rule.kind, rule.pattern), shown=realm_text(rule),
                     field="realms")
    for number in entry.values["numbers"]:
        yield Claim(what="dialled number", value=number, shown=number, field="numbers")
    for server in entry.values["servers"]:
        yield Claim(what="server name", value=server.name, shown=repr(server.name),
                     field="servers")
    for client in entry.values["dynauth_clients"]:
        yield Claim(what="dynamic-authorization client", value=client_network(client.address),
                    shown=client.address, field="dynauth_clients")


def _check_templates(plan: Plan) -> Iterator[ConfigError]:
    entries = [e for e in plan["isp"] if e.values["template"]]
    if not entries:
        return
    replies = plan.context.replies if plan.context is not None else None
    if replies is None:
        from vpop.aaa.reply import ReplyRenderer
        from vpop.radius.dictionary import Dictionary, shipped_dictionary
        replies = ReplyRenderer(Dictionary(shipped_dictionary()))
    for entry in entries:
        reason = template_problem(isp_value(dict(entry.values)), replies)
        if reason:
            yield plan.problem(entry, "template", reason)


def _check_isps_db(session: Session, plan: Plan) -> Iterator[ConfigError]:
    """Realms, numbers and server names of ISPs outside the file cannot move into it."""
    entries = plan["isp"]
    if not entries:
        return
    claims = [(entry, claim) for entry in entries for claim in _isp_claims(entry)]
    wanted = {what: [c.value for _, c in claims if c.what == what]
              for what in ("realm", "dialled number", "server name")}
    clients = {c.value for _, c in claims if c.what == "dynamic-authorization client"}
    owners: dict[tuple[str, Any], str] = {}
    for kind, pattern, owner in rows_by_keys(
            session, select(IspRealm.kind, IspRealm.pattern, IspRecord.name).join(IspRealm.isp),
            IspRealm.pattern, (pattern for _, pattern in wanted["realm"])):
        owners["realm", (kind, pattern)] = owner
    for number, owner in rows_by_keys(
            session, select(IspNumber.number, IspRecord.name).join(IspNumber.isp),
            IspNumber.number, wanted["dialled number"]):
        owners["dialled number", number] = owner
    for name, owner in rows_by_keys(
            session, select(IspServer.name, IspRecord.name).join(IspServer.isp),
            IspServer.name, wanted["server name"]):
        owners["server name", name] = owner
    if clients:  # few rows, and 192.0.2.1 is 192.0.2.1/32: compared as networks
        for address, owner in session.execute(
                select(IspDynAuthClient.address, IspRecord.name).join(
                    IspRecord, IspRecord.id == IspDynAuthClient.isp_id)):
            if client_network(address) in clients:
                owners["dynamic-authorization client", client_network(address)] = owner
    yield from held_elsewhere(plan, entries, claims, owners, "ISP")


# --- writing ------------------------------------------------------------------------------

def _server_row(server: model.UpstreamServer) -> IspServer:
    return IspServer(name=server.name, address=server.address, auth_port=server.auth_port,
                     acct_port=server.acct_port, secret=server.secret.decode("utf-8"),
                     priority=server.priority, weight=server.weight,
                     require_message_authenticator=server.require_message_authenticator)


def _tunnel_row(tunnel: model.TunnelEndpoint) -> IspTunnel:
    return IspTunnel(address=tunnel.address, password=tunnel.password.decode("utf-8") or None,
                     medium=tunnel.medium, assignment_id=tunnel.assignment_id,
                     preference=tunnel.preference, client_endpoint=tunnel.client_endpoint,
                     client_auth_id=tunnel.client_auth_id)


def _window_row(window: model.Window) -> IspWindow:
    return IspWindow(weekdays=",".join(str(d) for d in sorted(window.weekdays)),
                     start=window.start, end=window.end)


def _dynauth_client_row(client: model.DynAuthClient) -> IspDynAuthClient:
    return IspDynAuthClient(address=client.address, secret=client.secret.decode("utf-8"))


# Ordered children: (relationship, field, row -> value, value -> row). Replaced as a whole
# when they differ, so the stored order is the file's (servers of equal priority are
# tried in that order).
_LISTS = (("servers", "servers", server_value, _server_row),
          ("tunnels", "tunnels", tunnel_value, _tunnel_row),
          ("windows", "schedule", window_value, _window_row),
          ("dynauth_clients", "dynauth_clients", dynauth_client_value, _dynauth_client_row))


def _write_isps(session: Session, plan: Plan, hashing: Hashing) -> Counts:
    entries = plan["isp"]
    if not entries:
        return Counts()
    existing = {row.name: row for (row,) in rows_by_keys(
        session, select(IspRecord).options(
            selectinload(IspRecord.realms), selectinload(IspRecord.numbers),
            selectinload(IspRecord.servers), selectinload(IspRecord.tunnels),
            selectinload(IspRecord.windows), selectinload(IspRecord.dynauth_clients)),
        IspRecord.name, (e.key for e in entries))}
    changed: set[str] = set()
    # Free what moves or is replaced first: a flush inserts before it deletes, which the
    # unique realms, numbers and server names would refuse.
    for entry in entries:
        row, values = existing.get(entry.key), entry.values
        if row is None:
            continue
        realms = {(r.kind, r.pattern) for r in values["realms"]}
        kept_numbers = set(values["numbers"])
        for gone in [r for r in row.realms if (r.kind, r.pattern) not in realms]:
            row.realms.remove(gone)
            changed.add(entry.key)
        for gone in [n for n in row.numbers if n.number not in kept_numbers]:
            row.numbers.remove(gone)
            changed.add(entry.key)
        for relationship, field, to_value, _ in _LISTS:
            current = getattr(row, relationship)
            if tuple(to_value(item) for item in current) != tuple(values[field]):
                current.clear()
                changed.add(entry.key)
    session.flush()
    created = 0
    for entry in entries:
        values = entry.values
        wanted = columns(SECTION, entry)
        row = existing.get(entry.key)
        if row is None:
            row = IspRecord(**wanted)
            session.add(row)
            created += 1
        elif assign(row, wanted):
            changed.add(entry.key)
        have = {(r.kind, r.pattern) for r in row.realms}
        row.realms.extend(IspRealm(kind=r.kind, pattern=r.pattern) for r in values["realms"]
                          if (r.kind, r.pattern) not in have)
        have_numbers = {n.number for n in row.numbers}
        row.numbers.extend(IspNumber(number=n) for n in values["numbers"]
                           if n not in have_numbers)
        for relationship, field, _, to_row in _LISTS:
            current = getattr(row, relationship)
            if not current:  # new, or cleared above because it differs
                current.extend(to_row(item) for item in values[field])
        if len(row.realms) > len(have) or len(row.numbers) > len(have_numbers):
            changed.add(entry.key)
    session.flush()  # the profile and subscriber sections refer to these by id
    updated = len(changed & set(existing))
    return Counts(created=created, updated=updated,
                  unchanged=len(entries) - created - updated)


SECTION = Section(
    name="isp", key="name",
    fields=(
        Field("name", NAME, required=True),
        Field("mode", choice(model.MODES), default="proxy"),
        Field("realms", _realms, default=(), column=None),
        Field("numbers", numbers("numbers"), default=(), column=None),
        Field("strip_realm", boolean, default=True),
        Field("rewrite", _rewrite),
        Field("balance", choice(model.BALANCES), default="failover"),
        Field("servers", _SERVERS, default=(), column=None),
        Field("tunnels", _TUNNELS, default=(), column=None),
        Field("price_per_minute", _price, default=Decimal(0)),
        Field("price_per_gb", _price, default=Decimal(0)),
        Field("schedule", _SCHEDULE, default=(), column=None),
        Field("dynauth_clients", _DYNAUTH_CLIENTS, default=(), column=None),
        Field("status", choice(model.STATUSES), default="active"),
        Field("template", text(128, name=True)),
        Field("timeout_reject", boolean, default=True),
        Field("ranked", boolean, default=False),
        DESCRIPTION,
    ),
    finish=_finish_isp, claims=_isp_claims, check_file=_check_templates,
    check_db=_check_isps_db, write=_write_isps,
)

# A field of another section naming an ISP ([[isp]] in the file or in the database).
ISP_REFERENCE = Reference(field="isp", section="isp", model=IspRecord, key="name", column="isp_id")
