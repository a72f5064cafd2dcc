"""Accounting tables: sessions as the NASes report them."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vpop.store.models import Base, intpk, utc


class RadAcct(Base):
    """One accounting session as the NAS reported it (RFC 2866)."""

    __tablename__ = "radacct"
    __table_args__ = (UniqueConstraint("unique_id"),)

    id: Mapped[intpk]
    unique_id: Mapped[str] = mapped_column(String(64))  # hash of NAS + Acct-Session-Id
    acct_session_id: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(128), default="")
    nas_address: Mapped[str] = mapped_column(String(64))
    nas_port: Mapped[str | None] = mapped_column(String(64))
    calling_station_id: Mapped[str | None] = mapped_column(String(64))
    framed_ip: Mapped[str | None] = mapped_column(String(45))
    start_time: Mapped[utc | None]
    update_time: Mapped[utc | None]
    stop_time: Mapped[utc | None]
    session_time: Mapped[int] = mapped_column(Integer, default=0)
    input_octets: Mapped[int] = mapped_column(BigInteger, default=0)
    output_octets: Mapped[int] = mapped_column(BigInteger, default=0)
    terminate_cause: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed
