"""A subscriber's choice of ISP and profile, changed on its own (`vpop subscriber set`,
the portal): checked as `vpop import` checks those fields, stored, and announced to the
running workers through the data generation (vpop/store/generation.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpop.aaa.subscribers import ServiceProfile
from vpop.config import IdentificationSettings
from vpop.errors import ConfigError
from vpop.provisioning.fields import KEEP, NAME, Context, Invalid
from vpop.store.generation import record_change
from vpop.store.isp_models import IspRecord
from vpop.store.models import Profile, Subscriber
from vpop.store.snapshot import OVERRIDES


@dataclass(frozen=True, slots=True, kw_only=True)
class Chosen:
    """A subscriber's ISP and profile as they take effect: `isp` the chosen ISP, else
    the profile's (None: none), `profile` the effective profile with its overrides."""

    isp: str | None
    chosen_isp: str | None  # the subscriber's own choice (None: the profile's)
    profile: ServiceProfile


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiceChange:
    username: str
    before: Chosen
    after: Chosen
    generation: int  # the data generation the change is in (0: nothing changed)


class UnknownSubscriber(ConfigError):
    pass


def _name(value: Any, field: str) -> str:
    try:
        return NAME(value, Context(env={}, identification=IdentificationSettings()))
    except Invalid as exc:
        raise ConfigError(str(exc), field=field) from None


def chosen(subscriber: Subscriber) -> Chosen:
    base = subscriber.profile
    values = {name: getattr(base, name) if getattr(subscriber, name) is None
              else getattr(subscriber, name) for name in OVERRIDES}
    profile_isp = base.isp.name if base.isp is not None else None
    own = subscriber.isp.name if subscriber.isp is not None else None
    return Chosen(isp=own or profile_isp, chosen_isp=own,
                  profile=ServiceProfile(name=base.name, class_=base.class_,
                                         caller_id_login=base.caller_id_login,
                                         isp=profile_isp, isp_failover=base.isp_failover,
                                         **values))


def set_choice(session: Session, username: str, *, isp: Any = KEEP, profile: Any = KEEP,
               now: dt.datetime) -> ChoiceChange:
    """Store the subscriber's ISP (a name; None clears the choice, so the profile's
    applies) and profile (a name); KEEP leaves one as it is. The caller commits.
    ConfigError, naming the field, for an unknown subscriber, ISP or profile."""
    subscriber = session.scalars(select(Subscriber).where(Subscriber.username == username)
                                 .with_for_update(of=Subscriber)).first()
    if subscriber is None:
        raise UnknownSubscriber(f"no subscriber {username!r}", field="username")
    before = chosen(subscriber)
    if isp is not KEEP:
        if isp is None:
            subscriber.isp_id = None
        else:
            name = _name(isp, "isp")
            record = session.scalars(select(IspRecord).where(IspRecord.name == name)).first()
            if record is None:
                raise ConfigError(f"no ISP {name!r}", field="isp")
            subscriber.isp_id = record.id
    if profile is not KEEP:
        name = _name(profile, "profile")
        row = session.scalars(select(Profile).where(Profile.name == name)).first()
        if row is None:
            raise ConfigError(f"no profile {name!r}", field="profile")
        if not subscriber.auth_methods and not row.caller_id_login:
            raise ConfigError(f"subscriber {username!r} logs in by caller ID alone, but "
                              f"profile {name!r} has no caller_id_login", field="profile")
        subscriber.profile_id = row.id
    session.flush()
    session.expire(subscriber)
    after = chosen(subscriber)
    generation = 0
    if (before.chosen_isp, before.profile) != (after.chosen_isp, after.profile):
        generation = record_change(session, subscribers=[username], now=now)
    return ChoiceChange(username=username, before=before, after=after, generation=generation)
