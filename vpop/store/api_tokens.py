"""JSON API tokens (table api_token): made, listed, revoked and checked. The caller
commits.

A token is shown once, when made; only its SHA-256 is stored, so a copy of the
database gives no way in. A token is scoped to admin or to one ISP (which sees and
changes only that ISP's data, like the ISP's operator).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpop.store.isp_models import IspRecord
from vpop.store.portal_models import ApiToken

PREFIX = "vpop_"  # tells a vpop token apart in a config file or a leaked log
USED_EVERY = dt.timedelta(minutes=1)  # last_used is written at most this often


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """Who a token speaks for: admin (isp None) or one ISP."""
    token_id: int
    isp: str | None
    isp_id: int | None
    name: str

    @property
    def admin(self) -> bool:
        return self.isp is None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create(session: Session, *, isp: str | None, name: str, created_by: str,
           now: dt.datetime, token: str | None = None) -> tuple[ApiToken, str]:
    """(the row, the token itself: shown once). `isp` None: an admin token. ValueError
    for an ISP that does not exist."""
    isp_id = None
    if isp is not None:
        isp_id = session.scalar(select(IspRecord.id).where(IspRecord.name == isp))
        if isp_id is None:
            raise ValueError(f"no ISP {isp!r}")
    token = token or PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, token_hash=digest(token), scope="isp" if isp_id else "admin",
                   isp_id=isp_id, created_by=created_by, created=now)
    session.add(row)
    session.flush()
    return row, token


def listed(session: Session, *, isp_id: int | None = None) -> list[dict]:
    """Every token (an ISP's only, with `isp_id`), newest first, without hashes."""
    statement = (select(ApiToken, IspRecord.name).outerjoin(IspRecord, ApiToken.isp_id == IspRecord.id)
                 .order_by(ApiToken.id.desc()))
    if isp_id is not None:
        statement = statement.where(ApiToken.isp_id == isp_id)
    return [dict(id=t.id, name=t.name, scope=t.scope, isp=isp, created_by=t.created_by,
                 created=t.created, last_used=t.last_used, revoked=t.revoked)
            for t, isp in session.execute(statement)]


def revoke(session: Session, token_id: int, *, now: dt.datetime,
           isp_id: int | None = None) -> ApiToken | None:
    """Revoke a token; with `isp_id`, only one of that ISP (None: no such token)."""
    row = session.get(ApiToken, token_id)
    if row is None or (isp_id is not None and row.isp_id != isp_id):
        return None
    if row.revoked is None:
        row.revoked = now
        session.flush()
    return row


def scope_of(session: Session, token: str, *, now: dt.datetime) -> Scope | None:
    """The scope of a token that is known and not revoked, else None."""
    found = session.execute(
        select(ApiToken, IspRecord.name).outerjoin(IspRecord, ApiToken.isp_id == IspRecord.id)
        .where(ApiToken.token_hash == digest(token))).first()
    if found is None:
        return None
    row, isp = found
    if row.revoked is not None or (row.scope == "isp" and isp is None):
        return None
    if row.last_used is None or now - row.last_used >= USED_EVERY:
        row.last_used = now
        session.flush()
    return Scope(token_id=row.id, isp=isp, isp_id=row.isp_id, name=row.name)
