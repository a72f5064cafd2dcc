"""ISP tables: upstream ISPs, their realms, numbers, RADIUS servers, tunnel endpoints,
availability windows, and the QoS time series and current state of their servers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import (BigInteger, Boolean, Float, ForeignKey, Index, Integer, LargeBinary,
                        Numeric, String,
                        Text, Time, UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from vpop.store.models import Base, intpk, name64, utc

if TYPE_CHECKING:
    from vpop.store.dynauth_models import IspDynAuthClient

# Prices in the operator's currency, to a millionth: per-minute prices are often fractions
# of a cent. Numeric keeps them exact (Decimal) on PostgreSQL; SQLite rounds to 6 places.
money = Numeric(12, 6)


def _children(order_by: str) -> relationship:
    return relationship(back_populates="isp", cascade="all, delete-orphan", order_by=order_by)


class IspRecord(Base):
    """An upstream ISP: how sessions reach it (proxy, tunnel or local) and at what price."""

    __tablename__ = "isp"

    id: Mapped[intpk]
    name: Mapped[name64]
    mode: Mapped[str] = mapped_column(String(16), default="proxy")  # proxy | tunnel | local
    strip_realm: Mapped[bool] = mapped_column(Boolean, default=True)
    rewrite: Mapped[str | None] = mapped_column(String(253))  # e.g. "{user}@isp.example"
    balance: Mapped[str] = mapped_column(String(16), default="failover")  # | weighted | keyed
    price_per_minute: Mapped[Decimal] = mapped_column(money, default=Decimal(0))
    price_per_gb: Mapped[Decimal] = mapped_column(money, default=Decimal(0))
    status: Mapped[str] = mapped_column(String(16), default="active")  # | down | disabled
    template: Mapped[str | None] = mapped_column(String(128))  # reply template name
    timeout_reject: Mapped[bool] = mapped_column(Boolean, default=True)
    ranked: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(String(255), default="")

    realms: Mapped[list[IspRealm]] = _children("IspRealm.id")
    numbers: Mapped[list[IspNumber]] = _children("IspNumber.id")
    servers: Mapped[list[IspServer]] = _children("IspServer.id")
    tunnels: Mapped[list[IspTunnel]] = _children("IspTunnel.id")
    windows: Mapped[list[IspWindow]] = _children("IspWindow.id")
    # Its servers allowed to send CoA/Disconnect for its sessions (store/dynauth_models.py)
    dynauth_clients: Mapped[list[IspDynAuthClient]] = relationship(
        cascade="all, delete-orphan", order_by="IspDynAuthClient.id")


def _isp_id() -> Mapped[int]:
    return mapped_column(ForeignKey("isp.id", ondelete="CASCADE"), index=True)


class IspRealm(Base):
    """A realm naming the ISP in a User-Name; a realm belongs to one ISP only."""

    __tablename__ = "isp_realm"
    __table_args__ = (UniqueConstraint("kind", "pattern"),)

    id: Mapped[intpk]
    isp_id: Mapped[int] = _isp_id()
    kind: Mapped[str] = mapped_column(String(16))  # suffix | prefix | regex
    # suffix "@isp.example" and prefix "isp/" in lower case; a regex as written
    pattern: Mapped[str] = mapped_column(String(253))
    isp: Mapped[IspRecord] = relationship(back_populates="realms")


class IspNumber(Base):
    """A dialled number (Called-Station-Id), normalised like caller IDs."""

    __tablename__ = "isp_number"

    id: Mapped[intpk]
    isp_id: Mapped[int] = _isp_id()
    number: Mapped[str] = mapped_column(String(32), unique=True)
    isp: Mapped[IspRecord] = relationship(back_populates="numbers")


class IspServer(Base):
    """One of the ISP's RADIUS servers; the name is unique across ISPs (QoS is kept by it)."""

    __tablename__ = "isp_server"

    id: Mapped[intpk]
    isp_id: Mapped[int] = _isp_id()
    name: Mapped[name64]
    address: Mapped[str] = mapped_column(String(45))
    auth_port: Mapped[int] = mapped_column(Integer, default=1812)
    acct_port: Mapped[int] = mapped_column(Integer, default=1813)  # 0: no accounting
    secret: Mapped[str] = mapped_column(String(128))
    priority: Mapped[int] = mapped_column(Integer, default=1)  # lower is preferred
    weight: Mapped[int] = mapped_column(Integer, default=1)
    require_message_authenticator: Mapped[bool] = mapped_column(Boolean, default=True)
    isp: Mapped[IspRecord] = relationship(back_populates="servers")


class IspTunnel(Base):
    """An L2TP network server (LNS) of the ISP, sent as RFC 2868 tunnel attributes."""

    __tablename__ = "isp_tunnel"

    id: Mapped[intpk]
    isp_id: Mapped[int] = _isp_id()
    address: Mapped[str] = mapped_column(String(253))  # Tunnel-Server-Endpoint
    password: Mapped[str | None] = mapped_column(String(255))  # Tunnel-Password
    medium: Mapped[str] = mapped_column(String(16), default="IPv4")
    assignment_id: Mapped[str | None] = mapped_column(String(253))
    preference: Mapped[int] = mapped_column(Integer, default=1)  # lower is preferred
    client_endpoint: Mapped[str | None] = mapped_column(String(253))
    client_auth_id: Mapped[str | None] = mapped_column(String(253))
    isp: Mapped[IspRecord] = relationship(back_populates="tunnels")


class IspWindow(Base):
    """When the ISP may be chosen: weekdays (0 = Monday) and a UTC time-of-day range."""

    __tablename__ = "isp_window"

    id: Mapped[intpk]
    isp_id: Mapped[int] = _isp_id()
    weekdays: Mapped[str] = mapped_column(String(13))  # "0,1,2,3,4"
    start: Mapped[dt.time] = mapped_column(Time)
    end: Mapped[dt.time] = mapped_column(Time)  # exclusive; end <= start wraps past midnight
    isp: Mapped[IspRecord] = relationship(back_populates="windows")


class IspQos(Base):
    """One time bucket of one upstream server's measurements (vpop/isp/qos.py).

    Several rows may share a server and bucket (each worker writes its own); readers
    merge them. Percentiles are kept for queries; the histograms make merging and
    downsampling exact to the histogram's resolution.
    """

    __tablename__ = "isp_qos"
    __table_args__ = (
        Index("ix_isp_qos_server_bucket", "server", "bucket_start"),
        Index("ix_isp_qos_seconds_bucket", "bucket_seconds", "bucket_start"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    server: Mapped[str] = mapped_column(String(64))
    isp: Mapped[str] = mapped_column(String(64))
    bucket_start: Mapped[utc]
    bucket_seconds: Mapped[int] = mapped_column(Integer)
    probes: Mapped[int] = mapped_column(Integer, default=0)  # Status-Server sent
    probes_lost: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)  # proxied
    accepts: Mapped[int] = mapped_column(Integer, default=0)  # Access-Accept or -Challenge
    rejects: Mapped[int] = mapped_column(Integer, default=0)
    timeouts: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)  # failed verification
    rtt_p50_ms: Mapped[float | None] = mapped_column(Float)
    rtt_p95_ms: Mapped[float | None] = mapped_column(Float)
    rtt_p99_ms: Mapped[float | None] = mapped_column(Float)
    response_p50_ms: Mapped[float | None] = mapped_column(Float)
    response_p95_ms: Mapped[float | None] = mapped_column(Float)
    response_p99_ms: Mapped[float | None] = mapped_column(Float)
    rtt_histogram: Mapped[str] = mapped_column(Text, default="")
    response_histogram: Mapped[str] = mapped_column(Text, default="")


class IspServerState(Base):
    """Each upstream server's state as the proxy last set it (alive, zombie, dead) and
    logged it: written when it changes, the latest change winning (several workers keep
    a view each), so that `vpop isp status` shows it at once."""

    __tablename__ = "isp_server_state"

    server: Mapped[str] = mapped_column(String(64), primary_key=True)
    isp: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(8))
    since: Mapped[utc]
    reason: Mapped[str] = mapped_column(String(255), default="")


class AcctForward(Base):
    """Accounting waiting to be forwarded to a proxy-mode ISP (vpop/isp/acct_forward.py).

    Written in the transaction that stores the record and marked delivered once the
    ISP's Accounting-Response arrives: the undelivered rows are exactly what is owed.
    Each datagram is stored before it is first sent, so one in flight at a crash is
    sent again byte for byte, from the same source port.
    """

    __tablename__ = "acct_forward"
    __table_args__ = (Index("ix_acct_forward_next_try", "next_try"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    isp: Mapped[str] = mapped_column(String(64))
    session_key: Mapped[str] = mapped_column(String(64), index=True)
    attrs: Mapped[bytes] = mapped_column(LargeBinary)
    delay: Mapped[int] = mapped_column(Integer, default=0)  # the NAS's Acct-Delay-Time
    received_at: Mapped[float] = mapped_column(Float)  # seconds since the epoch
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_try: Mapped[float] = mapped_column(Float)  # seconds since the epoch
    # The record's identity: the ISP and its attributes, Acct-Delay-Time left out.
    content_hash: Mapped[str] = mapped_column(String(32), unique=True)
    delivered_at: Mapped[float | None] = mapped_column(Float)
    # The last attempt: the upstream server, the Accounting-Request as sent, when it was
    # built (its Acct-Delay-Time is as of then) and the source port it went from.
    server: Mapped[str | None] = mapped_column(String(64))
    datagram: Mapped[bytes | None] = mapped_column(LargeBinary)
    built_at: Mapped[float | None] = mapped_column(Float)
    source_port: Mapped[int | None] = mapped_column(Integer)
