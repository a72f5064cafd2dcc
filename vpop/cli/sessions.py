"""`vpop session` (list, show, disconnect, coa) and `vpop subscriber set`: live sessions
and dynamic authorization from the command line (docs/dynauth.md).

Exit status of disconnect, coa and subscriber set: 0 when every request was ACKed
(or none was needed), 1 on a NAK, a timeout or an error, 2 for an unknown session,
subscriber, ISP or profile and other bad input."""

from __future__ import annotations

import datetime as dt
import getpass
import sys
from typing import TextIO

from vpop.accounting import reports
from vpop.errors import ConfigError

EXIT_OK, EXIT_NOT_ACKED, EXIT_UNKNOWN = 0, 1, 2
STATES = {None: "online", "disconnect-acked": "disconnect ACKed, Stop expected",
          "stop-overdue": "ACKed but still online"}
LIST_COLUMNS = ("id", "user", "nas", "port", "framed_ip", "caller", "isp", "started",
                "duration", "octets_in", "octets_out", "state")


def add_parsers(commands) -> None:
    """`session` and `subscriber`, for vpop.cli's subparsers."""
    session = commands.add_parser("session", help="live sessions: list, show, disconnect, "
                                  "change (CoA)")
    kinds = session.add_subparsers(dest="session_command", required=True)
    listing = kinds.add_parser("list", help="the live sessions, newest first")
    listing.add_argument("--isp", help="only this ISP's sessions")
    listing.add_argument("--nas", help="only this NAS's (vpop's name, or as it names itself)")
    listing.add_argument("--user", help="only this user's")
    listing.add_argument("--all", action="store_true", help="closed sessions too")
    listing.add_argument("--limit", type=int, default=1000, help="sessions listed at most "
                         "(default: 1000)")
    listing.add_argument("--format", choices=reports.FORMATS, default="table",
                         help="output format (default: table)")
    show = kinds.add_parser("show", help="one session: every field and its CoA/Disconnect "
                            "requests")
    show.add_argument("id", type=int, help="the session's id (from session list)")
    disconnect = kinds.add_parser("disconnect", help="send the NAS a Disconnect-Request")
    which = disconnect.add_mutually_exclusive_group(required=True)
    which.add_argument("id", type=int, nargs="?", help="the session's id")
    which.add_argument("--user", help="every live session of this user")
    disconnect.add_argument("--reason", default="", help="why, for the audit")
    coa = kinds.add_parser("coa", help="send the NAS a CoA-Request changing the session")
    coa.add_argument("id", type=int, help="the session's id")
    coa.add_argument("--rate-down", type=int, metavar="KBPS", help="downstream rate, kbit/s")
    coa.add_argument("--rate-up", type=int, metavar="KBPS", help="upstream rate, kbit/s")
    coa.add_argument("--session-timeout", type=int, metavar="S",
                     help="seconds the session may last in all")
    coa.add_argument("--idle-timeout", type=int, metavar="S", help="seconds it may be idle")
    coa.add_argument("--profile", help="this profile's rates and timeouts (the options "
                     "above override them)")
    coa.add_argument("--reason", default="", help="why, for the audit")

    subscriber = commands.add_parser("subscriber", help="a subscriber's choice of ISP and "
                                     "profile")
    actions = subscriber.add_subparsers(dest="subscriber_command", required=True)
    choose = actions.add_parser("set", help="store the choice and apply it to the live "
                                "sessions at once (CoA in place, or Disconnect to move ISP)")
    choose.add_argument("name", help="the subscriber's user name")
    choose.add_argument("--isp", help="the ISP chosen; none: the profile's")
    choose.add_argument("--profile", help="the profile")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def run(settings, args, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    from vpop.server.dynauth import UnknownSession
    try:
        if args.command == "subscriber":
            return _subscriber_set(settings, args, out)
        command = {"list": _list, "show": _show, "disconnect": _disconnect,
                   "coa": _coa}[args.session_command]
        return command(settings, args, out)
    except UnknownSession as exc:
        print(f"vpop: {exc}", file=err)
        return EXIT_UNKNOWN


# --- list and show ----------------------------------------------------------------------

def _when(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _state(row) -> str:
    if row.status != "open":
        state = f"closed ({row.closed_by or 'stop'})"
        return f"{state}, after {STATES[row.dynauth_state]}" if row.dynauth_state else state
    return STATES.get(row.dynauth_state, row.dynauth_state)


def _duration(row, now: dt.datetime) -> int:
    if row.status == "open" and row.start_time is not None:
        return max(int((now - row.start_time).total_seconds()), row.session_time)
    return row.session_time


def _rows(settings, args):
    from vpop.dynauth.session import nas_for_session
    from vpop.server.dynauth import _database
    from vpop.store import dynauth as store
    with _database(None, settings) as sessions, sessions() as session:
        nases = store.nas_entries(session)
        rows = store.session_rows(session, isp=args.isp, nas=args.nas, user=args.user,
                                  closed_too=args.all, limit=args.limit)
        now = dt.datetime.now(dt.timezone.utc)
        return [{
            "id": row.id, "user": row.username,
            "nas": (nas.name if (nas := nas_for_session(row.nas_address, nases))
                    else row.nas_address),
            "port": row.nas_port, "framed_ip": row.framed_ip,
            "caller": row.calling_station_id, "isp": row.isp,
            "started": _when(row.start_time), "duration": _duration(row, now),
            "octets_in": row.input_octets, "octets_out": row.output_octets,
            "state": _state(row)} for row in rows]


def _list(settings, args, out: TextIO) -> int:
    if args.limit < 1:
        raise ConfigError("--limit must be at least 1")
    out.write(reports.render(_rows(settings, args), LIST_COLUMNS, args.format))
    return EXIT_OK


SHOWN = ("id", "status", "username", "acct_session_id", "nas_address", "nas_port",
         "framed_ip", "framed_ipv6_prefix", "delegated_ipv6_prefix", "calling_station_id",
         "called_station_id", "isp", "route_mode", "route_reason", "lease_id", "start_time",
         "update_time", "stop_time", "session_time", "input_octets", "output_octets",
         "input_packets", "output_packets", "terminate_cause", "closed_by", "flags",
         "dynauth_state", "dynauth_at")


def _show(settings, args, out: TextIO) -> int:
    from vpop.dynauth.session import nas_for_session
    from vpop.server.dynauth import UnknownSession, _database
    from vpop.store import dynauth as store
    with _database(None, settings) as sessions, sessions() as session:
        row = store.session_row(session, args.id)
        if row is None:
            raise UnknownSession(f"no session {args.id}")
        nas = nas_for_session(row.nas_address, store.nas_entries(session))
        actions = store.actions_for(session, row.id)
        width = max(map(len, SHOWN)) + 1
        for name in SHOWN:
            value = getattr(row, name)
            if isinstance(value, dt.datetime):
                value = _when(value)
            out.write(f"{name + ':':<{width}} {'-' if value in (None, '') else value}\n")
        out.write(f"{'nas:':<{width}} {nas.name if nas else '- (no NAS client known)'}\n")
        out.write(f"{'state:':<{width}} {_state(row)}\n")
        out.write(f"\ndynamic authorization requests: {len(actions) or 'none'}\n")
        for action in actions:
            from vpop.dynauth.result import error_cause_words
            cause = (f", Error-Cause {action.error_cause} "
                     f"({error_cause_words(action.error_cause)})"
                     if action.error_cause is not None else "")
            out.write(f"  {_when(action.at)}  {action.kind} {action.direction} by "
                      f"{action.actor} to {action.nas or '-'}: {action.outcome}{cause}"
                      f"{' (' + action.reason + ')' if action.reason else ''}\n")
            for line in action.sent.splitlines():
                out.write(f"    sent    {line}\n")
            for line in action.answer.splitlines():
                out.write(f"    answer  {line}\n")
    return EXIT_OK


# --- requests ---------------------------------------------------------------------------

def _report(results, out: TextIO) -> int:
    for result in results:
        out.write(result.describe() + "\n")
        if result.why:
            out.write(f"  why: {result.why}\n")
        for name, value in result.answer:
            out.write(f"  answer: {name} = {value}\n")
    return EXIT_OK if all(r.ok for r in results) else EXIT_NOT_ACKED


def _disconnect(settings, args, out: TextIO) -> int:
    from vpop.server.dynauth import disconnect_session
    return _report(disconnect_session(None, settings, actor=_actor(), session_id=args.id,
                                      username=args.user, reason=args.reason), out)


def _coa(settings, args, out: TextIO) -> int:
    from vpop.dynauth.request import Change
    from vpop.server.dynauth import change_session
    for option in ("rate_down", "rate_up", "session_timeout", "idle_timeout"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be at least 1")
    change = Change(rate_down_kbps=args.rate_down, rate_up_kbps=args.rate_up,
                    session_timeout=args.session_timeout, idle_timeout=args.idle_timeout)
    return _report(change_session(None, settings, actor=_actor(), session_id=args.id,
                                  change=change, profile=args.profile, reason=args.reason),
                   out)


def _subscriber_set(settings, args, out: TextIO) -> int:
    from vpop.provisioning.fields import KEEP
    from vpop.server.dynauth import apply_subscriber_choice
    if args.isp is None and args.profile is None:
        raise ConfigError("give --isp or --profile (or both)")
    isp = KEEP if args.isp is None else (None if args.isp == "none" else args.isp)
    profile = KEEP if args.profile is None else args.profile
    done = apply_subscriber_choice(None, settings, actor=_actor(), username=args.name,
                                   isp=isp, profile=profile)
    before, after = done.change.before, done.change.after
    out.write(f"subscriber {args.name}: ISP {before.isp or 'none'} -> {after.isp or 'none'}"
              f"{'' if after.chosen_isp else ' (the profile' + chr(39) + 's)'}, profile "
              f"{before.profile.name} -> {after.profile.name}")
    out.write(f"; stored in generation {done.change.generation}\n" if done.change.generation
              else "; nothing changed\n")
    if not done.sessions and not done.unchanged:
        out.write("no live sessions\n")
    for session_id in done.unchanged:
        out.write(f"session {session_id}: nothing to change\n")
    return _report(done.sessions, out)
