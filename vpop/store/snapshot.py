"""Read the NAS clients and subscribers the request pipeline serves from memory.

Subscribers are read as plain rows in batches (no ORM objects, a server-side cursor
on PostgreSQL), so loading a million of them takes little more memory than the
snapshot itself, and what the load leaves behind is little more than the snapshot.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpop.aaa.subscribers import Account, ServiceProfile, SubscriberChanges, SubscriberSnapshot
from vpop.radius.clients import NasClient
from vpop.store.engine import release_cache
from vpop.store.isp_models import IspRecord
from vpop.store.models import Nas, Profile, Subscriber, SubscriberCallerId, SubscriberLine

OVERRIDES = ("rate_down_kbps", "rate_up_kbps", "address_pool", "session_timeout", "idle_timeout")
# Rows fetched at a time. Few: a reload's short-lived rows and accounts then fit in the
# free space of the allocator's arenas; 10,000 of them took new arenas, which the few
# lasting objects made meanwhile kept from being given back (bench/HISTORY.md).
BATCH = 200
_IN_LIST = 500  # names per IN (...) when loading some subscribers

_ACCOUNT_COLUMNS = (
    Subscriber.username, Subscriber.profile_id, Subscriber.enabled, Subscriber.expires_at,
    Subscriber.auth_methods, Subscriber.password_hash, Subscriber.nt_hash,
    Subscriber.cleartext_password, Subscriber.framed_ip, Subscriber.isp_id,
    *(getattr(Subscriber, name) for name in OVERRIDES))
_CALLER_IDS = select(SubscriberCallerId.number, Subscriber.username).join(
    SubscriberCallerId.subscriber)
_LINES = select(SubscriberLine.kind, SubscriberLine.value, Subscriber.username).join(
    SubscriberLine.subscriber)


def load_clients(session: Session) -> list[NasClient]:
    return [NasClient(name=nas.name, network=ipaddress.ip_network(nas.address, strict=False),
                      secret=nas.secret.encode(), nas_type=nas.nas_type,
                      require_message_authenticator=nas.require_message_authenticator)
            for nas in session.scalars(select(Nas))]


def load_subscribers(session: Session, previous: SubscriberSnapshot | None = None
                     ) -> SubscriberSnapshot:
    """Every subscriber. With `previous` (what the worker serves), accounts, names,
    caller IDs and lines that did not change are its objects, not new ones: a reload
    then allocates little more than what changed, so the memory the old snapshot
    leaves free does not stay scattered between new objects."""
    old_accounts, old_numbers, old_lines = previous.contents() if previous else ({}, {}, {})
    accounts = _Accounts(session, old_accounts.values())
    by_name: dict[str, Account] = {}
    for row in _batches(session, select(*_ACCOUNT_COLUMNS)):
        account = accounts.value(row)
        old = old_accounts.get(account.username)
        if old == account:
            account = old
        by_name[account.username] = account
    # The maps hold the accounts' own name strings, not a copy per row. (A subscriber
    # committed after the first query is not in by_name: it comes with the next load.)
    kept = {number: number for number in old_numbers}  # the key objects already held
    caller_ids = {kept.get(number, number): account.username
                  for number, name in _batches(session, _CALLER_IDS)
                  if (account := by_name.get(name)) is not None}
    kept = {line: line for line in old_lines}
    lines: dict[tuple[str, str], str] = {}
    for kind, value, name in _batches(session, _LINES):
        if (account := by_name.get(name)) is not None:
            key = (kind, value)
            lines[kept.get(key, key)] = account.username
    del kept
    release_cache(session)  # what reading every subscriber filled
    return SubscriberSnapshot(by_name.values(), caller_ids, lines)


def load_profiles(session: Session) -> dict[str, ServiceProfile]:
    """Every profile by name, as a directory's subscribers take them (docs/ldap.md)."""
    isp_names = dict(session.execute(select(IspRecord.id, IspRecord.name)).all())
    return {row.name: ServiceProfile(
        name=row.name, class_=row.class_, caller_id_login=row.caller_id_login,
        isp=isp_names.get(row.isp_id), isp_failover=row.isp_failover,
        **{name: getattr(row, name) for name in OVERRIDES})
        for row in session.execute(select(
            Profile.name, Profile.class_, Profile.caller_id_login, Profile.isp_id,
            Profile.isp_failover, *(getattr(Profile, name) for name in OVERRIDES)))}


def load_subscriber_changes(session: Session, names: Collection[str]) -> SubscriberChanges:
    """These subscribers as they are now (None for those no longer stored), with their
    caller IDs and lines: what SubscriberSnapshot.update takes."""
    accounts = _Accounts(session)
    found: dict[str, Account | None] = dict.fromkeys(names)
    caller_ids: dict[str, str] = {}
    lines: dict[tuple[str, str], str] = {}
    ordered = sorted(names)
    for start in range(0, len(ordered), _IN_LIST):
        chunk = ordered[start:start + _IN_LIST]
        for row in session.execute(select(*_ACCOUNT_COLUMNS)
                                   .where(Subscriber.username.in_(chunk))):
            found[row.username] = accounts.value(row)
        for number, name in session.execute(_CALLER_IDS.where(Subscriber.username.in_(chunk))):
            caller_ids[number] = name
        for kind, value, name in session.execute(_LINES.where(Subscriber.username.in_(chunk))):
            lines[(kind, value)] = name
    return SubscriberChanges(accounts=found, caller_ids=caller_ids, lines=lines)


def _batches(session: Session, statement):
    return session.execute(statement.execution_options(yield_per=BATCH))


class _Accounts:
    """Subscriber rows into Accounts; alike profiles and sets of methods are one object."""

    def __init__(self, session: Session, previous: Iterable[Account] = ()):
        self.isp_names = dict(session.execute(select(IspRecord.id, IspRecord.name)).all())
        self.bases = {p.id: p for p in session.execute(select(
            Profile.id, Profile.name, Profile.class_, Profile.caller_id_login, Profile.isp_id,
            Profile.isp_failover, *(getattr(Profile, name) for name in OVERRIDES)))}
        self.profiles: dict[tuple, ServiceProfile] = {}
        self.methods: dict[str, frozenset[str]] = {}
        # The profiles and method sets of a previous load, to be shared again.
        self.known: dict[object, object] = {}
        for account in previous:
            self.known.setdefault(account.profile, account.profile)
            self.known.setdefault(account.methods, account.methods)

    def value(self, row) -> Account:
        base = self.bases[row.profile_id]
        values = tuple(getattr(base, name) if getattr(row, name) is None
                       else getattr(row, name) for name in OVERRIDES)
        key = (base.id, *values)
        profile = self.profiles.get(key)
        if profile is None:
            profile = ServiceProfile(
                name=base.name, class_=base.class_, caller_id_login=base.caller_id_login,
                isp=self.isp_names.get(base.isp_id), isp_failover=base.isp_failover,
                **dict(zip(OVERRIDES, values)))
            profile = self.profiles[key] = self.known.get(profile, profile)
        allowed = self.methods.get(row.auth_methods)
        if allowed is None:
            allowed = frozenset(m for m in row.auth_methods.split(",") if m)
            allowed = self.methods[row.auth_methods] = self.known.get(allowed, allowed)
        return Account(
            username=row.username, profile=profile, enabled=row.enabled,
            expires_at=row.expires_at, methods=allowed, password_hash=row.password_hash,
            nt_hash=bytes.fromhex(row.nt_hash) if row.nt_hash else None,
            cleartext=row.cleartext_password.encode()
            if row.cleartext_password is not None else None,
            framed_ip=row.framed_ip,
            isp=self.isp_names[row.isp_id] if row.isp_id is not None else profile.isp)
