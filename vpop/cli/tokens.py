"""``vpop token``: the JSON API's tokens (docs/api.md).

    vpop token create (--admin | --isp ISP) [--name NAME]   prints the token, once
    vpop token list [--isp ISP]
    vpop token revoke ID
"""

from __future__ import annotations

import datetime as dt
import getpass
import sys

from vpop.errors import ConfigError


def add_parsers(commands) -> None:
    token = commands.add_parser("token", help="JSON API tokens: create, list, revoke")
    kinds = token.add_subparsers(dest="token_command", required=True)
    create = kinds.add_parser("create", help="make a token and print it (shown only once)")
    scope = create.add_mutually_exclusive_group(required=True)
    scope.add_argument("--admin", action="store_true", help="a token that sees every ISP")
    scope.add_argument("--isp", metavar="ISP", help="a token that sees only this ISP's data")
    create.add_argument("--name", default="", help="what the token is for (listed with it)")
    listed = kinds.add_parser("list", help="the tokens, without their values")
    listed.add_argument("--isp", metavar="ISP", help="only this ISP's tokens")
    revoke = kinds.add_parser("revoke", help="revoke a token: it is refused from then on")
    revoke.add_argument("id", type=int, help="the token's id (vpop token list)")


def run(settings, args, *, out=None) -> int:
    from sqlalchemy import select

    from vpop.store import api_tokens
    from vpop.store.engine import check_connection, make_engine, make_sessionmaker
    from vpop.store.isp_models import IspRecord
    out = out or sys.stdout
    now = dt.datetime.now(dt.timezone.utc)
    engine = make_engine(settings.database_url, create=False)
    try:
        check_connection(engine)
        with make_sessionmaker(engine)() as session:
            if args.token_command == "create":
                try:
                    row, token = api_tokens.create(
                        session, isp=args.isp, name=args.name, now=now,
                        created_by=f"cli:{getpass.getuser()}")
                except ValueError as exc:
                    raise ConfigError(f"--isp: {exc}") from None
                session.commit()
                print(f"token {row.id} ({row.scope}{' ' + args.isp if args.isp else ''}): "
                      f"{token}", file=out)
                print("vpop: the token is shown only now: keep it", file=sys.stderr)
            elif args.token_command == "list":
                isp_id = None
                if args.isp is not None:
                    isp_id = session.scalar(select(IspRecord.id).where(IspRecord.name == args.isp))
                    if isp_id is None:
                        raise ConfigError(f"--isp: no ISP {args.isp!r}")
                for t in api_tokens.listed(session, isp_id=isp_id):
                    state = f"revoked {t['revoked']:%Y-%m-%d %H:%M}" if t["revoked"] else "active"
                    used = f"{t['last_used']:%Y-%m-%d %H:%M}" if t["last_used"] else "never"
                    print(f"{t['id']}\t{t['isp'] or 'admin'}\t{state}\tlast used {used}\t"
                          f"{t['name']}", file=out)
            else:
                row = api_tokens.revoke(session, args.id, now=now)
                if row is None:
                    raise ConfigError(f"no token {args.id}")
                session.commit()
                print(f"token {row.id} revoked", file=out)
    finally:
        engine.dispose()
    return 0
