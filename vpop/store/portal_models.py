"""The web portal's tables: its admin and ISP-operator accounts, the audit of every
change made through it, and the JSON API's tokens (docs/portal.md)."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vpop.store.models import Base, intpk, utc

ROLES = ("admin", "operator")


class PortalUser(Base):
    """An admin, or an ISP's operator (isp_id set: it sees and changes only that ISP's
    data). Subscribers are not here: they log in with their RADIUS credentials."""

    __tablename__ = "portal_user"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | operator
    isp_id: Mapped[int | None] = mapped_column(ForeignKey("isp.id", ondelete="CASCADE"),
                                               index=True)
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[utc]
    last_login: Mapped[utc | None]


class PortalAudit(Base):
    """One change made through the portal or its API: who, what, when, before and
    after (JSON values, secrets left out)."""

    __tablename__ = "portal_audit"
    __table_args__ = (Index("ix_portal_audit_at", "at"),)

    id: Mapped[intpk]
    at: Mapped[utc]
    actor: Mapped[str] = mapped_column(String(160))  # "admin:admin", "subscriber:alice"
    # The ISP the change belongs to, so an operator can read its own ISP's audit.
    isp_id: Mapped[int | None] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(64))  # "subscriber.choose_isp", ...
    object: Mapped[str] = mapped_column(String(255))  # "subscriber alice"
    before: Mapped[dict | list | None] = mapped_column(JSON)
    after: Mapped[dict | list | None] = mapped_column(JSON)


class ApiToken(Base):
    """A JSON API token, stored as its SHA-256 only; scoped to admin or to one ISP."""

    __tablename__ = "api_token"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(128), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256
    scope: Mapped[str] = mapped_column(String(16))  # admin | isp
    isp_id: Mapped[int | None] = mapped_column(ForeignKey("isp.id", ondelete="CASCADE"),
                                               index=True)
    created_by: Mapped[str] = mapped_column(String(160), default="")
    created: Mapped[utc]
    last_used: Mapped[utc | None]
    revoked: Mapped[utc | None]  # when it was revoked; a revoked token is refused
