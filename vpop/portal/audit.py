"""Every change made through the portal, recorded in the request's transaction: call
``audit(...)`` beside the change, then ``commit()``; both are kept or neither."""

from __future__ import annotations

from flask_login import current_user

from vpop.portal.app import db, now
from vpop.store.portal import record_audit
from vpop.store.portal_models import PortalAudit

# Never written to the audit: values of these keys become "***".
SECRET_KEYS = frozenset({"secret", "password", "password_hash", "das_secret", "token",
                         "token_hash", "cleartext_password", "nt_hash"})


def audit(action: str, obj: str, *, before: dict | list | None = None,
          after: dict | list | None = None, isp_id: int | None = None,
          actor: str | None = None) -> PortalAudit:
    """Record `action` on `obj` ("subscriber alice") by the logged-in user (or `actor`),
    with the values before and after (JSON-able; secrets masked). `isp_id`: the ISP the
    change belongs to, so its operators see it in their audit."""
    return record_audit(db(), at=now(), actor=actor or current_user.actor, action=action,
                        obj=obj, before=masked(before), after=masked(after), isp_id=isp_id)


def masked(value):
    if isinstance(value, dict):
        return {key: "***" if key in SECRET_KEYS and item not in (None, "") else masked(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value
