"""[[nas]]: the RADIUS clients, by address or network, with their shared secret."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpop.errors import ConfigError
from vpop.provisioning.fields import (DESCRIPTION, NAME, SECRET, Context, Field, Invalid,
                                      choice, fold_env, from_env, ip_address)
from vpop.provisioning.hashing import Hashing
from vpop.provisioning.records import write_by_key
from vpop.provisioning.sections import Claim, Counts, Entry, Plan, Section
from vpop.radius.clients import NAS_TYPES
from vpop.store.models import Nas

MESSAGE_AUTHENTICATOR = ("yes", "no", "auto")


def address_or_network(value: Any, ctx: Context) -> str:
    """An address stays an address, a network a network, both in canonical spelling."""
    if not isinstance(value, str):
        raise Invalid("must be a string")
    try:
        if "/" in value:
            return str(ipaddress.ip_network(value, strict=True))
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise Invalid(f"is not an IP address or network ({exc})") from None


def _finish(values: dict[str, Any]) -> Iterator[tuple[str, str]]:
    if reason := fold_env(values, "secret", "secret_env"):
        yield "secret_env", reason
    elif values["secret"] is None:
        yield "secret", "is required (or secret_env naming an environment variable)"
    if reason := fold_env(values, "das_secret", "das_secret_env"):
        yield "das_secret_env", reason


def _port(value: Any, ctx: Context) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("must be an integer")
    if not 1 <= value <= 65535:
        raise Invalid("must be a port number from 1 to 65535")
    return value


def client_network(address: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """192.0.2.1 and 192.0.2.1/32 are the same client."""
    try:
        return ipaddress.ip_network(address, strict=False)
    except ValueError:
        return None


def _claims(entry: Entry) -> Iterator[Claim]:
    address = entry.values["address"]
    yield Claim(what="address", value=client_network(address), shown=address, field="address")


def _check_db(session: Session, plan: Plan) -> Iterator[ConfigError]:
    entries = plan["nas"]
    if not entries:
        return
    names = {e.key for e in entries}
    owners = {client_network(address): name for name, address in
              session.execute(select(Nas.name, Nas.address)) if name not in names}
    for entry in entries:
        owner = owners.get(client_network(entry.values["address"]))
        if owner is not None:
            yield plan.problem(entry, "address", f"address {entry.values['address']} belongs "
                               f"to NAS {owner!r}, which is not in this file")


def _write(session: Session, plan: Plan, hashing: Hashing) -> Counts:
    return write_by_key(session, plan, SECTION, Nas, Nas.name)


SECTION = Section(
    name="nas", key="name",
    fields=(
        Field("name", NAME, required=True),
        Field("address", address_or_network, required=True),
        Field("secret", SECRET),
        Field("secret_env", from_env(SECRET), column=None),
        Field("nas_type", choice(NAS_TYPES), default="generic"),
        Field("require_message_authenticator", choice(MESSAGE_AUTHENTICATOR), default="yes"),
        # Where the NAS takes CoA and Disconnect requests (RFC 5176, docs/dynauth.md):
        # absent, its own address (or, for a network, the address its session reported),
        # port 3799 and its RADIUS secret.
        Field("das_address", ip_address),
        Field("das_port", _port, default=3799),
        Field("das_secret", SECRET),
        Field("das_secret_env", from_env(SECRET), column=None),
        DESCRIPTION,
    ),
    finish=_finish, claims=_claims, check_db=_check_db, write=_write,
)
