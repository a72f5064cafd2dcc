"""LDAP directories on ldap3 (docs/ldap.md): servers tried in order, TLS (ldaps:// or
StartTLS) verified against the configured CA, a pool of persistent connections kept
healthy by a thread of their own, and the lookups and binds the DirectorySet asks for,
run in the worker's threads while the request waits.

ldap3 opens, secures and binds the connections and runs the rare operations (health
checks, check-config). A lookup's search and a subscriber's bind are written and read
on the connection's socket as vpop.directory.wire encodes them: the same bytes, at a
tenth of the CPU (docs/benchmarks.md, LDAP directories).

Every operation has a deadline (connect_timeout, timeout): a directory that is down
or silent answers DirectoryUnavailable within them, and a server that failed is not
tried again by requests until the health thread has reached it, so an outage costs
requests nothing but the cache's answer or an Access-Reject.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import itertools
import logging
import math
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Mapping

import ldap3
from ldap3.core import exceptions as lx
from ldap3.core.results import RESULT_CODES

from vpop import config as config_module
from vpop.aaa.subscribers import Account, ServiceProfile
from vpop.config import DirectorySettings, Settings
from vpop.directory import wire
from vpop.directory.cache import CachePolicy, LookupCache
from vpop.directory.filters import around_value, render
from vpop.directory.health import DirectoryHealth
from vpop.directory.mapping import Entry, UnusableEntry, account_from_entry, attribute_names
from vpop.directory.routing import DirectorySet, DirectoryUnavailable
from vpop.errors import ConfigError
from vpop.isp.selection import IspHealth

log = logging.getLogger(__name__)
LINE_FILTERS = {"circuit_id": "circuit_id_filter", "remote_id": "remote_id_filter",
                "nas_port_id": "nas_port_id_filter"}
# Bind results that mean "not this password" (RFC 4511 §4.1.9): 49 invalidCredentials,
# 48 inappropriateAuthentication, 50 insufficientAccessRights; others are failures.
WRONG_PASSWORD = (48, 49, 50)
SEARCH_OK = (0, 4)  # success, sizeLimitExceeded (with entries)
NO_SUCH_OBJECT = 32
RECEIVE_SIZE = 65536
MAX_MESSAGE_ID = 2**31 - 1  # RFC 4511 §4.1.1: 1 .. maxInt for requests
_message_ids = itertools.count()


def tls_for(settings: DirectorySettings, relative: Callable[[str], str],
            field: tuple[str, str] = ("directory", "ca_file")) -> ldap3.Tls | None:
    """The TLS settings the servers need (None: plain ldap:// without StartTLS). A CA
    file that cannot be read or holds no certificate is a ConfigError at once."""
    if not (settings.start_tls or any(u.startswith("ldaps://") for u in settings.servers)):
        return None
    ca = relative(settings.ca_file) if settings.ca_file else None
    if ca:
        try:
            context = ssl.create_default_context(cafile=ca)
        except FileNotFoundError:
            raise ConfigError(f"{ca}: no such file", field=".".join(field)) from None
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(f"{ca}: not a CA certificate file in PEM ({exc})",
                              field=".".join(field)) from None
        if not context.get_ca_certs():
            raise ConfigError(f"{ca}: holds no CA certificate", field=".".join(field))
    return ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca)


def _server(url: str, settings: DirectorySettings, tls) -> ldap3.Server:
    return ldap3.Server(url.rstrip("/"), tls=tls, connect_timeout=settings.connect_timeout,
                        get_info=ldap3.NONE)


def short(exc: BaseException) -> str:
    """An ldap3 error in one line, without the certificate dumps some of them carry."""
    text = " ".join(str(exc).split())
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS: the server's certificate does not verify against ca_file"
    if "doesn't match any name" in text:
        return "TLS: the server's certificate is not for this host name"
    return text[:300] or type(exc).__name__


class _Pool:
    """At most `size` connections, idle ones kept open; a thread takes one for itself."""

    def __init__(self, opener: Callable[[], ldap3.Connection], size: int, wait: float):
        self.opener = opener
        self.size = size
        self.wait = wait
        self._idle: list[ldap3.Connection] = []
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()

    def take(self, block: bool = True) -> tuple[ldap3.Connection | None, bool]:
        """(connection, fresh); (None, False) when not blocking and none is free."""
        if not self._slots.acquire(timeout=self.wait if block else 0):
            if not block:
                return None, False
            raise DirectoryUnavailable(f"no connection free within {self.wait:g} s")
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is not None:
            return conn, False
        if not block:
            self._slots.release()
            return None, False
        try:
            return self.opener(), True
        except BaseException:
            self._slots.release()
            raise

    def give_back(self, conn: ldap3.Connection) -> None:
        with self._lock:
            self._idle.append(conn)
        self._slots.release()

    def discard(self, conn: ldap3.Connection) -> None:
        _close(conn)
        self._slots.release()

    def add(self, conn: ldap3.Connection) -> bool:
        """A connection opened elsewhere (the health thread), kept if there is room."""
        if not self._slots.acquire(timeout=0):
            _close(conn)
            return False
        self.give_back(conn)
        return True

    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)


def _close(conn: ldap3.Connection) -> None:
    try:
        conn.unbind()
    except Exception:  # closing what may already be broken
        pass


class LdapDirectory:
    """One directory (the global one, or an ISP's): lookups, PAP binds, health."""

    def __init__(self, name: str, settings: DirectorySettings, *,
                 profiles: Mapping[str, ServiceProfile], relative: Callable[[str], str],
                 isp: str | None = None, field: tuple[str, str] = ("directory", "ca_file"),
                 clock: Callable[[], float] = time.monotonic, on_loop: bool = False):
        self.name = name
        # A worker's (on_loop): lookups and binds awaited on its event loop; else (the
        # CLI's) in the calling thread.
        self.on_loop = on_loop
        self._link: _LoopLink | None = None  # the connection lent to the event loop
        self.settings = settings
        self.profiles = profiles
        self.isp = isp
        self.clock = clock
        self.tls = tls_for(settings, relative, field)
        self.servers = list(settings.servers)  # URLs, in the order they are tried
        self.health = DirectoryHealth(name, len(self.servers))
        self.cache = LookupCache(CachePolicy(ttl=settings.cache_ttl,
                                             negative_ttl=settings.negative_ttl,
                                             grace=settings.outage_grace,
                                             size=settings.cache_size), secrets.token_bytes(32))
        self.attributes = attribute_names(settings) or ["1.1"]
        # A lookup's SearchRequest: all but its filter's value encoded once.
        self.requests = wire.SearchRequests(
            settings.base_dn, self.attributes, size_limit=2, time_limit=self._time_limit(),
            templates=tuple(filter(None, map(around_value, (
                settings.user_filter, settings.caller_id_filter,
                *(getattr(settings, key) for key in LINE_FILTERS.values()))))))
        self._down_until: dict[str, float] = dict.fromkeys(self.servers, 0.0)
        self._lock = threading.Lock()  # the cache, the health and the servers' marks
        wait = settings.connect_timeout + settings.timeout
        self.pool = _Pool(functools.partial(self._open, bind=True), settings.pool_size, wait)
        self.bind_pool = _Pool(functools.partial(self._open, bind=False), settings.pool_size,
                               wait)
        self._binder = _LentBinds(self.bind_pool, self._time_limit())
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def same_as(self, other: LdapDirectory) -> bool:
        return (self.name, self.settings, self.isp) == (other.name, other.settings, other.isp)

    # --- the thread that keeps the connections healthy --------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._keep_healthy, daemon=True,
                                        name=f"vpop-ldap-{self.name}")
        self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        link, self._link = self._link, None
        if link is not None:
            link.close_soon()
        self._binder.close_soon()
        self.pool.close()
        self.bind_pool.close()

    def _keep_healthy(self) -> None:
        """Open the first connection at once, then every health_interval: try the
        servers marked down again, check idle connections (a search of the base entry)
        and drop those that fail or that sit on a worse server than one back up."""
        while not self._stopping.is_set():
            try:
                self.check_once()
            except Exception:  # the thread must outlive any surprise
                log.exception("directory %s: health check failed", self.name)
            self._stopping.wait(self.settings.health_interval)

    def check_once(self) -> None:
        revived = False
        for server in self.servers:
            if self._down_until[server] and not self._stopping.is_set():
                try:
                    conn = self._connect(server, bind=True)
                except DirectoryUnavailable:
                    continue
                revived = True
                self.pool.add(conn)
        if self.pool.idle() == 0 and not revived:
            try:  # keep one connection ready
                conn, _ = self.pool.take()
                self.pool.give_back(conn)
            except DirectoryUnavailable:
                pass
        best = self._best_server()
        for _ in range(self.pool.idle()):
            conn, _ = self.pool.take(block=False)
            if conn is None:
                break
            if best is not None and self._url_of(conn) != best:
                self.pool.discard(conn)  # fail back to the preferred server
                continue
            started = self.clock()
            try:
                conn.search(self.settings.base_dn, "(objectClass=*)", ldap3.BASE,
                            attributes=["1.1"], time_limit=self._time_limit())
                ok = conn.result.get("result") == 0
            except lx.LDAPException:
                ok = False
            self._observe(started, ok, "health check failed")
            if ok:
                self.pool.give_back(conn)
            else:
                self.pool.discard(conn)

    def _best_server(self):
        with self._lock:
            for server in self.servers:
                if not self._down_until[server]:
                    return server
        return None

    def _url_of(self, conn: ldap3.Connection) -> str:
        return getattr(conn, "vpop_url", "")

    # --- connections ---------------------------------------------------------------

    def _time_limit(self) -> int:
        return max(1, math.ceil(self.settings.timeout))

    def _open(self, bind: bool) -> ldap3.Connection:
        """A connection to the first server that answers, in the configured order;
        servers that failed are skipped until the health thread reaches them."""
        now = self.clock()
        with self._lock:
            candidates = [s for s in self.servers if self._down_until[s] <= now]
        if not candidates:
            raise DirectoryUnavailable(f"no server reachable ({self.health.last_error})")
        errors = []
        for server in candidates:
            try:
                return self._connect(server, bind=bind)
            except DirectoryUnavailable as exc:
                errors.append(str(exc))
        raise DirectoryUnavailable("; ".join(errors))

    def _connect(self, url: str, *, bind: bool) -> ldap3.Connection:
        """Open, StartTLS when configured, and bind as the service account (`bind`) or
        anonymously (the connections that then bind as subscribers). A new ldap3 Server
        each time: one that failed remembers its address as unusable for minutes."""
        s = self.settings
        server = _server(url, s, self.tls)
        user = s.bind_dn if bind and s.bind_dn else None
        conn = ldap3.Connection(server, user=user, password=s.bind_password if user else None,
                                authentication=ldap3.SIMPLE if user else ldap3.ANONYMOUS,
                                receive_timeout=self._time_limit(), read_only=True,
                                raise_exceptions=False, auto_bind=ldap3.AUTO_BIND_NONE,
                                client_strategy=ldap3.SYNC)
        started = self.clock()
        try:
            conn.open()
            if s.start_tls and not server.ssl and not conn.start_tls():
                raise _Refused(f"StartTLS refused: {_describe(conn)}")
            if not conn.bind():
                raise _Refused(f"bind as {user or 'anonymous'} refused: {_describe(conn)}")
        except (lx.LDAPException, _Refused) as exc:
            _close(conn)
            reason = f"{url}: {short(exc)}"
            self._observe(started, False, reason)
            with self._lock:
                if not self._down_until[url]:
                    log.warning("directory %s: %s", self.name, reason)
                self._down_until[url] = self.clock() + s.health_interval
                self.health.server_down(url, reason)
            raise DirectoryUnavailable(reason) from None
        self._observe(started, True)
        with self._lock:
            if self._down_until[url]:
                log.info("directory %s: %s answers again", self.name, url)
            self._down_until[url] = 0.0
            self.health.server_up(url)
        conn.vpop_url = url
        conn.vpop_unread = b""  # octets read past the last answer (_exchange)
        return conn

    def _observe(self, started: float, ok: bool, error: str = "") -> None:
        with self._lock:
            self.health.observe(self.clock() - started, ok, error)

    def _run(self, pool: _Pool, operation: Callable[[ldap3.Connection], object]):
        """The operation on a pooled connection. A connection that was idle may have
        been dropped by the server meanwhile: then once more on a new one."""
        while True:
            conn, fresh = pool.take()
            started = self.clock()
            try:
                result = operation(conn)
            except lx.LDAPException as exc:
                pool.discard(conn)
                reason = short(exc)
                self._observe(started, False, reason)
                if fresh or "timed out" in reason:
                    raise DirectoryUnavailable(reason) from None
                continue
            except BaseException:
                pool.discard(conn)
                raise
            pool.give_back(conn)
            self._observe(started, True)
            return result

    # --- what the DirectorySet asks ----------------------------------------------------

    def search_filter(self, way: str, kind: str, value: str, user: str, realm: str
                      ) -> str | None:
        s = self.settings
        if way == "user_name":
            return render(s.user_filter, user=user, name=value, realm=realm)
        template = s.caller_id_filter if way == "caller_id" else getattr(
            s, LINE_FILTERS.get(kind, ""), "")
        return render(template, value=value) if template else None

    def cached(self, search: str) -> tuple[bool, Account | None]:
        with self._lock:
            return self.cache.fresh(search, self.clock())

    def find(self, search: str, looked_up: str, *, use_cache: bool = True) -> Account | None:
        """The subscriber the filter finds (None: nobody). DirectoryUnavailable when no
        server answers and the cache holds nothing recent enough; UnusableEntry for an
        entry that cannot be served."""
        now = self.clock()
        if use_cache:
            known, account = self.cached(search)
            if known:
                return account
        try:
            entries = self._run(self.pool, functools.partial(self._search, search=search))
            groups: tuple[str, ...] = ()
            if len(entries) == 1 and self.settings.groups == "search":  # a round trip
                groups = self._run(self.pool, functools.partial(self._groups, entry=entries[0]))
            elif len(entries) == 1:
                groups = self._groups(None, entries[0])
        except DirectoryUnavailable as exc:
            return self._stale(search, now, exc)
        return self._account(search, looked_up, entries, groups, now)

    async def find_on_loop(self, search: str, looked_up: str, ask_cache: bool = True
                           ) -> Account | None:
        """`find` on the worker's event loop: the search written on the connection lent
        to the loop (_LoopLink), no thread involved. In a thread as before: a group
        search, a lookup while no connection is ready, and the one retry on a new
        connection after a lent one failed (not after a timeout: _run's rule).
        ask_cache False: the caller has just found the cache without an answer."""
        if ask_cache:
            known, account = self.cached(search)
            if known:
                return account
        link = self._lent_link() if self.settings.groups != "search" else None
        message_id = _next_message_id()
        try:
            request = self.requests.encode(message_id, search), message_id
        except wire.WireError:
            request = None
        if link is None or request is None:  # request None: a filter only ldap3 encodes
            return await in_thread(self.find, search, looked_up)
        now = self.clock()
        try:
            answers = await link.ask(*request, wire.SEARCH_DONE)
        except lx.LDAPException as exc:
            reason = short(exc)
            self._observe(now, False, reason)
            if "timed out" in reason:
                return self._stale(search, now, DirectoryUnavailable(reason))
            return await in_thread(self.find, search, looked_up)
        self._observe(now, True)
        found = _search_result(answers)
        if found is None:  # a referral: ldap3 follows it
            return await in_thread(self.find, search, looked_up)
        code, why, entries = found
        if code not in SEARCH_OK:
            try:
                self._checked(code, why, entries)
            except DirectoryUnavailable as exc:
                return self._stale(search, now, exc)
        return self._account(search, looked_up, entries,
                             self._groups(None, entries[0])
                             if len(entries) == 1 and self.settings.groups else (), now)

    def _lent_link(self) -> _LoopLink | None:
        """The connection lent to the event loop, an idle pooled one lent now, or None
        when none is idle (a thread then opens one, and gives it back to the pool)."""
        link = self._link
        if link is not None and link.open:
            if time.monotonic() - link.since <= self.settings.health_interval:
                return link
            # Served its time: back to the pool once its answers are in, where the health
            # thread checks it (and fails back to a preferred server); another is lent.
            link.retire()
            self._link = None
        conn, _ = self.pool.take(block=False)
        if conn is None:
            return None
        self._link = _LoopLink(link_loop(), conn, self._time_limit(), self._link_ended)
        return self._link

    def _link_ended(self, link: _LoopLink, broken: bool) -> None:
        if self._link is link:
            self._link = None
        if broken:
            self.pool.discard(link.conn)
        else:
            self.pool.give_back(link.conn)

    def _stale(self, search: str, now: float, exc: DirectoryUnavailable) -> Account:
        """During an outage, what the cache allows (CachePolicy.grace); else `exc`."""
        with self._lock:
            stale = self.cache.stale(search, now)
        if stale is not None:
            return stale
        raise exc

    def _account(self, search: str, looked_up: str, entries: list[Entry],
                 groups: tuple[str, ...], now: float) -> Account | None:
        """The subscriber an answer found, remembered by the cache."""
        if not entries:
            with self._lock:
                self.cache.remember(search, None, now)
            return None
        if len(entries) > 1:
            raise UnusableEntry(f"{search} finds {len(entries)} entries or more, one expected")
        entry = entries[0]
        if self.settings.pap == "bind":
            check = functools.partial(
                self.check_password_on_loop if self.on_loop else self.check_password, entry.dn)
        else:
            check = None
        try:
            account = account_from_entry(
                entry, settings=self.settings, profiles=self.profiles, groups=groups,
                looked_up=looked_up, isp=self.isp, check_password=check)
        except UnusableEntry as exc:
            raise UnusableEntry(f"{entry.dn}: {exc}") from None
        with self._lock:
            self.cache.remember(search, account, now)
        return account

    def _search(self, conn: ldap3.Connection, search: str) -> list[Entry]:
        return self._checked(*_subtree_search(conn, self.settings.base_dn, search,
                                              self.attributes, 2, self._time_limit()))

    def _checked(self, code: int, why: str, entries: list[Entry]) -> list[Entry]:
        if code == NO_SUCH_OBJECT:
            raise UnusableEntry(f"base_dn {self.settings.base_dn} does not exist")
        if code not in SEARCH_OK:
            raise DirectoryUnavailable(f"search refused: {why}")
        return entries

    def _groups(self, conn: ldap3.Connection | None, entry: Entry) -> tuple[str, ...]:
        s = self.settings
        if s.groups == "attribute":
            return tuple(v.decode("utf-8", "replace") for v in entry.values(s.group_attribute))
        if s.groups != "search":
            return ()
        code, why, entries = _subtree_search(
            conn, s.group_base_dn or s.base_dn,
            render(s.group_filter, dn=entry.dn, user=(entry.text(s.username_attribute) or "")),
            ["1.1"], 0, self._time_limit())
        if code not in SEARCH_OK + (NO_SUCH_OBJECT,):
            raise DirectoryUnavailable(f"group search refused: {why}")
        return tuple(found.dn for found in entries)

    def check_password(self, dn: str, password: bytes) -> bool | str:
        """PAP by binding as the subscriber (pap = "bind"): True, False, or why the
        directory cannot tell. A password that bound within cache_ttl is believed
        without binding again, and within outage_grace while no server answers."""
        now = self.clock()
        known = self._password_known(dn, password, now)
        if known is not None:
            return known
        try:
            ok = self._run(self.bind_pool, functools.partial(
                self._bind_as, dn=dn, password=password.decode("utf-8")))
        except DirectoryUnavailable as exc:
            return self._unconfirmed(dn, password, now, exc)
        return self._confirmed(dn, password, now, ok)

    async def check_password_on_loop(self, dn: str, password: bytes) -> bool | str:
        """check_password on the worker's event loop: the bind written on a bind
        connection lent to the loop, one bind at a time on each (RFC 4511 §4.2.1), up
        to pool_size of them, requests beyond waiting for one on the loop. A timeout
        answers as check_password's does; another failure retries once in a thread."""
        now = self.clock()
        known = self._password_known(dn, password, now)
        if known is not None:
            return known
        try:
            link = await self._binder.take()
        except DirectoryUnavailable as exc:
            return self._unconfirmed(dn, password, now, exc)
        message_id = _next_message_id()
        request = wire.bind_request(message_id, dn, password.decode("utf-8"))
        try:
            answer = (await link.ask(request, message_id, wire.BIND_RESPONSE))[-1].value
        except lx.LDAPException as exc:
            reason = short(exc)
            self._observe(now, False, reason)
            if "timed out" in reason:
                return self._unconfirmed(dn, password, now, DirectoryUnavailable(reason))
            return await in_thread(self.check_password, dn, password)
        if answer.code != 0 and answer.code not in WRONG_PASSWORD:
            reason = f"bind as subscriber failed: {_explain(answer)}"
            self._observe(now, False, reason)
            link.fail(reason)
            return await in_thread(self.check_password, dn, password)
        self._observe(now, True)
        self._binder.give_back(link)
        return self._confirmed(dn, password, now, answer.code == 0)

    def _password_known(self, dn: str, password: bytes, now: float) -> bool | None:
        """What is answered without binding: False for an empty password (RFC 4513
        §5.1.2: it would be an unauthenticated bind) or one that is not UTF-8, True for
        one confirmed within cache_ttl; None: bind."""
        if not password:
            return False
        with self._lock:
            if self.cache.password_confirmed(dn, password, now):
                return True
        try:
            password.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return None

    def _unconfirmed(self, dn: str, password: bytes, now: float,
                     exc: DirectoryUnavailable) -> bool | str:
        with self._lock:
            if self.cache.password_confirmed(dn, password, now, outage=True):
                return True
        return f"directory {self.name} unavailable: {exc}"

    def _confirmed(self, dn: str, password: bytes, now: float, ok: bool) -> bool:
        with self._lock:
            if ok:
                self.cache.confirm_password(dn, password, now)
            else:
                self.cache.forget_password(dn)
        return ok

    def _bind_as(self, conn: ldap3.Connection, dn: str, password: str) -> bool:
        message_id = _next_message_id()
        answer = _exchange(conn, wire.bind_request(message_id, dn, password), message_id,
                           wire.BIND_RESPONSE)[-1].value
        if answer.code == 0:
            return True
        if answer.code in WRONG_PASSWORD:
            return False
        raise lx.LDAPBindError(f"bind as subscriber failed: {_explain(answer)}")

    def snapshot(self) -> dict:
        with self._lock:
            return {**self.health.snapshot(), "cache_entries": len(self.cache),
                    "cache_hits": self.cache.hits, "cache_misses": self.cache.misses,
                    "stale_answers": self.cache.stale_answers}


class _Refused(Exception):
    """The server answered, and said no (StartTLS, the service bind)."""


link_loop = asyncio.get_running_loop


def in_thread(function: Callable, *args):
    """The function run in the event loop's default executor (what may wait)."""
    return link_loop().run_in_executor(None, function, *args)


class _LentBinds:
    """Bind connections lent to the event loop, at most the pool's size, each binding
    one subscriber at a time; a request waits on the loop for a free one."""

    def __init__(self, pool: _Pool, timeout: float):
        self.pool = pool
        self.timeout = timeout
        self.free: list[_LoopLink] = []
        self.lent: set[_LoopLink] = set()
        self.opening = 0
        self.waiting: collections.deque[asyncio.Future] = collections.deque()

    async def take(self) -> _LoopLink:
        """A free bind connection; DirectoryUnavailable if none can be opened."""
        while True:
            while self.free:
                link = self.free.pop()
                if link.open:
                    return link
            if len(self.lent) + self.opening < self.pool.size:
                self.opening += 1
                try:
                    conn, _ = self.pool.take(block=False)
                    if conn is None:  # opening one waits: in a thread
                        conn, _ = await in_thread(self.pool.take)
                finally:
                    self.opening -= 1
                link = _LoopLink(link_loop(), conn, self.timeout, self._ended, gather=False)
                self.lent.add(link)
                return link
            waiter = link_loop().create_future()
            self.waiting.append(waiter)
            link = await waiter
            if link is not None and link.open:
                return link

    def give_back(self, link: _LoopLink) -> None:
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(link)
                return
        self.free.append(link)

    def _ended(self, link: _LoopLink, broken: bool) -> None:
        self.lent.discard(link)
        if broken:
            self.pool.discard(link.conn)
        else:
            self.pool.give_back(link.conn)
        while self.waiting:  # room for another connection: one waiter opens it
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close_soon(self) -> None:
        for link in list(self.lent):
            link.close_soon()


class _Reply:
    """What a request on a lent link awaits: its answers, or the error that broke the
    link; awaitable as an asyncio future is (by udp.step, or a Task). Answers resume
    the request at once, in the turn of the loop that read them, where a future's
    callbacks each wait for a turn of their own (about 5 us of CPU a request); an
    error resumes it in a turn of its own, as a future does, since a link may break
    within a request's own step."""
    __slots__ = ("loop", "callbacks", "answers", "error", "finished",
                 "_asyncio_future_blocking")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.callbacks: list[tuple[Callable, object]] = []
        self.answers: list | None = None
        self.error: BaseException | None = None
        self.finished = False
        self._asyncio_future_blocking = False

    def __await__(self):
        if not self.finished:
            self._asyncio_future_blocking = True
            yield self
        return self.result()

    __iter__ = __await__

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.loop

    def done(self) -> bool:
        return self.finished

    def cancelled(self) -> bool:
        return False

    def cancel(self, msg=None) -> bool:
        return False  # a Task cancelled meanwhile is cancelled when the answer comes

    def result(self) -> list:
        if self.error is not None:
            raise self.error
        return self.answers

    def exception(self) -> BaseException | None:
        return self.error

    def add_done_callback(self, callback: Callable, *, context=None) -> None:
        if self.finished:
            self.loop.call_soon(callback, self, context=context)
        else:
            self.callbacks.append((callback, context))

    def remove_done_callback(self, callback: Callable) -> int:
        kept = [(f, c) for f, c in self.callbacks if f != callback]
        removed, self.callbacks = len(self.callbacks) - len(kept), kept
        return removed

    def answer(self, answers: list) -> None:
        """The answers are in: the waiting request goes on now."""
        self.answers, self.finished = answers, True
        callbacks, self.callbacks = self.callbacks, []
        for callback, context in callbacks:
            try:
                if context is None:
                    callback(self)
                else:
                    context.run(callback, self)
            except Exception as exc:  # as the loop reports a callback's error
                self.loop.call_exception_handler({
                    "message": "Exception in an LDAP answer's callback", "exception": exc})

    def fail(self, error: BaseException) -> None:
        """The link broke: the waiting request goes on in a turn of its own."""
        if self.finished:
            return
        self.error, self.finished = error, True
        callbacks, self.callbacks = self.callbacks, []
        for callback, context in callbacks:
            self.loop.call_soon(callback, self, context=context)


class _LoopLink:
    """A pooled connection lent to the worker's event loop. Requests are written on
    its socket as they come, several outstanding at once (RFC 4511 §4.1.1: a client
    may have many operations in progress on one connection; not binds, which stay on
    the bind pool), and the answers are read when the loop sees the socket readable and
    matched to their requests by message id. No thread waits and the GIL is not handed
    over per lookup.

    A request unanswered within the timeout, an answer that is not LDAP, or the socket
    closing breaks the link: every request outstanding fails with the ldap3 error
    _exchange would raise, and the connection is discarded. A link that served its time
    (health_interval) goes back to the pool when idle, as connections do after use."""

    def __init__(self, loop: asyncio.AbstractEventLoop, conn: ldap3.Connection,
                 timeout: float, ended: Callable[[_LoopLink, bool], None], *,
                 gather: bool = True):
        self.loop = loop
        # Requests of one turn gathered into one write (searches); a bind connection,
        # with one request at a time, writes each at once.
        self.gather = gather
        self.conn = conn
        self.sock = conn.socket
        self.timeout = timeout
        self.ended = ended
        self.since = time.monotonic()
        self.open = True
        self.retired = False
        # message id -> (reply, answers so far, tag of the last answer, deadline), in
        # the order sent: the first is the oldest
        self.pending: dict[int, tuple[_Reply, list, int, float]] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._unread = conn.vpop_unread
        self._unsent = b""
        self._outgoing: list[bytes] = []
        self._fd = self.sock.fileno()
        self.sock.setblocking(False)
        loop.add_reader(self._fd, self._readable)

    def ask(self, request: bytes, message_id: int, last: int) -> _Reply:
        """The request's answers to await, up to the one tagged `last`."""
        future = _Reply(self.loop)
        if not self.pending and self._sweep is None:
            self._sweep = self.loop.call_later(self.timeout, self._expired)
        self.pending[message_id] = (future, [], last, self.loop.time() + self.timeout)
        if not self.gather:
            if self._unsent:
                self._unsent += request
            else:
                self._send(request)
            return future
        # The requests made in one turn of the loop leave in one write (one system
        # call, one wake-up of the server), as the answers arrive in few reads.
        if not self._outgoing:
            self.loop.call_soon(self._flush)
        self._outgoing.append(request)
        return future

    def _flush(self) -> None:
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        if not self.open:
            return
        if self._unsent:
            self._unsent += data
        else:
            self._send(data)

    def _send(self, data: bytes) -> None:
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        except OSError as exc:
            self._break(f"error sending data: {exc}")
            return
        if sent < len(data):
            if not self._unsent:
                self.loop.add_writer(self._fd, self._writable)
            self._unsent = data[sent:]

    def _writable(self) -> None:
        data, self._unsent = self._unsent, b""
        self.loop.remove_writer(self._fd)
        if data:
            self._send(data)

    def _readable(self) -> None:
        data = self._unread
        try:
            while True:
                chunk = self.sock.recv(RECEIVE_SIZE)
                if not chunk:
                    self._break("connection closed by the server")
                    return
                data += chunk
                # a short read emptied the socket; TLS may still hold a decrypted record
                if len(chunk) < RECEIVE_SIZE and not (
                        isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
                    break
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except OSError as exc:
            self._break(f"error receiving data: {exc}")
            return
        position = 0
        answered: list[tuple[_Reply, list]] = []
        try:
            while True:
                found = wire.decode_next(data, position)
                if found is None:
                    break
                answer, position = found
                self._answered(answer, answered)
        except wire.WireError as exc:
            self._resume(answered)
            self._break(f"an answer that is not LDAP: {exc}")
            return
        self._unread = data[position:]
        # The link is in order before any request goes on (it may ask again, or retire
        # or break this link).
        self._resume(answered)
        if self.open and self.retired and not self.pending:
            self.give_back()

    def _resume(self, answered: list[tuple[_Reply, list]]) -> None:
        for reply, answers in answered:
            reply.answer(answers)

    def _answered(self, answer: wire.Response, answered: list) -> None:
        held = self.pending.get(answer.message_id)
        if held is None:
            # RFC 4511 §4.4.1: message 0 is the server's notice that it disconnects
            raise wire.WireError(
                f"the server ends the connection: {_explain(answer.value)}"
                if answer.message_id == 0 and isinstance(answer.value, wire.Result)
                else f"an answer to message {answer.message_id}, which is not outstanding")
        future, answers, last, _ = held
        answers.append(answer)
        if answer.tag == last:
            del self.pending[answer.message_id]
            answered.append((future, answers))

    def retire(self) -> None:
        """No new requests; back to the pool when the last answer is in."""
        self.retired = True
        if not self.pending:
            self.give_back()

    def fail(self, reason: str) -> None:
        """Broken off: the connection answered what it should not have."""
        self._break(reason)

    def _expired(self) -> None:
        """One timer a link, not one a request: at the oldest request's deadline."""
        self._sweep = None
        if not self.open or not self.pending:
            return
        deadline = next(iter(self.pending.values()))[3]
        if deadline <= self.loop.time():
            self._break("error receiving data: timed out")
        else:
            self._sweep = self.loop.call_at(deadline, self._expired)

    def _break(self, reason: str) -> None:
        if not self.open:
            return
        self._stop()
        pending, self.pending = self.pending, {}
        for future, _, _, _ in pending.values():
            future.fail(lx.LDAPSocketReceiveError(reason))
        self.ended(self, True)

    def give_back(self) -> None:
        """Back to the pool (nothing outstanding), in the blocking mode ldap3 expects."""
        self._stop()
        self.conn.vpop_unread = self._unread
        self.ended(self, False)

    def _stop(self) -> None:
        self.open = False
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self.loop.remove_reader(self._fd)
        if self._unsent:
            self.loop.remove_writer(self._fd)
        try:
            self.sock.settimeout(self.timeout)
        except OSError:
            pass

    def close_soon(self) -> None:
        """From any thread: broken off on the loop (the directory is closed)."""
        try:
            self.loop.call_soon_threadsafe(self._break, "the directory is closed")
        except RuntimeError:  # the loop has stopped: nothing reads the socket any more
            _close(self.conn)


def _describe(conn: ldap3.Connection) -> str:
    result = conn.result or {}
    return _worded(result.get("description") or "no answer", result.get("message"))


def _explain(result: wire.Result) -> str:
    """A result read by _exchange, worded as ldap3 words its own (_describe)."""
    return _worded(RESULT_CODES.get(result.code, str(result.code)), result.message)


def _worded(description: str, message: str | None) -> str:
    return f"{description} ({message})" if message else description


# --- searches and binds written on the socket ----------------------------------------------

def _next_message_id() -> int:
    return next(_message_ids) % MAX_MESSAGE_ID + 1


def _subtree_search(conn: ldap3.Connection, base: str, search: str, attributes: list[str],
                    size_limit: int, time_limit: int) -> tuple[int, str, list[Entry]]:
    """(result code, its description, the entries found) of a subtree search on the
    connection, encoded by vpop.directory.wire. A filter it cannot encode, and a
    referral (which ldap3 follows), are left to ldap3, as before."""
    request = _search_request(base, search, attributes, size_limit, time_limit)
    found = _search_result(_exchange(conn, *request, wire.SEARCH_DONE)) if request else None
    if found is None:
        return _ldap3_search(conn, base, search, attributes, size_limit, time_limit)
    return found


def _search_request(base: str, search: str, attributes: list[str], size_limit: int,
                    time_limit: int) -> tuple[bytes, int] | None:
    """(the SearchRequest, its message id); None for a filter only ldap3 encodes."""
    message_id = _next_message_id()
    try:
        return wire.search_request(message_id, base, search, attributes,
                                   size_limit=size_limit, time_limit=time_limit), message_id
    except wire.WireError:
        return None


def _search_result(answers: list[wire.Response]) -> tuple[int, str, list[Entry]] | None:
    """(result code, its description, the entries) of a search's answers; None for a
    referral, which ldap3 follows."""
    done = answers[-1].value
    if done.code == wire.REFERRAL:
        return None
    entries = []
    for answer in answers:
        if answer.tag == wire.SEARCH_ENTRY:
            dn, attributes = answer.value
            entries.append(Entry(dn=dn, attributes=attributes))
        elif answer.tag == wire.SEARCH_REFERENCE:
            return None
    # the description only for a result that is refused (_checked)
    return done.code, "" if done.code in SEARCH_OK else _explain(done), entries


def _ldap3_search(conn: ldap3.Connection, base: str, search: str, attributes: list[str],
                  size_limit: int, time_limit: int) -> tuple[int, str, list[Entry]]:
    conn.search(base, search, ldap3.SUBTREE, attributes=attributes, size_limit=size_limit,
                time_limit=time_limit)
    return conn.result.get("result"), _describe(conn), [
        Entry(dn=item["dn"], attributes={name.lower(): tuple(values or ()) for name, values
                                         in item.get("raw_attributes", {}).items()})
        for item in conn.response or () if item.get("type") == "searchResEntry"]


def _exchange(conn: ldap3.Connection, request: bytes, message_id: int, last: int
              ) -> list[wire.Response]:
    """The request written on the socket of an open, bound ldap3 connection, and its
    answers read back up to the one tagged `last` (SearchResultDone, BindResponse).
    Operations on a connection follow one another, so each answer is this request's.
    What breaks the exchange raises the ldap3 error ldap3's own operations would: the
    connection is then discarded (LdapDirectory._run). Each read waits at most the
    connection's receive timeout, as ldap3's do."""
    sock = conn.socket
    data, position, answers = conn.vpop_unread, 0, []
    try:
        sock.sendall(request)
        while True:
            size = wire.message_length(data, position)
            if size is None or position + size > len(data):
                chunk = sock.recv(RECEIVE_SIZE)
                if not chunk:
                    raise lx.LDAPSocketReceiveError("connection closed by the server")
                data, position = data[position:] + chunk, 0
                continue
            answer = wire.decode(data[position:position + size])
            position += size
            if answer.message_id != message_id:
                # RFC 4511 §4.4.1: message 0 is the server's notice that it disconnects
                raise lx.LDAPSocketReceiveError(
                    f"the server ends the connection: {_explain(answer.value)}"
                    if answer.message_id == 0 and isinstance(answer.value, wire.Result)
                    else f"an answer to message {answer.message_id}, not {message_id}")
            answers.append(answer)
            if answer.tag == last:
                conn.vpop_unread = data[position:]
                return answers
    except OSError as exc:
        raise lx.LDAPSocketReceiveError(f"error receiving data: {exc}") from None
    except wire.WireError as exc:
        raise lx.LDAPSocketReceiveError(f"an answer that is not LDAP: {exc}") from None


# --- the set the pipeline uses ---------------------------------------------------------

def configured(settings: Settings) -> bool:
    return settings.directory.enabled or bool(settings.directory.isp)


def open_directories(settings: Settings, local, profiles: Mapping[str, ServiceProfile],
                     isps: tuple, previous=None) -> DirectorySet:
    """The store's subscribers with the configured directories. A directory whose
    settings did not change is kept from `previous` (its connections and cache), with
    the profiles of this load; the others are closed. ConfigError for a CA file that
    cannot be used."""
    held = {d.name: d for d in (previous.directories()
                                if isinstance(previous, DirectorySet) else [])}
    wanted: list[LdapDirectory] = []
    d = settings.directory
    if d.enabled:
        wanted.append(LdapDirectory("global", d, profiles=profiles, relative=settings.relative,
                                    on_loop=True))
    for number, own in enumerate(d.isp):
        wanted.append(LdapDirectory(own.name, own.settings, profiles=profiles,
                                    relative=settings.relative, isp=own.name,
                                    field=(f"directory.isp[{number}]", "ca_file"),
                                    on_loop=True))
    kept = []
    for directory in wanted:
        old = held.pop(directory.name, None)
        if old is not None and old.same_as(directory):
            old.profiles = profiles
            kept.append(old)
        else:
            if old is not None:
                old.close()
            directory.start()
            kept.append(directory)
    for old in held.values():
        old.close()
    shared = kept[0] if d.enabled else None
    by_isp = {directory.name: directory for directory in kept if directory.isp is not None}
    return DirectorySet(local, shared, by_isp, isps, settings.identification.realm_delimiter,
                        on_loop=True)


def close_directories(directory) -> None:
    if isinstance(directory, DirectorySet):
        for each in directory.directories():
            each.close()


def directory_snapshot(directory) -> dict:
    """Each directory's health and cache counters, for the metrics endpoint."""
    if not isinstance(directory, DirectorySet):
        return {}
    return {each.name: each.snapshot() for each in directory.directories()}


def field_error(settings: Settings, exc: ConfigError) -> ConfigError:
    """A CA problem named by its option's line in the config file."""
    section, _, key = (exc.field or "directory.ca_file").rpartition(".")
    if section == "directory":
        return config_module.field_error(settings, exc.message, "directory", key)
    return exc


def with_directories(measured: dict, directory) -> dict:
    """The ISPs' measured health with their own directories' success rate folded in:
    an ISP whose directory fails serves its subscribers no better (docs/ldap.md)."""
    if not isinstance(directory, DirectorySet) or not directory.by_isp:
        return measured
    measured = dict(measured)
    for name, each in directory.by_isp.items():
        with each._lock:
            rate = each.health.success_rate
        held = measured.get(name) or IspHealth()
        if rate < held.success_rate:
            measured[name] = dataclasses.replace(held, success_rate=rate)
    return measured


# --- check-config ------------------------------------------------------------------------

def _each(settings: Settings):
    """(name, settings, where in the config) of every configured directory."""
    if settings.directory.enabled:
        yield "global", settings.directory, "directory"
    for number, own in enumerate(settings.directory.isp):
        yield own.name, own.settings, f"directory.isp[{number}]"


def check_directories(settings: Settings, *, connect: bool) -> list[ConfigError]:
    """Raise ConfigError for what stops the server (a filter that cannot work, a CA file
    without a certificate, a profile or ISP the database lacks); with `connect`
    (check-config), connect, bind and search each directory, and look the mapped
    attributes up in its schema: what fails there is returned."""
    from vpop.store.engine import make_engine, make_sessionmaker
    from vpop.store.isp_snapshot import load_isps
    from vpop.store.snapshot import load_profiles
    engine = make_engine(settings.database_url, create=False)
    try:
        with make_sessionmaker(engine)() as session:
            profiles = load_profiles(session)
            isps = {isp.name for isp in load_isps(session)}
    finally:
        engine.dispose()
    problems = []
    for name, own, where in _each(settings):
        fail = _failing(settings, where)
        _check_static(own, profiles, isps, fail)
        if where != "directory" and name not in isps:
            raise fail(f"no ISP {name!r} in the database", "name")
        try:
            directory = LdapDirectory(name, own, profiles=profiles, relative=settings.relative,
                                      isp=None if where == "directory" else name,
                                      field=(where, "ca_file"))
        except ConfigError as exc:
            raise fail(exc.message, "ca_file") from None
        if connect:
            try:
                problems += [fail(reason, key) for key, reason in _check_live(directory)]
            finally:
                directory.close()
    return problems


def _failing(settings: Settings, where: str):
    def fail(message: str, key: str) -> ConfigError:
        if where == "directory":
            return config_module.field_error(settings, message, "directory", key)
        return ConfigError(message, file=settings.path or None, field=f"{where}.{key}")
    return fail


def _check_static(s: DirectorySettings, profiles, isps: set[str], fail) -> None:
    from vpop.directory.filters import problem
    filters = [("user_filter", s.user_filter, ("user", "name", "realm"))]
    filters += [(key, getattr(s, key), ("value",)) for key in
                ("caller_id_filter", *LINE_FILTERS.values()) if getattr(s, key)]
    if s.groups == "search":
        filters.append(("group_filter", s.group_filter, ("dn", "user")))
    for key, template, allowed in filters:
        why = problem(template, allowed)
        if why:
            raise fail(f"{template!r}: {why}", key)
    if s.default_profile and s.default_profile not in profiles:
        raise fail(f"no profile {s.default_profile!r} in the database", "default_profile")
    for number, rule in enumerate(s.group):
        if rule.profile and rule.profile not in profiles:
            raise fail(f"no profile {rule.profile!r} in the database", f"group[{number}]")
        if rule.isp and rule.isp not in isps:
            raise fail(f"no ISP {rule.isp!r} in the database", f"group[{number}]")
    if s.groups == "attribute" and not s.group_attribute:
        raise fail("must name an attribute when groups = \"attribute\"", "group_attribute")


def _check_live(directory: LdapDirectory) -> list[tuple[str, str]]:
    """(option, reason): each server reached, bound, and the base searched; the
    mapping's attributes in the first server's schema."""
    from vpop.directory.mapping import ATTRIBUTE_OPTIONS
    s = directory.settings
    found = []
    schema = None
    for url in directory.servers:
        try:
            conn = directory._connect(url, bind=True)
        except DirectoryUnavailable as exc:
            found.append(("servers", str(exc)))
            continue
        try:
            conn.search(s.base_dn, "(objectClass=*)", ldap3.BASE, attributes=["1.1"],
                        time_limit=directory._time_limit())
            if conn.result.get("result") != 0:
                found.append(("base_dn", f"{url}: search of {s.base_dn} failed: "
                                         f"{_describe(conn)}"))
            elif schema is None:
                schema = _schema_attributes(conn)
        except lx.LDAPException as exc:
            found.append(("servers", f"{url}: {short(exc)}"))
        finally:
            _close(conn)
    if schema:
        options = list(ATTRIBUTE_OPTIONS) + (["group_attribute"] if s.groups == "attribute"
                                             else [])
        for option in options:
            name = getattr(s, option)
            if name and name.lower() not in schema:
                found.append((option, f"attribute {name!r} is not in the directory's schema"))
    return found


def _schema_attributes(conn: ldap3.Connection) -> set[str] | None:
    """The attribute type names (lower-cased) the server's subschema lists, or None when
    it does not say (then nothing is checked)."""
    conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["subschemaSubentry"])
    entries = [e for e in conn.response or () if e.get("type") == "searchResEntry"]
    where = entries[0]["attributes"].get("subschemaSubentry") if entries else None
    if not where:
        return None
    where = where[0] if isinstance(where, list) else where
    conn.search(where, "(objectClass=subschema)", ldap3.BASE, attributes=["attributeTypes"])
    entries = [e for e in conn.response or () if e.get("type") == "searchResEntry"]
    if not entries:
        return None
    names = set()
    for text in entries[0]["raw_attributes"].get("attributeTypes", ()):
        text = text.decode("utf-8", "replace")
        start = text.find("NAME ")
        if start < 0:
            continue
        rest = text[start + 5:].strip()
        if rest.startswith("("):
            names.update(n.strip("'").lower() for n in rest[1:rest.find(")")].split())
        else:
            names.add(rest.split()[0].strip("'").lower())
    return names
