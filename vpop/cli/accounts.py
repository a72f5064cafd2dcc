"""``vpop account``: the portal's admin and ISP-operator accounts (docs/portal.md).

    vpop account add NAME --role admin|operator [--isp ISP] [--password-env VAR]
    vpop account passwd NAME [--password-env VAR]
    vpop account disable NAME | enable NAME
    vpop account list

The password comes from the environment variable --password-env names, else it is
asked for twice on a terminal, else read as one line from standard input; it never
appears on the command line, where other users of the host could read it. Every
change is audited as the portal's own changes are (actor cli:<login>).
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import sys

from vpop.errors import ConfigError

MIN_PASSWORD = 8


def add_parsers(commands) -> None:
    account = commands.add_parser("account", help="portal accounts of admins and ISP operators")
    kinds = account.add_subparsers(dest="account_command", required=True)
    add = kinds.add_parser("add", help="create an account (or replace one's role and password)")
    add.add_argument("name", help="the login name")
    add.add_argument("--role", required=True, choices=("admin", "operator"),
                     help="admin: everything; operator: its own ISP's data only")
    add.add_argument("--isp", metavar="ISP", help="the operator's ISP (operators only)")
    add.add_argument("--password-env", metavar="VAR",
                     help="environment variable holding the password (else asked for)")
    passwd = kinds.add_parser("passwd", help="set an account's password")
    passwd.add_argument("name", help="the login name")
    passwd.add_argument("--password-env", metavar="VAR",
                        help="environment variable holding the password (else asked for)")
    for verb, text in (("disable", "refuse the account's logins and end its sessions"),
                       ("enable", "allow a disabled account to log in again")):
        kinds.add_parser(verb, help=text).add_argument("name", help="the login name")
    kinds.add_parser("list", help="the accounts, with role, ISP, state and last login")


def read_password(env_name: str | None) -> str:
    if env_name:
        password = os.environ.get(env_name)
        if password is None:
            raise ConfigError(f"--password-env: {env_name} is not set")
    elif sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("password: the two entries differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"password: at least {MIN_PASSWORD} characters")
    return password


def run(settings, args, *, out=None) -> int:
    from vpop.portal.security import hash_password
    from vpop.store import portal as accounts
    from vpop.store.engine import check_connection, make_engine, make_sessionmaker
    from vpop.store.isp_models import IspRecord
    out = out or sys.stdout
    now = dt.datetime.now(dt.timezone.utc)
    actor = f"cli:{getpass.getuser()}"
    command = args.account_command
    password = read_password(args.password_env) if command in ("add", "passwd") else None
    engine = make_engine(settings.database_url, create=False)
    try:
        check_connection(engine)
        with make_sessionmaker(engine)() as session:
            if command == "list":
                for user in accounts.users(session):
                    isp = session.get(IspRecord, user.isp_id).name if user.isp_id else "-"
                    last = f"{user.last_login:%Y-%m-%d %H:%M}" if user.last_login else "never"
                    state = "enabled" if user.enabled else "disabled"
                    print(f"{user.name}\t{user.role}\t{isp}\t{state}\tlast login {last}",
                          file=out)
                return 0
            user = accounts.user_by_name(session, args.name)
            before = None if user is None else _described(session, user)
            if command == "add":
                try:
                    user = accounts.put_user(session, name=args.name, role=args.role,
                                             isp=args.isp, now=now,
                                             password_hash=hash_password(password))
                except ValueError as exc:
                    raise ConfigError(f"{'--isp' if 'ISP' in str(exc) else '--role'}: {exc}") \
                        from None
            elif user is None:
                raise ConfigError(f"no account {args.name!r}")
            elif command == "passwd":
                user.password_hash = hash_password(password)
            else:
                user.enabled = command == "enable"
            after = _described(session, user)
            accounts.record_audit(session, at=now, actor=actor, action=f"account.{command}",
                                  obj=f"account {user.name}", before=before,
                                  after=after, isp_id=user.isp_id)
            session.commit()
            print(f"account {user.name}: {command} done ({after['role']}"
                  f"{' of ' + after['isp'] if after['isp'] else ''}, "
                  f"{'enabled' if user.enabled else 'disabled'})", file=out)
    finally:
        engine.dispose()
    return 0


def _described(session, user) -> dict:
    """The audit's view of an account: never its password hash."""
    from vpop.store.isp_models import IspRecord
    isp = session.get(IspRecord, user.isp_id).name if user.isp_id else None
    return {"name": user.name, "role": user.role, "isp": isp, "enabled": user.enabled}
