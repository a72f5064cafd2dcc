"""The queue of accounting owed to proxy-mode ISPs; the caller commits."""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from vpop.isp.acct_forward import Attempt, ForwardOrder, QueuedRecord
from vpop.store.isp_models import AcctForward


def enqueue(session: Session, order: ForwardOrder) -> bool:
    """Queue a record unless the same record (a NAS retransmission, even one that
    arrives after a restart) was queued before; the ISP gets each record once."""
    content = hashlib.md5(order.isp.encode() + b"\0" + order.attrs).hexdigest()
    if session.scalar(select(AcctForward.id).where(AcctForward.content_hash == content)):
        return False
    session.add(AcctForward(isp=order.isp, session_key=order.session_key, attrs=order.attrs,
                            delay=order.delay, received_at=order.received, attempts=0,
                            next_try=order.received, content_hash=content))
    return True


def due(session: Session, now: float, limit: int = 500) -> list[QueuedRecord]:
    """The oldest queued record of each session, if its time has come, oldest first.

    Only a session's oldest record qualifies, so a later record never overtakes an
    earlier one that is waiting out its backoff.
    """
    heads = (select(func.min(AcctForward.id)).where(AcctForward.delivered_at.is_(None))
             .group_by(AcctForward.session_key))
    rows = session.scalars(select(AcctForward)
                           .where(AcctForward.id.in_(heads), AcctForward.next_try <= now)
                           .order_by(AcctForward.id).limit(limit))
    return [_queued(r) for r in rows]


def resendable(session: Session, since: float) -> list[QueuedRecord]:
    """Records owed whose last datagram was built after `since`: at start, what an
    earlier run may have left in flight."""
    rows = session.scalars(select(AcctForward)
                           .where(AcctForward.delivered_at.is_(None),
                                  AcctForward.built_at > since)
                           .order_by(AcctForward.id))
    return [_queued(r) for r in rows]


def _queued(row: AcctForward) -> QueuedRecord:
    return QueuedRecord(id=row.id, isp=row.isp, session=row.session_key, attrs=row.attrs,
                        delay=row.delay, received=row.received_at, attempts=row.attempts,
                        server=row.server or "", datagram=row.datagram or b"",
                        built=row.built_at or 0.0)


def sending(session: Session, attempts: list[Attempt], source_port: int) -> None:
    """Keep each datagram, where it goes and from which port, before it is sent."""
    if attempts:
        session.execute(update(AcctForward), [
            {"id": a.id, "server": a.server, "datagram": a.send.data, "built_at": a.built,
             "source_port": source_port, "next_try": a.retry_at} for a in attempts])


def last_source_port(session: Session) -> int | None:
    """The source port of the datagram built last, if any is still kept."""
    return session.scalar(select(AcctForward.source_port)
                          .where(AcctForward.source_port.is_not(None))
                          .order_by(AcctForward.built_at.desc()).limit(1))


def delivered(session: Session, ids: list[int], now: float) -> None:
    """Kept, marked, until purge(): a late retransmission must not be queued again."""
    if ids:
        session.execute(update(AcctForward).where(AcctForward.id.in_(ids))
                        .values(delivered_at=now, attrs=b"", datagram=None))


def purge(session: Session, before: float) -> None:
    session.execute(delete(AcctForward).where(AcctForward.delivered_at < before))


def retry_later(session: Session, record_id: int, attempts: int, not_before: float) -> None:
    session.execute(update(AcctForward).where(AcctForward.id == record_id)
                    .values(attempts=attempts, next_try=not_before))


def backlog(session: Session) -> dict[str, int]:
    """Records still owed, per ISP."""
    return dict(session.execute(select(AcctForward.isp, func.count())
                                .where(AcctForward.delivered_at.is_(None))
                                .group_by(AcctForward.isp)).tuples())
