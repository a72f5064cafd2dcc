#!/usr/bin/env python3
"""Proxied PAP side by side: vpop and FreeRADIUS proxying to the same upstream ISP server.

Starts, in one temporary directory:
  * the ISP's RADIUS server: FreeRADIUS from the test harness (tests/support),
    users `alice` and `alice@isp-a.example` (password alice-pass), client
    127.0.0.1 with the upstream secret, Message-Authenticator required;
  * FreeRADIUS as the proxy: a copy of its packaged configuration (made by
    auth_vs_freeradius.setup_freeradius: loopback ports, run as the invoking
    user), with the ISP added to proxy.conf as home_server, fail-over
    home_server_pool and realm isp-a.example; everything else at its defaults
    (the `suffix` module routes the realm). Also a variant with 4 threads;
  * vpop (per --workers value), with the ISP given to `vpop import` as an [[isp]]
    section (see setup_vpop).

Throughput (default): per round, every proxy in turn is loaded by loadgen.py with
PAP for alice@isp-a.example (the order alternates between rounds); the medians of
requests/s, p50 and p99 are printed with the ratio to FreeRADIUS's default.

Fail-over (--failover): two upstream servers, primary and secondary. For each
proxy in turn (freshly started, both upstreams alive), nas_failover.py sends PAP
at a fixed rate and retransmits like a NAS (--retries, --retry-interval); the
primary is killed (SIGKILL) --kill-at seconds in. Printed: the time from the
kill until the first request sent after it is accepted, the longest stretch
without an accept, and how many logins failed (rejected or never answered).
FreeRADIUS keeps its defaults here (response_window 20 s, zombie_period 40 s) and
fails over only as the NAS retransmits.

Every process started here is stopped by PID on exit, Ctrl-C or error.

    python bench/proxy_vs_freeradius.py --rounds 5 --duration 10
    python bench/proxy_vs_freeradius.py --failover --rate 50 --failover-duration 60
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # the upstream harness: tests/support
import loadgen  # noqa: E402
import nas_failover  # noqa: E402
from auth_vs_freeradius import (HOST, SECRET, VPOP_CONFIG, Server, add_load_options,  # noqa: E402
                                free_ports, generator_command, median, run_generator,
                                setup_freeradius, start, stop, table, vpop_command)
from support.freeradius import FreeRadius, FreeRadiusError  # noqa: E402

from vpop.radius import attributes as A  # noqa: E402
from vpop.radius import codec  # noqa: E402
from vpop.radius.crypto import encrypt_user_password  # noqa: E402

REALM = "isp-a.example"
USER, PASSWORD = f"alice@{REALM}", "alice-pass"
UPSTREAM_SECRET = "isp-a-secret"
READY_TIMEOUT = 60.0


class VpopNotReady(RuntimeError):
    """vpop cannot take part yet (import format or proxying not there): said, then skipped."""


# --- the ISP's servers --------------------------------------------------------------------

def setup_upstream(root: Path, name: str, taken: set[int], threads: int | None) -> FreeRadius:
    base = free_ports(2, taken)
    return FreeRadius(name, users={"alice": PASSWORD, USER: PASSWORD},
                      clients=[("127.0.0.1/32", UPSTREAM_SECRET)], auth_port=base,
                      acct_port=base + 1, require_message_authenticator=True,
                      log_auth=False, threads=threads, directory=root / name)


# --- FreeRADIUS as the proxy --------------------------------------------------------------

HOME_SERVER = """
home_server {name} {{
	type = auth
	ipaddr = {host}
	port = {port}
	secret = {secret}
	response_window = {response_window}
	zombie_period = {zombie_period}
	revive_interval = 120
	status_check = status-server
	check_interval = 30
	check_timeout = 4
	num_answers_to_alive = 3
	max_outstanding = 65536
}}
"""

POOL_AND_REALM = """
home_server_pool isp_a {{
	type = fail-over
{members}
}}

realm {realm} {{
	auth_pool = isp_a
}}
"""


def setup_freeradius_proxy(root: Path, name: str, source: Path, taken: set[int],
                           threads: int | None, upstreams: list[FreeRadius], args) -> Server:
    """The packaged config (via auth_vs_freeradius) plus the ISP in proxy.conf."""
    server = setup_freeradius(root, name, source, taken, threads)
    raddb = Path(server.command[server.command.index("-d") + 1])
    blocks = [HOME_SERVER.format(name=f"isp_a_{i}", host=u.host, port=u.auth_port,
                                 secret=UPSTREAM_SECRET, response_window=args.response_window,
                                 zombie_period=args.zombie_period)
              for i, u in enumerate(upstreams)]
    members = "\n".join(f"\thome_server = isp_a_{i}" for i in range(len(upstreams)))
    blocks.append(POOL_AND_REALM.format(members=members, realm=REALM))
    with (raddb / "proxy.conf").open("a") as f:
        f.write("\n# --- added for the proxy benchmark ---\n" + "".join(blocks))
    check = subprocess.run([server.command[0], "-C", "-d", str(raddb)], capture_output=True,
                           text=True)
    if check.returncode:
        raise RuntimeError(f"{name}: configuration check failed:\n{check.stdout}{check.stderr}")
    return server


# --- vpop as the proxy --------------------------------------------------------------------

# The [[isp]] import format: docs/provisioning.md, vpop/provisioning/isp.py.
# vpop runs with its default [isp] timing: response_window 2 s, zombie_period 10 s,
# Status-Server probes every 1 s, revived after 3 answers (docs/configuration.md).
VPOP_ISP_PLAN = """\
[[nas]]
name = "localhost"
address = "127.0.0.1/32"
secret = "{nas_secret}"
nas_type = "generic"
require_message_authenticator = "yes"

[[isp]]
name = "isp-a"
mode = "proxy"
realms = ["@{realm}"]
strip_realm = true
balance = "failover"
{servers}
"""

VPOP_ISP_SERVER = """
[[isp.servers]]
name = "isp-a-{label}"
address = "{host}"
auth_port = {auth_port}
acct_port = {acct_port}
secret = "{secret}"
priority = {priority}
"""


def setup_vpop(root: Path, workers_list: list[int], taken: set[int],
               upstreams: list[FreeRadius], args) -> list[Server]:
    """vpop instances proxying realm isp-a.example to `upstreams` (first = primary).

    If `vpop import` refuses the plan, VpopNotReady carries vpop's own message and
    the benchmark runs FreeRADIUS alone (or fails: --require-vpop).
    """
    db = root / "vpop.db"
    plan = root / "vpop-plan.toml"
    servers_toml = "".join(
        VPOP_ISP_SERVER.format(label="primary" if i == 0 else f"backup-{i}", host=u.host,
                               auth_port=u.auth_port, acct_port=u.acct_port,
                               secret=UPSTREAM_SECRET, priority=i + 1)
        for i, u in enumerate(upstreams))
    plan.write_text(VPOP_ISP_PLAN.format(nas_secret=SECRET, realm=REALM, servers=servers_toml))
    servers = []
    for workers in workers_list:
        base = free_ports(3, taken)
        home = root / f"vpop-w{workers}"
        home.mkdir(exist_ok=True)
        config = home / "vpop.toml"
        config.write_text(VPOP_CONFIG.format(host=HOST, auth=base, acct=base + 1, coa=base + 2,
                                             workers=workers, db=db, requests="false",
                                             log=home / "vpop.log"))
        if not servers:
            for step in (("db", "upgrade"), ("import", str(plan))):
                result = subprocess.run(vpop_command("--config", str(config), *step),
                                        capture_output=True, text=True)
                if result.returncode:
                    raise VpopNotReady(f"`vpop {' '.join(step)}` failed (status "
                                       f"{result.returncode}):\n{result.stdout}{result.stderr}")
        servers.append(Server(name=f"vpop {workers} worker{'s' if workers > 1 else ''}",
                              command=vpop_command("--config", str(config), "serve"),
                              port=base, log=home / "vpop.log",
                              ready_text="ready:", ready_count=workers))
    return servers


# --- readiness ----------------------------------------------------------------------------

def probe(port: int) -> int | None:
    """One PAP Access-Request for the realm user; the reply code if it verifies."""
    secret = SECRET.encode()
    authenticator = os.urandom(16)
    attrs = (codec.attribute(A.USER_NAME, USER.encode())
             + codec.attribute(A.USER_PASSWORD, encrypt_user_password(
                 PASSWORD.encode(), secret, authenticator)))
    packet = codec.encode_request(codec.ACCESS_REQUEST, random.randrange(256), attrs, secret,
                                  authenticator=authenticator)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        s.connect((HOST, port))
        try:
            s.send(packet)
            data = s.recv(4096)
        except OSError:
            return None
    return data[0] if codec.reply_ok(data, authenticator, secret) else None


def wait_proxying(server: Server, timeout: float = READY_TIMEOUT) -> None:
    """Until the proxy is up and answers the realm user with Access-Accept (from upstream)."""
    deadline = time.monotonic() + timeout
    code = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}; "
                               f"see {server.log}")
        text = server.log.read_text(errors="replace") if server.log.exists() else ""
        if server.ready_text is None or text.count(server.ready_text) >= server.ready_count:
            code = probe(server.port)
            if code == codec.ACCESS_ACCEPT:
                return
            if code is not None:
                break
        time.sleep(0.2)
    what = "no answer" if code is None else f"reply code {code}"
    log = server.log.read_text(errors="replace")[-2000:] if server.log.exists() else ""
    raise RuntimeError(f"{server.name} does not proxy {USER} to the ISP ({what}); "
                       f"the end of {server.log}:\n{log}")


def start_proxy(server: Server) -> None:
    start(server)
    wait_proxying(server)
    print(f"{server.name}: pid {server.process.pid}, {HOST}:{server.port}", flush=True)


# --- throughput ---------------------------------------------------------------------------

def run_load(server: Server, upstream: FreeRadius, args) -> dict:
    command = generator_command("loadgen.py", server.port, server.process.pid, args,
                                "--user", USER, "--password", PASSWORD)
    # The upstream's CPU over the whole run (warm-up included): an indication only.
    upstream_cpu = loadgen.ProcessCpu([upstream.pid])
    upstream_cpu.start()
    result = run_generator(command, server.name, args.duration + args.warmup + 120)
    result["upstream_cpu_s"] = round(upstream_cpu.seconds(), 3)
    return result


def throughput(proxies: list[Server], reference: Server, upstream: FreeRadius, args) -> list:
    print(f"{os.cpu_count()} CPUs; {args.rounds} rounds of {args.duration:g} s "
          f"(+{args.warmup:g} s warm-up), window {args.window} over {args.sockets} sockets; "
          f"PAP for {USER} through each proxy to {upstream.host}:{upstream.auth_port}",
          flush=True)
    for round_ in range(args.rounds):
        order = proxies if round_ % 2 == 0 else proxies[::-1]
        for server in order:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited; see {server.log}")
            if not upstream.running:
                raise RuntimeError(f"the upstream exited\n{upstream.diagnostics()}")
            result = run_load(server, upstream, args)
            result["server"], result["round"] = server.name, round_ + 1
            server.results.append(result)
            print(f"round {round_ + 1} {server.name:24} {result['requests_per_s']:>9,.0f} req/s"
                  f"  p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms"
                  f"  proxy CPU {result['server_cpu_s']:5.2f} s  upstream CPU "
                  f"{result['upstream_cpu_s']:5.2f} s  timeouts {result['timeouts']}"
                  f"  bad {result['bad']}  rejects {result['rejects']}", flush=True)
    print()
    print(f"medians of {args.rounds} rounds (proxied PAP; 'vs FreeRADIUS' = req/s ratio to "
          f"{reference.name}):")
    print(table({s.name: s.results for s in proxies}, reference.name, float("inf")))
    return [r for s in proxies for r in s.results]


# --- fail-over ----------------------------------------------------------------------------

def failover(proxies: list[Server], upstreams: list[FreeRadius], args) -> list:
    primary = upstreams[0]
    nas = nas_failover.Nas(host=HOST, port=0, secret=SECRET.encode(), user=USER,
                           password=PASSWORD.encode(), rate=args.rate, retries=args.retries,
                           retry_interval=args.retry_interval,
                           id_reuse_delay=args.id_reuse_delay)
    print(f"fail-over: {args.rate:g} new requests/s for {args.failover_duration:g} s, NAS "
          f"retries {args.retries} every {args.retry_interval:g} s, Identifiers rest "
          f"{args.id_reuse_delay:g} s; primary upstream killed "
          f"at {args.kill_at:g} s; FreeRADIUS response_window {args.response_window:g} s, "
          f"zombie_period {args.zombie_period:g} s", flush=True)
    rows = []
    for trial in range(args.failover_rounds):
        for server in proxies:
            for upstream in upstreams:  # both alive, and the proxy's view of them fresh
                if not upstream.running:
                    upstream.start()
            stop(server.process)
            start_proxy(server)
            killed_at: list[float] = []

            def kill_primary():
                killed_at.append(time.monotonic())
                primary.kill()

            outcomes = nas_failover.run(
                dataclasses.replace(nas, port=server.port),
                args.failover_duration, events=[(args.kill_at, kill_primary)])
            summary = nas_failover.summarise(outcomes, killed_at[0] if killed_at else None)
            row = {"server": server.name, "trial": trial + 1, **asdict(summary)}
            rows.append(row)
            print(f"trial {trial + 1} {server.name:24} recovery "
                  f"{_seconds(summary.recovery_s)}  longest gap {summary.longest_gap_s:.2f} s"
                  f"  failed {summary.failed} (rejected {summary.rejected}, unanswered "
                  f"{summary.unanswered})  accepted after retransmission "
                  f"{summary.retransmitted_ok} of {summary.requests}", flush=True)
    print()
    print(failover_table(rows, [s.name for s in proxies]))
    return rows


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def failover_table(rows: list[dict], names: list[str]) -> str:
    head = ("proxy", "recovery s", "longest gap s", "failed logins", "rejected", "unanswered",
            "ok after retransmit", "max latency s")
    body = []
    for name in names:
        mine = [r for r in rows if r["server"] == name]
        recovered = [r["recovery_s"] for r in mine]
        body.append((name,
                     "never" if None in recovered else f"{median(recovered):.2f}",
                     f"{median(r['longest_gap_s'] for r in mine):.2f}",
                     f"{median(r['failed'] for r in mine):.0f}",
                     f"{median(r['rejected'] for r in mine):.0f}",
                     f"{median(r['unanswered'] for r in mine):.0f}",
                     f"{median(r['retransmitted_ok'] for r in mine):.0f}",
                     f"{median(r['max_accept_latency_s'] for r in mine):.2f}"))
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))) + " |"
             for row in [head, *body]]
    rule = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":"
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([lines[0], rule, *lines[1:]])


# --- main ---------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_options(parser, workers=2, rounds=5, window=128, sockets=8, max_rate=40_000,
                     freeradius_config_help="packaged FreeRADIUS configuration to copy "
                                            "for the proxy")
    parser.add_argument("--freeradius-threads", type=int, default=4,
                        help="thread pool of the second FreeRADIUS proxy (0: leave it out)")
    parser.add_argument("--upstream-threads", type=int, default=None,
                        help="fixed thread pool of the upstream (default: FreeRADIUS's)")
    parser.add_argument("--no-vpop", action="store_true", help="FreeRADIUS only")
    parser.add_argument("--require-vpop", action="store_true",
                        help="fail, not skip, when vpop cannot proxy yet")
    group = parser.add_argument_group("fail-over")
    group.add_argument("--failover", action="store_true", help="measure fail-over instead")
    group.add_argument("--failover-duration", type=float, default=60.0,
                       help="seconds of sending per trial")
    group.add_argument("--failover-rounds", type=int, default=1, help="trials per proxy")
    group.add_argument("--kill-at", type=float, default=5.0,
                       help="seconds into a trial when the primary upstream is killed")
    group.add_argument("--rate", type=float, default=50.0, help="new requests per second")
    group.add_argument("--retries", type=int, default=3,
                       help="NAS retransmissions per request")
    group.add_argument("--retry-interval", type=float, default=5.0,
                       help="NAS seconds between attempts")
    group.add_argument("--id-reuse-delay", type=float, default=60.0,
                       help="NAS seconds before an Identifier is reused on its source port")
    group.add_argument("--response-window", type=float, default=20.0,
                       help="FreeRADIUS home_server response_window (its default: 20)")
    group.add_argument("--zombie-period", type=float, default=40.0,
                       help="FreeRADIUS home_server zombie_period (its default: 40)")
    parser.add_argument("--results", type=Path, help="also write every run's JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.freeradius_config is None:
        parser.error("no FreeRADIUS configuration found; pass --freeradius-config")
    if not 1 <= args.rounds <= 50 or not 0 < args.duration <= 120:
        parser.error("--rounds must be in [1, 50] and --duration in (0, 120]")
    if args.failover and not 0 < args.kill_at < args.failover_duration:
        parser.error("--kill-at must fall inside --failover-duration")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below
    root = Path(tempfile.mkdtemp(prefix="vpop-proxy-bench-"))
    upstreams: list[FreeRadius] = []
    proxies: list[Server] = []
    try:
        taken: set[int] = set()
        names = ["isp-a-primary", "isp-a-secondary"] if args.failover else ["isp-a"]
        upstreams = [setup_upstream(root, name, taken, args.upstream_threads)
                     for name in names]
        for upstream in upstreams:
            upstream.start()
            print(f"upstream {upstream.name}: pid {upstream.pid}, "
                  f"{upstream.host}:{upstream.auth_port}", flush=True)

        reference = setup_freeradius_proxy(root, "FreeRADIUS proxy default",
                                           args.freeradius_config, taken, None, upstreams, args)
        proxies.append(reference)
        if args.freeradius_threads and not args.failover:
            proxies.append(setup_freeradius_proxy(
                root, f"FreeRADIUS proxy {args.freeradius_threads} threads",
                args.freeradius_config, taken, args.freeradius_threads, upstreams, args))
        if not args.no_vpop:
            try:
                candidates = setup_vpop(root, args.workers, taken, upstreams, args)
                for server in candidates:
                    proxies.append(server)
                    try:
                        start_proxy(server)
                    except RuntimeError as exc:
                        raise VpopNotReady(str(exc)) from None
            except VpopNotReady as exc:
                if args.require_vpop:
                    raise
                for server in [s for s in proxies if s.name.startswith("vpop")]:
                    stop(server.process)
                    proxies.remove(server)
                print(f"vpop left out: {exc}", file=sys.stderr, flush=True)
        for server in proxies:
            if server.process is None:
                start_proxy(server)

        if args.failover:
            results = failover(proxies, upstreams, args)
        else:
            results = throughput(proxies, reference, upstreams[0], args)
        if args.results:
            args.results.write_text(json.dumps(results, indent=1) + "\n")
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except FreeRadiusError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        for server in proxies:
            stop(server.process)
        for upstream in upstreams:
            upstream.stop()
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
