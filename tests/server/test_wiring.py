"""What a worker's dependency set is built from, and what a reload hands on."""

import dataclasses
import random

import pytest

from vpop.accounting.leases import LeaseBook
from vpop.aaa.reply import ReplyRenderer
from vpop.aaa.subscribers import SubscriberSnapshot
from vpop.config import IspSettings, Settings
from vpop.isp.model import Isp, UpstreamServer
from vpop.isp.selection import IspHealth
from vpop.isp.tunnel import TunnelTemplates
from vpop.radius.clients import ClientTable
from vpop.radius.dictionary import Dictionary, shipped_dictionary
from vpop.server.wiring import Snapshot, build_deps

DICT = Dictionary(shipped_dictionary())
SERVER = UpstreamServer(name="isp-a/1", address="127.0.0.1", auth_port=18121, secret=b"s")


def snapshot(*isps: Isp) -> Snapshot:
    return Snapshot(ClientTable([]), SubscriberSnapshot([], {}, {}), ReplyRenderer(DICT), isps)


def test_a_new_deps_is_complete_and_frozen():
    book = LeaseBook()
    deps = build_deps(Settings(), snapshot(Isp(name="isp-a", servers=(SERVER,))), DICT,
                      leases=book)
    assert deps.leases is book
    assert isinstance(deps.tunnels, TunnelTemplates)  # built with the rest, not on first use
    assert set(deps.pools.health) == {"isp-a/1"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        deps.directory = SubscriberSnapshot([], {}, {})


def test_a_reload_builds_everything_again_and_hands_on_what_outlives_it():
    isp = Isp(name="isp-a", servers=(SERVER,))
    running = build_deps(Settings(), snapshot(isp), DICT, leases=LeaseBook())
    running = dataclasses.replace(running, rng=random.Random(1))
    running.verified["hash"] = b"fingerprint"
    running.health.measured = {"isp-a": IspHealth(success_rate=0.5)}
    server_health = running.pools.health["isp-a/1"]

    settings = Settings(isp=IspSettings(default_isp="isp-a"))
    data = snapshot(isp, Isp(name="isp-b", mode="local"))
    deps = build_deps(settings, data, DICT, previous=running)

    assert deps.settings is settings and deps.directory is data.directory
    assert deps.replies is data.replies and deps.isps == data.isps
    assert deps.selection_policy.default_isp == "isp-a"
    assert deps.pools is not running.pools and deps.tunnels is not running.tunnels
    assert deps.pools.health["isp-a/1"] is server_health  # what we know of a server
    for kept in ("rng", "verified", "health", "leases"):
        assert getattr(deps, kept) is getattr(running, kept)
    assert deps.isp_health(1.0)["isp-a"].success_rate == 0.5
    assert set(deps.isp_health(1.0)) == {"isp-a", "isp-b"}  # the new ISPs, at once
