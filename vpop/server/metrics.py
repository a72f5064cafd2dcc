"""Prometheus endpoint: a collector over the workers' and the ledger's counters, which
other processes publish as files in a stats directory."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Callable

from prometheus_client import start_http_server
from prometheus_client.core import (CollectorRegistry, CounterMetricFamily,
                                    GaugeMetricFamily, HistogramMetricFamily)

from vpop.directory.health import BUCKETS as DIRECTORY_BUCKETS, STATES as DIRECTORY_STATES
from vpop.errors import ListenError
from vpop.pipeline.stats import LATENCY_BUCKETS, Stats

log = logging.getLogger(__name__)


class VpopCollector:
    def __init__(self, snapshots: Callable[[], list[dict]], gauges: Callable[[], dict] = dict,
                 dynauth: Callable[[], list[tuple[str, str, str, int]]] | None = None):
        self.snapshots = snapshots
        self.gauges = gauges
        self.dynauth = dynauth  # (NAS, direction, result, requests): DynAuthCounts

    def collect(self):
        snapshots = self.snapshots()
        total = Stats.merge(snapshots)
        requests = CounterMetricFamily("vpop_requests", "RADIUS requests answered",
                                       labels=["client", "code", "outcome"])
        for (client, code, outcome), n in sorted(total["requests"].items()):
            requests.add_metric([client, code, outcome], n)
        yield requests
        # How evenly the kernel spreads the ports' datagrams over the worker processes.
        by_worker = CounterMetricFamily("vpop_worker_requests", "RADIUS requests answered, "
                                        "by worker process", labels=["worker"])
        for snap in sorted((s for s in snapshots if "worker" in s), key=lambda s: s["worker"]):
            by_worker.add_metric([str(snap["worker"])], sum(snap["requests"].values()))
        yield by_worker
        drops = CounterMetricFamily("vpop_dropped", "Datagrams dropped, by reason",
                                    labels=["reason"])
        for reason, n in sorted(total["drops"].items()):
            drops.add_metric([reason], n)
        yield drops
        yield CounterMetricFamily("vpop_duplicates", "Retransmissions answered from the cache",
                                  value=total["duplicates"])
        buckets, running = [], 0
        for bound, n in zip(list(LATENCY_BUCKETS) + [float("inf")], total["latency_counts"]):
            running += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        yield HistogramMetricFamily("vpop_request_seconds", "Time from receipt to reply",
                                    buckets=buckets, sum_value=total["latency_sum"])
        up = GaugeMetricFamily("vpop_upstream_up", "Upstream RADIUS server alive (1) or "
                               "zombie/dead (0)", labels=["server"])
        upstream = CounterMetricFamily("vpop_upstream_replies", "Upstream exchanges by outcome",
                                       labels=["server", "outcome"])
        for server, values in sorted(total.get("upstreams", {}).items()):
            up.add_metric([server], values.get("up", 0))
            for outcome in ("answered", "timeouts", "bad_replies"):
                upstream.add_metric([server, outcome], values.get(outcome, 0))
        yield up
        yield upstream
        accounting = CounterMetricFamily("vpop_accounting", "Accounting records by what "
                                         "became of them", labels=["result"])
        for name, n in sorted(total.get("accounting", {}).items()):
            accounting.add_metric([name], n)
        yield accounting
        refused = CounterMetricFamily("vpop_eap_state_refused", "EAP-MD5 answers refused "
                                      "for their State, by why", labels=["reason"])
        for reason in ("expired", "forged"):
            refused.add_metric([reason], total.get("eap_refused", {}).get(reason, 0))
        yield refused
        yield GaugeMetricFamily("vpop_accounting_journal_backlog", "Accounting records "
                                "acknowledged and journaled, not yet applied by the ledger",
                                value=total["journal_backlog"])
        yield from directory_families(snapshots)
        if self.dynauth is not None:
            yield self._dynauth_requests()
        for name, value in self.gauges().items():
            yield GaugeMetricFamily(f"vpop_{name}", name.replace("_", " "), value=value)


    def _dynauth_requests(self) -> CounterMetricFamily:
        family = CounterMetricFamily("vpop_dynauth_requests", "CoA and Disconnect requests "
                                     "to NASes, by NAS, direction (originated, relayed) and "
                                     "result (ack, nak, timeout, error)",
                                     labels=["nas", "direction", "result"])
        for nas, direction, result, n in self.dynauth():
            family.add_metric([nas, direction, result], n)
        return family


class DynAuthCounts:
    """The dynamic-authorization requests counted from their audit (dynauth_action) at
    each scrape: the CLI and the portal send them from processes of their own, and the
    audit is the one place that sees them all. The engine is made at the first scrape,
    in the process that serves the endpoint."""

    def __init__(self, database_url: str):
        self.database_url = database_url
        self._sessions = None

    def __call__(self) -> list[tuple[str, str, str, int]]:
        from vpop.store import dynauth as store
        from vpop.store.engine import make_engine, make_sessionmaker
        try:
            if self._sessions is None:
                self._sessions = make_sessionmaker(make_engine(self.database_url))
            with self._sessions() as session:
                return store.action_counts(session)
        except Exception:
            log.exception("metrics: cannot count the dynamic-authorization requests")
            return []


def directory_families(snapshots: list[dict]):
    """The LDAP directories' health (docs/ldap.md), summed over the workers; a
    directory's state is the worst any worker sees."""
    merged: dict[str, dict] = {}
    for snap in snapshots:
        for name, values in snap.get("directories", {}).items():
            into = merged.setdefault(name, {"state": "up", "buckets": [0] * len(values["buckets"])})
            if DIRECTORY_STATES.index(values["state"]) > DIRECTORY_STATES.index(into["state"]):
                into["state"] = values["state"]
            for key in ("operations", "errors", "latency_sum", "cache_hits", "cache_misses",
                        "stale_answers"):
                into[key] = into.get(key, 0) + values[key]
            into["buckets"] = [a + b for a, b in zip(into["buckets"], values["buckets"])]
    if not merged:
        return
    state = GaugeMetricFamily("vpop_directory_state", "LDAP directory state (1 for the "
                              "state it is in: up, degraded, down)", labels=["directory", "state"])
    operations = CounterMetricFamily("vpop_directory_operations", "LDAP operations (connects, "
                                     "searches, binds, health checks) by result",
                                     labels=["directory", "result"])
    cache = CounterMetricFamily("vpop_directory_cache", "Directory lookups answered from "
                                "memory (hit), asked (miss), or answered from memory during "
                                "an outage (stale)", labels=["directory", "answer"])
    latency = HistogramMetricFamily("vpop_directory_seconds", "LDAP operation time",
                                    labels=["directory"])
    for name, values in sorted(merged.items()):
        for each in DIRECTORY_STATES:
            state.add_metric([name, each], int(values["state"] == each))
        operations.add_metric([name, "ok"], values["operations"] - values["errors"])
        operations.add_metric([name, "error"], values["errors"])
        for answer, key in (("hit", "cache_hits"), ("miss", "cache_misses"),
                            ("stale", "stale_answers")):
            cache.add_metric([name, answer], values[key])
        buckets, running = [], 0
        for bound, n in zip(list(DIRECTORY_BUCKETS) + [float("inf")], values["buckets"]):
            running += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        latency.add_metric([name], buckets, values["latency_sum"])
    yield state
    yield operations
    yield cache
    yield latency


def publish_snapshot(path: Path, snapshot: dict) -> None:
    """Write one process's counters for the collector, atomically (write, then rename)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(snapshot))
    os.replace(tmp, path)


def read_snapshots(stats_dir: str) -> list[dict]:
    """The counters the workers and the ledger publish in the stats directory."""
    out = []
    for f in Path(stats_dir).glob("*.pickle"):
        try:
            out.append(pickle.loads(f.read_bytes()))
        except (OSError, pickle.UnpicklingError, EOFError):
            pass
    return out


def serve_metrics(host: str, port: int, collector: VpopCollector) -> None:
    registry = CollectorRegistry()
    registry.register(collector)
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ListenError(host, port, "tcp", exc.strerror or str(exc),
                          option="metrics.port") from None
