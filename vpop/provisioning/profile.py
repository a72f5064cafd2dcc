"""[[profile]]: service profiles, the rates, timeouts and ISP their subscribers get."""

from __future__ import annotations

from sqlalchemy.orm import Session

from vpop.provisioning.fields import DESCRIPTION, NAME, Field, boolean, integer, text
from vpop.provisioning.hashing import Hashing
from vpop.provisioning.isp import ISP_REFERENCE
from vpop.provisioning.records import write_by_key
from vpop.provisioning.sections import Counts, Plan, Section
from vpop.store.models import Profile

# The service a profile gives, which a subscriber may override for itself.
SERVICE_FIELDS = (
    Field("rate_down_kbps", integer(1)),
    Field("rate_up_kbps", integer(1)),
    Field("address_pool", text(64, name=True)),
    # 0 is "no limit" and stored as NULL, so no attribute is sent
    Field("session_timeout", integer(0, zero_is_none=True)),
    Field("idle_timeout", integer(0, zero_is_none=True)),
)


def _write(session: Session, plan: Plan, hashing: Hashing) -> Counts:
    return write_by_key(session, plan, SECTION, Profile, Profile.name)


SECTION = Section(
    name="profile", key="name",
    fields=(
        Field("name", NAME, required=True),
        *SERVICE_FIELDS,
        Field("class", text(64), column="class_"),
        Field("caller_id_login", boolean, default=False),
        DESCRIPTION,
        # The ISP that serves the profile's subscribers unless they chose another.
        Field("isp", NAME, column=None),
        Field("isp_failover", boolean, default=False),
    ),
    references=(ISP_REFERENCE,),
    write=_write,
)
