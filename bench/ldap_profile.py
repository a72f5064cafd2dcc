#!/usr/bin/env python3
"""Where a vpop worker's CPU goes on PAP with LDAP lookups, counted rather than timed.

One worker runs in this process with the `[directory]` of bench/ldap_vs_freeradius.py
(cold: `cache_ttl = 0`; bind: also `pap = "bind"`; cached: `cache_ttl = 300`, best
with `--users 50` as the benchmark's cached phase) against the test harness's slapd
(tests/support/slapd.py, started here, 12,000 entries, the first 500 `{SSHA}` users), while
loadgen.py sends it Access-Requests from another process: first one pass over the users
(each stored hash checked once, as in the benchmark's warm-up), then the measured ones.

  cpu           the event loop thread's CPU a request over the measured requests
                (--duration seconds of closed-loop load, as the benchmark), and the
                loop's turns a request; moves with what else the machine does.
  instructions  the CPU instructions a request, by valgrind's callgrind: the whole
                process twice, with --count and 3 x --count measured requests, the
                difference divided by the extra requests. It does not move with the
                machine's load; valgrind slows the worker down, so its turns carry
                more requests than at full speed (batches are full).

    python bench/ldap_profile.py instructions --kind cold --count 1000
    python bench/ldap_profile.py cpu --kind bind --duration 10
    python bench/ldap_profile.py instructions --kind cached --count 2000 --users 50
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # the slapd harness: tests/support
import ldap_vs_freeradius as bench  # noqa: E402
from auth_vs_freeradius import HOST, SECRET, setup_vpop  # noqa: E402
from support.slapd import SERVICE_DN, SERVICE_PASSWORD, SUFFIX, Slapd  # noqa: E402


def loadgen(port: int, users: Path, count: int | None, duration: float | None) -> dict:
    command = [sys.executable, str(HERE / "loadgen.py"), "--target", f"{HOST}:{port}",
               "--secret", SECRET, "--users", str(users), "--window", "128", "--sockets", "8",
               "--json-only"]
    command += (["--count", str(count), "--timeout", "60"] if count else
                ["--duration", str(duration), "--warmup", "1", "--max-rate", "20000"])
    out = subprocess.run(command, capture_output=True, text=True).stdout
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"loadgen printed no result: {out[-2000:]}")
    return json.loads(lines[-1])


def serve(args) -> dict:
    """The worker in this process under load; what the measured requests cost."""
    from vpop import config as config_module
    from vpop.server.worker import Worker

    root = Path(tempfile.mkdtemp(prefix="vpop-ldap-profile-"))
    ldap = None
    if not args.url:  # measured: the parent's slapd, seeded outside what is counted
        ldap = Slapd(root / "slapd", subscribers=args.subscribers)
        ldap.start()
        args.url = ldap.url
    try:
        pap, ttl = bench.VPOP_KINDS[args.kind]
        (server,) = setup_vpop(root, [1], set(), False)
        config = Path(server.command[server.command.index("--config") + 1])
        with config.open("a") as f:
            f.write(bench.VPOP_DIRECTORY.format(
                url=args.url, bind_dn=SERVICE_DN, variable=bench.PASSWORD_VARIABLE,
                base_dn=SUFFIX, user_filter=bench.USER_FILTER, pap=pap, cache_ttl=ttl,
                negative_ttl=0))
        os.environ[bench.PASSWORD_VARIABLE] = SERVICE_PASSWORD
        users = root / "users.txt"
        chosen = bench.bench_users(args.subscribers)[:args.users]
        users.write_text("".join(f"{name} {password}\n" for name, password in chosen))
        os.chdir(config.parent)
        settings = config_module.load(str(config))
        logging.basicConfig(filename=str(root / "vpop.log"), level=logging.WARNING)
        worker = Worker(settings)
        socks = worker.open_sockets()
        result: dict = {}
        turns = [0]

        def drive():
            try:
                while worker.stopping is None:
                    time.sleep(0.05)
                time.sleep(0.5)
                loadgen(server.port, users, len(chosen), None)  # each hash checked once
                clock = time.pthread_getcpuclockid(threading.main_thread().ident)
                served = lambda: sum(worker.receiver.stats.requests.values())  # noqa: E731
                cpu, before, turned = time.clock_gettime(clock), served(), turns[0]
                result["load"] = loadgen(server.port, users, args.count,
                                         None if args.count else args.duration)
                requests = served() - before
                result.update(requests=requests,
                              us_per_request=(time.clock_gettime(clock) - cpu) / requests * 1e6,
                              turns_per_request=(turns[0] - turned) / requests)
            finally:
                os.kill(os.getpid(), signal.SIGTERM)

        if args.mode == "cpu":  # count the loop's turns
            import asyncio.base_events as base_events
            loop_class = base_events.BaseEventLoop
            run_once = loop_class._run_once

            def counted(loop):
                turns[0] += 1
                return run_once(loop)
            loop_class._run_once = counted
        threading.Thread(target=drive, daemon=True).start()
        worker.run(socks)
        return result
    finally:
        if ldap is not None:
            ldap.stop()
        shutil.rmtree(root, ignore_errors=True)


def instructions(args) -> None:
    if not shutil.which("valgrind"):
        sys.exit("instructions: valgrind is not installed (Debian package valgrind)")
    root = Path(tempfile.mkdtemp(prefix="vpop-ldap-callgrind-"))
    counts = (args.count, 3 * args.count)
    ldap = Slapd(root / "slapd", subscribers=args.subscribers)
    ldap.start()
    try:
        runs = []
        for count in counts:  # at once: two processes, two CPUs
            out = root / f"callgrind.{count}"
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                       sys.executable, __file__, "measured", "--kind", args.kind,
                       "--count", str(count), "--users", str(args.users),
                       "--subscribers", str(args.subscribers), "--url", ldap.url]
            runs.append((out, subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL)))
        totals = []
        for out, process in runs:
            if process.wait():
                sys.exit(f"valgrind run failed: {process.args}")
            totals.append(int(re.search(r"^(?:summary|totals): (\d+)", out.read_text(),
                                        re.M).group(1)))
        per_request = (totals[1] - totals[0]) / (counts[1] - counts[0])
        print(f"{args.kind}: {per_request:,.0f} instructions a request (callgrind, the worker's "
              f"process with {counts[0]:,} and {counts[1]:,} requests: {totals[0]:,} and "
              f"{totals[1]:,})")
    finally:
        ldap.stop()
        shutil.rmtree(root, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("cpu", "instructions", "measured"))
    parser.add_argument("--kind", choices=tuple(bench.VPOP_KINDS), default="cold")
    parser.add_argument("--count", type=int, default=0,
                        help="instructions: requests of the shorter run (default 1000); "
                             "cpu: measured requests instead of --duration")
    parser.add_argument("--duration", type=float, default=10.0, help="cpu: seconds of load")
    parser.add_argument("--users", type=int, default=500, help="users the requests cycle through")
    parser.add_argument("--subscribers", type=int, default=12_000)
    parser.add_argument("--url", help="measured: the slapd to ask (instructions starts one)")
    args = parser.parse_args(argv)
    if args.mode == "instructions":
        args.count = args.count or 1000
        instructions(args)
        return 0
    result = serve(args)
    if args.mode == "cpu":
        load = result["load"]
        print(f"{args.kind}: {result['us_per_request']:.1f} us of the loop thread's CPU a request, "
              f"{result['turns_per_request']:.3f} turns of the loop a request "
              f"({result['requests']:,} requests, {load['requests_per_s']:,.0f}/s, "
              f"p99 {load['p99_ms']} ms, {load['timeouts']} timeouts, {load['rejects']} rejects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
