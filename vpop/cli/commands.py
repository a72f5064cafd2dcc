"""vpop: a RADIUS/AAA server for wholesale access networks. Each command's options:
vpop COMMAND --help."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from vpop import config as config_module
from vpop.errors import ConfigError, ListenError, StoreUnavailable, VpopError
from vpop.logs import setup_logging

DEFAULT_CONFIG = "vpop.toml"
EXIT_USAGE = 2  # bad config or import file
EXIT_UNAVAILABLE = 1


def build_parser() -> argparse.ArgumentParser:
    """Every command and option, each with its line of help (a test checks that)."""
    import vpop
    parser = argparse.ArgumentParser(prog="vpop", description=__doc__)
    parser.add_argument("--config", default=os.environ.get("VPOP_CONFIG", DEFAULT_CONFIG),
                        help="TOML config file (default: $VPOP_CONFIG or ./vpop.toml)")
    parser.add_argument("--version", action="version", version=f"vpop {vpop.__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser("init", help="write a commented config and create the database")
    init.add_argument("--demo", action="store_true",
                      help="load the demo data (NAS clients, subscribers, ISPs, leases) and "
                           "set up the demo proxy ISP's own vpop in var/isp-proxy/")
    init.add_argument("--no-history", action="store_true",
                      help="with --demo: leave out the generated day of accounting and week "
                           "of ISP quality (an empty accounting database)")
    init.add_argument("--country-code", default="49",
                      help="for caller ID normalisation (default: 49)")
    init.add_argument("--force", action="store_true", help="overwrite an existing config file")

    db = commands.add_parser("db", help="database schema: upgrade, current")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply all migrations")
    db_commands.add_parser("current", help="print the schema revision")

    serve = commands.add_parser("serve", help="run the RADIUS server")
    serve.add_argument("--workers", type=int, metavar="N",
                       help="processes sharing the ports (instead of [server] workers)")
    serve.add_argument("--listen", action="append", metavar="ADDR",
                       help="IP address to listen on, repeatable (instead of [server] listen)")
    serve.add_argument("--auth-port", type=int, metavar="PORT",
                       help="Access-Request port, 0: any free one (instead of [server] auth_port)")
    serve.add_argument("--acct-port", type=int, metavar="PORT",
                       help="Accounting-Request port (instead of [server] acct_port)")
    serve.add_argument("--coa-port", type=int, metavar="PORT",
                       help="CoA and Disconnect port (instead of [server] coa_port)")
    serve.add_argument("--metrics-port", type=int, metavar="PORT",
                       help="Prometheus endpoint's TCP port, 0: none (instead of [metrics] port)")

    imp = commands.add_parser("import", help="provision NAS clients, profiles, subscribers")
    imp.add_argument("file", help="the TOML file to import (docs/provisioning.md)")
    imp.add_argument("--dry-run", action="store_true", help="validate and report, write nothing")
    imp.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                     help="wait this long for the running server to serve the change, "
                          "then say whether it does (default: 60; 0: look once)")

    web = commands.add_parser("web", help="run the web portal alone, under waitress "
                              "(docs/portal.md)")
    web.add_argument("--listen", metavar="ADDR",
                     help="IP address to listen on (instead of [portal] listen)")
    web.add_argument("--port", type=int, metavar="PORT",
                     help="TCP port, 0: any free one (instead of [portal] port)")

    commands.add_parser("check-config", help="validate the config, its templates and "
                        "database, and the provisioned ISPs, as serve would")

    from vpop.cli.report import add_report_parser
    add_report_parser(commands)

    from vpop.cli.directory import add_arguments as add_directory_arguments
    add_directory_arguments(commands)

    from vpop.cli.isp_status import add_arguments as add_isp_status_arguments
    isp = commands.add_parser("isp", help="upstream ISPs")
    isp_commands = isp.add_subparsers(dest="isp_command", required=True)
    add_isp_status_arguments(isp_commands.add_parser(
        "status", help="ISPs and their servers' measured state, as a table or JSON"))

    from vpop.cli.nas_config import add_arguments as add_nas_config_arguments
    nas = commands.add_parser("nas", help="NAS clients")
    nas_commands = nas.add_subparsers(dest="nas_command", required=True)
    add_nas_config_arguments(nas_commands.add_parser(
        "config", help="the configuration a NAS needs to work with vpop, for its vendor"))

    from vpop.cli.sessions import add_parsers as add_session_parsers
    add_session_parsers(commands)

    from vpop.cli.tokens import add_parsers as add_token_parsers
    add_token_parsers(commands)

    from vpop.cli.accounts import add_parsers as add_account_parsers
    add_account_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # What vpop writes (database, journal, logs, the config of init) is its operator's
    # alone: docs/configuration.md, "Files".
    os.umask(os.umask(0o077) | 0o077)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"vpop: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreUnavailable as exc:
        print(f"vpop: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except VpopError as exc:
        print(f"vpop: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE


def _settings(args) -> config_module.Settings:
    return config_module.load(args.config)


def cmd_init(args) -> int:
    import jinja2
    path = Path(args.config)
    if path.exists() and not args.force:
        print(f"vpop: {path} exists; keeping it (use --force to overwrite)", file=sys.stderr)
    else:
        template = (Path(__file__).parent.parent / "templates" / "vpop.toml").read_text()
        text = jinja2.Template(template, keep_trailing_newline=True).render(
            database_path="var/vpop.db", country_code=args.country_code)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    settings = _settings(args)
    _upgrade(settings)
    if args.demo:
        from vpop.store import demo
        _import(settings, str(demo.demo_plan_path()), dry_run=False)
        _init_demo_portal(settings)
        if not args.no_history:
            _init_demo_history(settings)
        _init_demo_isp(demo.isp_config_path(path), force=args.force)
    return 0


def _init_demo_portal(settings) -> None:
    """The demo's portal accounts: the admin and an operator for each ISP (README.md)."""
    import datetime as dt
    from vpop.portal.accounts import load_demo_accounts
    from vpop.store.engine import make_engine, make_sessionmaker
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            names = load_demo_accounts(session, dt.datetime.now(dt.timezone.utc))
            session.commit()
    finally:
        engine.dispose()
    print(f"portal accounts: {', '.join(names)} (README.md, Demo accounts)")


def _init_demo_history(settings) -> None:
    """A day of accounting and a week of ISP quality, so the portal's reports and
    charts show something at once (vpop/server/demo_history.py)."""
    import datetime as dt
    from vpop.server.demo_history import load_demo_history
    records, buckets = load_demo_history(settings, dt.datetime.now(dt.timezone.utc))
    print(f"demo history: {records} accounting records of the last day, "
          f"{buckets} QoS buckets of the last week")


def _init_demo_isp(config: Path, *, force: bool) -> None:
    """The demo's proxy-mode ISP's own RADIUS server, a second vpop: its config, database
    and data in var/isp-proxy/ beside the demo's (whatever VPOP_DATABASE_URL says)."""
    from vpop.store import demo
    if config.exists() and not force:
        print(f"vpop: {config} exists; keeping it (use --force to overwrite)", file=sys.stderr)
    else:
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(demo.isp_config_template().read_text())
        print(f"wrote {config}")
    env = {k: v for k, v in os.environ.items() if k != "VPOP_DATABASE_URL"}
    settings = config_module.load(config, env=env)
    _upgrade(settings)
    _import(settings, str(demo.isp_plan_path()), dry_run=False)


def _upgrade(settings) -> None:
    from vpop.store.engine import check_connection, make_engine, safe_url
    from vpop.store.schema import current_revision, upgrade
    engine = make_engine(settings.database_url)
    check_connection(engine)
    engine.dispose()
    upgrade(settings.database_url)
    print(f"database {safe_url(settings.database_url)} at revision "
          f"{current_revision(settings.database_url)}")


def cmd_db(args) -> int:
    settings = _settings(args)
    if args.db_command == "upgrade":
        _upgrade(settings)
    else:
        from vpop.store.schema import current_revision
        print(current_revision(settings.database_url) or "empty")
    return 0


def cmd_import(args) -> int:
    return _import(_settings(args), args.file, dry_run=args.dry_run, wait=max(args.wait, 0.0))


def _import(settings, file: str, *, dry_run: bool, wait: float | None = None) -> int:
    from vpop.aaa.reply import ReplyRenderer
    from vpop.server.wiring import load_dictionary
    from vpop.cli.imports import run_import
    # ISP reply templates are checked where the server will look for them.
    replies = ReplyRenderer(load_dictionary(settings),
                            settings.relative(settings.radius.templates))
    return run_import(settings, file, replies=replies, dry_run=dry_run, wait=wait)


def cmd_check_config(args) -> int:
    from vpop.server import preflight
    findings = preflight.check(_settings(args), serving=False)
    for warning in findings.warnings:
        print(f"vpop: warning: {warning}", file=sys.stderr)
    if findings.problems:  # the provisioned ISPs against the templates, each named
        for problem in findings.problems:
            print(f"vpop: {problem}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.config}: ok")
    return 0


def cmd_directory(args) -> int:
    from vpop.cli import directory
    return directory.run(_settings(args), args)


SERVE_OPTIONS = {"server.workers": "--workers", "server.listen": "--listen",
                 "server.auth_port": "--auth-port", "server.acct_port": "--acct-port",
                 "server.coa_port": "--coa-port", "metrics.port": "--metrics-port"}


def cmd_serve(args) -> int:
    options: dict[str, dict] = {"server": {}, "metrics": {}}
    for name, flag in SERVE_OPTIONS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            section, key = name.split(".")
            options[section][key] = tuple(value) if isinstance(value, list) else value
    settings = config_module.override(_settings(args), options, SERVE_OPTIONS)
    from vpop.server import preflight
    findings = preflight.check(settings, serving=True)  # before anything is made
    setup_logging(settings)
    for warning in [*findings.warnings, *map(str, findings.problems)]:
        logging.getLogger("vpop.server").warning("%s", warning)
    from vpop.server.supervisor import serve
    try:
        return serve(settings)
    except ListenError as exc:
        print(f"vpop: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"vpop: cannot start: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE


WEB_OPTIONS = {"portal.listen": "--listen", "portal.port": "--port"}


def cmd_web(args) -> int:
    options = {"portal": {key.split(".")[1]: getattr(args, flag[2:])
                          for key, flag in WEB_OPTIONS.items()
                          if getattr(args, flag[2:]) is not None}}
    settings = config_module.override(_settings(args), options, WEB_OPTIONS)
    setup_logging(settings)
    from vpop.portal.serve import run
    try:
        return run(settings)
    except OSError as exc:
        print(f"vpop: cannot listen on {settings.portal.listen}:{settings.portal.port}/tcp: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


def cmd_report(args) -> int:
    from vpop.cli import report as reports
    run = {"utilization": reports.report_utilization, "sessions": reports.report_sessions}
    return run[args.report](_settings(args), args)


def cmd_isp(args) -> int:
    from vpop.cli.isp_status import isp_status
    return isp_status(_settings(args), args)


def cmd_nas(args) -> int:
    from vpop.cli.nas_config import nas_config
    return nas_config(_settings(args), args)


def cmd_token(args) -> int:
    from vpop.cli.tokens import run
    return run(_settings(args), args)


def cmd_account(args) -> int:
    from vpop.cli.accounts import run
    return run(_settings(args), args)


def cmd_sessions(args) -> int:
    from vpop.cli.sessions import run
    return run(_settings(args), args)


COMMANDS = {"init": cmd_init, "db": cmd_db, "serve": cmd_serve, "import": cmd_import,
            "check-config": cmd_check_config, "web": cmd_web, "directory": cmd_directory,
            "report": cmd_report, "isp": cmd_isp, "nas": cmd_nas,
            "session": cmd_sessions, "subscriber": cmd_sessions, "token": cmd_token,
            "account": cmd_account}

if __name__ == "__main__":
    sys.exit(main())
