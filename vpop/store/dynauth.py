"""Dynamic authorization's reads and writes: live sessions and their NAS, the audit of
every CoA and Disconnect (dynauth_action), a session's mark after an ACKed Disconnect.
Functions take a Session and never commit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from vpop.accounting import sessions as S
from vpop.dynauth.request import SessionFacts
from vpop.dynauth.result import Result
from vpop.dynauth.session import NasEntry, nas_for_session
from vpop.store.accounting_models import RadAcct
from vpop.store.dynauth_models import DynAuthAction
from vpop.store.models import Nas

ORIGINATED, RELAYED = "originated", "relayed"
DISCONNECT_ACKED, STOP_OVERDUE = "disconnect-acked", "stop-overdue"
# A causeless Stop of a session whose NAS ACKed a Disconnect: ended by an administrator
# (RFC 2866 §5.10). hostapd sends such a Stop, before its Disconnect-ACK.
ADMIN_RESET = "Admin-Reset"


def nas_entries(session: Session) -> list[NasEntry]:
    return [NasEntry(name=n.name, address=n.address, secret=n.secret, nas_type=n.nas_type,
                     das_address=n.das_address, das_port=n.das_port, das_secret=n.das_secret)
            for n in session.scalars(select(Nas).order_by(Nas.name))]


def session_rows(session: Session, *, isp: str | None = None, nas: str | None = None,
                 user: str | None = None, closed_too: bool = False,
                 limit: int | None = None) -> list[RadAcct]:
    """Open sessions (with `closed_too`, closed ones as well), most recent first. `nas`:
    the NAS as it named itself, or vpop's name for it."""
    query = select(RadAcct)
    if not closed_too:
        query = query.where(RadAcct.status == S.OPEN)
    if isp is not None:
        query = query.where(RadAcct.isp == isp)
    if user is not None:
        query = query.where(RadAcct.username == user)
    if nas is not None:
        query = query.where(RadAcct.nas_address.in_(_nas_names(session, nas)))
    query = query.order_by(RadAcct.start_time.desc(), RadAcct.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def _nas_names(session: Session, nas: str) -> list[str]:
    """What sessions of NAS `nas` (vpop's name, or as it named itself) are stored under."""
    names = {nas}
    entries = nas_entries(session)
    if any(entry.name == nas for entry in entries):
        reported = session.scalars(select(RadAcct.nas_address).distinct()
                                   .where(RadAcct.status == S.OPEN))
        names.update(r for r in reported
                     if (owner := nas_for_session(r, entries)) is not None and owner.name == nas)
    return sorted(names)


def session_row(session: Session, radacct_id: int) -> RadAcct | None:
    return session.get(RadAcct, radacct_id)


def facts_for(row: RadAcct, nas: NasEntry | None) -> SessionFacts:
    return SessionFacts(
        radacct_id=row.id, acct_session_id=row.acct_session_id, username=row.username,
        nas_name=nas.name if nas else "", nas_type=nas.nas_type if nas else "generic",
        nas_reported=row.nas_address, nas_port=row.nas_port, framed_ip=row.framed_ip,
        calling_station_id=row.calling_station_id, isp=row.isp)


def record_action(session: Session, *, at: dt.datetime, actor: str, direction: str,
                  kind: str, facts: SessionFacts | None, sent: str, result: Result,
                  reason: str = "", nas: str = "", isp: str | None = None,
                  username: str = "") -> int:
    """One audit row; its id. `reason`: why it was asked (the answer's own reason, a
    timeout's or an error's, is added)."""
    why = "; ".join(part for part in (reason, result.reason) if part)
    row = DynAuthAction(
        at=at, actor=actor[:128], direction=direction, kind=kind,
        session_id=facts.radacct_id if facts else None,
        username=(facts.username if facts else username)[:128],
        nas=(facts.nas_name if facts and facts.nas_name else nas)[:64],
        isp=facts.isp if facts else isp, sent=sent, outcome=result.outcome,
        error_cause=result.error_cause, reason=why[:255],
        answer="\n".join(f"{name} = {value}" for name, value in result.answer))
    session.add(row)
    session.flush()
    return row.id


def actions_for(session: Session, radacct_id: int) -> list[DynAuthAction]:
    return list(session.scalars(select(DynAuthAction)
                                .where(DynAuthAction.session_id == radacct_id)
                                .order_by(DynAuthAction.at, DynAuthAction.id)))


def mark_disconnect_acked(session: Session, radacct_id: int, now: dt.datetime) -> bool:
    """After a Disconnect-ACK: the session's Stop is expected. When its Stop came first
    (hostapd sends it before the ACK, and the ledger may apply it before this mark),
    a causeless Stop gets the cause the mark would have given it, Admin-Reset, so the
    result does not depend on which of the two was written first. False when the
    session was already closed otherwise."""
    done = session.execute(update(RadAcct).where(RadAcct.id == radacct_id,
                                                 RadAcct.status == S.OPEN)
                           .values(dynauth_state=DISCONNECT_ACKED, dynauth_at=now))
    if done.rowcount:
        return True
    # The NAS ACKed, so it still had the session when the request came: a Stop that
    # closed it without a cause is the NAS's answer to that request.
    stopped = session.execute(update(RadAcct).where(
        RadAcct.id == radacct_id, RadAcct.status == S.CLOSED,
        RadAcct.closed_by == S.BY_STOP, RadAcct.terminate_cause.is_(None),
        RadAcct.dynauth_state.is_(None))
        .values(dynauth_state=DISCONNECT_ACKED, dynauth_at=now, terminate_cause=ADMIN_RESET))
    return bool(stopped.rowcount)


def mark_stop_overdue(session: Session, *, before: dt.datetime,
                      now: dt.datetime) -> list[tuple[int, str, str]]:
    """Sessions still open though their NAS ACKed a Disconnect before `before`: marked
    stop-overdue (once); (id, user, NAS as it named itself) of each."""
    rows = session.execute(select(RadAcct.id, RadAcct.username, RadAcct.nas_address).where(
        RadAcct.status == S.OPEN, RadAcct.dynauth_state == DISCONNECT_ACKED,
        RadAcct.dynauth_at < before)).all()
    if rows:
        session.execute(update(RadAcct).where(RadAcct.id.in_([r[0] for r in rows]))
                        .values(dynauth_state=STOP_OVERDUE, dynauth_at=now))
    return [(r[0], r[1], r[2]) for r in rows]


def action_counts(session: Session) -> list[tuple[str, str, str, int]]:
    """(NAS, direction, outcome, requests) over the whole audit, for the metrics."""
    table = DynAuthAction.__table__
    rows = session.execute(
        select(table.c.nas, table.c.direction, table.c.outcome, func.count())
        .group_by(table.c.nas, table.c.direction, table.c.outcome)
        .order_by(table.c.nas, table.c.direction, table.c.outcome))
    return [(nas, direction, outcome, int(n)) for nas, direction, outcome, n in rows]


def open_sessions_of(session: Session, usernames: Sequence[str]) -> list[RadAcct]:
    return list(session.scalars(select(RadAcct).where(
        RadAcct.status == S.OPEN, RadAcct.username.in_(list(usernames)))
        .order_by(RadAcct.start_time, RadAcct.id)))
