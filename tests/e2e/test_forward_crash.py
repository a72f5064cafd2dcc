"""Accounting forwarded to a proxy-mode ISP is stored there exactly once, though vpop
is killed with SIGKILL twice while forwarding it.

The ISP is a real FreeRADIUS writing a detail file, with duplicate detection for
accounting as RFC 5080 §2.2.2 describes it (FreeRADIUS 3.2 itself forgets an
Accounting-Request once it has answered it; see tests/support/freeradius.py). Each
crash is set up so that the ISP holds a record vpop does not know it delivered:

1. the ISP is held (SIGSTOP) while vpop forwards; once a datagram waits unread in the
   ISP's socket, vpop is killed; then the ISP goes on and stores what it had;
2. both are held in turn: vpop's datagrams wait at the ISP, then the ISP's answers
   wait unread in vpop's socket, and vpop is killed.

Each time vpop is started again on the same database and sends those records again:
from the same source port, byte for byte, so the ISP recognises them. At the end the
ISP's detail file holds every record once, and what it recognised as duplicates are
copies of records it holds, Acct-Delay-Time included.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from e2e_support import (STOP_TIMEOUT, Nas, VpopServer, children_of, process_state, run_vpop,
                          set_options)
from support.freeradius import FreeRadius

from vpop.radius import codec
from vpop.store.engine import make_engine

pytestmark = pytest.mark.e2e

UPSTREAM_SECRET = "isp-f-secret"
SESSIONS = 16
STEPS = ("Start", "Interim-Update", "Interim-Update", "Stop")  # 64 records in all
WAIT = 60.0  # generous: a condition that must come, on a slow machine
HELD = 5.0  # how long the ISP may take to answer what waits for it
CLASS = "vpop1;isp=isp-f;mode=proxy;reason=realm"


def records() -> list[tuple[tuple[str, str, str], list]]:
    """(key as the detail file shows it, pairs), a session's records in order, step by step."""
    out = []
    for step, status in enumerate(STEPS):
        for n in range(SESSIONS):
            sid = f"fwd-{n:02d}"
            pairs = [("Acct-Status-Type", status), ("Acct-Session-Id", sid),
                     ("User-Name", f"user{n}@isp-f.example"), ("NAS-IP-Address", "192.0.2.1"),
                     ("NAS-Port", n), ("Acct-Session-Time", 300 * step), ("Class", CLASS)]
            out.append(((sid, status, str(300 * step)), pairs))
    return out


def plan(isp: FreeRadius) -> str:
    return f'''
[[isp]]
name = "isp-f"
mode = "proxy"
realms = ["@isp-f.example"]

[[isp.servers]]
name = "isp-f/1"
address = "127.0.0.1"
auth_port = {isp.auth_port}
acct_port = {isp.acct_port}
secret = "{UPSTREAM_SECRET}"
'''


def rx_queue(port: int) -> int:
    """Bytes waiting unread in the UDP sockets bound to `port`, as the kernel counts them."""
    total = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                total += int(fields[4].split(":")[1], 16)
    return total


def wait_for(condition, what: str, diagnostics, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f} s: {what}\n{diagnostics()}", pytrace=False)
        time.sleep(0.02)


def source_ports(server: VpopServer) -> list[int]:
    return [int(p) for p in re.findall(r"accounting to ISPs goes from source port (\d+)",
                                       server.log_text())]


def queue_state(server: VpopServer) -> tuple[int, int]:
    """(records queued for the ISP, of which delivered)."""
    engine = make_engine(server.db_url)
    try:
        with engine.connect() as connection:
            return tuple(connection.execute(text(
                "SELECT count(*), count(delivered_at) FROM acct_forward")).one())
    finally:
        engine.dispose()


def detail_keys(records) -> list[tuple[str, str, str]]:
    return [(r.get("Acct-Session-Id", ""), r.get("Acct-Status-Type", ""),
             r.get("Acct-Session-Time", "")) for r in records]


def kill(server: VpopServer) -> None:
    """SIGKILL (a held process dies too), and wait until its ledger is gone with it."""
    children = children_of(server.pid)
    server.process.send_signal(signal.SIGKILL)
    assert server.stop() == -signal.SIGKILL
    deadline = time.monotonic() + STOP_TIMEOUT
    while left := [pid for pid in children if process_state(pid) is not None]:
        assert time.monotonic() < deadline, f"processes {left} outlived the killed server"
        time.sleep(0.05)


def again(server: VpopServer) -> VpopServer:
    """The same installation started anew on the same database and journal."""
    fresh = dataclasses.replace(server, process=None, exit_status=None, _output_file=None)
    fresh.start()
    return fresh


@pytest.fixture
def isp():
    server = FreeRadius("isp-f", clients=[("127.0.0.1/32", UPSTREAM_SECRET)],
                        duplicate_window=600)
    server.start()
    yield server
    if server.running:  # a failed test may have left it held
        os.kill(server.pid, signal.SIGCONT)
    server.cleanup()


@pytest.fixture
def servers():
    started: list[VpopServer] = []
    yield started
    for server in started:
        if server.process is not None and server.exit_status is None:
            os.kill(server.pid, signal.SIGCONT)
            server.stop()


def test_sigkill_twice_while_forwarding_leaves_each_record_once_at_the_isp(
        tmp_path, isp, servers):
    first = VpopServer.create(tmp_path / "vpop", metrics=False)
    # Resent byte for byte for as long as this ISP remembers, however slow the restarts.
    first.config.write_text(set_options(first.config.read_text(), {
        "isp": {"accounting_resend_window": 600.0}}))
    first.import_plan(plan(isp))
    servers.append(first)
    first.start()
    wait_for(lambda: source_ports(first), "the forwarder's source port in the log",
             first.diagnostics)
    (port,) = source_ports(first)

    def diagnostics():
        return f"{servers[-1].diagnostics()}\n{isp.diagnostics()}"

    nas, stream = Nas(), records()
    half = len(stream) // 2

    def send(server, part):
        for _, pairs in part:
            reply = nas.ask(nas.accounting(pairs), server.acct())
            assert reply.code == codec.ACCOUNTING_RESPONSE  # stored: now owed to the ISP

    # 1. Sent, and unread at the ISP when vpop dies.
    os.kill(isp.pid, signal.SIGSTOP)
    send(first, stream[:half])
    wait_for(lambda: rx_queue(isp.acct_port) > 0, "a forwarded record waiting at the held ISP",
             diagnostics)
    kill(first)
    os.kill(isp.pid, signal.SIGCONT)  # it stores what waited, and answers a closed port
    second = again(first)
    servers.append(second)
    # What was in flight is sent again, and the ISP knows it for what it is.
    wait_for(lambda: isp.duplicate_records(), "a resend recognised by the ISP", diagnostics)

    # 2. Stored and answered by the ISP, the answer unread when vpop dies.
    os.kill(isp.pid, signal.SIGSTOP)
    send(second, stream[half:])
    wait_for(lambda: rx_queue(isp.acct_port) > 0, "a forwarded record waiting at the held ISP",
             diagnostics)
    os.kill(second.pid, signal.SIGSTOP)
    os.kill(isp.pid, signal.SIGCONT)
    wait_for(lambda: rx_queue(port) > 0, "the ISP's answer waiting at the held vpop",
             diagnostics, timeout=HELD * 4)
    kill(second)
    third = again(second)
    servers.append(third)

    expected = sorted(key for key, _ in stream)
    wait_for(lambda: queue_state(third) == (len(stream), len(stream)),
             "every record delivered", diagnostics)
    assert third.stop() == 0, third.diagnostics()

    mine = [r for r in isp.detail_records() if r.get("Acct-Session-Id", "").startswith("fwd-")]
    counts = collections.Counter(detail_keys(mine))
    twice = sorted(key for key, n in counts.items() if n > 1)
    assert not twice, f"stored twice by the ISP: {twice}"
    assert sorted(counts) == expected, "the ISP's detail file lacks records"
    # Every run sent from one source port, and what the ISP took for a retransmission
    # (same port, Request Authenticator) is a record it holds, every attribute alike.
    assert source_ports(third) == [port] * 3
    duplicates = isp.duplicate_records()
    assert len(duplicates) >= 2  # one crash each at least
    held = {_content(r) for r in mine}
    assert all(_content(r) in held for r in duplicates)


def _content(record) -> tuple:
    """A detail record's attributes, without what the ISP adds on arrival."""
    return tuple(sorted((k, v) for k, v in record.pairs if k not in ("Timestamp",)))


def test_a_configured_source_port_in_use_stops_serve_at_start(tmp_path):
    server = VpopServer.create(tmp_path / "vpop", metrics=False)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("0.0.0.0", 0))
        port = holder.getsockname()[1]
        server.config.write_text(set_options(server.config.read_text(), {
            "isp": {"accounting_source_port": port}}))
        result = run_vpop(server.config, "serve")
    assert result.returncode == 2  # as any port that cannot be bound
    assert f"*:{port}/udp (isp.accounting_source_port): Address already in use" \
        in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
