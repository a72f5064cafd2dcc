"""Subscribers as the request pipeline sees them, and the lookups it makes.

The store loads a snapshot of these values; an LDAP directory implements the
same Protocol. Profiles arrive with the subscriber's overrides already applied.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

METHODS = ("pap", "chap", "mschap", "mschapv2", "eap-md5")
LINE_KINDS = ("circuit_id", "remote_id", "nas_port_id")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceProfile:
    name: str
    rate_down_kbps: int | None = None
    rate_up_kbps: int | None = None
    address_pool: str | None = None
    session_timeout: int | None = None
    idle_timeout: int | None = None
    class_: str | None = None
    caller_id_login: bool = False
    isp: str | None = None  # the ISP for subscribers who chose none
    isp_failover: bool = False  # another ISP may stand in when that one is unavailable


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    username: str
    profile: ServiceProfile
    enabled: bool = True
    expires_at: dt.datetime | None = None
    methods: frozenset[str] = frozenset()
    password_hash: str | None = None
    nt_hash: bytes | None = None
    cleartext: bytes | None = None
    framed_ip: str | None = None
    isp: str | None = None  # the subscriber's chosen ISP, else the profile's

    @property
    def isp_failover(self) -> bool:
        return self.profile.isp_failover


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectoryAccount(Account):
    """A subscriber found in a directory server (docs/ldap.md), by its entry's DN.
    `check_password`, when set, checks a PAP password there by binding as the
    subscriber, off the event loop: True, False, or why the directory cannot tell."""
    dn: str = ""
    # Not part of what the account is (each lookup makes its own): an entry found again
    # unchanged is an equal account, and its rendered reply is used again.
    check_password: Callable[[bytes], bool | str] | None = field(default=None, compare=False)


class SubscriberDirectory(Protocol):
    """Where subscribers are looked up. `remote`: a lookup may wait (a directory server):
    the identify stage then asks `at_once(lookups)` for what is known without waiting
    (an Identified, or None) and otherwise hands `lookup(lookups)` to the shell to run
    off the event loop while the request waits, as a slow password hash is; an
    in-memory directory answers at once."""
    remote: bool

    def by_name(self, username: str) -> Account | None: ...
    def by_caller_id(self, number: str) -> Account | None: ...
    def by_line(self, kind: str, value: str) -> Account | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriberChanges:
    """Some subscribers as they are now: `accounts` maps each changed name to its
    account, None for one that is gone; with their caller IDs and lines."""

    accounts: dict[str, Account | None]
    caller_ids: dict[str, str]
    lines: dict[tuple[str, str], str]


class SubscriberSnapshot:
    """In-memory directory, loaded from the store at start and on reload, and kept
    current by `update` as provisioning changes subscribers."""

    remote = False  # answers at once

    def __init__(self, accounts: Iterable[Account], caller_ids: dict[str, str],
                 lines: dict[tuple[str, str], str]):
        self._by_name = {a.username: a for a in accounts}
        self._caller_ids = caller_ids
        self._lines = lines

    def __len__(self) -> int:
        return len(self._by_name)

    def by_name(self, username: str) -> Account | None:
        return self._by_name.get(username)

    def by_caller_id(self, number: str) -> Account | None:
        name = self._caller_ids.get(number)
        return self._by_name.get(name) if name else None

    def by_line(self, kind: str, value: str) -> Account | None:
        name = self._lines.get((kind, value))
        return self._by_name.get(name) if name else None

    def contents(self) -> tuple[dict[str, Account], dict[str, str],
                                dict[tuple[str, str], str]]:
        """The accounts by name, caller IDs and lines, to read only: a new load keeps
        the objects of what did not change."""
        return self._by_name, self._caller_ids, self._lines

    def update(self, changes: SubscriberChanges) -> None:
        """Replace the changed subscribers, their caller IDs and lines in place. The
        caller IDs and lines they held are found by looking through all of them, which
        is quick next to loading everything again."""
        names = changes.accounts.keys()
        for held in (self._caller_ids, self._lines):
            for key in [key for key, name in held.items() if name in names]:
                del held[key]
        for name, account in changes.accounts.items():
            if account is None:
                self._by_name.pop(name, None)
            else:
                self._by_name[name] = account
        self._caller_ids.update(changes.caller_ids)
        self._lines.update(changes.lines)
