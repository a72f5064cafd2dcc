"""Portal accounts of admins and ISP operators: made by `vpop init --demo` for the demo,
and by `vpop portal-user` for an installation."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpop.portal.security import hash_password
from vpop.store.isp_models import IspRecord
from vpop.store.portal import put_user

DEMO_ADMIN = ("admin", "admin-pass")


def demo_accounts(isps: list[str]) -> list[tuple[str, str, str | None, str]]:
    """(name, role, ISP, password): the admin, and `<isp>-operator` for each ISP with the
    password `<isp>-operator-pass`. Well known: the demo's only."""
    name, password = DEMO_ADMIN
    return [(name, "admin", None, password)] + [
        (f"{isp}-operator", "operator", isp, f"{isp}-operator-pass") for isp in isps]


def load_demo_accounts(session: Session, now: dt.datetime) -> list[str]:
    """The demo's accounts, for the ISPs the database holds; the caller commits."""
    isps = list(session.scalars(select(IspRecord.name).order_by(IspRecord.name)))
    made = []
    for name, role, isp, password in demo_accounts(isps):
        put_user(session, name=name, role=role, isp=isp, password_hash=hash_password(password),
                 now=now)
        made.append(name)
    return made
