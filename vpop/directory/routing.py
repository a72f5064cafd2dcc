"""Which directory a lookup goes to, and the subscriber directory the pipeline sees
when LDAP directories are configured (docs/ldap.md).

The provisioned subscribers (the store's snapshot, in memory) are asked first, for
every lookup. Then the directories: a user name in the realm of an ISP with a
directory of its own goes to that directory only; every other lookup (user names, and
the caller-ID and line lookups that have a filter) goes to the global directory. What
a directory's cache knows is answered on the event loop (`at_once`); the rest is asked
by `lookup`, which never raises: a directory that cannot be reached, or an entry that
cannot be served, comes back as the reason in `Identified.way`. A set made `on_loop`
(a worker's) has `lookup` as a coroutine function, which the shell awaits on its event
loop (the directories then search without a thread); otherwise it runs in a thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from vpop.aaa.identify import (DIRECTORY_UNAVAILABLE_WAY, DIRECTORY_UNUSABLE_WAY, NOBODY,
                                Identified, Lookup, first_found)
from vpop.aaa.subscribers import Account, SubscriberChanges, SubscriberSnapshot
from vpop.directory.mapping import UnusableEntry
from vpop.errors import VpopError
from vpop.isp.realms import find_realm



class DirectoryUnavailable(VpopError):
    """No server of the directory answered (down, silent, TLS or bind failing)."""


class RemoteDirectory(Protocol):
    """One LDAP directory as the set uses it (server/ldap_directory.py)."""
    name: str

    def search_filter(self, way: str, kind: str, value: str, user: str, realm: str
                      ) -> str | None: ...
    def cached(self, search: str) -> tuple[bool, Account | None]: ...
    def find(self, search: str, looked_up: str) -> Account | None: ...
    async def find_on_loop(self, search: str, looked_up: str, ask_cache: bool = True
                           ) -> Account | None: ...


# (directory, search filter, the lookup's way, the name it was asked by)
Route = tuple[RemoteDirectory, str, str, str]
ROUTED_HELD = 10_000  # routes kept for lookups to follow (more: they never followed)


class DirectorySet:
    """The provisioned subscribers, then the global directory and the ISPs' own."""

    remote = True

    def __init__(self, local: SubscriberSnapshot, shared: RemoteDirectory | None = None,
                 by_isp: Mapping[str, RemoteDirectory] | None = None, isps: tuple = (),
                 delimiter: str = "@", on_loop: bool = False):
        self.local = local
        if on_loop:  # what the identify stage defers is then awaited on the event loop
            self.lookup = self.lookup_on_loop
        self.shared = shared
        self.by_isp = dict(by_isp or {})
        self.isps = tuple(isp for isp in isps if isp.name in self.by_isp)
        self.delimiter = delimiter
        # The routes at_once worked out for lookups it could not answer, kept (with the
        # list, so that its id is not reused meanwhile, and the route whose search its
        # cache did not know) for the lookup that follows.
        self._routed: dict[int, tuple[list[Lookup], list[Route], int]] = {}

    def __len__(self) -> int:
        return len(self.local)

    def directories(self) -> list[RemoteDirectory]:
        return ([self.shared] if self.shared is not None else []) + list(self.by_isp.values())

    # The in-memory lookups (the portal, the generation follower): the store's part.
    def by_name(self, username: str) -> Account | None:
        return self.local.by_name(username)

    def by_caller_id(self, number: str) -> Account | None:
        return self.local.by_caller_id(number)

    def by_line(self, kind: str, value: str) -> Account | None:
        return self.local.by_line(kind, value)

    def update(self, changes: SubscriberChanges) -> None:
        self.local.update(changes)

    def contents(self):
        return self.local.contents()

    def routes(self, wanted: list[Lookup]) -> list[Route]:
        """The searches the lookups make, in order, each once."""
        found: list[Route] = []
        seen = set()
        owned = False  # the name is in an ISP's realm: its bare form is that ISP's too
        for way, kind, value in wanted:
            directory, user, realm = self.shared, value, ""
            if way == "user_name":
                match = find_realm(value, self.isps) if self.isps else None
                if match is not None:
                    directory, user = self.by_isp[match.isp.name], match.user
                    realm = value[len(user) + 1:] if value.startswith(user) else ""
                    owned = True
                elif owned:
                    continue
                elif self.delimiter in value:
                    user, _, realm = value.rpartition(self.delimiter)
            if directory is None:
                continue
            search = directory.search_filter(way, kind, value, user, realm)
            if search is None or (directory, search) in seen:
                continue
            seen.add((directory, search))
            found.append((directory, search, way, value))
        return found

    def at_once(self, wanted: list[Lookup]) -> Identified | None:
        """What is known without waiting: a provisioned subscriber, or what the
        directories' caches hold for every search before the first found; None: ask."""
        found = first_found(self.local, wanted)
        if found.account is not None:
            return found
        routes = self.routes(wanted)
        for index, (directory, search, way, _) in enumerate(routes):
            known, account = directory.cached(search)
            if not known:
                if len(self._routed) >= ROUTED_HELD:  # lookups that never followed
                    self._routed.clear()
                self._routed[id(wanted)] = (wanted, routes, index)
                return None
            if account is not None:
                return Identified(account, way)
        return NOBODY

    def _routes_for(self, wanted: list[Lookup]) -> tuple[list[Route], int]:
        """The routes at_once worked out for these very lookups and the one whose search
        the cache did not know (-1: none), else anew."""
        held = self._routed.pop(id(wanted), None)
        if held is not None and held[0] is wanted:
            return held[1], held[2]
        return self.routes(wanted), -1

    def lookup(self, wanted: list[Lookup]) -> Identified:
        """Off the event loop: ask the directories in turn until one finds the
        subscriber. Never raises."""
        problem = NOBODY
        for directory, search, way, value in self._routes_for(wanted)[0]:
            try:
                account = directory.find(search, value)
            except (DirectoryUnavailable, UnusableEntry) as exc:
                problem = _problem(problem, directory, exc)
                continue
            if account is not None:
                return Identified(account, way)
        return problem

    async def lookup_on_loop(self, wanted: list[Lookup]) -> Identified:
        """`lookup` for the event loop: each directory's find_on_loop awaited. The
        search at_once just found unknown to the cache is not looked up there again
        (the shell steps this coroutine at once, in the same turn of the loop)."""
        problem = NOBODY
        routes, unknown = self._routes_for(wanted)
        for index, (directory, search, way, value) in enumerate(routes):
            try:
                account = await directory.find_on_loop(search, value,
                                                       ask_cache=index != unknown)
            except (DirectoryUnavailable, UnusableEntry) as exc:
                problem = _problem(problem, directory, exc)
                continue
            if account is not None:
                return Identified(account, way)
        return problem


def _problem(problem: Identified, directory: RemoteDirectory, exc: Exception) -> Identified:
    """Why nobody was found so far: the first directory unavailable, unless an entry
    found later cannot be served."""
    if isinstance(exc, UnusableEntry):
        return Identified(None, f"{DIRECTORY_UNUSABLE_WAY}directory {directory.name}: {exc}")
    if problem is NOBODY:
        return Identified(None, f"{DIRECTORY_UNAVAILABLE_WAY}directory {directory.name}: {exc}")
    return problem
