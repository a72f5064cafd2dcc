"""Read the NAS clients and subscribers the request pipeline serves from memory."""

from __future__ import annotations

import ipaddress

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from vpop.aaa.subscribers import Account, ServiceProfile, SubscriberSnapshot
from vpop.radius.clients import NasClient
from vpop.store.isp_models import Isp
from vpop.store.models import Nas, Subscriber

OVERRIDES = ("rate_down_kbps", "rate_up_kbps", "address_pool", "session_timeout", "idle_timeout")


def load_clients(session: Session) -> list[NasClient]:
    return [NasClient(name=nas.name, network=ipaddress.ip_network(nas.address, strict=False),
                      secret=nas.secret.encode(), nas_type=nas.nas_type,
                      require_message_authenticator=nas.require_message_authenticator)
            for nas in session.scalars(select(Nas))]


def load_subscribers(session: Session) -> SubscriberSnapshot:
    accounts: list[Account] = []
    caller_ids: dict[str, str] = {}
    lines: dict[tuple[str, str], str] = {}
    profiles: dict[tuple, ServiceProfile] = {}
    isp_names = dict(session.execute(select(Isp.id, Isp.name)).all())
    query = select(Subscriber).options(selectinload(Subscriber.caller_ids),
                                       selectinload(Subscriber.lines))
    for sub in session.scalars(query):
        base = sub.profile
        values = {name: getattr(sub, name) if getattr(sub, name) is not None
                  else getattr(base, name) for name in OVERRIDES}
        key = (base.id, *values.values())
        profile = profiles.get(key)  # share one object among subscribers alike
        if profile is None:
            profile = profiles[key] = ServiceProfile(
                name=base.name, class_=base.class_, caller_id_login=base.caller_id_login,
                isp=isp_names.get(base.isp_id), isp_failover=base.isp_failover, **values)
        accounts.append(Account(
            username=sub.username, profile=profile, enabled=sub.enabled,
            expires_at=sub.expires_at,
            methods=frozenset(m for m in sub.auth_methods.split(",") if m),
            password_hash=sub.password_hash,
            nt_hash=bytes.fromhex(sub.nt_hash) if sub.nt_hash else None,
            cleartext=sub.cleartext_password.encode() if sub.cleartext_password is not None
            else None,
            framed_ip=sub.framed_ip,
            isp=isp_names[sub.isp_id] if sub.isp_id is not None else profile.isp))
        for caller in sub.caller_ids:
            caller_ids[caller.number] = sub.username
        for line in sub.lines:
            lines[(line.kind, line.value)] = sub.username
    return SubscriberSnapshot(accounts, caller_ids, lines)
