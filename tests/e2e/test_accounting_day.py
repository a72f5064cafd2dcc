"""A generated day of accounting replayed into `vpop serve`, its reports against figures
computed from the packets alone (tests/accounting_day).

The day (four NASes, ISPs routed by Class, realm or lease, leases over and under their
sessions, NAS reboots, stale sessions, wrapping counters) is imported with its ISPs and
leases into a fresh server with two workers and sent over UDP to the accounting port,
in one of five ways:

* in-order-window-1: in event order, one request at a time;
* shuffled-window-32, shuffled-window-256: in a perturbed arrival order (records late
  by up to 10 minutes of event time, consecutive interims swapped, datagrams sent
  twice), with up to 32 or 256 requests unanswered;
* shuffled-paced: the same order at a fixed rate;
* shuffled-killed: the same order, the server killed with SIGKILL halfway through and
  started again; what it had not answered is sent again.

An unanswered request is sent again with the same bytes. After the day, an
Accounting-On from a NAS that leases nothing, two hours after it, moves every NAS's
clock past the stale threshold, so that every session has ended. Then `vpop report
sessions` (by NAS and by lease, 5 minutes and day) and `vpop report utilization
--events` must give the expected figures, the same for every replay.

The day is the generator's full day: about 2,100 sessions, 36,500 requests a replay.
A failure lists, per report, how many rows differ in which column and the first few.
"""

from __future__ import annotations

import dataclasses
import json
import selectors
import signal
import socket
import time

import pytest

from accounting_day.figures import FIELDS, differences, event_differences, expected_figures
from accounting_day.generator import DATE, arrival_order, generate_day
from e2e_support import (DICTIONARY, SECRET, VpopServer, children_of, run_vpop,
                         wait_gone)
from vpop.radius import codec

pytestmark = pytest.mark.e2e

WORKERS = 2
RETRY = 2.0  # seconds without an answer before a request is sent again
PACE = 600  # requests per second in the paced replay
REPLAY_TIMEOUT = 600.0  # generous: the whole day on two busy cores
SETTLE_TIMEOUT = 300.0  # for the ledger to apply everything and the reaper to close all
NEXT_DAY = "2026-03-03"
MODES = {  # name: (arrival order, window, requests per second, kill halfway)
    "in-order-window-1": ("event", 1, None, False),
    "shuffled-window-32": ("shuffled", 32, None, False),
    "shuffled-window-256": ("shuffled", 256, None, False),
    "shuffled-paced": ("shuffled", 256, PACE, False),
    "shuffled-killed": ("shuffled", 32, None, True),
}
REPORTS = {  # name: arguments of `vpop report`
    "sessions by nas, 5 minutes": ("sessions", "--by", "nas", "--grain", "5min"),
    "sessions by nas, day": ("sessions", "--by", "nas", "--grain", "day"),
    "sessions by lease, 5 minutes": ("sessions", "--by", "lease", "--grain", "5min"),
    "sessions by lease, day": ("sessions", "--by", "lease", "--grain", "day"),
    "utilization events": ("utilization", "--events"),
}


# --- sending -----------------------------------------------------------------------------

def datagrams(records) -> list[bytes]:
    """Each record as an Accounting-Request; a record sent twice is the same datagram."""
    encoded: dict[tuple, bytes] = {}
    out = []
    for pairs in records:
        if pairs not in encoded:
            encoded[pairs] = codec.encode_request(
                codec.ACCOUNTING_REQUEST, len(encoded) % 256, DICTIONARY.encode_pairs(pairs),
                SECRET, message_authenticator=False)
        out.append(encoded[pairs])
    return out


class Replayer:
    """Sends datagrams in order to one address, at most `window` unanswered at a time,
    at most `rate` a second if given. A request unanswered for RETRY seconds is sent
    again, the same bytes from the same socket (RFC 2866 §3: a retransmission keeps its
    Identifier). Sockets are opened as needed so that no two requests in flight share a
    source port and Identifier."""

    def __init__(self, addr: tuple[str, int], data: list[bytes], *, window: int,
                 rate: float | None = None):
        self.addr, self.data, self.window, self.rate = addr, data, window, rate
        self.selector = selectors.DefaultSelector()
        self.sockets: list[socket.socket] = []
        self.pending: dict[tuple[int, int], tuple[int, float]] = {}  # (socket, id) -> (n, due)
        self.next = 0  # the next datagram to send for the first time
        self.answered = 0
        self.retransmitted = 0
        self.began = time.monotonic()

    def run(self, *, until_answered: int | None = None, timeout: float = REPLAY_TIMEOUT) -> None:
        """Until every datagram is answered, or `until_answered` are."""
        deadline = time.monotonic() + timeout
        goal = len(self.data) if until_answered is None else until_answered
        while self.answered < goal:
            now = time.monotonic()
            if now > deadline:
                pytest.fail(f"{self.answered} of {len(self.data)} requests answered within "
                            f"{timeout:.0f} s", pytrace=False)
            while (self.next < len(self.data) and len(self.pending) < self.window
                   and (self.rate is None or self.began + self.next / self.rate <= now)):
                self._send(self.next, now)
                self.next += 1
            for key, (n, due) in list(self.pending.items()):
                if due <= now:
                    self._transmit(key[0], n)
                    self.pending[key] = (n, now + RETRY)
                    self.retransmitted += 1
            wake = min([due for _, due in self.pending.values()] + [now + RETRY])
            if self.rate is not None and self.next < len(self.data):
                wake = min(wake, self.began + self.next / self.rate)
            for key, _ in self.selector.select(max(0.0, wake - time.monotonic())):
                self._receive(key.fileobj, key.data)

    def _send(self, n: int, now: float) -> None:
        ident = self.data[n][1]
        index = next((i for i in range(len(self.sockets)) if (i, ident) not in self.pending),
                     None)
        if index is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.connect(self.addr)
            sock.setblocking(False)
            index = len(self.sockets)
            self.sockets.append(sock)
            self.selector.register(sock, selectors.EVENT_READ, index)
        self.pending[(index, ident)] = (n, now + RETRY)
        self._transmit(index, n)

    def _transmit(self, index: int, n: int) -> None:
        try:
            self.sockets[index].send(self.data[n])
        except ConnectionRefusedError:  # an ICMP error from the server's absence: retry later
            pass

    def _receive(self, sock: socket.socket, index: int) -> None:
        while True:
            try:
                reply = sock.recv(4096)
            except (BlockingIOError, ConnectionRefusedError):
                return
            found = self.pending.get((index, reply[1]))
            if found is None or not (reply[0] == codec.ACCOUNTING_RESPONSE and codec.reply_ok(
                    reply, self.data[found[0]][4:20], SECRET)):
                continue  # a second answer to an earlier request: what is pending stays
            del self.pending[(index, reply[1])]
            self.answered += 1

    def close(self) -> None:
        for sock in self.sockets:
            self.selector.unregister(sock)
            sock.close()
        self.selector.close()


# --- the day, its figures, and what the server reports -----------------------------------

@pytest.fixture(scope="module")
def day():
    return generate_day()


@pytest.fixture(scope="module")
def expected(day):
    figures = expected_figures([*day.records, day.closing_record()], day.isps, day.leases)
    return {
        "sessions by nas, 5 minutes": figures.rows("nas", "5min"),
        "sessions by nas, day": figures.rows("nas", "day"),
        "sessions by lease, 5 minutes": figures.rows("lease", "5min"),
        "sessions by lease, day": figures.rows("lease", "day"),
        "utilization events": figures.events,
    }


def report(server: VpopServer, name: str):
    result = run_vpop(server.config, "report", *REPORTS[name], "--from", DATE, "--to", NEXT_DAY,
                      "--format", "json", "--no-progress")
    assert result.returncode == 0, f"vpop report {name}: {result.stdout}{result.stderr}"
    rows = json.loads(result.stdout)
    if name == "utilization events":
        return rows
    return {(row["bucket"], row["group"]): {f: row.get(f) for f in FIELDS} for row in rows}


def online(server: VpopServer) -> list[dict]:
    result = run_vpop(server.config, "report", "sessions", "--online", "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def settle(server: VpopServer) -> int:
    """Until the ledger has applied everything and no session is online (the closing
    record decides them all); how many are still online if that never comes."""
    server.wait_for_ledger(timeout=SETTLE_TIMEOUT)
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while (left := len(online(server))) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@dataclasses.dataclass
class Replayed:
    reports: dict
    still_online: int
    trouble: list[str]  # what the server did wrong besides its figures
    seconds: float
    retransmitted: int


def replay(day, mode: str, home) -> Replayed:
    order, window, rate, kill = MODES[mode]
    records = list(day.records) if order == "event" else arrival_order(day.records).records
    server = VpopServer.create(home, workers=WORKERS, metrics=False)
    plan = home / "day.toml"  # imported before the server starts: no record before a lease
    plan.write_text(day.import_toml())
    imported = run_vpop(server.config, "import", str(plan))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    began = time.monotonic()
    server.start()
    sender = Replayer(server.acct(), datagrams(records), window=window, rate=rate)
    closing = Replayer(server.acct(), datagrams([day.closing_record()]), window=1)
    try:
        if kill:
            sender.run(until_answered=len(records) // 2)
            children = children_of(server.pid)
            server.stop(signal.SIGKILL)  # with requests in flight
            wait_gone(children)
            server = dataclasses.replace(server, process=None, exit_status=None,
                                         _output_file=None)
            server.start()
        sender.run()
        closing.run()
        still_online = settle(server)
        reports = {name: report(server, name) for name in REPORTS}
    finally:
        sender.close()
        closing.close()
        status = server.stop()
    trouble = tracebacks(server.log_text())
    if status != 0:
        trouble.insert(0, f"vpop serve exited with status {status} after SIGTERM")
    return Replayed(reports=reports, still_online=still_online, trouble=trouble,
                    seconds=time.monotonic() - began, retransmitted=sender.retransmitted)


def tracebacks(log: str) -> list[str]:
    """How many tracebacks the server logged, and the first with the line before it."""
    lines = log.splitlines()
    found = [n for n, line in enumerate(lines) if line.startswith("Traceback")]
    if not found:
        return []
    first = end = found[0]
    while end + 1 < len(lines) and lines[end + 1].startswith(" "):
        end += 1
    return [f"the server logged {len(found)} tracebacks; the first:",
            *lines[max(0, first - 1):end + 2]]


@pytest.fixture(scope="module")
def replays(day, tmp_path_factory):
    """Each mode's replay, run once for the module."""
    done: dict[str, Replayed | None] = {}  # None: it failed, as its own test says

    def get(mode: str) -> Replayed:
        if mode not in done:
            done[mode] = None
            done[mode] = replay(day, mode, tmp_path_factory.mktemp(mode))
        if done[mode] is None:
            pytest.fail(f"the {mode} replay did not finish", pytrace=False)
        return done[mode]

    return get


def problems(reported: dict, wanted: dict, names=("expected", "reported")) -> list[str]:
    found = []
    for name, want in wanted.items():
        got = reported[name]
        lines = (event_differences(want, got, names=names) if name == "utilization events"
                 else differences(want, got, names=names))
        if lines:
            found += [f"{name}:", *lines]
    return found


@pytest.mark.parametrize("mode", list(MODES))
def test_a_replayed_day_reports_the_figures_of_its_packets(replays, expected, mode):
    result = replays(mode)
    found = result.trouble + problems(result.reports, expected)
    if result.still_online:
        found.insert(0, f"{result.still_online} sessions still online after the closing "
                        "record")
    if found:
        pytest.fail(f"{mode} ({result.seconds:.0f} s, {result.retransmitted} requests sent "
                    "again):\n" + "\n".join(found), pytrace=False)


def test_every_replay_reports_the_same(replays):
    first, *others = MODES
    found = []
    for mode in others:
        lines = problems(replays(mode).reports, replays(first).reports, names=(first, mode))
        if lines:
            found += [f"{mode} against {first}:", *lines]
    if found:
        pytest.fail("\n".join(found), pytrace=False)
