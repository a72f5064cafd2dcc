"""A directory's health as its operations go: latency, errors, state (pure)."""

from __future__ import annotations

import bisect

# Latency histogram bounds in seconds, for the metrics endpoint.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
UP, DEGRADED, DOWN = "up", "degraded", "down"
STATES = (UP, DEGRADED, DOWN)
_DECAY = 0.05  # weight of the newest operation in the success rate


class DirectoryHealth:
    """Counters of one directory's operations (searches, binds, health checks) and its
    state: up, degraded (a server down, another serving) or down (none reachable)."""

    def __init__(self, name: str, servers: int):
        self.name = name
        self.servers = servers
        self.state = UP
        self.down_servers: set[str] = set()
        self.operations = 0
        self.errors = 0
        self.latency_sum = 0.0
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.success_rate = 1.0  # decaying average over the recent operations
        self.last_error = ""

    def observe(self, seconds: float, ok: bool, error: str = "") -> None:
        self.operations += 1
        self.latency_sum += seconds
        self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1  # the first bound >= it
        self.success_rate += _DECAY * ((1.0 if ok else 0.0) - self.success_rate)
        if not ok:
            self.errors += 1
            self.last_error = error

    def server_up(self, server: str) -> None:
        self.down_servers.discard(server)
        self._settle()

    def server_down(self, server: str, error: str) -> None:
        self.down_servers.add(server)
        self.last_error = error
        self._settle()

    def _settle(self) -> None:
        if not self.down_servers:
            self.state = UP
        elif len(self.down_servers) >= self.servers:
            self.state = DOWN
        else:
            self.state = DEGRADED

    def snapshot(self) -> dict:
        return {"state": self.state, "operations": self.operations, "errors": self.errors,
                "latency_sum": self.latency_sum, "buckets": list(self.buckets),
                "success_rate": self.success_rate, "servers_down": len(self.down_servers),
                "servers": self.servers}
