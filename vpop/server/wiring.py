"""Wiring: what the stages need, built from the settings and the store.

At start a worker loads its data and builds a Deps; a reload (SIGHUP, or a provisioning
change too large to apply subscriber by subscriber) builds a complete new one the same
way, and the worker swaps it in with one assignment on the event loop. What must outlive
a reload is handed on from the Deps it replaces (`build_deps(previous=...)`).
"""

from __future__ import annotations

import dataclasses
import secrets
import sys
from dataclasses import dataclass, field

from vpop import config as config_module
from vpop.accounting.leases import LeaseBook
from vpop.accounting.records import AccountingPolicy
from vpop.aaa.eap import EapServer
from vpop.aaa.reply import ReplyRenderer
from vpop.aaa.subscribers import SubscriberSnapshot
from vpop.config import Settings
from vpop.errors import ConfigError
from vpop.dispatch.deps import Deps
from vpop.dynauth.relay import peers_of
from vpop.dynauth.request import RequestBuilder
from vpop.isp.model import Isp
from vpop.isp.pool import PoolSettings, Pools
from vpop.isp.selection import policy_from_settings as selection_policy
from vpop.isp.tunnel import TunnelTemplates
from vpop.radius.clients import ClientTable
from vpop.radius.dictionary import Dictionary, shipped_dictionary
from vpop.server.ldap_directory import close_directories, configured, open_directories
from vpop.store import generation as generations
from vpop.store.files import kept_secret
from vpop.store.isp_snapshot import load_isps
from vpop.store.snapshot import load_clients, load_profiles, load_subscribers


def load_dictionary(settings: Settings) -> Dictionary:
    path = settings.relative(settings.radius.dictionary) or str(shipped_dictionary())
    try:
        return Dictionary(path)
    except ConfigError:
        raise
    except Exception as exc:  # pyrad's parse errors have no common base
        raise config_module.field_error(settings, f"{path}: not a usable dictionary: {exc}",
                                        "radius", "dictionary") from None


def reread_settings(running: Settings) -> Settings:
    """SIGHUP: the config file again; sockets, workers and the database stay as they
    are until a restart."""
    if not running.path:
        return running
    fresh = config_module.load(running.path)
    return dataclasses.replace(fresh, server=running.server, database=running.database)


def request_stream(settings: Settings):
    """Where request lines go: the log file (appended, shared with the workers) or stderr."""
    if not settings.logging.requests:
        return None
    if settings.logging.file:
        return open(settings.logging.file, "a", encoding="utf-8")
    return sys.stderr


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the pipeline reads from the store, loaded in one transaction."""
    clients: ClientTable
    directory: SubscriberSnapshot
    replies: ReplyRenderer
    isps: tuple[Isp, ...]
    generation: int = 0  # the data generation it holds, at least
    # Profiles by name, for the subscribers of LDAP directories (loaded when configured).
    profiles: dict = field(default_factory=dict)


def load_data(settings: Settings, sessions, dictionary: Dictionary,
              previous: SubscriberSnapshot | None = None) -> Snapshot:
    """With `previous`, the subscribers served now: what did not change is kept."""
    with sessions() as session:
        generation = generations.current(session).generation  # first: the rest is newer
        clients = ClientTable(load_clients(session))
        directory = load_subscribers(session, previous)
        isps = load_isps(session)
        profiles = load_profiles(session) if configured(settings) else {}
    replies = ReplyRenderer(dictionary, settings.relative(settings.radius.templates))
    return Snapshot(clients, directory, replies, isps, generation, profiles)


def eap_server(settings: Settings) -> EapServer:
    """EAP-MD5's State key, from [radius] eap_key_file: made (random, owner-only) by the
    first worker to start, read by the others and at every start after."""
    path = settings.relative(settings.radius.eap_key_file)
    try:
        key = kept_secret(path, lambda: secrets.token_hex(32))
    except OSError as exc:
        raise config_module.field_error(settings, f"cannot read or create {path}: "
                                        f"{exc.strerror}", "radius", "eap_key_file") from None
    return EapServer(key.encode())


def pool_settings(settings: Settings) -> PoolSettings:
    i = settings.isp
    return PoolSettings(response_window=i.response_window, zombie_period=i.zombie_period,
                        probe_interval=i.probe_interval, revive_probes=i.revive_probes)


def build_deps(settings: Settings, data: Snapshot, dictionary: Dictionary, *,
               leases: LeaseBook | None = None, previous: Deps | None = None,
               relay_lookup=None, eap: EapServer | None = None) -> Deps:
    """A complete dependency set for `data`: at start with the worker's lease book and
    EAP-MD5's State key (eap_server()); on a reload with `previous`, the Deps it
    replaces, of which the servers' health, the random source, the verified-password
    cache, the ISP health, the lease book, the relay's store lookup and the State key
    are kept. The ISPs' dynamic-authorization clients come with the ISPs: a
    provisioning change reaches the relay with them. On the event loop: Pools takes
    over the running pools' server health."""
    pools = Pools(data.isps, pool_settings(settings),
                  previous=previous.pools if previous is not None else None)
    kept = {} if previous is None else {
        "rng": previous.rng, "verified": previous.verified, "health": previous.health,
        "leases": previous.leases, "relay_lookup": previous.relay_lookup,
        "eap": previous.eap}
    directory = data.directory
    if configured(settings):  # LDAP directories after the store's subscribers
        directory = open_directories(settings, data.directory, data.profiles, data.isps,
                                     previous.directory if previous is not None else None)
    elif previous is not None:
        close_directories(previous.directory)
    return Deps(settings=settings, directory=directory, dictionary=dictionary,
                replies=data.replies, accounting=AccountingPolicy(), isps=data.isps,
                pools=pools, selection_policy=selection_policy(settings.isp),
                tunnels=TunnelTemplates(dictionary, data.replies.extra_dir),
                relay_peers=ClientTable(peers_of(data.isps)),
                dynauth_requests=RequestBuilder(dictionary, data.replies.extra_dir,
                                                data.replies),
                **({"leases": leases, "relay_lookup": relay_lookup, "eap": eap} | kept))
