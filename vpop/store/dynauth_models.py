"""Dynamic authorization (RFC 5176): who may ask vpop to change an ISP's sessions, and
the audit of every CoA and Disconnect vpop sent or relayed."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vpop.store.models import Base, intpk, utc


class IspDynAuthClient(Base):
    """An ISP's RADIUS server allowed to send CoA/Disconnect requests to vpop's CoA
    port, for that ISP's sessions only (RFC 5176 §3.1, vpop as the proxy)."""

    __tablename__ = "isp_dynauth_client"

    id: Mapped[intpk]
    isp_id: Mapped[int] = mapped_column(ForeignKey("isp.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(64), unique=True)  # IP or CIDR
    secret: Mapped[str] = mapped_column(String(128))


class DynAuthAction(Base):
    """One CoA or Disconnect request and its outcome: who asked, which session, what was
    sent and what the NAS answered."""

    __tablename__ = "dynauth_action"
    __table_args__ = (
        Index("ix_dynauth_action_at", "at"),
        # The metrics count requests by NAS, direction and outcome at every scrape.
        Index("ix_dynauth_action_nas_direction_outcome", "nas", "direction", "outcome"),
    )

    id: Mapped[intpk]
    at: Mapped[utc]
    actor: Mapped[str] = mapped_column(String(128))  # e.g. cli:root, isp:isp-a, portal:alice
    direction: Mapped[str] = mapped_column(String(16))  # originated | relayed
    kind: Mapped[str] = mapped_column(String(16))  # disconnect | coa
    session_id: Mapped[int | None] = mapped_column(Integer, index=True)  # radacct.id
    username: Mapped[str] = mapped_column(String(128), default="")
    nas: Mapped[str] = mapped_column(String(64), default="")
    isp: Mapped[str | None] = mapped_column(String(64))
    sent: Mapped[str] = mapped_column(Text, default="")  # the attributes, one per line
    outcome: Mapped[str] = mapped_column(String(16))  # ack | nak | timeout | error
    error_cause: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(255), default="")
    answer: Mapped[str] = mapped_column(Text, default="")  # the reply's attributes
