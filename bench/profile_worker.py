#!/usr/bin/env python3
"""Where a vpop worker spends its time on local PAP authentication.

Four views, each with the same setup as auth_vs_freeradius.py (client
127.0.0.1 / testing123, subscriber alice / alice-pass, one worker):

  cprofile  the worker runs in this process under cProfile while loadgen.py
            drives it; prints the functions with the most own time, and the
            same grouped by cost (syscalls, MD5/HMAC, decode, dedup, ...).
            cProfile slows Python calls down, so read shares, not rates.
  py-spy    `vpop serve` runs normally and py-spy samples it (non-blocking)
            under load; prints the event-loop thread's own time per function.
  perf      the same with `perf record`: CPU samples by library (interpreter,
            kernel, libcrypto, libc) and by symbol.
  micro     times each step of the request path on its own, without a
            profiler: socket calls, codec, crypto, dedup, the whole
            Receiver.datagram, in microseconds per request.
  instructions
            counts the CPU instructions Receiver.datagram executes per
            request with valgrind's callgrind: two runs of different
            lengths, the difference divided by the extra requests. Unlike
            seconds it does not move with what else the machine is doing.

    python bench/profile_worker.py cprofile --duration 10
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import logging
import os
import pstats
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import auth_vs_freeradius as sbs  # noqa: E402
import loadgen  # noqa: E402

from vpop.radius import codec  # noqa: E402

# Groups for the summary: the first pattern found in "file:function" wins.
GROUPS = [
    ("sendto (syscall)", ("method 'sendto'",)),
    ("recvfrom (syscall)", ("method 'recvfrom'",)),
    ("epoll_wait", ("method 'poll' of 'select.epoll'",)),
    ("HMAC-MD5 / MD5", ("hmac_digest", "openssl_md5", "hmac.py", "method 'digest'",
                        "compare_digest")),
    ("User-Password (MD5 chain, xor)", ("crypto.py",)),
    ("codec framing (decode, encode)", ("codec.py",)),
    ("dedup cache", ("dedup.py",)),
    ("logging", ("logging/", "(_log)", "(_q)")),
    ("stats", ("stats.py", "bisect")),
    ("dataclass __init__", ("<string>:",)),
    ("sections and stages", ("core.py", "enum.py", "identify.py", "authenticate.py",
                             "access.py", "reply.py", "request.py", "stages.py", "isp/",
                             "subscribers.py")),
    ("receiver", ("receiver.py",)),
    ("event loop", ("asyncio/", "selectors.py", "events.py", "udp.py")),
]


def group_of(key: str) -> str:
    for name, patterns in GROUPS:
        if any(p in key for p in patterns):
            return name
    return "other"


def vpop_setup(root: Path, request_log: bool) -> sbs.Server:
    (server,) = sbs.setup_vpop(root, [1], set(), request_log)
    return server


def in_process_worker(root: Path, args):
    """A worker to run in this process, logging as `vpop serve` does, to a file."""
    from vpop import config as config_module
    from vpop.server.worker import Worker

    server = vpop_setup(root, args.request_log)
    settings = config_module.load(config_of(server))
    handler = logging.FileHandler(settings.logging.file or root / "vpop.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel(settings.logging.level.upper())
    worker = Worker(settings)
    return server, worker, worker.open_sockets()


def stop_when_ready(worker, after=None) -> None:
    """Run `after`, then SIGTERM this process once the worker handles it (graceful stop)."""
    while worker.stopping is None:
        time.sleep(0.05)
    time.sleep(0.2)
    if after:
        after()
    os.kill(os.getpid(), signal.SIGTERM)


def config_of(server: sbs.Server) -> str:
    return server.command[server.command.index("--config") + 1]


def loadgen_command(port: int, args, server_pid: int | None = None) -> list[str]:
    command = [sys.executable, str(HERE / "loadgen.py"), "--target", f"{sbs.HOST}:{port}",
               "--duration", str(args.duration), "--warmup", "1", "--window",
               str(args.window), "--sockets", str(args.sockets), "--json-only",
               "--max-rate", "60000"]
    if server_pid:
        command += ["--server-pid", str(server_pid)]
    return command


# --- cprofile ---------------------------------------------------------------------------

def run_cprofile(root: Path, args) -> None:
    server, worker, socks = in_process_worker(root, args)
    result: dict = {}

    def drive():
        if sbs.probe(server.port) != codec.ACCESS_ACCEPT:
            print("the worker does not accept alice", file=sys.stderr)
            return
        # No --server-pid: this process's descendants include the generator.
        out = subprocess.run(loadgen_command(server.port, args), capture_output=True,
                             text=True).stdout
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if lines:
            result.update(json.loads(lines[-1]))

    threading.Thread(target=stop_when_ready, args=(worker, drive), daemon=True).start()
    # CPU time of this thread, not wall time: a sendto that wakes the generator may
    # be preempted by it, and that wait is not the worker's cost.
    profile = cProfile.Profile(time.thread_time_ns, 1e-9)
    profile.runcall(worker.run, socks)
    if result:
        print(f"under cProfile: {result['requests_per_s']:,.0f} requests/s, "
              f"{result['answered']} answered, {result['timeouts']} timed out")
    stats = pstats.Stats(profile)
    total = sum(row[2] for row in stats.stats.values())  # own time of every function
    groups: collections.Counter = collections.Counter()
    rows = []
    for (path, line, name), (_cc, calls, own, _cum, _callers) in stats.stats.items():
        key = f"{path}:{line}({name})" if path != "~" else name
        groups[group_of(key)] += own
        rows.append((own, calls, key.replace(str(Path(sys.prefix)), "<prefix>")))
    # Requests handled while profiled, warm-up included: the calls of Receiver.datagram.
    answered = max([row[1] for (path, _, name), row in stats.stats.items()
                    if name == "datagram" and path.endswith("receiver.py")]
                   or [result.get("answered", 1)])
    calls = sum(row[1] for row in stats.stats.values())
    print(f"{calls / answered:.0f} function calls per request (Python and C, all included)")
    print(f"\nown time by group (of {total:.2f} CPU s in the event-loop thread; "
          f"us/request as profiled, several times the unprofiled cost):")
    for name, own in groups.most_common():
        print(f"  {own / total * 100:5.1f}%  {own / answered * 1e6:6.2f} us/request  {name}")
    print(f"\ntop {args.top} functions by own time:")
    for own, calls, key in sorted(rows, reverse=True)[:args.top]:
        print(f"  {own / total * 100:5.1f}%  {calls:>9}  {_short(key)}")
    if args.output:
        stats.dump_stats(args.output)


def _short(key: str) -> str:
    for marker in ("/vpop/", "/lib/python3"):
        if marker in key:
            return key[key.index(marker) + 1:]
    return key


# --- py-spy -----------------------------------------------------------------------------

def under_load(root: Path, args, record) -> dict:
    """Run `vpop serve` under loadgen.py and call record(pid, seconds) mid-run."""
    server = vpop_setup(root, args.request_log)
    sbs.start(server)
    try:
        sbs.wait_ready(server)
        command = [c for c in loadgen_command(server.port, args, server.process.pid)
                   if c != "--json-only"]
        gen = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        for line in gen.stdout:
            if line.startswith("built"):  # the packets are ready: load starts now
                break
        time.sleep(1.5)  # past the warm-up
        record(server.process.pid, max(1, int(args.duration - 2)))
        out, _ = gen.communicate(timeout=args.duration + 120)
    finally:
        sbs.stop(server.process)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    if result:
        print(f"{result['requests_per_s']:,.0f} requests/s, server "
              f"{result['server_us_per_request']} us CPU/request, other processes "
              f"{result.get('other_cpu_s')} CPU s")
    return result


def run_py_spy(root: Path, args) -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy not found (pip install py-spy)")
    raw = root / "spy.txt"

    def record(pid: int, seconds: int) -> None:
        subprocess.run([spy, "record", "--nonblocking", "-r", "200", "-d", str(seconds),
                        "-f", "raw", "-o", str(raw), "-p", str(pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    under_load(root, args, record)
    own: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        if "Worker.run" not in stack:  # the event-loop thread only
            continue
        # "function (file:line)" -> "function (file)": one row per function
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    print(f"\nevent-loop thread, {total} samples (wall clock: a sendto that wakes the"
          f" generator and is preempted by it counts here)")
    print("own time per function:")
    for frame, count in own.most_common(args.top):
        print(f"  {count / total * 100:5.1f}%  {frame}")
    print("inclusive time, pipeline functions:")
    for frame, count in inclusive.most_common():
        if "vpop/" in frame and count / total > 0.02:
            print(f"  {count / total * 100:5.1f}%  {frame}")


def run_perf(root: Path, args) -> None:
    perf = shutil.which("perf")
    if perf is None:
        raise SystemExit("perf not found")
    data = root / "perf.data"

    def record(pid: int, seconds: int) -> None:
        subprocess.run([perf, "record", "-F", "999", "-p", str(pid), "-o", str(data), "--",
                        "sleep", str(seconds)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    under_load(root, args, record)
    for sort, top in (("dso", 8), ("dso,sym", args.top)):
        report = subprocess.run([perf, "report", "-i", str(data), "--no-children", "--sort",
                                 sort, "-g", "none", "--stdio"], capture_output=True,
                                text=True).stdout
        rows = [line.strip() for line in report.splitlines()
                if line.strip() and not line.startswith("#")]
        print(f"\nCPU samples by {sort.replace(',', ' and ')}:")
        for row in rows[:top]:
            print(f"  {row}")


# --- micro ------------------------------------------------------------------------------

def per_call(fn, number: int) -> float:
    """Microseconds per call, best of three."""
    return min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6


def prepared_receiver(root: Path, args, total: int):
    """A worker's Receiver built from the store, and an iterator of fresh PAP requests."""
    server, worker, socks = in_process_worker(root, args)
    # Start and stop the worker once: it builds its receiver from the store.
    threading.Thread(target=stop_when_ready, args=(worker,), daemon=True).start()
    worker.run(socks)
    secret = sbs.SECRET.encode()
    n = args.count
    plan = loadgen.Plan(kind="auth", host=sbs.HOST, port=server.port, secret=secret,
                        user=sbs.USER, password=sbs.PASSWORD.encode(),
                        nas_ip=socket.inet_aton(sbs.HOST), window=1, sockets=1, timeout=1,
                        warmup=0, duration=None, count=n)
    pool = loadgen.build_pool(plan, total)
    packets = iter([p for ident in range(loadgen.IDS) for p in pool[ident]])
    return worker.receiver, packets, secret


def run_micro(root: Path, args) -> None:
    from vpop.radius.crypto import decrypt_user_password
    from vpop.radius.dedup import DuplicateCache

    n = args.count
    receiver, packets, secret = prepared_receiver(root, args, 5 * n + 3 * loadgen.IDS)
    sample = next(packets)
    packet = codec.decode(sample)
    reply = receiver.datagram(sample, (sbs.HOST, 40000), "auth").data
    attrs = reply[20 + 18:]  # what the pipeline put after Message-Authenticator

    steps = []
    steps.append(("Receiver.datagram, whole (fresh packets, no sockets)",
                  per_call(lambda: receiver.datagram(next(packets), (sbs.HOST, 40000),
                                                     "auth"), n)))
    steps.append(("  codec.decode", per_call(lambda: codec.decode(sample), n)))
    steps.append(("  message_authenticator_ok (HMAC-MD5)",
                  per_call(lambda: codec.message_authenticator_ok(packet, secret), n)))
    steps.append(("  decrypt_user_password (MD5 chain)",
                  per_call(lambda: decrypt_user_password(packet.attrs[2][0], secret,
                                                         packet.authenticator), n)))
    steps.append(("  encode_reply (HMAC-MD5 + MD5)",
                  per_call(lambda: codec.encode_reply(2, 1, packet.authenticator, attrs,
                                                      secret), n)))
    dedup = DuplicateCache(30.0)
    keys = iter([(("127.0.0.1", 40000), i.to_bytes(19, "big")) for i in range(3 * n)])
    now = time.monotonic()

    def dedup_cycle():
        key = next(keys)
        dedup.get(key)
        dedup.begin(key, now)
        dedup.finish(key, reply, now)
    steps.append(("  dedup get + begin + finish", per_call(dedup_cycle, n)))
    steps.append(("  stats.request", per_call(
        lambda: receiver.stats.request("localhost", "Access-Request", "accept", 0.0001), n)))

    # Loopback syscalls: one datagram out and back in, as the worker does per request.
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind((sbs.HOST, 0))
    b.bind((sbs.HOST, 0))
    target = b.getsockname()

    def send_recv():
        a.sendto(reply, target)
        b.recvfrom(4096)
    steps.append(("sendto + recvfrom on loopback (one datagram)", per_call(send_recv, n)))
    a.close()
    b.close()
    print(f"microseconds per call, best of 3 x {n}:")
    for name, us in steps:
        print(f"  {us:7.2f}  {name}")

    # Each stage of the Access-Request sections, timed inside whole requests.
    from vpop.dispatch import access
    spent: collections.Counter = collections.Counter()

    def timed(stage):
        def wrapper(ctx, deps):
            started = time.perf_counter_ns()
            try:
                return stage(ctx, deps)
            finally:
                spent[f"{section}: {stage.__name__}"] += time.perf_counter_ns() - started
        section = current
        return wrapper
    sections = [name for name in dir(access) if name.isupper() and
                isinstance(getattr(access, name), list)]
    saved = {name: list(getattr(access, name)) for name in sections}
    try:
        for current in sections:
            getattr(access, current)[:] = [timed(stage) for stage in saved[current]]
        for _ in range(n):
            receiver.datagram(next(packets), (sbs.HOST, 40000), "auth")
    finally:
        for name in sections:
            getattr(access, name)[:] = saved[name]
    print(f"stages, microseconds per request (mean of {n}, timer included):")
    for name, ns in spent.most_common():
        print(f"  {ns / n / 1000:7.2f}  {name}")


# --- instructions ------------------------------------------------------------------------

def run_datagrams(root: Path, args) -> None:
    """Feed --count fresh Access-Requests to one Receiver, without sockets (callgrind's target)."""
    # The same pool whatever the count, so two runs differ only by the requests handled.
    receiver, packets, _ = prepared_receiver(root, args, args.pool)
    datagram = receiver.datagram
    address = (sbs.HOST, 40000)
    for _ in range(args.count):
        datagram(next(packets), address, "auth")


def run_instructions(root: Path, args) -> None:
    if not shutil.which("valgrind"):
        sys.exit("instructions: valgrind is not installed (Debian package valgrind)")
    counts = []
    small, large = args.count // 5, args.count
    for count in (small, large):
        out = root / f"callgrind.{count}"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                   sys.executable, __file__, "datagrams", "--count", str(count),
                   "--pool", str(large + loadgen.IDS)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        totals = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
        counts.append(int(totals.group(1)))
    per_request = (counts[1] - counts[0]) / (large - small)
    print(f"instructions per Access-Request in Receiver.datagram: {per_request:,.0f} "
          f"(callgrind, {small:,} and {large:,} requests: {counts[0]:,} and {counts[1]:,})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("cprofile", "py-spy", "perf", "micro", "instructions",
                                         "datagrams"))
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--sockets", type=int, default=8)
    parser.add_argument("--count", type=int, default=50_000, help="micro: calls per step")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--pool", type=int, default=60_000, help="datagrams: packets built")
    parser.add_argument("--request-log", action="store_true",
                        help="vpop logs one line per request (to the temporary directory)")
    parser.add_argument("--output", help="cprofile: also write the pstats file here")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="vpop-profile-"))
    try:
        {"cprofile": run_cprofile, "py-spy": run_py_spy, "perf": run_perf,
         "micro": run_micro, "instructions": run_instructions,
         "datagrams": run_datagrams}[args.mode](root, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
