"""The queue of accounting owed to proxy-mode ISPs; the caller commits."""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from vpop.isp.acct_forward import QueuedRecord
from vpop.store.isp_models import AcctForward


def enqueue(session: Session, *, isp: str, session_key: str, attrs: bytes, delay: int,
            received: float) -> bool:
    """Queue a record unless the same record (a NAS retransmission, even one that
    arrives after a restart) was queued before; the ISP gets each record once."""
    content = hashlib.md5(isp.encode() + b"\0" + attrs).hexdigest()
    if session.scalar(select(AcctForward.id).where(AcctForward.content_hash == content)):
        return False
    session.add(AcctForward(isp=isp, session_key=session_key, attrs=attrs, delay=delay,
                            received_at=received, attempts=0, next_try=received,
                            content_hash=content))
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
    return [QueuedRecord(id=r.id, isp=r.isp, session=r.session_key, attrs=r.attrs,
                         delay=r.delay, received=r.received_at, attempts=r.attempts)
            for r in rows]


def delivered(session: Session, ids: list[int], now: float) -> None:
    """Kept, marked, until purge(): a late retransmission must not be queued again."""
    if ids:
        session.execute(update(AcctForward).where(AcctForward.id.in_(ids))
                        .values(delivered_at=now, attrs=b""))


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
