"""Typed ORM models. FreeRADIUS table names where one exists (nas, radacct)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

from sqlalchemy import (BigInteger, Boolean, DateTime, ForeignKey, Integer, MetaData, String,
                        TypeDecorator, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

if TYPE_CHECKING:
    from vpop.store.isp_models import IspRecord

# Stable constraint names so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}



class UTCDateTime(TypeDecorator[dt.datetime]):
    """TIMESTAMPTZ on PostgreSQL; on SQLite, which keeps no zone, UTC by convention.

    Values go in as UTC (naive ones are refused) and always come back UTC-aware,
    so code comparing times behaves the same on both databases.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: store UTC-aware timestamps")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


intpk = Annotated[int, mapped_column(Integer, primary_key=True)]
name64 = Annotated[str, mapped_column(String(64), unique=True, nullable=False)]
utc = Annotated[dt.datetime, mapped_column(UTCDateTime())]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Nas(Base):
    """A RADIUS client: one NAS/BRAS, or a network of them sharing a secret."""

    __tablename__ = "nas"

    id: Mapped[intpk]
    name: Mapped[name64]
    address: Mapped[str] = mapped_column(String(64), unique=True)  # IP or CIDR
    secret: Mapped[str] = mapped_column(String(128))
    nas_type: Mapped[str] = mapped_column(String(32), default="generic")
    # 'yes' | 'no' | 'auto' (required once the client has sent one, as FreeRADIUS does)
    require_message_authenticator: Mapped[str] = mapped_column(String(8), default="yes")
    description: Mapped[str] = mapped_column(String(255), default="")
    # Dynamic authorization (RFC 5176): where vpop sends the NAS CoA and Disconnect
    # requests. NULL address: the NAS's own (when it is one host); NULL secret: the
    # NAS's RADIUS secret.
    das_address: Mapped[str | None] = mapped_column(String(64))
    das_port: Mapped[int] = mapped_column(Integer, default=3799)
    das_secret: Mapped[str | None] = mapped_column(String(128))


class Profile(Base):
    """Service profile: what a subscriber gets on the access network."""

    __tablename__ = "profile"

    id: Mapped[intpk]
    name: Mapped[name64]
    rate_down_kbps: Mapped[int | None]
    rate_up_kbps: Mapped[int | None]
    address_pool: Mapped[str | None] = mapped_column(String(64))
    session_timeout: Mapped[int | None]
    idle_timeout: Mapped[int | None]
    class_: Mapped[str | None] = mapped_column("class", String(64))
    # Log in on caller ID alone, without a password check.
    caller_id_login: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(String(255), default="")
    # The ISP for subscribers who chose none, and whether another ISP may stand in for it.
    isp_id: Mapped[int | None] = mapped_column(ForeignKey("isp.id", ondelete="SET NULL"),
                                               index=True)
    isp_failover: Mapped[bool] = mapped_column(Boolean, default=False)
    isp: Mapped[IspRecord | None] = relationship()


class Subscriber(Base):
    """A network user. Credentials are kept only in the forms its methods need."""

    __tablename__ = "subscriber"

    id: Mapped[intpk]
    username: Mapped[str] = mapped_column(String(128), unique=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profile.id"), index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    expires_at: Mapped[utc | None]
    # Comma-separated subset of: pap, chap, mschap, mschapv2, eap-md5
    auth_methods: Mapped[str] = mapped_column(String(64), default="pap")
    password_hash: Mapped[str | None] = mapped_column(String(160))  # salted PBKDF2
    nt_hash: Mapped[str | None] = mapped_column(String(32))  # hex, MS-CHAP v1/v2
    cleartext_password: Mapped[str | None] = mapped_column(String(128))  # CHAP, EAP-MD5
    framed_ip: Mapped[str | None] = mapped_column(String(45))
    # Subscriber-level overrides of the profile (None: inherit).
    rate_down_kbps: Mapped[int | None]
    rate_up_kbps: Mapped[int | None]
    address_pool: Mapped[str | None] = mapped_column(String(64))
    session_timeout: Mapped[int | None]
    idle_timeout: Mapped[int | None]
    # The subscriber's own choice of ISP (set through the portal); None: the profile's.
    isp_id: Mapped[int | None] = mapped_column(ForeignKey("isp.id", ondelete="SET NULL"),
                                               index=True)

    profile: Mapped[Profile] = relationship(lazy="joined")
    isp: Mapped[IspRecord | None] = relationship()
    caller_ids: Mapped[list[SubscriberCallerId]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan")
    lines: Mapped[list[SubscriberLine]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan")


class SubscriberCallerId(Base):
    """A caller ID (Calling-Station-Id), stored normalised: digits, international form."""

    __tablename__ = "subscriber_caller_id"

    id: Mapped[intpk]
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"),
                                               index=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    subscriber: Mapped[Subscriber] = relationship(back_populates="caller_ids")


class SubscriberLine(Base):
    """A PPPoE/DSL line: Agent-Circuit-Id, Agent-Remote-Id or NAS-Port-Id."""

    __tablename__ = "subscriber_line"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[intpk]
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"),
                                               index=True)
    kind: Mapped[str] = mapped_column(String(16))  # circuit_id | remote_id | nas_port_id
    value: Mapped[str] = mapped_column(String(253))
    subscriber: Mapped[Subscriber] = relationship(back_populates="lines")



# Tables of the other domains live in their own modules; importing them here registers
# them with Base whenever the models are used (migrations, snapshot, provisioning).
from vpop.store import (accounting_models, dynauth_models, generation, isp_models,  # noqa: E402,F401
                        portal_models)
