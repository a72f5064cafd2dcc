#!/usr/bin/env python3
"""PAP with LDAP lookups side by side: vpop's directory and FreeRADIUS's rlm_ldap.

Starts, in one temporary directory:
  * OpenLDAP's slapd from the test harness (tests/support/slapd.py) on loopback,
    seeded with --subscribers entries (user0001 / pass-0001 ...); the benchmark's users
    are those whose userPassword is {SSHA} (one in six: the others hold {SSHA256},
    {SSHA512}, {CRYPT}, {PBKDF2-SHA256} or a cleartext, and the harness's slapd loads
    no module to bind with the SHA-2 or PBKDF2 schemes);
  * vpop (per --workers value) with a [directory] on that slapd, in three settings:
    `cache_ttl = 0` (every request a search, then the stored hash checked), the same
    with `pap = "bind"` (a search, then a bind as the subscriber), and
    `cache_ttl = 300` (lookups answered from memory once made). sambaNTPassword is
    not read (`nt_password_attribute = ""`), so PAP checks userPassword as
    FreeRADIUS does;
  * FreeRADIUS from a copy of its packaged configuration (auth_vs_freeradius:
    loopback ports, run as the invoking user) with an `ldap` module of its own: the
    same server, service account, base DN and user filter,
    `control:Password-With-Header += 'userPassword'` (the pap module checks the
    scheme), a connection pool as large as the thread pool (its packaged default);
    one with the default site's `Auth-Type LDAP` (a bind as the subscriber), and one
    with an rlm_cache instance in front of ldap (rbtree, keyed by User-Name,
    ttl 300, the password header cached).

Phases, every round (the order of servers alternates between rounds):
  cold    every benchmark user in turn (--cold-users, all by default): vpop without
          its cache against FreeRADIUS rlm_ldap, which has none;
  bind    the same users, PAP by binding as the subscriber (--no-bind: left out);
  cached  --cached-users users again and again: vpop with its cache against
          FreeRADIUS with rlm_cache, and FreeRADIUS rlm_ldap alone.

Load: loadgen.py (closed loop, --window outstanding) with --users. Printed: the
medians of requests/s, p50 and p99 per phase, with the ratio to the phase's
FreeRADIUS. Every process started here is stopped by PID on exit, Ctrl-C or error.

    python bench/ldap_vs_freeradius.py --rounds 3 --duration 10
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # the slapd harness: tests/support
import loadgen  # noqa: E402
from auth_vs_freeradius import (HOST, Server, add_load_options,  # noqa: E402
                                check_load_options, generator_command, probe,
                                remove_workdir, run_generator, setup_freeradius, setup_vpop,
                                start, stop, table, wait_ready)
from support.slapd import (PASSWORD_SCHEMES, SERVICE_DN, SERVICE_PASSWORD,  # noqa: E402
                           SUFFIX, Slapd, password_of, username_of)

from vpop.radius import codec  # noqa: E402

USER_FILTER = "(&(objectClass=inetOrgPerson)(uid={user}))"
FREERADIUS_FILTER = USER_FILTER.replace("{user}", "%{%{Stripped-User-Name}:-%{User-Name}}")
SCHEME = "SSHA"  # checked by vpop, FreeRADIUS's pap module and slapd (bind) alike
PASSWORD_VARIABLE = "VPOP_BENCH_LDAP_PASSWORD"
CACHE_TTL = 300

# Appended to the config auth_vs_freeradius writes; see docs/ldap.md.
VPOP_DIRECTORY = """
[directory]
servers = ["{url}"]
bind_dn = "{bind_dn}"
bind_password = "env:{variable}"
base_dn = "{base_dn}"
user_filter = "{user_filter}"
default_profile = "bench"
methods = ["pap"]
nt_password_attribute = ""
pap = "{pap}"
cache_ttl = {cache_ttl}
negative_ttl = {negative_ttl}
"""

FREERADIUS_LDAP = """
ldap {{
	server = '{host}'
	port = {port}
	identity = '{bind_dn}'
	password = '{password}'
	base_dn = '{base_dn}'
	update {{
{update}	}}
	user {{
		base_dn = "${{..base_dn}}"
		filter = "{filter}"
		scope = 'sub'
	}}
	options {{
		chase_referrals = no
		res_timeout = 10
		srv_timelimit = 3
		net_timeout = 1
		idle = 60
		probes = 3
		interval = 3
		ldap_debug = 0x0000
	}}
	pool {{
		start = ${{thread[pool].start_servers}}
		min = ${{thread[pool].min_spare_servers}}
		max = ${{thread[pool].max_servers}}
		spare = ${{thread[pool].max_spare_servers}}
		uses = 0
		retry_delay = 30
		lifetime = 0
		idle_timeout = 60
	}}
}}
"""

FREERADIUS_CACHE = f"""
cache cache_ldap {{
	driver = "rlm_cache_rbtree"
	key = "%{{User-Name}}"
	ttl = {CACHE_TTL}
	update {{
		&control:Password-With-Header += &control:Password-With-Header[*]
	}}
}}
"""

# In the default site's authorize section, in place of `-ldap`: the cache first; only
# on a miss the directory, then the cache filled.
FREERADIUS_CACHED_AUTHORIZE = """update control {
		&Cache-Read-Only := yes
	}
	cache_ldap
	if (notfound) {
		ldap
		cache_ldap
	}"""


def bench_users(subscribers: int) -> list[tuple[str, str]]:
    """(name, password) of the seeded subscribers whose password both servers check."""
    return [(username_of(n), password_of(n)) for n in range(1, subscribers + 1)
            if PASSWORD_SCHEMES[n % len(PASSWORD_SCHEMES)] == SCHEME]


# --- vpop -------------------------------------------------------------------------------

VPOP_KINDS = {  # name: (pap, cache_ttl)
    "cold": ("hash", 0),
    "bind": ("bind", 0),
    "cached": ("hash", CACHE_TTL),
}


def setup_vpop_directory(root: Path, kind: str, workers: list[int], taken: set[int],
                         ldap: Slapd) -> list[Server]:
    """vpop instances (one per workers value) whose subscribers are in the directory."""
    pap, ttl = VPOP_KINDS[kind]
    home = root / f"vpop-{kind}"
    home.mkdir()
    servers = setup_vpop(home, workers, taken, False)
    for server in servers:
        config = Path(server.command[server.command.index("--config") + 1])
        with config.open("a") as f:
            f.write(VPOP_DIRECTORY.format(url=ldap.url, bind_dn=SERVICE_DN,
                                          variable=PASSWORD_VARIABLE, base_dn=SUFFIX,
                                          user_filter=USER_FILTER, pap=pap, cache_ttl=ttl,
                                          negative_ttl=0 if ttl == 0 else 5))
        server.env = {**(server.env or {}), PASSWORD_VARIABLE: SERVICE_PASSWORD}
        server.name = f"{server.name}, {'pap = bind, ' if pap == 'bind' else ''}cache_ttl {ttl}"
    return servers


# --- FreeRADIUS -------------------------------------------------------------------------

FREERADIUS_KINDS = {"cold": "rlm_ldap", "bind": "rlm_ldap, Auth-Type LDAP",
                    "cached": "rlm_ldap + rlm_cache"}


def _uncomment(text: str, block: str) -> str:
    """The default site's commented-out `block` (lines starting '#'), made live."""
    pattern = r"\n".join(r"#" + re.escape(line[1:]) for line in block.splitlines())
    new, count = re.subn(pattern, lambda _: "\n".join(line[1:] for line in block.splitlines()),
                         text)
    if count != 1:
        raise RuntimeError(f"FreeRADIUS default site: no commented-out block {block!r}")
    return new


def setup_freeradius_ldap(root: Path, kind: str, source: Path, taken: set[int],
                          ldap: Slapd) -> Server:
    """The packaged config (via auth_vs_freeradius) with the ldap module on our slapd."""
    name = f"FreeRADIUS {FREERADIUS_KINDS[kind]}"
    server = setup_freeradius(root, name, source, taken, None)
    raddb = Path(server.command[server.command.index("-d") + 1])
    update = "" if kind == "bind" else "\t\tcontrol:Password-With-Header += 'userPassword'\n"
    (raddb / "mods-enabled" / "ldap").write_text(FREERADIUS_LDAP.format(
        host=HOST, port=ldap.port, bind_dn=SERVICE_DN, password=SERVICE_PASSWORD,
        base_dn=SUFFIX, update=update, filter=FREERADIUS_FILTER))
    site = raddb / "sites-available" / "default"
    text = site.read_text()
    if kind == "bind":
        text = _uncomment(text, "#\tif ((ok || updated) && User-Password && !control:Auth-Type) {"
                                "\n#\t\tupdate control {\n#\t\t\t&Auth-Type := ldap\n#\t\t}\n#\t}")
        text = _uncomment(text, "#\tAuth-Type LDAP {\n#\t\tldap\n#\t}")
    if kind == "cached":
        (raddb / "mods-enabled" / "cache_ldap").write_text(FREERADIUS_CACHE)
        text, count = re.subn(r"(?m)^\t-ldap$", lambda _: "\t" + FREERADIUS_CACHED_AUTHORIZE,
                              text, count=1)
        if not count:
            raise RuntimeError("FreeRADIUS default site: no `-ldap` line in authorize")
    site.write_text(text)
    check = subprocess.run([server.command[0], "-C", "-d", str(raddb)], capture_output=True,
                           text=True)
    if check.returncode:
        hint = ("\n(rlm_ldap is in Debian's freeradius-ldap package)"
                if "rlm_ldap" in check.stdout + check.stderr else "")
        raise RuntimeError(f"{name}: configuration check failed:\n{check.stdout}"
                           f"{check.stderr}{hint}")
    return server


# --- the benchmark ----------------------------------------------------------------------

def check_directory_login(server: Server, user: tuple[str, str]) -> None:
    """A directory subscriber is accepted (the readiness probe asked for a local one)."""
    code = probe(server.port, *user)
    if code != codec.ACCESS_ACCEPT:
        tail = server.log.read_text(errors="replace")[-3000:] if server.log.exists() else ""
        raise RuntimeError(f"{server.name} answers {user[0]} with "
                           f"{'nothing' if code is None else f'code {code}'}, not "
                           f"Access-Accept; the end of {server.log}:\n{tail}")


def run_phase(phase: str, servers: list[Server], users_file: Path, round_: int,
              ldap: Slapd, args) -> None:
    order = servers if round_ % 2 == 0 else servers[::-1]
    for server in order:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited; see {server.log}")
        if ldap.process is None or ldap.process.poll() is not None:
            raise RuntimeError(f"slapd exited; see {ldap.log_path}")
        command = generator_command("loadgen.py", server.port, server.process.pid, args,
                                    "--users", str(users_file))
        # slapd's CPU over the whole run (warm-up included): an indication only.
        directory_cpu = loadgen.ProcessCpu([ldap.process.pid])
        directory_cpu.start()
        result = run_generator(command, server.name, args.duration + args.warmup + 120)
        result.update(server=server.name, round=round_ + 1, phase=phase,
                      slapd_cpu_s=round(directory_cpu.seconds(), 3))
        server.results.append(result)
        print(f"round {round_ + 1} {phase:6} {server.name:44} "
              f"{result['requests_per_s']:>8,.0f} req/s  p50 {result['p50_ms']:6.2f} ms"
              f"  p99 {result['p99_ms']:6.2f} ms  server {result['server_cpu_s']:5.2f} s"
              f"  slapd {result['slapd_cpu_s']:5.2f} s"
              f"  timeouts {result['timeouts']}  rejects {result['rejects']}"
              f"  other CPU {result.get('other_cpu_s', 0):.2f} s", flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_options(parser, workers=2, rounds=3, window=128, sockets=8, max_rate=20_000)
    # vpop's default (one worker) and one per core: slapd shares the two cores here and
    # takes one of them in the cold and bind phases (docs/benchmarks.md).
    parser.set_defaults(workers=[1, 2])
    parser.add_argument("--subscribers", type=int, default=12_000,
                        help="entries seeded into slapd (one in six is a benchmark user)")
    parser.add_argument("--cold-users", type=int, default=0,
                        help="users the cold and bind phases cycle through (0: all)")
    parser.add_argument("--cached-users", type=int, default=50,
                        help="users the cached phase repeats")
    parser.add_argument("--no-bind", action="store_true", help="leave out the bind phase")
    parser.add_argument("--results", type=Path, help="also write every run's JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    check_load_options(parser, args)
    if not 12 <= args.subscribers <= 200_000:
        parser.error("--subscribers must be in [12, 200000]")
    if args.cached_users < 1 or args.cold_users < 0:
        parser.error("--cached-users must be at least 1 and --cold-users not negative")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below
    root = Path(tempfile.mkdtemp(prefix="vpop-ldap-bench-"))
    ldap: Slapd | None = None
    servers: list[Server] = []
    try:
        users = bench_users(args.subscribers)
        cold = users[:args.cold_users] if args.cold_users else users
        cached = users[:args.cached_users]
        files = {}
        for phase, chosen in (("cold", cold), ("bind", cold), ("cached", cached)):
            files[phase] = root / f"users-{phase}.txt"
            files[phase].write_text("".join(f"{u} {p}\n" for u, p in chosen))
        print(f"seeding slapd with {args.subscribers} subscribers ...", flush=True)
        ldap = Slapd(root / "slapd", subscribers=args.subscribers)
        ldap.start()
        print(f"slapd: pid {ldap.process.pid}, {ldap.url}", flush=True)

        phases = ["cold"] + ([] if args.no_bind else ["bind"]) + ["cached"]
        taken: set[int] = set()
        by_phase: dict[str, list[Server]] = {}
        for phase in phases:
            by_phase[phase] = []
            # Each server set up once the one before runs: the ports it picks are then
            # not among those the earlier servers took as their ephemeral source ports.
            for setup in (lambda: setup_vpop_directory(root, phase, args.workers, taken, ldap),
                          lambda: [setup_freeradius_ldap(root, phase, args.freeradius_config,
                                                         taken, ldap)]):
                for server in setup():
                    servers.append(server)
                    by_phase[phase].append(server)
                    start(server)
                    wait_ready(server)
                    check_directory_login(server, users[0])
                    print(f"{server.name}: pid {server.process.pid}, {HOST}:{server.port}",
                          flush=True)
        by_phase["cached"].append(by_phase["cold"][-1])  # rlm_ldap alone, few users

        print(f"{os.cpu_count()} CPUs; {args.rounds} rounds of {args.duration:g} s "
              f"(+{args.warmup:g} s warm-up), window {args.window} over {args.sockets} "
              f"sockets; cold and bind: {len(cold)} users in turn, cached: "
              f"{len(cached)} users", flush=True)
        results: dict[str, dict[str, list[dict]]] = {p: {} for p in phases}
        for round_ in range(args.rounds):
            for phase in phases:
                for server in by_phase[phase]:
                    server.results = []
                run_phase(phase, by_phase[phase], files[phase], round_, ldap, args)
                for server in by_phase[phase]:
                    results[phase].setdefault(server.name, []).extend(server.results)
        print()
        for phase in phases:
            reference = f"FreeRADIUS {FREERADIUS_KINDS[phase]}"
            print(f"{phase}: medians of {args.rounds} rounds ('vs FreeRADIUS' = req/s ratio "
                  f"to {reference})")
            print(table(results[phase], reference, float("inf")))
            print()
        if args.results:
            args.results.write_text(json.dumps(
                [r for phase in phases for runs in results[phase].values() for r in runs],
                indent=1) + "\n")
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for server in servers:
            stop(server.process)
        if ldap is not None:
            ldap.stop()
        remove_workdir(root, args.keep)


if __name__ == "__main__":
    sys.exit(main())
