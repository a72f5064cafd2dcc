#!/usr/bin/env python3
"""vpop and FreeRADIUS side by side: local PAP authentication on loopback.

Starts, in one temporary directory:
  * vpop (one instance per --workers value) with client 127.0.0.1 (secret
    testing123) and subscriber alice / alice-pass;
  * FreeRADIUS from a copy of its packaged configuration, changed only where
    needed: loopback listeners on free ports, no IPv6 listeners, the inner-tunnel
    port moved, run as the invoking user with logs and PID file in the temporary
    directory, require_message_authenticator = yes for the localhost client, and
    alice in the files module;
  * optionally a second FreeRADIUS whose thread pool is fixed at N threads.

Then, for each round, benchmarks every server in turn with loadgen.py (the order
alternates between rounds) and prints the medians. Every process started here is
stopped by PID on exit, Ctrl-C or error.

    python bench/auth_vs_freeradius.py --workers 1 2 --rounds 5 --duration 10
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import loadgen  # noqa: E402  (next to this file)

from vpop.radius import codec  # noqa: E402

SECRET = "testing123"
USER, PASSWORD = "alice", "alice-pass"
HOST = "127.0.0.1"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

VPOP_CONFIG = """\
[server]
listen = ["{host}"]
auth_port = {auth}
acct_port = {acct}
coa_port = {coa}
workers = {workers}

[database]
url = "sqlite:///{db}"

# No accounting is measured here: direct mode, so no ledger process polls an idle
# journal while the other servers are measured.
[accounting]
journal = ""

[logging]
level = "info"
requests = {requests}
file = "{log}"

[metrics]
port = 0
"""

# The provisioning file vpop imports: the same client and user FreeRADIUS gets.
VPOP_PLAN = f"""\
[[nas]]
name = "localhost"
address = "127.0.0.1/32"
secret = "{SECRET}"
nas_type = "generic"
require_message_authenticator = "yes"

[[profile]]
name = "bench"
rate_down_kbps = 10000
rate_up_kbps = 2000

[[subscriber]]
username = "{USER}"
password = "{PASSWORD}"
methods = ["pap", "chap"]
profile = "bench"
"""


@dataclass
class Server:
    name: str
    command: list[str]
    port: int
    log: Path
    ready_text: str | None = None  # wait for this many ...
    ready_count: int = 0  # ... occurrences in the log before probing
    cwd: Path | None = None
    env: dict[str, str] | None = None  # added to this script's environment
    process: subprocess.Popen | None = None
    results: list[dict] = field(default_factory=list)


# --- ports and processes --------------------------------------------------------------

def free_ports(count: int, taken: set[int]) -> int:
    """The first of `count` consecutive UDP ports free on loopback."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000 - count)
        if any(p in taken for p in range(base, base + count)):
            continue
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((HOST, port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        taken.update(range(base, base + count))
        return base
    raise RuntimeError("no free loopback ports")


def start(server: Server) -> None:
    out = open(server.log, "ab")
    # A session of its own: Ctrl-C reaches this script only, which then stops it.
    server.process = subprocess.Popen(server.command, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True,
                                      cwd=server.cwd,
                                      env={**os.environ, **server.env} if server.env else None)
    out.close()


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    tree = loadgen.descendants([process.pid])
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pid in tree - {process.pid}:  # workers left behind by a supervisor
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def probe(port: int, user: str = USER, password: str = PASSWORD) -> int | None:
    """One PAP Access-Request; the reply code if it verifies, else None."""
    plan = loadgen.Plan(kind="auth", host=HOST, port=port, secret=SECRET.encode(),
                        user=user, password=password.encode(),
                        nas_ip=socket.inet_aton(HOST), window=1, sockets=1, timeout=1,
                        warmup=0, duration=None, count=1)
    authenticator = os.urandom(16)
    packet = loadgen.access_request(random.randrange(256), authenticator, plan)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.connect((HOST, port))
        try:
            s.send(packet)
            data = s.recv(4096)
        except OSError:
            return None
    return data[0] if codec.reply_ok(data, authenticator, SECRET.encode()) else None


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        text = server.log.read_text(errors="replace") if server.log.exists() else ""
        if server.process.poll() is not None:
            tail = "\n".join(text.splitlines()[-15:])
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{tail}")
        if server.ready_text is None or text.count(server.ready_text) >= server.ready_count:
            code = probe(server.port)
            if code == codec.ACCESS_ACCEPT:
                return
            if code is not None:
                raise RuntimeError(f"{server.name} answers alice with code {code}, not "
                                   f"Access-Accept; see {server.log}")
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} not ready after {READY_TIMEOUT:g} s; see {server.log}")


# --- vpop -----------------------------------------------------------------------------

def vpop_command(*args: str) -> list[str]:
    # Run from a directory without a vpop/ in it: `-m` puts the working directory
    # first on sys.path, and the package to measure is the one this Python imports.
    return [sys.executable, "-m", "vpop.cli", *args]


def setup_vpop(root: Path, workers_list: list[int], taken: set[int],
               request_log: bool, python_wire: list[int] = ()) -> list[Server]:
    """One vpop per workers value, and one more per `python_wire` value that runs the
    Python wire primitives (VPOP_WIRE=python) instead of the compiled ones."""
    db = root / "vpop.db"
    servers = []
    for workers, python in [(w, False) for w in workers_list] + [(w, True) for w in python_wire]:
        base = free_ports(3, taken)
        home = root / f"vpop-w{workers}{'-python-wire' if python else ''}"
        home.mkdir()
        config = home / "vpop.toml"
        config.write_text(VPOP_CONFIG.format(host=HOST, auth=base, acct=base + 1,
                                             coa=base + 2, workers=workers, db=db,
                                             requests=str(request_log).lower(),
                                             log=home / "vpop.log"))
        if not db.exists():
            plan = root / "plan.toml"
            plan.write_text(VPOP_PLAN)
            for args in (("db", "upgrade"), ("import", str(plan))):
                subprocess.run(vpop_command("--config", str(config), *args), check=True,
                               stdout=subprocess.DEVNULL, cwd=home)
        servers.append(Server(name=f"vpop {workers} worker{'s' if workers > 1 else ''}"
                                   + (", Python wire" if python else ""),
                              command=vpop_command("--config", str(config), "serve"),
                              port=base, log=home / "vpop.log", cwd=home,
                              ready_text="ready:", ready_count=workers,
                              env={"VPOP_WIRE": "python"} if python else None))
    return servers


# --- FreeRADIUS -------------------------------------------------------------------------

def _blocks(text: str, keyword: str):
    """(start, end) of each top-level-in-its-file `keyword {` ... `}` block."""
    for match in re.finditer(rf"(?m)^[ \t]*{keyword}[ \t]*\{{", text):
        depth, pos = 0, match.end() - 1
        while pos < len(text):
            char = text[pos]
            if char == "#":  # comment to end of line
                pos = text.find("\n", pos)
                if pos < 0:
                    break
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    yield match.start(), pos + 1
                    break
            pos += 1


def _set(text: str, name: str, value: str, *, count: int = 0) -> str:
    new, n = re.subn(rf"(?m)^([ \t]*){re.escape(name)}[ \t]*=[^\n#]*",
                     rf"\g<1>{name} = {value}", text, count=count)
    if not n:
        raise RuntimeError(f"FreeRADIUS config: no '{name} =' line to change")
    return new


def setup_freeradius(root: Path, name: str, source: Path, taken: set[int],
                     threads: int | None) -> Server:
    home = root / name.replace(" ", "-")
    raddb = home / "raddb"
    shutil.copytree(source, raddb, symlinks=True)
    (home / "log").mkdir()
    (home / "run").mkdir()
    base = free_ports(2, taken)
    inner = free_ports(1, taken)

    conf = raddb / "radiusd.conf"
    text = conf.read_text()
    text = _set(text, "logdir", str(home / "log"), count=1)
    text = _set(text, "run_dir", str(home / "run"), count=1)
    # Keep the invoking user: no switch to the packaged service account.
    text = re.sub(r"(?m)^([ \t]*)(user|group)[ \t]*=", r"\1# \2 =", text)
    if threads:
        start_, end = next(_blocks(text, "thread pool"))
        pool = text[start_:end]
        for key, value in (("start_servers", threads), ("max_servers", threads),
                           ("min_spare_servers", 1), ("max_spare_servers", threads)):
            pool = _set(pool, key, str(value))
        text = text[:start_] + pool + text[end:]
    conf.write_text(text)

    # Loopback listeners on our ports; the IPv6 wildcard listeners go.
    site = raddb / "sites-available" / "default"
    text = site.read_text()
    pieces, last = [], 0
    for start_, end in _blocks(text, "listen"):
        block = text[start_:end]
        if "ipv6addr" in re.sub(r"#[^\n]*", "", block):
            block = "# (IPv6 listener removed for the benchmark)"
        else:
            kind = re.search(r"(?m)^\s*type\s*=\s*(\w+)", block).group(1)
            block = _set(block, "ipaddr", HOST)
            block = _set(block, "port", str(base if kind == "auth" else base + 1), count=1)
        pieces += [text[last:start_], block]
        last = end
    site.write_text("".join(pieces) + text[last:])

    site = raddb / "sites-available" / "inner-tunnel"
    site.write_text(_set(site.read_text(), "port", str(inner), count=1))

    clients = raddb / "clients.conf"
    text = clients.read_text()
    start_, end = next(_blocks(text, "client localhost"))
    # The generator always signs its requests; require it, as vpop's client does.
    block = _set(text[start_:end], "require_message_authenticator", "yes")
    clients.write_text(text[:start_] + block + text[end:])

    users = raddb / "mods-config" / "files" / "authorize"
    users.write_text(f'{USER}\tCleartext-Password := "{PASSWORD}"\n\n' + users.read_text())

    binary = shutil.which("freeradius") or shutil.which("radiusd")
    if binary is None:
        raise RuntimeError("freeradius (or radiusd) not found on PATH")
    check = subprocess.run([binary, "-C", "-d", str(raddb)], capture_output=True, text=True)
    if check.returncode:
        raise RuntimeError(f"{name}: configuration check failed:\n{check.stdout}{check.stderr}")
    log = home / "log" / "radius.log"
    return Server(name=name, command=[binary, "-f", "-d", str(raddb), "-l", str(log)],
                  port=base, log=log, ready_text="Ready to process requests", ready_count=1,
                  cwd=home)


# --- the benchmark ----------------------------------------------------------------------

def generator_command(script: str, port: int, server_pid: int, args, *extra: str) -> list[str]:
    """A load generator run with the options every side-by-side benchmark shares."""
    return [sys.executable, str(HERE / script), "--target", f"{HOST}:{port}",
            "--secret", SECRET, *extra,
            "--duration", str(args.duration), "--warmup", str(args.warmup),
            "--window", str(args.window), "--sockets", str(args.sockets),
            "--max-rate", str(args.max_rate), "--json-only", "--server-pid", str(server_pid)]


def run_generator(command: list[str], name: str, timeout: float) -> dict:
    """Run a generator to its end and return its result: the last JSON line it printed."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as gen:
        try:
            out, _ = gen.communicate(timeout=timeout)
        finally:
            if gen.poll() is None:
                gen.kill()
                gen.wait()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"loadgen against {name} printed no result")
    return json.loads(lines[-1])


def run_load(server: Server, args) -> dict:
    command = generator_command("loadgen.py", server.port, server.process.pid, args,
                                "--user", USER, "--password", PASSWORD)
    return run_generator(command, server.name, args.duration + args.warmup + 120)


def measure(server: Server, args) -> dict:
    """One run; repeated while other processes took a noticeable share of the machine."""
    limit = args.max_other * args.duration * (os.cpu_count() or 1)
    for attempt in range(args.retries + 1):
        result = run_load(server, args)
        result["repeats"] = attempt
        if result.get("other_cpu_s", 0.0) <= limit or attempt == args.retries:
            return result
        print(f"        {server.name}: other processes used {result['other_cpu_s']:.1f} CPU s"
              f" (limit {limit:.1f}); again in {args.retry_wait:g} s", flush=True)
        time.sleep(args.retry_wait)
    return result


def split(result: dict) -> str:
    """CPU seconds per server process, when there are several (workers)."""
    by_pid = result.get("server_cpu_by_pid") or {}
    if len(by_pid) < 2:
        return ""
    return "  per process " + "/".join(f"{v:.1f}" for v in by_pid.values())


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def undisturbed(runs: list[dict], max_other: float) -> list[dict]:
    """The runs during which other processes stayed under the limit; all if none did."""
    cpus = os.cpu_count() or 1
    quiet = [r for r in runs if (r.get("other_cpu_s") or 0.0) <= max_other * r["seconds"] * cpus]
    return quiet or runs


def table(results: dict[str, list[dict]], reference: str | None, max_other: float) -> str:
    """Medians per server over its undisturbed runs, as a Markdown table."""
    chosen = {name: undisturbed(runs, max_other) for name, runs in results.items()}
    ref_rate = (median(r["requests_per_s"] for r in chosen[reference])
                if reference in chosen else None)
    head = ("server", "runs", "req/s", "p50 ms", "p99 ms", "timeouts", "server CPU s",
            "server us/req", "gen CPU s", "other CPU s", "server RSS MiB", "vs FreeRADIUS")
    rows = []
    for name, runs in chosen.items():
        rate = median(r["requests_per_s"] for r in runs)
        rows.append((
            name, f"{len(runs)}/{len(results[name])}", f"{rate:,.0f}",
            f"{median(r['p50_ms'] for r in runs):.2f}",
            f"{median(r['p99_ms'] for r in runs):.2f}",
            f"{median(r['timeouts'] for r in runs):.0f}",
            f"{median(r['server_cpu_s'] for r in runs):.2f}",
            f"{median(r['server_us_per_request'] for r in runs):.1f}",
            f"{median(r['generator_cpu_s'] for r in runs):.2f}",
            f"{median(r.get('other_cpu_s') for r in runs):.2f}",
            f"{max(r.get('server_rss_mb') or 0 for r in runs):.0f}",
            f"{rate / ref_rate:.2f}" if ref_rate else "-"))
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    line = lambda row: "| " + " | ".join(  # noqa: E731
        str(c).ljust(w) if i == 0 else str(c).rjust(w)
        for i, (c, w) in enumerate(zip(row, widths))) + " |"
    rule = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":"
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), rule, *(line(r) for r in rows)])


PACKAGED_FREERADIUS = next((p for p in (Path("/etc/freeradius/3.0"), Path("/etc/raddb"))
                            if p.is_dir()), None)


def add_load_options(parser: argparse.ArgumentParser, *, workers: int, rounds: int,
                     window: int, sockets: int, max_rate: int, unit: str = "requests",
                     freeradius_config_help: str = "packaged FreeRADIUS configuration to copy"
                     ) -> None:
    """The options every side-by-side benchmark shares, with its own defaults."""
    parser.add_argument("--workers", type=int, nargs="+", default=[workers],
                        help="vpop worker processes; several values run several instances")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before")
    parser.add_argument("--window", type=int, default=window, help=f"{unit} outstanding")
    parser.add_argument("--sockets", type=int, default=sockets, help="generator source ports")
    parser.add_argument("--max-rate", type=int, default=max_rate,
                        help=f"{unit}/s the generator's packet pool is sized for")
    parser.add_argument("--freeradius-config", type=Path, default=PACKAGED_FREERADIUS,
                        help=freeradius_config_help)


def check_load_options(parser: argparse.ArgumentParser, args) -> None:
    """Refuse what add_load_options' values cannot run with."""
    if args.freeradius_config is None:
        parser.error("no FreeRADIUS configuration found; pass --freeradius-config")
    if not 1 <= args.rounds <= 50 or not 0 < args.duration <= 120:
        parser.error("--rounds must be in [1, 50] and --duration in (0, 120]")


def remove_workdir(root: Path, keep: bool) -> None:
    """The temporary directory goes, unless --keep asked for it."""
    if keep:
        print(f"kept {root}", file=sys.stderr)
    else:
        shutil.rmtree(root, ignore_errors=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_options(parser, workers=2, rounds=5, window=128, sockets=8, max_rate=90_000)
    parser.add_argument("--freeradius-threads", type=int, default=4,
                        help="thread pool of the reference FreeRADIUS (0: leave it out)")
    parser.add_argument("--python-wire", type=int, nargs="*", default=[], metavar="WORKERS",
                        help="also run vpop with these worker counts on the Python wire"
                             " primitives (VPOP_WIRE=python), to see the compiled ones' share")
    parser.add_argument("--vpop-request-log", action="store_true",
                        help="let vpop log one line per request (off: like FreeRADIUS's"
                             " default 'auth = no')")
    parser.add_argument("--max-other", type=float, default=0.06,
                        help="repeat a run when other processes used more than this share"
                             " of the machine's CPU during it (default 0.06)")
    parser.add_argument("--retries", type=int, default=3, help="repeats of a disturbed run")
    parser.add_argument("--retry-wait", type=float, default=20.0,
                        help="seconds to wait before repeating a disturbed run")
    parser.add_argument("--results", type=Path, help="also write every run's JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--from-results", type=Path, metavar="FILE",
                        help="only print the table of a --results file")
    args = parser.parse_args(argv)
    check_load_options(parser, args)
    return args


TABLE_NOTE = ("medians over each server's undisturbed runs (runs: used/all); server RSS: "
              "the largest at the end of a run")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.from_results:  # print the table of an earlier run
        results: dict[str, list[dict]] = {}
        for run in json.loads(args.from_results.read_text()):
            results.setdefault(run["server"], []).append(run)
        print(TABLE_NOTE)
        print(table(results, "FreeRADIUS default", args.max_other))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below
    root = Path(tempfile.mkdtemp(prefix="vpop-bench-"))
    servers: list[Server] = []
    try:
        taken: set[int] = set()
        servers += setup_vpop(root, args.workers, taken, args.vpop_request_log,
                              args.python_wire)
        reference = setup_freeradius(root, "FreeRADIUS default", args.freeradius_config,
                                     taken, None)
        servers.append(reference)
        if args.freeradius_threads:
            servers.append(setup_freeradius(
                root, f"FreeRADIUS {args.freeradius_threads} threads",
                args.freeradius_config, taken, args.freeradius_threads))
        for server in servers:
            start(server)
        for server in servers:
            wait_ready(server)
            print(f"{server.name}: pid {server.process.pid}, {HOST}:{server.port}", flush=True)
        import vpop
        from vpop.radius import wire
        print(f"vpop package measured: {Path(vpop.__file__).parent} (wire primitives: "
              f"{'compiled' if wire.COMPILED else 'Python'})", flush=True)
        print(f"{os.cpu_count()} CPUs; {args.rounds} rounds of {args.duration:g} s "
              f"(+{args.warmup:g} s warm-up), window {args.window} over {args.sockets} "
              f"sockets", flush=True)
        for round_ in range(args.rounds):
            order = servers if round_ % 2 == 0 else servers[::-1]
            for server in order:
                if server.process.poll() is not None:
                    raise RuntimeError(f"{server.name} exited; see {server.log}")
                result = measure(server, args)
                result["server"], result["round"] = server.name, round_ + 1
                server.results.append(result)
                print(f"round {round_ + 1} {server.name:24} {result['requests_per_s']:>9,.0f}"
                      f" req/s  p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms"
                      f"  server {result['server_cpu_s']:5.2f} s  gen "
                      f"{result['generator_cpu_s']:5.2f} s  timeouts {result['timeouts']}"
                      f"  bad {result['bad']}  rejects {result['rejects']}"
                      f"  other CPU {result.get('other_cpu_s', 0):.2f} s"
                      + (f" (after {result['repeats']} repeats)" if result["repeats"] else "")
                      + split(result), flush=True)
        print()
        print(TABLE_NOTE)
        print(table({s.name: s.results for s in servers}, reference.name, args.max_other))
        if args.results:
            args.results.write_text(json.dumps(
                [r for s in servers for r in s.results], indent=1) + "\n")
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for server in servers:
            stop(server.process)
        remove_workdir(root, args.keep)


if __name__ == "__main__":
    sys.exit(main())
