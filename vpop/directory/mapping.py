"""A directory entry as a subscriber: the access attribute, the profile (attribute,
group or default), rate limits, static address and chosen ISP, the credentials.

Pure: the shell hands in the entry's attributes as bytes and the DNs of its groups.
An entry that cannot be served raises UnusableEntry with the reason the log shows;
the subscriber gets an Access-Reject, never an exception in the request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from vpop.aaa import schemes
from vpop.aaa.subscribers import DirectoryAccount, ServiceProfile
from vpop.config import DirectoryGroup, DirectorySettings
from vpop.errors import VpopError

ENABLED = frozenset({"enabled", "enable", "true", "yes", "active", "1"})
DISABLED = frozenset({"disabled", "disable", "false", "no", "inactive", "locked", "0"})
EXPIRED = frozenset({"expired"})
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
NEVER = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
_GENERALIZED = re.compile(r"^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)?(\d\d)?(?:[.,]\d+)?"
                          r"(Z|[+-]\d{2}(?:\d{2})?)$")
# The options that name attributes of a subscriber's entry, and what each is for.
ATTRIBUTE_OPTIONS = ("username_attribute", "access_attribute", "expiry_attribute",
                     "profile_attribute", "rate_down_attribute", "rate_up_attribute",
                     "session_timeout_attribute", "framed_ip_attribute", "isp_attribute",
                     "password_attribute", "nt_password_attribute")


class UnusableEntry(VpopError):
    """A subscriber's entry with a missing or malformed attribute: refused, logged."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One entry as found: its DN, and its attributes by lower-cased name."""
    dn: str
    attributes: Mapping[str, Sequence[bytes]]

    def values(self, name: str) -> Sequence[bytes]:
        return self.attributes.get(name.lower(), ()) if name else ()

    def text(self, name: str) -> str | None:
        """The attribute's one value as text; None when absent."""
        values = self.values(name)
        if not values:
            return None
        if len(values) > 1:
            raise UnusableEntry(f"{name} has {len(values)} values, one expected")
        try:
            return values[0].decode("utf-8")
        except UnicodeDecodeError:
            raise UnusableEntry(f"{name} is not UTF-8 text") from None


def attribute_names(settings: DirectorySettings) -> list[str]:
    """The attributes a search asks for: those the mapping reads."""
    names = [getattr(settings, option) for option in ATTRIBUTE_OPTIONS]
    if settings.groups == "attribute":
        names.append(settings.group_attribute)
    return sorted({name for name in names if name}, key=str.lower)


def account_from_entry(entry: Entry, *, settings: DirectorySettings,
                       profiles: Mapping[str, ServiceProfile], groups: Sequence[str] = (),
                       looked_up: str = "", isp: str | None = None,
                       check_password: Callable[[bytes], bool | str] | None = None
                       ) -> DirectoryAccount:
    """The subscriber the entry describes. `groups`: the DNs of its groups (from the
    membership attribute or a group search); `looked_up`: the name it was asked by
    (used when the entry has no username_attribute); `isp`: the ISP whose own directory
    it is in (its subscribers are that ISP's); `check_password`: the bind check, for
    pap = "bind"."""
    # Each option read only when it names an attribute: a lookup maps an entry each time,
    # and most options are usually left empty.
    s = settings
    username = (s.username_attribute and entry.text(s.username_attribute)) or looked_up or entry.dn
    if s.access_attribute or s.expiry_attribute:
        enabled, expires_at = _access(entry, s)
    else:
        enabled, expires_at = True, None
    rule = matching_group(s.group, groups) if s.group and groups else None
    name = ((s.profile_attribute and entry.text(s.profile_attribute))
            or (rule.profile if rule else "") or s.default_profile)
    if not name:
        raise UnusableEntry("no profile: neither the entry, a group nor default_profile "
                            "names one")
    profile = profiles.get(name)
    if profile is None:
        raise UnusableEntry(f"profile {name!r} does not exist")
    if s.rate_down_attribute or s.rate_up_attribute or s.session_timeout_attribute:
        overrides = {}
        for option, field in (("rate_down_attribute", "rate_down_kbps"),
                              ("rate_up_attribute", "rate_up_kbps"),
                              ("session_timeout_attribute", "session_timeout")):
            value = _number(entry, getattr(s, option))
            if value is not None:
                overrides[field] = value
        if overrides:
            profile = dataclasses.replace(profile, **overrides)
    chosen = ((s.isp_attribute and entry.text(s.isp_attribute)) or (rule.isp if rule else "")
              or None)
    password_hash, cleartext = _password(entry, s)
    if s.pap == "bind":  # PAP is the directory's to check; a cleartext still serves CHAP
        password_hash = None
    return DirectoryAccount(
        username=username, profile=profile, enabled=enabled, expires_at=expires_at,
        methods=_methods(s.methods), password_hash=password_hash,
        nt_hash=_nt_hash(entry, s.nt_password_attribute) if s.nt_password_attribute else None,
        cleartext=cleartext,
        framed_ip=_address(entry, s.framed_ip_attribute) if s.framed_ip_attribute else None,
        isp=isp or chosen or profile.isp, dn=entry.dn,
        check_password=check_password if s.pap == "bind" else None)


@functools.lru_cache(maxsize=64)
def _methods(methods: tuple[str, ...]) -> frozenset[str]:
    return frozenset(methods)


def matching_group(rules: Sequence[DirectoryGroup], groups: Sequence[str]
                   ) -> DirectoryGroup | None:
    """The first rule naming one of the groups, by DN or by the group's cn."""
    if not rules or not groups:
        return None
    dns = {normal_dn(dn) for dn in groups}
    names = {first_value(dn) for dn in groups}
    for rule in rules:
        wanted = rule.group.lower()
        if ("=" in wanted and normal_dn(wanted) in dns) or wanted in names:
            return rule
    return None


def normal_dn(dn: str) -> str:
    """A DN compared without case or spaces around separators (enough for the group
    DNs a directory returns and an operator writes)."""
    return ",".join("=".join(part.strip() for part in rdn.split("=", 1))
                    for rdn in dn.lower().split(","))


def first_value(dn: str) -> str:
    """The value of a DN's first RDN: "gold" for "cn=Gold,ou=groups,...", lower-cased."""
    first = dn.split(",", 1)[0]
    return first.split("=", 1)[1].strip().lower() if "=" in first else first.lower()


def _access(entry: Entry, s: DirectorySettings) -> tuple[bool, dt.datetime | None]:
    enabled, expires_at = True, None
    value = entry.text(s.access_attribute)
    if value is not None:
        word = value.strip().lower()
        if word in EXPIRED:
            expires_at = EPOCH
        elif word in DISABLED:
            enabled = False
        elif word not in ENABLED:
            raise UnusableEntry(f"{s.access_attribute} is {value!r}: expected enabled, "
                                "disabled or expired")
    value = entry.text(s.expiry_attribute)
    if value is not None:
        when = parse_expiry(value)
        if when is None:
            raise UnusableEntry(f"{s.expiry_attribute} is {value!r}: expected a generalized "
                                "time (20260101000000Z) or days since 1970 (shadowExpire)")
        if when is not NEVER:
            expires_at = when if expires_at is None else min(expires_at, when)
    return enabled, expires_at


def parse_expiry(value: str) -> dt.datetime | None:
    """A GeneralizedTime (RFC 4517 §3.3.13) or a day count (shadowExpire, RFC 2307);
    a negative day count (shadowExpire -1) is NEVER. None when it is neither."""
    value = value.strip()
    if re.fullmatch(r"-?\d{1,6}", value):
        days = int(value)
        return NEVER if days < 0 else EPOCH + dt.timedelta(days=days)
    match = _GENERALIZED.match(value)
    if not match:
        return None
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        when = dt.datetime(int(year), int(month), int(day), int(hour), int(minute or 0),
                           int(second or 0))
    except ValueError:
        return None
    if zone == "Z":
        offset = dt.timedelta(0)
    else:
        sign = -1 if zone[0] == "-" else 1
        offset = sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5] or 0))
    return when.replace(tzinfo=dt.timezone(offset)).astimezone(dt.timezone.utc)


def _number(entry: Entry, name: str) -> int | None:
    value = entry.text(name)
    if value is None:
        return None
    if not value.strip().isdigit():
        raise UnusableEntry(f"{name} is {value!r}: expected a whole number")
    return int(value)


def _address(entry: Entry, name: str) -> str | None:
    value = entry.text(name)
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise UnusableEntry(f"{name} is {value!r}: not an IP address") from None


def _nt_hash(entry: Entry, name: str) -> bytes | None:
    value = entry.text(name)
    if value is None:
        return None
    value = value.strip()
    if value.upper().startswith("{NT}"):
        value = value[4:]
    if not re.fullmatch(r"[0-9A-Fa-f]{32}", value):
        raise UnusableEntry(f"{name} is not 32 hex digits")
    return bytes.fromhex(value)


def _password(entry: Entry, s: DirectorySettings) -> tuple[str | None, bytes | None]:
    """(hash with its scheme header, cleartext) from the password attribute: a value
    without a header, or with {CLEARTEXT}, is a cleartext (CHAP can use it)."""
    values = entry.values(s.password_attribute)
    if not values:
        return None, None
    raw = values[0]  # several values: the first (FreeRADIUS takes the first it knows)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, raw  # binary, so not a scheme header: a cleartext
    scheme, rest = schemes.split(text)
    if not scheme:
        return None, raw
    if scheme == schemes.CLEARTEXT:
        return None, rest.encode("utf-8")
    why = _stored_problem(text)
    if why:
        raise UnusableEntry(f"{s.password_attribute}: {why}")
    return text, None


@functools.lru_cache(maxsize=16_384)
def _stored_problem(text: str) -> str | None:
    """schemes.problem, remembered: an entry's password is checked each time the entry
    is read, and the same subscribers log in again and again."""
    return schemes.problem(text)
