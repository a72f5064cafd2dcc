"""The queue of accounting owed to proxy-mode ISPs; the caller commits."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from vpop.isp.acct_forward import QueuedRecord
from vpop.store.isp_models import AcctForward


def enqueue(session: Session, *, isp: str, session_key: str, attrs: bytes, delay: int,
            received: float) -> None:
    session.add(AcctForward(isp=isp, session_key=session_key, attrs=attrs, delay=delay,
                            received_at=received, attempts=0, next_try=received))


def due(session: Session, now: float, limit: int = 500) -> list[QueuedRecord]:
    """The oldest queued record of each session, if its time has come, oldest first.

    Only a session's oldest record qualifies, so a later record never overtakes an
    earlier one that is waiting out its backoff.
    """
    heads = select(func.min(AcctForward.id)).group_by(AcctForward.session_key)
    rows = session.scalars(select(AcctForward)
                           .where(AcctForward.id.in_(heads), AcctForward.next_try <= now)
                           .order_by(AcctForward.id).limit(limit))
    return [QueuedRecord(id=r.id, isp=r.isp, session=r.session_key, attrs=r.attrs,
                         delay=r.delay, received=r.received_at, attempts=r.attempts)
            for r in rows]


def delivered(session: Session, ids: list[int]) -> None:
    if ids:
        session.execute(delete(AcctForward).where(AcctForward.id.in_(ids)))


def retry_later(session: Session, record_id: int, attempts: int, not_before: float) -> None:
    session.execute(update(AcctForward).where(AcctForward.id == record_id)
                    .values(attempts=attempts, next_try=not_before))


def backlog(session: Session) -> dict[str, int]:
    """Records still owed, per ISP."""
    return dict(session.execute(select(AcctForward.isp, func.count())
                                .group_by(AcctForward.isp)).tuples())
