"""The data generation: how running workers learn of provisioning changes.

Every provisioning transaction that changes what the workers serve bumps one number,
the generation, and lists the subscribers it changed. Each worker asks for the
generation about once a second; when it moved, the worker loads the subscribers
listed since its own generation and swaps them in, or loads everything again when
more than subscribers changed (NAS clients, ISPs, profiles, which subscribers
inherit) or too many to list. It records the generation it serves in
``serving_worker``, so `vpop import` can say when a change is in effect.

Repository functions: they take a Session and never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sqlalchemy import BigInteger, Integer, String, delete, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from vpop.store.models import Base, utc

# A change of more subscribers than this is not listed: the workers load everything.
LISTED_MAX = 10_000
FOLLOW_INTERVAL = 1.0  # seconds between a worker's looks at the generation
REPORT_INTERVAL = 5.0  # seconds between a worker's reports while nothing changes
# A worker not seen for this long is taken for stopped (three missed reports).
SEEN_WITHIN = 3 * REPORT_INTERVAL
# Listed changes are kept for this many generations; a worker further behind (it was
# busy loading) loads everything.
KEPT_GENERATIONS = 1_000


class ProvisioningState(Base):
    """One row: the current generation and what a worker behind it must load."""

    __tablename__ = "provisioning_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    generation: Mapped[int] = mapped_column(BigInteger)
    # The newest generation that changed more than the subscribers it lists.
    full_generation: Mapped[int] = mapped_column(BigInteger)
    # Changes of this generation and older may no longer be listed.
    pruned_through: Mapped[int] = mapped_column(BigInteger)
    changed_at: Mapped[utc]


class ProvisioningChange(Base):
    """A subscriber created, changed or deleted in a generation."""

    __tablename__ = "provisioning_change"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, index=True)
    username: Mapped[str] = mapped_column(String(128))


class ServingWorker(Base):
    """A running worker and the generation it serves, refreshed every few seconds."""

    __tablename__ = "serving_worker"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    pid: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker: Mapped[int] = mapped_column(Integer)
    generation: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[utc]
    seen_at: Mapped[utc]


@dataclass(frozen=True, slots=True, kw_only=True)
class State:
    generation: int = 0
    full_generation: int = 0
    pruned_through: int = 0

    def needs_everything(self, loaded: int) -> bool:
        """Whether a worker holding generation `loaded` must load everything to catch up."""
        return self.full_generation > loaded or self.pruned_through > loaded


@dataclass(frozen=True, slots=True, kw_only=True)
class Serving:
    host: str
    pid: int
    worker: int
    generation: int
    seen_at: dt.datetime


def current(session: Session) -> State:
    row = session.execute(select(ProvisioningState.generation,
                                 ProvisioningState.full_generation,
                                 ProvisioningState.pruned_through)).first()
    if row is None:
        return State()
    return State(generation=row[0], full_generation=row[1], pruned_through=row[2])


def record_change(session: Session, *, subscribers: Collection[str] = (),
                  everything: bool = False, now: dt.datetime) -> int:
    """A new generation: `subscribers` changed, or with `everything` more than that.
    Returns the generation. Concurrent provisioning transactions queue on its row."""
    state = session.scalars(select(ProvisioningState).with_for_update()).first()
    if state is None:
        state = ProvisioningState(id=1, generation=0, full_generation=0, pruned_through=0,
                                  changed_at=now)
        session.add(state)
    generation = state.generation + 1
    state.generation, state.changed_at = generation, now
    if everything or len(subscribers) > LISTED_MAX:
        state.full_generation = generation
    elif subscribers:
        session.execute(insert(ProvisioningChange), [
            {"generation": generation, "username": name} for name in subscribers])
    oldest = generation - KEPT_GENERATIONS
    if oldest > state.pruned_through:
        session.execute(delete(ProvisioningChange)
                        .where(ProvisioningChange.generation <= oldest))
        state.pruned_through = oldest
    session.flush()
    return generation


def changed_subscribers(session: Session, after: int, through: int) -> set[str]:
    """The subscribers listed as changed by generations after `after`, up to `through`."""
    return set(session.scalars(select(ProvisioningChange.username).where(
        ProvisioningChange.generation > after, ProvisioningChange.generation <= through)))


def report_serving(session: Session, *, host: str, pid: int, worker: int, generation: int,
                   now: dt.datetime) -> None:
    found = session.execute(update(ServingWorker).where(
        ServingWorker.host == host, ServingWorker.pid == pid).values(
        worker=worker, generation=generation, seen_at=now))
    if found.rowcount == 0:
        session.add(ServingWorker(host=host, pid=pid, worker=worker, generation=generation,
                                  started_at=now, seen_at=now))
    session.flush()


def forget_serving(session: Session, *, host: str, pids: Iterable[int] = (),
                   before: dt.datetime | None = None) -> None:
    """Remove the rows of these processes of `host` (stopped), and of any process
    last seen before `before` (gone without a word)."""
    pids = list(pids)
    if pids:
        session.execute(delete(ServingWorker).where(ServingWorker.host == host,
                                                    ServingWorker.pid.in_(pids)))
    if before is not None:
        session.execute(delete(ServingWorker).where(ServingWorker.seen_at < before))


def serving(session: Session, *, since: dt.datetime) -> list[Serving]:
    """The workers seen since `since`, whatever host they run on."""
    return [Serving(host=r.host, pid=r.pid, worker=r.worker, generation=r.generation,
                    seen_at=r.seen_at)
            for r in session.scalars(select(ServingWorker)
                                     .where(ServingWorker.seen_at >= since)
                                     .order_by(ServingWorker.host, ServingWorker.worker))]
