#!/usr/bin/env python3
"""RADIUS load generator for loopback benchmarks.

Every packet is built before the clock starts: a pool of Access-Requests (PAP,
Message-Authenticator first) or Accounting-Requests (Start/Interim-Update/Stop),
each with its own Request Authenticator, so a server's duplicate cache
(RFC 5080 §2.2.2) never answers for the request handler. A window of requests is
kept outstanding over several connected UDP sockets (distinct source ports);
each socket cycles its 256 Identifiers first in, first out, as a NAS does.
Every reply is checked (Response Authenticator and Message-Authenticator).
With --users FILE the Access-Requests cycle through many users in turn (a directory
lookup per user, say) instead of repeating one.

With --rate N the requests go out on a fixed schedule instead (open loop, as NASes
send: they do not wait for one answer before the next session event), and each
latency counts from the request's scheduled moment, so a server that falls behind
cannot hide it by slowing the generator down. The window then only bounds what is
outstanding.

The CPU seconds of the server (the given PIDs and all their descendants, from
/proc/<pid>/stat) and of the generator itself (getrusage) are measured over the
same interval as the request rate.

    loadgen.py --target 127.0.0.1:1812 --secret testing123 --duration 10 \\
        --server-pid "$(pgrep -o -f 'vpop serve')"

The last line of output is one JSON object for scripts.
"""

from __future__ import annotations

import argparse
import array
import collections
import ipaddress
import json
import multiprocessing
import os
import resource
import select
import socket
import sys
import time
from dataclasses import dataclass

from vpop.errors import MalformedPacket
from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.radius.crypto import encrypt_user_password

IDS = 256
MAX_DURATION = 600.0
MAX_COUNT = 10_000_000
MAX_POOL = 3_000_000  # packets (~100 bytes each); beyond it the pool is reused
STATUS_CYCLE = (A.ACCT_START, A.ACCT_INTERIM, A.ACCT_STOP)
TIMEOUT_SCAN = 0.05  # seconds between scans for lost requests
PACE_TICK = 0.0002  # with a rate: the longest wait for replies before the next sends
PACE_LATE = 0.001  # with a rate: a send this far behind its schedule counts as late


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    kind: str  # "auth" or "acct"
    host: str
    port: int
    secret: bytes
    user: str
    password: bytes
    nas_ip: bytes
    window: int
    sockets: int
    timeout: float
    warmup: float
    duration: float | None  # None: run until `count` requests are answered
    count: int | None
    # Requests/s sent on a fixed schedule, whatever the replies (open loop, as NASes
    # send); None: a new request as each reply comes (closed loop, the window full).
    rate: float | None = None
    # (user, password) pairs the Access-Requests cycle through, in order; empty: user
    # and password above for every request.
    users: tuple[tuple[str, bytes], ...] = ()


# --- packet pool ------------------------------------------------------------------------

def access_request(ident: int, authenticator: bytes, plan: Plan,
                   credentials: tuple[str, bytes] | None = None) -> bytes:
    user, password = credentials or (plan.user, plan.password)
    attrs = b"".join((
        codec.attribute(A.USER_NAME, user.encode()),
        codec.attribute(A.USER_PASSWORD,
                        encrypt_user_password(password, plan.secret, authenticator)),
        codec.attribute(A.NAS_IP_ADDRESS, plan.nas_ip),
    ))
    return codec.encode_request(codec.ACCESS_REQUEST, ident, attrs, plan.secret,
                                authenticator=authenticator)


def accounting_request(ident: int, sequence: int, nonce: str, plan: Plan) -> bytes:
    """Packet `sequence` of a Start, Interim-Update, Stop series, one session per three."""
    session, step = divmod(sequence, len(STATUS_CYCLE))
    status = STATUS_CYCLE[step]
    u32 = lambda n: (n & 0xFFFFFFFF).to_bytes(4, "big")  # noqa: E731
    parts = [
        codec.attribute(A.USER_NAME, plan.user.encode()),
        codec.attribute(A.NAS_IP_ADDRESS, plan.nas_ip),
        codec.attribute(A.NAS_PORT, u32(session)),
        codec.attribute(A.ACCT_STATUS_TYPE, u32(status)),
        codec.attribute(A.ACCT_SESSION_ID, f"{nonce}-{session:08x}".encode()),
        codec.attribute(A.FRAMED_IP_ADDRESS, bytes((10, (session >> 16) & 255,
                                                    (session >> 8) & 255, session & 255))),
    ]
    if status != A.ACCT_START:
        parts += [codec.attribute(A.ACCT_SESSION_TIME, u32(60 * step)),
                  codec.attribute(A.ACCT_INPUT_OCTETS, u32(1_000_000 * step)),
                  codec.attribute(A.ACCT_OUTPUT_OCTETS, u32(5_000_000 * step))]
    if status == A.ACCT_STOP:
        parts.append(codec.attribute(A.ACCT_TERMINATE_CAUSE, u32(1)))  # User-Request
    return codec.encode_request(codec.ACCOUNTING_REQUEST, ident, b"".join(parts), plan.secret)


def build_pool(plan: Plan, total: int) -> list[list[bytes]]:
    """`total` distinct packets as pool[identifier] lists.

    Packet j gets identifier j % 256, so sending in identifier order sends in
    sequence order (Start before Interim-Update before Stop for accounting).
    """
    # Each socket cycles all identifiers, so one may be used once more per socket.
    per_id = -(-total // IDS) + plan.sockets
    pool: list[list[bytes]] = [[] for _ in range(IDS)]
    if plan.kind == "auth":
        randomness = os.urandom(16 * per_id * IDS)
        users = plan.users or ((plan.user, plan.password),)
        for j in range(per_id * IDS):
            ident = j % IDS
            pool[ident].append(access_request(ident, randomness[16 * j:16 * j + 16], plan,
                                              users[j % len(users)]))
    else:
        nonce = os.urandom(4).hex()
        for j in range(per_id * IDS):
            pool[j % IDS].append(accounting_request(j % IDS, j, nonce, plan))
    return pool


# --- CPU accounting -----------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode()
    except OSError:
        return None
    # The command name may contain spaces and parentheses; fields follow the last ')'.
    return text[text.rindex(")") + 2:].split()


def descendants(roots: list[int]) -> set[int]:
    """The given PIDs and every live process below them."""
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _stat_fields(int(name))
            if fields:
                parent[int(name)] = int(fields[1])
    found = {pid for pid in roots if pid in parent}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found


class ProcessCpu:
    """CPU seconds (user + system, all threads) of a process tree, sampled on demand."""

    def __init__(self, roots: list[int]):
        self.roots = list(roots)
        self.tick = os.sysconf("SC_CLK_TCK")
        self.pids = descendants(self.roots) if self.roots else set()
        self.base: dict[int, int] = {}
        self.machine = self.machine_used = 0.0
        self.by_pid: dict[int, float] = {}

    def _ticks(self, pids) -> dict[int, int]:
        out = {}
        for pid in pids:
            fields = _stat_fields(pid)
            if fields:  # utime, stime are fields 14 and 15 of /proc/<pid>/stat
                out[pid] = int(fields[11]) + int(fields[12])
        return out

    def start(self) -> None:
        self.base = self._ticks(self.pids)
        self.machine = busy_cpu()

    def seconds(self) -> float | None:
        """Server CPU seconds since start(); also notes the machine's in .machine_used."""
        self.machine_used = busy_cpu() - self.machine
        if not self.roots:
            return None
        # A process that appeared meanwhile is counted from its birth.
        self.pids |= descendants(self.roots)
        now = self._ticks(self.pids)
        self.by_pid = {p: (now[p] - self.base.get(p, 0)) / self.tick for p in sorted(now)}
        return sum(self.by_pid.values())


def busy_cpu() -> float:
    """CPU seconds spent by the whole machine (all CPUs, not idle or iowait)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:7]) - idle) / os.sysconf("SC_CLK_TCK")


def rss_mb(pids) -> float:
    """Resident memory of the given processes, in MiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next((int(line.split()[1]) for line in f
                               if line.startswith("VmRSS:")), 0)
        except OSError:
            pass
    return total / 1024


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the sending loop ---------------------------------------------------------------------

@dataclass(slots=True)
class Tally:
    sent: int = 0
    accepts: int = 0
    rejects: int = 0
    other: int = 0
    bad: int = 0
    timeouts: int = 0
    stray: int = 0  # a reply for no outstanding request (late, after a timeout)
    late: int = 0  # with a rate: sends more than PACE_LATE behind the schedule
    wrapped: int = 0  # packets sent a second time because the pool ran out
    cpu: float = 0.0
    elapsed: float = 0.0


def run_load(plan: Plan, pool: list[list[bytes]], window: int, n_sockets: int,
             start_at: float, on_start=None, on_end=None,
             count: int | None = None,
             arrivals: array.array | None = None) -> tuple[Tally, array.array]:
    """Drive the window until the measured interval ends; return the tally and latencies.

    The interval starts `plan.warmup` seconds after `start_at` and lasts
    `plan.duration`, or until `count` requests have been answered or lost. With
    `arrivals`, each reply's arrival time (since the interval began) is appended to it,
    in the order of the latencies.

    With `plan.rate`, request k goes out at start + k / rate over the sockets in turn,
    and its latency counts from that moment, not from when it could be sent: a server
    that falls behind is not excused by the generator waiting for it (the window still
    bounds what is outstanding; `late` counts the sends that went late).
    """
    secret = plan.secret
    timeout = plan.timeout
    reply_ok = codec.reply_ok
    ok_code, no_code = ((codec.ACCESS_ACCEPT, codec.ACCESS_REJECT) if plan.kind == "auth"
                        else (codec.ACCOUNTING_RESPONSE, -1))
    family = socket.AF_INET6 if ":" in plan.host else socket.AF_INET
    socks, outs, frees, limits = [], [], [], []
    poller = select.epoll()
    by_fd = {}
    for i in range(n_sockets):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.connect((plan.host, plan.port))
        sock.setblocking(False)
        socks.append(sock)
        outs.append({})  # identifier -> (sent at, request packet)
        frees.append(collections.deque(range(IDS)))
        limits.append(window // n_sockets + (i < window % n_sockets))
        by_fd[sock.fileno()] = i
        poller.register(sock.fileno(), select.EPOLLIN)
    cursors = [0] * IDS
    sizes = [len(p) for p in pool]
    quarantine: collections.deque = collections.deque()  # (release at, socket, identifier)

    tally = Tally()
    latencies = array.array("d")
    lat = latencies.append
    measuring = False
    sending = True
    budget = count if count is not None else -1  # requests still to send in the interval
    warm_end = start_at + plan.warmup
    end = warm_end + plan.duration if plan.duration is not None else warm_end + MAX_DURATION
    cpu0 = 0.0

    def fill(i: int, now: float, most: int = IDS) -> int:
        nonlocal budget
        out, free, limit, sock = outs[i], frees[i], limits[i], socks[i]
        sent = 0
        while sent < most and len(out) < limit and free and budget != 0:
            ident = free.popleft()
            cur = cursors[ident]
            packet = pool[ident][cur]
            cur += 1
            if cur == sizes[ident]:
                cur = 0
                tally.wrapped += 1
            cursors[ident] = cur
            try:
                sock.send(packet)
            except BlockingIOError:
                free.appendleft(ident)
                break
            except ConnectionRefusedError:  # ICMP from an earlier datagram; try again
                free.appendleft(ident)
                break
            out[ident] = (now, packet)
            sent += 1
            if budget > 0:
                budget -= 1
        return sent

    while time.monotonic() < start_at:
        time.sleep(min(0.01, max(0.0, start_at - time.monotonic())))
    t_start = time.monotonic()
    next_scan = t_start + TIMEOUT_SCAN
    events: list = []
    rate = plan.rate
    primed = rate is not None  # paced: no first window, the schedule sends
    paced, turn, window_full = 0, 0, False  # sent on the schedule; next socket; behind
    wait = PACE_TICK if rate is not None else TIMEOUT_SCAN
    while True:
        if primed:
            events = poller.poll(0 if window_full else wait)
        now = time.monotonic()
        if not measuring and now >= warm_end:
            measuring = True
            if on_start:
                on_start()
            tally = Tally(wrapped=tally.wrapped)
            latencies = array.array("d")
            lat = latencies.append
            if arrivals is not None:
                del arrivals[:]
            cpu0 = own_cpu()
            t_start = now
            if count is not None:
                budget = count
        if measuring and (now >= end or (count is not None and budget == 0
                                         and not any(outs))):
            break
        if not primed:  # the first window, sent once the interval's state is set
            primed = True
            for i in range(n_sockets):
                tally.sent += fill(i, now)
        for fd, _ in events:
            i = by_fd[fd]
            sock, out, free = socks[i], outs[i], frees[i]
            received = time.monotonic()
            while True:
                try:
                    data = sock.recv(4096)
                except (BlockingIOError, InterruptedError):
                    break
                except ConnectionRefusedError:
                    continue
                if len(data) < 20:
                    tally.bad += 1
                    continue
                ident = data[1]
                pending = out.pop(ident, None)
                if pending is None:
                    tally.stray += 1
                    continue
                sent_at, request = pending
                free.append(ident)
                try:
                    good = reply_ok(data, request[4:20], secret)
                except MalformedPacket:
                    good = False
                if not good:
                    tally.bad += 1
                elif data[0] == ok_code:
                    tally.accepts += 1
                elif data[0] == no_code:
                    tally.rejects += 1
                else:
                    tally.other += 1
                lat(received - sent_at)
                if arrivals is not None:
                    arrivals.append(received - t_start)
            if sending and rate is None:
                tally.sent += fill(i, time.monotonic())
        if rate is not None:
            due = int((now - start_at) * rate)
            window_full = False
            while paced < due and budget != 0:
                scheduled = start_at + paced / rate
                for step in range(n_sockets):  # the next socket with room
                    if fill((turn + step) % n_sockets, scheduled, 1):
                        turn = (turn + step + 1) % n_sockets
                        break
                else:
                    window_full = True  # the rest goes as replies free identifiers
                    break
                paced += 1
                tally.sent += 1
                if now - scheduled > PACE_LATE:
                    tally.late += 1
        if now >= next_scan:
            next_scan = now + TIMEOUT_SCAN
            # Requests with no reply are lost; their identifiers rest for one more
            # timeout so that a late reply cannot be taken for the next request's.
            for i, out in enumerate(outs):
                if out:
                    for ident in [k for k, (t, _) in out.items() if now - t > timeout]:
                        del out[ident]
                        tally.timeouts += 1
                        quarantine.append((now + timeout, i, ident))
            while quarantine and quarantine[0][0] <= now:
                _, i, ident = quarantine.popleft()
                frees[i].append(ident)
            if rate is None:
                for i in range(n_sockets):
                    tally.sent += fill(i, now)
        if now >= end:  # count mode hit the time limit
            break
    tally.elapsed = time.monotonic() - t_start
    tally.cpu = own_cpu() - cpu0
    if on_end:
        on_end()
    poller.close()
    for sock in socks:
        sock.close()
    return tally, latencies


# --- several generator processes --------------------------------------------------------

def _child(plan, total, window, n_sockets, count, conn):
    pool = build_pool(plan, total)
    conn.send("ready")
    start_at = conn.recv()
    tally, latencies = run_load(plan, pool, window, n_sockets, start_at, count=count)
    conn.send((tally, latencies.tobytes()))
    conn.close()


def run_processes(plan: Plan, procs: int, total: int, server: ProcessCpu):
    ctx = multiprocessing.get_context("fork")
    children, conns = [], []
    try:
        for p in range(procs):
            parent_end, child_end = ctx.Pipe()
            window = plan.window // procs + (p < plan.window % procs)
            n_sockets = max(1, plan.sockets // procs + (p < plan.sockets % procs))
            count = None if plan.count is None else plan.count // procs + (p < plan.count % procs)
            child = ctx.Process(target=_child, args=(plan, -(-total // procs), window,
                                                      n_sockets, count, child_end))
            child.start()
            children.append(child)
            conns.append(parent_end)
        for conn in conns:
            if conn.recv() != "ready":
                raise RuntimeError("a generator process failed to start")
        start_at = time.monotonic() + 0.2
        for conn in conns:
            conn.send(start_at)
        time.sleep(max(0.0, start_at + plan.warmup - time.monotonic()))
        server.start()
        results = [conn.recv() for conn in conns]  # each child stops at the same deadline
        server_cpu = server.seconds()
    finally:
        for child in children:
            child.join(5)
            if child.is_alive():
                child.terminate()
    total_tally = Tally()
    latencies = array.array("d")
    for tally, raw in results:
        for field in Tally.__slots__:
            if field == "elapsed":
                total_tally.elapsed = max(total_tally.elapsed, tally.elapsed)
            else:
                setattr(total_tally, field, getattr(total_tally, field) + getattr(tally, field))
        latencies.frombytes(raw)
    return total_tally, latencies, server_cpu


# --- command line -----------------------------------------------------------------------

def write_trace(path: str, arrivals: array.array, latencies: array.array) -> None:
    with open(path, "w") as out:
        out.write("arrival_s,latency_ms\n")
        for at, latency in zip(arrivals, latencies):
            out.write(f"{at:.6f},{latency * 1000:.3f}\n")


def percentile(sorted_values, q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def loopback_target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError("expected host:port")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    address = infos[0][4][0]
    if not ipaddress.ip_address(address).is_loopback:
        raise argparse.ArgumentTypeError(f"{address} is not a loopback address")
    return address, int(port)


def read_users(path: str) -> tuple[tuple[str, bytes], ...]:
    """(name, password) of each 'name password' line of `path`."""
    users = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                name, _, password = line.strip().partition(" ")
                if not password:
                    raise SystemExit(f"{path}:{number}: expected 'name password'")
                users.append((name, password.encode()))
    if not users:
        raise SystemExit(f"{path}: no users")
    return tuple(users)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=loopback_target, default=("127.0.0.1", 1812),
                        help="server host:port, loopback only (default 127.0.0.1:1812)")
    parser.add_argument("--kind", choices=("auth", "acct"), default="auth",
                        help="auth: PAP Access-Request; acct: Start/Interim/Stop")
    parser.add_argument("--secret", default="testing123")
    parser.add_argument("--user", default="alice")
    parser.add_argument("--password", default="alice-pass")
    parser.add_argument("--users", metavar="FILE",
                        help="Access-Requests cycle through the users of this file, one"
                             " 'name password' a line, in order (instead of --user)")
    parser.add_argument("--nas-ip", default="127.0.0.1", help="NAS-IP-Address to send")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--duration", type=float, help="seconds to measure (default 10)")
    group.add_argument("--count", type=int, help="requests to send, then stop")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds of load before measuring (default 1, 0 with --count)")
    parser.add_argument("--window", type=int, default=128,
                        help="requests outstanding (with --rate: at most)")
    parser.add_argument("--rate", type=float, default=None, metavar="N",
                        help="send N requests/s on a fixed schedule, whatever the replies"
                             " (open loop, as NASes send); default: a new request as each"
                             " reply comes, the window always full")
    parser.add_argument("--sockets", type=int, default=4, help="UDP source ports")
    parser.add_argument("--procs", type=int, default=1, help="generator processes")
    parser.add_argument("--timeout", type=float, default=2.0,
                        help="seconds before an unanswered request counts as lost")
    parser.add_argument("--max-rate", type=int, default=80_000,
                        help="requests/s the packet pool is sized for in --duration mode;"
                             " beyond it packets repeat and may hit the duplicate cache")
    parser.add_argument("--server-pid", type=int, nargs="+", action="extend", default=[],
                        metavar="PID", help="server processes to measure (with descendants)")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON line")
    parser.add_argument("--trace", metavar="FILE",
                        help="write every reply's arrival time (s) and latency (ms) as CSV,"
                             " to see when the slow ones came (one process only)")
    args = parser.parse_args(argv)
    if args.duration is None and args.count is None:
        args.duration = 10.0
    if args.warmup is None:
        args.warmup = 0.0 if args.count is not None else 1.0
    if args.duration is not None and not 0 < args.duration <= MAX_DURATION:
        parser.error(f"--duration must be in (0, {MAX_DURATION:g}]")
    if args.count is not None and not 0 < args.count <= MAX_COUNT:
        parser.error(f"--count must be in (0, {MAX_COUNT}]")
    if not 0 <= args.warmup <= 60:
        parser.error("--warmup must be in [0, 60]")
    if args.rate is not None and not 0 < args.rate <= args.max_rate:
        parser.error("--rate must be in (0, --max-rate]")
    if args.trace and args.procs != 1:
        parser.error("--trace needs --procs 1")
    if args.procs < 1 or args.sockets < args.procs:
        parser.error("need --procs >= 1 and --sockets >= --procs")
    if not args.sockets <= args.window <= args.sockets * (IDS - 1):
        parser.error("--window must be between --sockets and 255 x --sockets")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    host, port = args.target
    plan = Plan(kind=args.kind, host=host, port=port, secret=args.secret.encode(),
                user=args.user, password=args.password.encode(),
                nas_ip=ipaddress.IPv4Address(args.nas_ip).packed, window=args.window,
                sockets=args.sockets, timeout=args.timeout, warmup=args.warmup,
                duration=args.duration, count=args.count,
                rate=None if args.rate is None else args.rate / args.procs,
                users=read_users(args.users) if args.users else ())
    if args.count is not None:
        total = args.count + int(args.warmup * args.max_rate) + args.window
    else:
        total = int((args.duration + args.warmup) * args.max_rate) + args.window
    total = min(total, MAX_POOL)
    say = (lambda *a: None) if args.json_only else (lambda *a: print(*a, flush=True))
    say(f"building {total} {plan.kind} packets ...")
    server = ProcessCpu(args.server_pid)
    built = time.monotonic()
    if args.procs == 1:
        pool = build_pool(plan, total)
        say(f"built in {time.monotonic() - built:.1f} s; load on {host}:{port}, window "
            f"{args.window} over {args.sockets} sockets")
        server_cpu = None

        def done():
            nonlocal server_cpu
            server_cpu = server.seconds()
        arrivals = array.array("d") if args.trace else None
        tally, latencies = run_load(plan, pool, args.window, args.sockets,
                                    time.monotonic() + 0.05, on_start=server.start,
                                    on_end=done, count=args.count, arrivals=arrivals)
        if args.trace:
            write_trace(args.trace, arrivals, latencies)
    else:
        say(f"{args.procs} processes; load on {host}:{port}, window {args.window} over "
            f"{args.sockets} sockets")
        tally, latencies, server_cpu = run_processes(plan, args.procs, total, server)

    answered = tally.accepts + tally.rejects + tally.other + tally.bad
    rate = answered / tally.elapsed if tally.elapsed > 0 else 0.0
    ordered = sorted(latencies)
    p50, p99 = percentile(ordered, 0.50) * 1000, percentile(ordered, 0.99) * 1000
    result = {
        "kind": plan.kind, "target": f"{host}:{port}", "window": args.window,
        "sockets": args.sockets, "procs": args.procs, "seconds": round(tally.elapsed, 3),
        "requests_per_s": round(rate, 1), "answered": answered, "sent": tally.sent,
        "offered_per_s": args.rate, "late": tally.late,
        "accepts": tally.accepts, "rejects": tally.rejects, "other": tally.other,
        "bad": tally.bad, "timeouts": tally.timeouts, "stray": tally.stray,
        "repeated": tally.wrapped, "p50_ms": round(p50, 3), "p99_ms": round(p99, 3),
        "generator_cpu_s": round(tally.cpu, 3),
        "server_cpu_s": None if server_cpu is None else round(server_cpu, 3),
        "server_us_per_request": (None if server_cpu is None or not answered
                                  else round(server_cpu / answered * 1e6, 2)),
        "generator_us_per_request": round(tally.cpu / answered * 1e6, 2) if answered else None,
        # Busy CPU of the whole machine minus server and generator: other load that
        # competed with the run (the machine is shared), in seconds.
        "other_cpu_s": round(server.machine_used - tally.cpu - (server_cpu or 0.0), 3),
        "server_rss_mb": round(rss_mb(server.pids), 1) if server.roots else None,
        # Per process: shows how evenly SO_REUSEPORT spread the source ports.
        "server_cpu_by_pid": {str(p): round(v, 2) for p, v in server.by_pid.items()},
    }
    say(f"{rate:,.0f} requests/s over {tally.elapsed:.2f} s: {tally.accepts} accepted, "
        f"{tally.rejects} rejected, {tally.other} other, {tally.bad} bad, "
        f"{tally.timeouts} timed out, {tally.stray} stray")
    say(f"latency p50 {p50:.3f} ms, p99 {p99:.3f} ms" + (
        "" if args.rate is None else f" at {args.rate:,.0f} requests/s offered, {tally.late}"
        f" sent more than {PACE_LATE * 1000:g} ms late"))
    say(f"CPU: other processes {result['other_cpu_s']:.2f} s, generator {tally.cpu:.2f} s"
        + ("" if server_cpu is None else f", server {server_cpu:.2f} s "
           f"({result['server_us_per_request']} us/request, {result['server_rss_mb']} MiB"
           f" resident)"))
    if tally.wrapped:
        say(f"warning: {tally.wrapped} packets were sent twice (pool exhausted); "
            f"raise --max-rate")
    print(json.dumps(result), flush=True)
    return 0 if answered and not tally.bad else 1


if __name__ == "__main__":
    sys.exit(main())
