#!/usr/bin/env python3
"""Durable accounting side by side: vpop on SQLite and on PostgreSQL, FreeRADIUS writing
its detail file and FreeRADIUS writing through rlm_sql_postgresql, on loopback.

Every server gets the same stream from acct_loadgen.py (loadgen.py's Start,
Interim-Update and Stop per session, each request with its own authenticator, with a
session's records sent only after its previous one was answered); a request counts once it
is answered, and vpop answers only after the record is committed (SQLite in WAL mode
with synchronous=FULL, PostgreSQL with its default synchronous_commit=on). FreeRADIUS
runs from a copy of its packaged configuration (see auth_vs_freeradius.py) with the
accounting section cut down to `detail` in one instance and to `sql` in the other;
its SQL module writes the packaged PostgreSQL schema in a database of its own on the
same server vpop uses, with the packaged queries (durable commits, the default).

Needs: freeradius, and for the SQL instance the freeradius-postgresql package
(apt-get install freeradius-postgresql); PostgreSQL reachable with the admin URL given
(default postgresql://postgres@127.0.0.1:5432/postgres) allowed to create databases.

    python bench/acct_vs_freeradius.py --rounds 3 --duration 10 --window 256

With --rate N every server gets the same N records/s on a fixed schedule (open loop)
rather than a full window, so latencies compare at equal load:

    python bench/acct_vs_freeradius.py --rounds 3 --window 1000 --rate 20000 --workers 2

Prints each run, then the medians and the ratios to FreeRADIUS (of the rate and of
the p99). The CPU time shown is
the server's own processes; PostgreSQL's backends are not in it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import auth_vs_freeradius as auth_bench  # noqa: E402  (next to this file)
from auth_vs_freeradius import (HOST, Server, generator_command, median,  # noqa: E402
                                run_generator, start, stop)

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from vpop.store.engine import make_engine  # noqa: E402
from vpop.server.ledger import ledger_position  # noqa: E402

VPOP_CONFIG = """\
[server]
listen = ["{host}"]
auth_port = {auth}
acct_port = {acct}
coa_port = {coa}
workers = {workers}

[database]
url = "{url}"

[logging]
level = "info"
requests = false

[metrics]
port = 0
"""


# --- databases --------------------------------------------------------------------------

class Databases:
    """PostgreSQL databases made for this run and dropped at its end."""

    def __init__(self, admin_url: str):
        self.admin_url = make_url(admin_url)
        self.engine = make_engine(admin_url).execution_options(isolation_level="AUTOCOMMIT")
        self.made: list[str] = []

    def create(self, name: str) -> str:
        with self.engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        self.made.append(name)
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def count(self, url: str, table: str) -> int:
        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
        finally:
            engine.dispose()

    def drop_all(self) -> None:
        with self.engine.connect() as connection:
            for name in self.made:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.engine.dispose()


# --- vpop -------------------------------------------------------------------------------

def setup_vpop(root: Path, name: str, url: str, workers: int, taken: set[int], *,
               journal: bool = True, journal_dir: Path | None = None,
               ledger_niceness: int | None = None) -> Server:
    """`journal_dir`: the journal there instead of beside the config (a diagnosis: another
    file system than the database's)."""
    home = root / name.replace(" ", "-")
    home.mkdir()
    base = auth_bench.free_ports(3, taken)
    config = home / "vpop.toml"
    journal_file = (journal_dir / f"{home.name}-journal" if journal_dir
                    else home / "accounting-journal")
    config.write_text(VPOP_CONFIG.format(host=HOST, auth=base, acct=base + 1, coa=base + 2,
                                         workers=workers, url=url)
                      + f'\n[accounting]\njournal = "{journal_file if journal else ""}"\n'
                      + (f"ledger_niceness = {ledger_niceness}\n"
                         if ledger_niceness is not None else ""))
    plan = home / "plan.toml"
    plan.write_text(auth_bench.VPOP_PLAN)
    env = {k: v for k, v in os.environ.items() if k not in ("VPOP_CONFIG", "VPOP_DATABASE_URL")}
    for args in (("db", "upgrade"), ("import", str(plan))):
        subprocess.run(auth_bench.vpop_command("--config", str(config), *args), check=True,
                       stdout=subprocess.DEVNULL, env=env)
    server = Server(name=name, command=auth_bench.vpop_command("--config", str(config), "serve"),
                    port=base, log=home / "vpop.log", ready_text="ready:", ready_count=workers)
    server.acct_port = base + 1
    server.url = url
    server.journal = journal_file if journal else None
    return server


def wait_for_ledger(server: Server, timeout: float = 600.0) -> int:
    """Wait until the ledger has applied all that was journaled; the entry id applied."""
    deadline = time.monotonic() + timeout
    while True:
        journaled, applied = ledger_position(str(server.journal), server.url)
        if applied >= journaled or time.monotonic() > deadline:
            return applied
        time.sleep(0.1)


# --- FreeRADIUS ---------------------------------------------------------------------------

def accounting_only(raddb: Path, modules: list[str]) -> None:
    """The default site's accounting section with only `modules` in it."""
    site = raddb / "sites-available" / "default"
    text_ = site.read_text()
    begin, end = next(auth_bench._blocks(text_, "accounting"))
    body = "accounting {\n" + "".join(f"\t{m}\n" for m in modules) + "}"
    site.write_text(text_[:begin] + body + text_[end:])


def sql_module(raddb: Path, url: str) -> None:
    """rlm_sql_postgresql against `url`, enabled."""
    parsed = make_url(url)
    module = raddb / "mods-available" / "sql"
    text_ = module.read_text()
    text_ = auth_bench._set(text_, "dialect", '"postgresql"', count=1)
    text_ = auth_bench._set(text_, "driver", '"rlm_sql_${dialect}"', count=1)
    text_ = auth_bench._set(text_, "radius_db", f'"{parsed.database}"', count=1)
    connection = (f'\tserver = "{parsed.host or HOST}"\n\tport = {parsed.port or 5432}\n'
                  f'\tlogin = "{parsed.username or "postgres"}"\n'
                  f'\tpassword = "{parsed.password or ""}"\n')
    text_ = re.sub(r"(?m)^(sql \{\n)", lambda m: m.group(1) + connection, text_, count=1)
    module.write_text(text_)
    enabled = raddb / "mods-enabled" / "sql"
    if enabled.exists() or enabled.is_symlink():
        enabled.unlink()
    enabled.symlink_to("../mods-available/sql")


def setup_freeradius(root: Path, name: str, source: Path, taken: set[int], *,
                     sql_url: str | None) -> Server:
    home = root / name.replace(" ", "-")
    server = auth_bench.setup_freeradius(root, name, source, taken, None)
    raddb = home / "raddb"
    if sql_url is None:
        accounting_only(raddb, ["detail"])
    else:
        schema = source / "mods-config" / "sql" / "main" / "postgresql" / "schema.sql"
        engine = make_engine(sql_url)
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql(schema.read_text())
        finally:
            engine.dispose()
        sql_module(raddb, sql_url)
        accounting_only(raddb, ["sql"])
    binary = shutil.which("freeradius") or shutil.which("radiusd")
    check = subprocess.run([binary, "-C", "-d", str(raddb)], capture_output=True, text=True)
    if check.returncode:
        raise RuntimeError(f"{name}: configuration check failed:\n{check.stdout}{check.stderr}")
    server.acct_port = server.port + 1
    server.url = sql_url
    return server


# --- the benchmark ----------------------------------------------------------------------------

def run_load(server: Server, args) -> dict:
    paced = ("--rate", str(args.rate)) if args.rate else ()
    command = generator_command("acct_loadgen.py", server.acct_port, server.process.pid, args,
                                "--spread", str(args.spread), *paced)
    return run_generator(command, server.name, args.duration + args.warmup + 300)


def measure(server: Server, args) -> dict:
    """One run; again (up to --retries times) while other processes took more than
    --max-other of the machine: this machine is shared."""
    limit = args.max_other * args.duration * (os.cpu_count() or 1)
    for attempt in range(args.retries + 1):
        result = run_load(server, args)
        result["repeats"] = attempt
        if (result.get("other_cpu_s") or 0.0) <= limit or attempt == args.retries:
            return result
        print(f"        {server.name}: other processes used {result['other_cpu_s']:.1f} CPU s"
              f" (limit {limit:.1f}); again in {args.retry_wait:g} s", flush=True)
        time.sleep(args.retry_wait)
    return result


def table(servers: list[Server], references: dict[str, Server]) -> str:
    rates = {s.name: median(r["requests_per_s"] for r in s.results) for s in servers}
    head = ["server", "records/s", "p50 ms", "p99 ms", "server CPU s", "server us/rec",
            "other CPU s", "applied/s", "catch-up s"]
    head += [f"vs {label}" for label in references]
    head += [f"p99 vs {label}" for label in references]
    p99s = {s.name: median(r["p99_ms"] for r in s.results) for s in servers}
    rows = []
    for s in servers:
        row = [s.name, f"{rates[s.name]:,.0f}",
               f"{median(r['p50_ms'] for r in s.results):.2f}",
               f"{median(r['p99_ms'] for r in s.results):.2f}",
               f"{median(r['server_cpu_s'] for r in s.results):.2f}",
               f"{median(r['server_us_per_request'] for r in s.results):.1f}",
               f"{median(r.get('other_cpu_s') for r in s.results):.2f}",
               _median_of(s.results, "applied_per_s", "{:,.0f}"),
               _median_of(s.results, "catch_up_s", "{:.1f}")]
        row += [f"{rates[s.name] / rates[ref.name]:.2f}" if rates[ref.name] else "-"
                for ref in references.values()]
        row += [f"{p99s[s.name] / p99s[ref.name]:.2f}" if p99s[ref.name] else "-"
                for ref in references.values()]
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(  # noqa: E731
        str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))
    ) + " |"
    rule = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":"
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), rule, *(line(r) for r in rows)])


def _median_of(results: list[dict], key: str, form: str) -> str:
    values = [r[key] for r in results if key in r]
    return form.format(median(values)) if values else "-"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    auth_bench.add_load_options(parser, workers=1, rounds=3, window=256, sockets=4,
                                max_rate=40_000, unit="records")
    parser.add_argument("--spread", type=int, default=1024,
                        help="sessions per block: a session's records are this many apart")
    parser.add_argument("--rate", type=float, metavar="N",
                        help="offer N records/s on a fixed schedule (open loop, as NASes "
                             "send), the same to every server, instead of a new record as "
                             "each is answered; --window then bounds what is outstanding")
    parser.add_argument("--max-other", type=float, default=0.06,
                        help="share of the machine other processes may take during a run "
                             "before it is run again")
    parser.add_argument("--retries", type=int, default=0,
                        help="run again when other processes took more than --max-other "
                             "(the database and the kernel's disk writes count as other)")
    parser.add_argument("--retry-wait", type=float, default=20.0)
    parser.add_argument("--postgres", default=os.environ.get(
        "VPOP_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="admin URL of the PostgreSQL both vpop and FreeRADIUS write to")
    parser.add_argument("--only", nargs="+", choices=("vpop-sqlite", "vpop-postgresql",
                                                      "freeradius-detail", "freeradius-sql"),
                        help="run only these servers")
    parser.add_argument("--journal-dir", type=Path,
                        help="put vpop's journals in this directory (e.g. on another file "
                             "system than the databases, to see what the journal's fsync costs)")
    parser.add_argument("--ledger-niceness", type=int, metavar="N",
                        help="vpop's [accounting] ledger_niceness (default: the config's)")
    parser.add_argument("--direct", action="store_true",
                        help="also run vpop on SQLite without the accounting journal")
    parser.add_argument("--results", type=Path, help="also write every run's JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.freeradius_config is None:
        parser.error("no FreeRADIUS configuration found; pass --freeradius-config")
    if args.rate is not None and not 0 < args.rate <= args.max_rate:
        parser.error("--rate must be in (0, --max-rate]")
    if args.spread < args.window:
        parser.error("--spread must be at least --window: a session's records in order")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wanted = set(args.only or ("vpop-sqlite", "vpop-postgresql", "freeradius-detail",
                               "freeradius-sql"))
    root = Path(tempfile.mkdtemp(prefix="vpop-acct-bench-"))
    databases = Databases(args.postgres)
    servers: list[Server] = []
    tag = os.getpid()
    try:
        taken: set[int] = set()
        for workers in args.workers:
            suffix = f", {workers} workers" if workers > 1 else ""
            if "vpop-sqlite" in wanted:
                servers.append(setup_vpop(root, f"vpop SQLite{suffix}",
                                          f"sqlite:///{root / f'vpop-w{workers}.db'}",
                                          workers, taken, journal_dir=args.journal_dir,
                                          ledger_niceness=args.ledger_niceness))
            if args.direct:
                servers.append(setup_vpop(root, f"vpop SQLite direct{suffix}",
                                          f"sqlite:///{root / f'vpop-direct-w{workers}.db'}",
                                          workers, taken, journal=False))
            if "vpop-postgresql" in wanted:
                url = databases.create(f"vpop_bench_{tag}_w{workers}")
                servers.append(setup_vpop(root, f"vpop PostgreSQL{suffix}", url, workers, taken,
                                          ledger_niceness=args.ledger_niceness))
        references = {}
        if "freeradius-detail" in wanted:
            detail = setup_freeradius(root, "FreeRADIUS detail", args.freeradius_config, taken,
                                      sql_url=None)
            servers.append(detail)
            references["FreeRADIUS detail"] = detail
        if "freeradius-sql" in wanted:
            sql = setup_freeradius(root, "FreeRADIUS SQL", args.freeradius_config, taken,
                                   sql_url=databases.create(f"radius_bench_{tag}"))
            servers.append(sql)
            references["FreeRADIUS SQL"] = sql
        for server in servers:
            start(server)
        for server in servers:
            auth_bench.wait_ready(server)
            print(f"{server.name}: pid {server.process.pid}, accounting on "
                  f"{HOST}:{server.acct_port}", flush=True)
        print(f"{os.cpu_count()} CPUs; {args.rounds} rounds of {args.duration:g} s "
              f"(+{args.warmup:g} s warm-up), window {args.window} over {args.sockets} sockets",
              flush=True)
        for round_ in range(args.rounds):
            order = servers if round_ % 2 == 0 else servers[::-1]
            for server in order:
                if server.process.poll() is not None:
                    raise RuntimeError(f"{server.name} exited; see {server.log}")
                journal = getattr(server, "journal", None)
                applied_before = wait_for_ledger(server) if journal else 0
                began = time.monotonic()
                result = measure(server, args)
                if journal:  # acknowledged is journaled; how fast it got applied too
                    ended = time.monotonic()
                    applied = wait_for_ledger(server)
                    done = time.monotonic()
                    result["catch_up_s"] = done - ended
                    result["applied_per_s"] = (applied - applied_before) / (done - began)
                result["server"], result["round"] = server.name, round_ + 1
                server.results.append(result)
                print(f"round {round_ + 1} {server.name:26} {result['requests_per_s']:>9,.0f}"
                      f" rec/s  p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:7.2f} ms"
                      f"  server {result['server_cpu_s']:5.2f} s  other "
                      f"{result.get('other_cpu_s') or 0:5.2f} s  timeouts {result['timeouts']}"
                      + (f"  late {result['late']}" if args.rate else "") +
                      f"  bad {result['bad']}" + (
                          f"  ledger: caught up {result['catch_up_s']:.1f} s after the load, "
                          f"{result['applied_per_s']:,.0f} rec/s applied"
                          if "catch_up_s" in result else ""), flush=True)
        print()
        for server in servers:
            if server.url and server.url.startswith("postgresql"):
                table_name = "acct_record" if server.name.startswith("vpop") else "radacct"
                print(f"{server.name}: {databases.count(server.url, table_name):,} rows in "
                      f"{table_name}")
        print(f"\nmedians of {args.rounds} rounds:")
        print(table(servers, references))
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
        databases.drop_all()
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
