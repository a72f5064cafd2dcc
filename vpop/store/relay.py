"""The sessions an ISP's relayed CoA/Disconnect may name (vpop/dynauth/relay.py): that
ISP's open sessions only, each with its NAS's dynamic-authorization endpoint. Takes a
Session and never commits."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from vpop.accounting import sessions as S
from vpop.dynauth.relay import SessionQuery, matches, user_parts
from vpop.dynauth.request import SessionFacts
from vpop.dynauth.session import Endpoint, endpoint_for, nas_for_session
from vpop.isp.model import Isp
from vpop.store.accounting_models import RadAcct
from vpop.store.dynauth import facts_for, nas_entries

MAX_CANDIDATES = 1000  # rows read for one request; more than one match is refused anyway


@dataclass(frozen=True, slots=True)
class Candidate:
    facts: SessionFacts
    endpoint: Endpoint | str  # where its NAS takes the request, or why that is not known


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def relay_candidates(session: Session, query: SessionQuery, isp: Isp) -> list[Candidate]:
    """The open sessions of `query.isp` the request names (vpop.dynauth.relay.matches).
    The ISP is part of the SQL, so no other ISP's session is ever read for it."""
    sql = select(RadAcct).where(RadAcct.status == S.OPEN, RadAcct.isp == query.isp)
    if query.acct_session_id is not None:
        sql = sql.where(RadAcct.acct_session_id == query.acct_session_id)
    if query.framed_ip is not None:
        sql = sql.where(RadAcct.framed_ip == query.framed_ip)
    if query.nas_port is not None:
        sql = sql.where(RadAcct.nas_port == query.nas_port)
    parts = user_parts(query, isp)
    if parts:
        lowered = func.lower(RadAcct.username)
        sql = sql.where(or_(*(lowered.like(_like(part), escape="\\") for part in parts)))
    rows = session.scalars(sql.order_by(RadAcct.id).limit(MAX_CANDIDATES)).all()
    if not rows:
        return []
    entries = nas_entries(session)
    found = []
    for row in rows:
        nas = nas_for_session(row.nas_address, entries)
        facts = facts_for(row, nas)
        if not matches(query, isp, facts):
            continue
        where = endpoint_for(nas, row.nas_address) if nas is not None else \
            f"no NAS client is {row.nas_address!r}"
        found.append(Candidate(facts, where))
    return found
