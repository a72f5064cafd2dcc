"""vpop directory test [ISP] USER: one lookup in a directory, as the server would make
it, with the subscriber it maps to and what would be answered (docs/ldap.md)."""

from __future__ import annotations

import os
import sys
import time

from vpop.aaa.authenticate import pap_password_ok
from vpop.aaa.identify import refusal
from vpop.directory.mapping import UnusableEntry
from vpop.directory.routing import DirectoryUnavailable
from vpop.errors import ConfigError
from vpop.server.ldap_directory import LdapDirectory, field_error
from vpop.store.engine import make_engine, make_sessionmaker
from vpop.store.snapshot import load_profiles

EXIT_USAGE = 2


def add_arguments(commands) -> None:
    directory = commands.add_parser("directory", help="LDAP subscriber directories "
                                    "(docs/ldap.md)")
    sub = directory.add_subparsers(dest="directory_command", required=True)
    test = sub.add_parser("test", help="look a user up as the server would, and show the "
                          "subscriber and the answer")
    test.add_argument("names", nargs="+", metavar="[ISP] USER",
                      help="the User-Name, after the ISP whose own directory to ask "
                           "(default: the global directory)")
    test.add_argument("--password-env", metavar="NAME",
                      help="check this environment variable's value as a PAP password")


def run(settings, args, out=sys.stdout) -> int:
    if len(args.names) > 2:
        print("vpop: directory test takes [ISP] USER", file=sys.stderr)
        return EXIT_USAGE
    isp, user = (args.names if len(args.names) == 2 else (None, args.names[0]))
    d = settings.directory
    if isp is None:
        if not d.enabled:
            print("vpop: no global directory: [directory] servers is empty", file=sys.stderr)
            return EXIT_USAGE
        own, field = d, ("directory", "ca_file")
    else:
        found = [(n, each) for n, each in enumerate(d.isp) if each.name == isp]
        if not found:
            names = ", ".join(each.name for each in d.isp) or "none"
            print(f"vpop: ISP {isp!r} has no directory ([[directory.isp]]: {names})",
                  file=sys.stderr)
            return EXIT_USAGE
        number, each = found[0]
        own, field = each.settings, (f"directory.isp[{number}]", "ca_file")
    password = None
    if args.password_env:
        if args.password_env not in os.environ:
            print(f"vpop: --password-env: {args.password_env} is not set", file=sys.stderr)
            return EXIT_USAGE
        password = os.environ[args.password_env].encode()
    engine = make_engine(settings.database_url, create=False)
    try:
        with make_sessionmaker(engine)() as session:
            profiles = load_profiles(session)
    finally:
        engine.dispose()
    try:
        directory = LdapDirectory(isp or "global", own, profiles=profiles,
                                  relative=settings.relative, isp=isp, field=field)
    except ConfigError as exc:
        raise field_error(settings, exc) from None
    try:
        return _test(directory, user, password, settings.identification.realm_delimiter, out)
    finally:
        directory.close()


def _test(directory: LdapDirectory, name: str, password: bytes | None, delimiter: str,
          out) -> int:
    user, _, realm = name.rpartition(delimiter) if delimiter in name else (name, "", "")
    search = directory.search_filter("user_name", "", name, user, realm)
    print(f"directory:  {directory.name} ({', '.join(directory.servers)})", file=out)
    print(f"search:     {search} under {directory.settings.base_dn}", file=out)
    try:
        account = directory.find(search, name, use_cache=False)
    except DirectoryUnavailable as exc:
        print(f"unavailable: {exc}", file=out)
        print("answer:     Access-Reject (Subscriber directory unavailable)", file=out)
        return 1
    except UnusableEntry as exc:
        print(f"entry:      refused: {exc}", file=out)
        print("answer:     Access-Reject", file=out)
        return 1
    if account is None:
        print("entry:      none found", file=out)
        print("answer:     Access-Reject (unknown subscriber)", file=out)
        return 1
    p = account.profile
    print(f"entry:      {account.dn}", file=out)
    print(f"subscriber: {account.username}", file=out)
    print(f"profile:    {p.name} (down {p.rate_down_kbps or '-'} kbit/s, up "
          f"{p.rate_up_kbps or '-'} kbit/s, session timeout {p.session_timeout or '-'})",
          file=out)
    print(f"address:    {account.framed_ip or '-'}", file=out)
    print(f"isp:        {account.isp or '-'}", file=out)
    credentials = [what for what, held in (
        ("password hash", account.password_hash), ("cleartext", account.cleartext),
        ("NT hash", account.nt_hash), ("bind", account.check_password)) if held]
    print(f"methods:    {', '.join(sorted(account.methods))}; credentials: "
          f"{', '.join(credentials) or 'none'}", file=out)
    why = refusal(account, time.time())
    if why:
        print(f"answer:     Access-Reject ({why})", file=out)
        return 1
    if password is not None:
        ok = (account.check_password(password) if account.check_password is not None
              else pap_password_ok(account, password))
        if ok is not True:
            print(f"answer:     Access-Reject ({ok or 'wrong password'})", file=out)
            return 1
        print("answer:     Access-Accept (PAP)", file=out)
    else:
        print("answer:     Access-Accept when the credentials check", file=out)
    return 0
