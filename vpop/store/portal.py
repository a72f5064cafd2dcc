"""The portal's accounts and audit (tables in portal_models.py); the caller commits."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpop.store.isp_models import IspRecord
from vpop.store.portal_models import ROLES, PortalAudit, PortalUser


def user_by_name(session: Session, name: str) -> PortalUser | None:
    return session.scalar(select(PortalUser).where(PortalUser.name == name))


def users(session: Session) -> list[PortalUser]:
    """Every account, admins first, by name."""
    return list(session.scalars(select(PortalUser).order_by(PortalUser.role, PortalUser.name)))


def user_by_id(session: Session, user_id: int) -> PortalUser | None:
    return session.get(PortalUser, user_id)


def put_user(session: Session, *, name: str, role: str, password_hash: str,
             isp: str | None, now: dt.datetime, enabled: bool = True) -> PortalUser:
    """Create the account, or replace the role, ISP and password of the one so named.
    ValueError for a role that is not one, an operator without an ISP (or an ISP that
    does not exist), an admin with one."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    isp_id = None
    if role == "operator":
        if not isp:
            raise ValueError("an operator belongs to an ISP")
        isp_id = session.scalar(select(IspRecord.id).where(IspRecord.name == isp))
        if isp_id is None:
            raise ValueError(f"no ISP {isp!r}")
    elif isp:
        raise ValueError("an admin belongs to no ISP")
    user = user_by_name(session, name)
    if user is None:
        user = PortalUser(name=name, created=now)
        session.add(user)
    user.role, user.isp_id, user.password_hash, user.enabled = role, isp_id, password_hash, enabled
    session.flush()
    return user


def record_audit(session: Session, *, at: dt.datetime, actor: str, action: str, obj: str,
                 before: dict | list | None = None, after: dict | list | None = None,
                 isp_id: int | None = None) -> PortalAudit:
    entry = PortalAudit(at=at, actor=actor, action=action, object=obj, before=before,
                        after=after, isp_id=isp_id)
    session.add(entry)
    session.flush()
    return entry


def audit_entries(session: Session, *, isp_id: int | None = None, limit: int = 100,
                  before_id: int | None = None) -> list[PortalAudit]:
    """The newest entries first; with `isp_id`, that ISP's only (an operator's view);
    `before_id` pages back."""
    query = select(PortalAudit).order_by(PortalAudit.id.desc()).limit(limit)
    if isp_id is not None:
        query = query.where(PortalAudit.isp_id == isp_id)
    if before_id is not None:
        query = query.where(PortalAudit.id < before_id)
    return list(session.scalars(query))
