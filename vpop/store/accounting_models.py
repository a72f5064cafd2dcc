"""Accounting tables: sessions as the NASes report them, their history and routing
records, leases of infrastructure to ISPs, utilization events and rollups."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import (BigInteger, ForeignKey, Index, Integer, Numeric, String,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from vpop.store.models import Base, intpk, name64, utc

counter = BigInteger  # octets and packets: 2^32 wraps within minutes on a fast line


class RadAcct(Base):
    """One session: open while the NAS reports it, closed by its Stop, by the NAS's
    Accounting-On/Off or by the reaper (RFC 2866)."""

    __tablename__ = "radacct"
    __table_args__ = (
        UniqueConstraint("unique_id"),
        Index("ix_radacct_status_update_time", "status", "update_time"),  # the reaper
        # Accounting-On/Off, and the reaper per NAS
        Index("ix_radacct_nas_address_status_update_time", "nas_address", "status",
              "update_time"),
        Index("ix_radacct_start_time", "start_time"),
        # Session lists, newest first, one page at a time (store/reports.py, session_page)
        Index("ix_radacct_isp_start_time", "isp", "start_time", "id"),
        Index("ix_radacct_lease_id_start_time", "lease_id", "start_time", "id"),
        Index("ix_radacct_nas_address_start_time", "nas_address", "start_time", "id"),
        Index("ix_radacct_username_start_time", "username", "start_time", "id"),
        Index("ix_radacct_status_start_time", "status", "start_time", "id"),
        # The accounting tick's look for sessions whose Stop is overdue after a
        # Disconnect-ACK, every second: NULL on nearly every row.
        Index("ix_radacct_dynauth_state", "dynauth_state"),
    )

    id: Mapped[intpk]
    # md5 of NAS identity, Acct-Session-Id and User-Name; "<md5>#<id>" once the NAS
    # reused the Acct-Session-Id for a later session.
    unique_id: Mapped[str] = mapped_column(String(64))
    acct_session_id: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(128), default="")
    nas_address: Mapped[str] = mapped_column(String(64))  # the NAS as it names itself
    nas_port: Mapped[str | None] = mapped_column(String(64))
    calling_station_id: Mapped[str | None] = mapped_column(String(64))
    called_station_id: Mapped[str | None] = mapped_column(String(64))
    framed_ip: Mapped[str | None] = mapped_column(String(45))
    framed_ipv6_prefix: Mapped[str | None] = mapped_column(String(64))
    delegated_ipv6_prefix: Mapped[str | None] = mapped_column(String(64))
    isp: Mapped[str | None] = mapped_column(String(64))
    route_mode: Mapped[str] = mapped_column(String(8), default="local")  # proxy|tunnel|local
    route_reason: Mapped[str] = mapped_column(String(255), default="")
    lease_id: Mapped[int | None] = mapped_column(Integer)
    start_time: Mapped[utc | None]
    update_time: Mapped[utc | None]  # event time of the newest record
    stop_time: Mapped[utc | None]
    session_time: Mapped[int] = mapped_column(Integer, default=0)
    input_octets: Mapped[int] = mapped_column(counter, default=0)
    output_octets: Mapped[int] = mapped_column(counter, default=0)
    input_packets: Mapped[int] = mapped_column(counter, default=0)
    output_packets: Mapped[int] = mapped_column(counter, default=0)
    terminate_cause: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed
    closed_by: Mapped[str | None] = mapped_column(String(16))  # stop | nas-reboot | reaper
    flags: Mapped[str] = mapped_column(String(255), default="")  # comma-separated
    # Dynamic authorization's mark on a live session: 'disconnect-acked' once the NAS
    # acknowledged a Disconnect-Request (its Stop is expected), 'stop-overdue' when no
    # Stop came within the bound after that; dynauth_at is when the mark was set.
    dynauth_state: Mapped[str | None] = mapped_column(String(16))
    dynauth_at: Mapped[utc | None]


class AcctHistory(Base):
    """Session history: every accounting record stored, as it was applied.

    (radacct_id, content_key) is unique: a retransmission of a stored record is
    recognised and not applied twice. Accounting-On/Off have radacct_id 0.
    """

    __tablename__ = "acct_record"
    __table_args__ = (UniqueConstraint("radacct_id", "content_key"),)

    id: Mapped[intpk]
    radacct_id: Mapped[int] = mapped_column(Integer)
    content_key: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(8))
    nas_address: Mapped[str] = mapped_column(String(64))
    event_time: Mapped[utc]
    arrival: Mapped[utc]
    delay: Mapped[int] = mapped_column(Integer, default=0)
    session_time: Mapped[int] = mapped_column(Integer, default=0)
    input_octets: Mapped[int] = mapped_column(counter, default=0)
    output_octets: Mapped[int] = mapped_column(counter, default=0)
    input_packets: Mapped[int] = mapped_column(counter, default=0)
    output_packets: Mapped[int] = mapped_column(counter, default=0)
    terminate_cause: Mapped[str | None] = mapped_column(String(32))
    flags: Mapped[str] = mapped_column(String(255), default="")


class RoutingRecord(Base):
    """The routing service performed for a user and an ISP: one per finished session."""

    __tablename__ = "routing_record"
    __table_args__ = (
        UniqueConstraint("radacct_id"),
        Index("ix_routing_record_stop_time", "stop_time"),
    )

    id: Mapped[intpk]
    radacct_id: Mapped[int] = mapped_column(Integer)
    username: Mapped[str] = mapped_column(String(128))
    isp: Mapped[str | None] = mapped_column(String(64))
    route_mode: Mapped[str] = mapped_column(String(8))
    route_reason: Mapped[str] = mapped_column(String(255), default="")
    nas_address: Mapped[str] = mapped_column(String(64))
    lease_id: Mapped[int | None] = mapped_column(Integer)
    start_time: Mapped[utc]
    stop_time: Mapped[utc]
    session_time: Mapped[int] = mapped_column(Integer)
    input_octets: Mapped[int] = mapped_column(counter)
    output_octets: Mapped[int] = mapped_column(counter)
    closed_by: Mapped[str] = mapped_column(String(16))


class Lease(Base):
    """Part of the access infrastructure leased to an ISP (`vpop import`, [[lease]])."""

    __tablename__ = "lease"

    id: Mapped[intpk]
    name: Mapped[name64]
    isp: Mapped[str] = mapped_column(String(64))
    sessions: Mapped[int | None] = mapped_column(Integer)  # concurrent
    bandwidth_kbps: Mapped[int | None] = mapped_column(Integer)
    volume_bytes: Mapped[int | None] = mapped_column(BigInteger)  # per calendar month
    starts: Mapped[utc]
    ends: Mapped[utc | None]
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal(0))  # per month
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    policy: Mapped[str] = mapped_column(String(8), default="admit")  # admit | reject
    reject_message: Mapped[str] = mapped_column(String(253))
    under_percent: Mapped[int] = mapped_column(Integer, default=0)
    under_window: Mapped[int] = mapped_column(Integer, default=3600)
    description: Mapped[str] = mapped_column(String(255), default="")
    revision: Mapped[int] = mapped_column(Integer, default=1)  # +1 whenever an import changes it

    places: Mapped[list[LeasePlace]] = relationship(
        back_populates="lease", cascade="all, delete-orphan", order_by="LeasePlace.id")


class LeasePlace(Base):
    """A NAS of a lease (port_first/port_last None), or a range of NAS-Ports on it."""

    __tablename__ = "lease_place"
    __table_args__ = (UniqueConstraint("lease_id", "nas", "port_first"),)

    id: Mapped[intpk]
    lease_id: Mapped[int] = mapped_column(ForeignKey("lease.id", ondelete="CASCADE"))
    nas: Mapped[str] = mapped_column(String(64))
    port_first: Mapped[int | None] = mapped_column(BigInteger)
    port_last: Mapped[int | None] = mapped_column(BigInteger)
    lease: Mapped[Lease] = relationship(back_populates="places")


class UtilizationEvent(Base):
    """Under- or over-utilization of a lease, from when it began (end None: ongoing)."""

    __tablename__ = "utilization_event"
    __table_args__ = (
        UniqueConstraint("lease_id", "kind", "start_time"),
        Index("ix_utilization_event_start_time", "start_time"),
    )

    id: Mapped[intpk]
    lease_id: Mapped[int] = mapped_column(ForeignKey("lease.id", ondelete="CASCADE"))
    isp: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # see vpop.accounting.utilization.KINDS
    start_time: Mapped[utc]
    end_time: Mapped[utc | None]
    peak: Mapped[int] = mapped_column(BigInteger)  # sessions, kbit/s or octets (trough: under)
    limit_value: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[utc | None]  # wall-clock time vpop first recorded it


class AcctGauge(Base):
    """Sessions online now, per lease, ISP and NAS (the level after the newest change)."""

    __tablename__ = "acct_gauge"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # lease | isp | nas
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    level: Mapped[int] = mapped_column(Integer, default=0)


class AcctGaugeSecond(Base):
    """A gauge's net change in one second of event time, and its level after it.

    Changes are netted per second whatever order they came in, so levels and peaks are
    a function of the sessions alone; a late change rewrites the levels after it."""

    __tablename__ = "acct_gauge_second"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[utc] = mapped_column(primary_key=True)
    delta: Mapped[int] = mapped_column(Integer)
    level: Mapped[int] = mapped_column(Integer)


class AcctClock(Base):
    """Each NAS's event-time clock: the newest event time applied from it, and when it
    last restarted (Accounting-On/Off). The reaper goes by these, not by the wall clock."""

    __tablename__ = "acct_clock"

    nas: Mapped[str] = mapped_column(String(64), primary_key=True)
    newest: Mapped[utc]
    restarted: Mapped[utc | None]


class AcctPeak(Base):
    """The most sessions online in a bucket, and the level after its last change."""

    __tablename__ = "acct_peak"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    grain: Mapped[str] = mapped_column(String(8), primary_key=True)
    bucket: Mapped[utc] = mapped_column(primary_key=True)
    peak: Mapped[int] = mapped_column(Integer)
    last: Mapped[int] = mapped_column(Integer)


class AcctRollup(Base):
    """Additive accounting per bucket, ISP, lease and NAS: what reports read."""

    __tablename__ = "acct_rollup"

    grain: Mapped[str] = mapped_column(String(8), primary_key=True)  # 5min | hour | day
    bucket: Mapped[utc] = mapped_column(primary_key=True)
    isp: Mapped[str] = mapped_column(String(64), primary_key=True)  # "" for local sessions
    lease_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0: no lease
    nas: Mapped[str] = mapped_column(String(64), primary_key=True)
    starts: Mapped[int] = mapped_column(Integer, default=0)
    stops: Mapped[int] = mapped_column(Integer, default=0)
    session_seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    input_octets: Mapped[int] = mapped_column(counter, default=0)
    output_octets: Mapped[int] = mapped_column(counter, default=0)
    records: Mapped[int] = mapped_column(Integer, default=0)
    flagged: Mapped[int] = mapped_column(Integer, default=0)


class LeaseRollup(Base):
    """Octets per lease and bucket (5min, hour, day, month) with the busiest 5 minutes."""

    __tablename__ = "lease_rollup"

    lease_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grain: Mapped[str] = mapped_column(String(8), primary_key=True)
    bucket: Mapped[utc] = mapped_column(primary_key=True)
    octets: Mapped[int] = mapped_column(counter, default=0)
    peak_5min_octets: Mapped[int] = mapped_column(counter, default=0)


class AcctJournal(Base):
    """How far the ledger has applied each accounting journal (vpop/store/journal.py),
    committed with what it applied."""

    __tablename__ = "acct_journal"

    stream: Mapped[str] = mapped_column(String(36), primary_key=True)  # the journal's own name
    applied_id: Mapped[int] = mapped_column(BigInteger, default=0)
