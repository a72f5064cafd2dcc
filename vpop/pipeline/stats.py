"""Counters for the metrics endpoint, kept as plain ints on the hot path.

Workers merge snapshots of these into the supervisor's Prometheus collector.
"""

from __future__ import annotations

import bisect
from collections import Counter

# Seconds; the upper bounds of the latency histogram.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Stats:
    def __init__(self) -> None:
        # A plain dict: a Counter's subscript is a subclass's, several times slower.
        self.requests: dict[tuple[str, str, str], int] = {}  # client, code, outcome
        self.drops: Counter[str] = Counter()  # reason
        self.duplicates = 0
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)  # last: +Inf
        self.latency_sum = 0.0

    def request(self, client: str, code: str, outcome: str, seconds: float) -> None:
        key = (client, code, outcome)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def drop(self, reason: str) -> None:
        self.drops[reason] += 1

    def snapshot(self) -> dict:
        return {"requests": dict(self.requests), "drops": dict(self.drops),
                "duplicates": self.duplicates, "latency_counts": list(self.latency_counts),
                "latency_sum": self.latency_sum}

    @staticmethod
    def merge(snapshots: list[dict]) -> dict:
        total = Stats()
        upstreams: dict[str, dict[str, int]] = {}
        accounting: Counter[str] = Counter()
        eap_refused: Counter[str] = Counter()  # EAP-MD5 States refused, by why
        backlog = 0  # journaled accounting records the ledger has not applied yet
        for snap in snapshots:
            for server, values in snap.get("upstreams", {}).items():
                into = upstreams.setdefault(server, {})
                for name, value in values.items():
                    # "up" is a state: up if any worker can reach it; the rest add up
                    into[name] = max(into.get(name, 0), value) if name == "up" \
                        else into.get(name, 0) + value
            accounting.update(snap.get("accounting", {}))
            eap_refused.update(snap.get("eap_refused", {}))
            backlog += snap.get("journal_backlog", 0)
            if "requests" not in snap:
                continue  # the ledger's: accounting only
            for key, count in snap["requests"].items():
                total.requests[key] = total.requests.get(key, 0) + count
            total.drops.update(snap["drops"])
            total.duplicates += snap["duplicates"]
            for i, n in enumerate(snap["latency_counts"]):
                total.latency_counts[i] += n
            total.latency_sum += snap["latency_sum"]
        return {**total.snapshot(), "upstreams": upstreams, "accounting": dict(accounting),
                "journal_backlog": backlog, "eap_refused": dict(eap_refused)}
