"""Fields and their checks: what a value of a provisioning record may be.

A check takes the value as given (from a TOML table, a form, a JSON body) and the
Context, and returns it normalised, or raises Invalid saying why not. A section is a
tuple of Fields; ``check_table`` (vpop.provisioning.sections) runs them over one table,
so every way in validates the same. Problems are reported as ProvisioningError, a
vpop.errors.ConfigError with file, line and field.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vpop.aaa.caller_id import normalise_caller_id
from vpop.config import IdentificationSettings
from vpop.errors import ConfigError

INT_MAX = 2**31 - 1  # INTEGER columns on PostgreSQL
MAX_SHOWN = 50  # problems listed in a ProvisioningError's message; all are in .problems


class ProvisioningError(ConfigError):
    """Every problem found, one per line; file, line and field are the first one's."""

    def __init__(self, problems: Sequence[ConfigError]):
        first = problems[0]
        super().__init__(first.message, file=first.file, line=first.line, field=first.field)
        self.problems = tuple(problems)

    def __str__(self) -> str:
        shown = [ConfigError.__str__(p) for p in self.problems[:MAX_SHOWN]]
        if len(self.problems) > MAX_SHOWN:
            shown.append(f"... and {len(self.problems) - MAX_SHOWN} more problems")
        return "\n".join(shown)


class Keep:
    """A field's default that leaves the stored value as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = Keep()


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What checks may need beyond the value: the environment ``*_env`` fields read,
    the caller ID settings, the reply templates records name."""

    env: Mapping[str, str]
    identification: IdentificationSettings
    replies: Any = None  # vpop.aaa.reply.ReplyRenderer, or None: the shipped templates


class Invalid(Exception):
    """One value is wrong; ``where`` narrows the field, e.g. to caller_ids[2]."""

    def __init__(self, reason: str, where: str | None = None):
        super().__init__(reason)
        self.reason, self.where = reason, where


Check = Callable[[Any, Context], Any]


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    check: Check
    required: bool = False
    default: Any = None
    column: str | None = ""  # model attribute: "" is the same name, None is not a column

    @property
    def attribute(self) -> str | None:
        return self.name if self.column == "" else self.column


def is_named(value: Any) -> bool:
    """Whether a reference field names a record (not left out, not kept as stored)."""
    return value is not None and value is not KEEP


# --- checks: each takes the value and returns it normalised ---------------------------

def checked_text(value: Any, max_len: int, *, name: bool = False, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise Invalid("must be a string")
    if not value and not empty:
        raise Invalid("must not be empty")
    if len(value) > max_len:
        raise Invalid(f"is longer than {max_len} characters")
    if "\x00" in value:  # PostgreSQL cannot store NUL in text
        raise Invalid("must not contain NUL characters")
    if name:
        if value != value.strip():
            raise Invalid("has spaces at either end")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise Invalid("must not contain control characters")
    return value


def text(max_len: int, *, name: bool = False, empty: bool = False) -> Check:
    return lambda value, ctx: checked_text(value, max_len, name=name, empty=empty)


def from_env(check: Check) -> Check:
    """The value names an environment variable holding what ``check`` accepts."""
    def read(value: Any, ctx: Context) -> Any:
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise Invalid("must be the name of an environment variable")
        if value not in ctx.env:
            raise Invalid(f"environment variable {value} is not set")
        try:
            return check(ctx.env[value], ctx)
        except Invalid as exc:
            raise Invalid(f"environment variable {value} {exc.reason}") from None
    return read


def fold_env(values: dict[str, Any], name: str, env_name: str) -> str | None:
    """A value given directly (`name`) or through an environment variable (`env_name`,
    checked by from_env): the latter moved into `name`; the problem if both are given."""
    read = values.pop(env_name)
    if read is None:
        return None
    if values[name] is not None:
        return f"give {name} or {env_name}, not both"
    values[name] = read
    return None


def integer(minimum: int, *, zero_is_none: bool = False) -> Check:
    def check(value: Any, ctx: Context) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid("must be an integer")
        if not minimum <= value <= INT_MAX:
            raise Invalid(f"must be from {minimum} to {INT_MAX}")
        return None if zero_is_none and value == 0 else value
    return check


def boolean(value: Any, ctx: Context) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


def choice(options: tuple[str, ...]) -> Check:
    def check(value: Any, ctx: Context) -> str:
        if not isinstance(value, str) or value not in options:
            raise Invalid(f"must be one of: {', '.join(options)}")
        return value
    return check


def ip_address(value: Any, ctx: Context) -> str:
    if not isinstance(value, str):
        raise Invalid("must be a string")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise Invalid("is not an IPv4 or IPv6 address") from None


def utc_datetime(value: Any, ctx: Context) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.utcoffset() is None:
            raise Invalid("needs a UTC offset, e.g. 2030-01-01T00:00:00Z")
        return value.astimezone(dt.timezone.utc)
    if isinstance(value, dt.date):  # a bare date is midnight UTC at its start
        return dt.datetime.combine(value, dt.time(), dt.timezone.utc)
    raise Invalid("must be a date or a date and time with offset")


def strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid("must be a list of strings")
    return value


def numbers(field_name: str) -> Check:
    """Telephone numbers (caller IDs, dialled numbers), normalised, duplicates dropped."""
    def check(value: Any, ctx: Context) -> tuple[str, ...]:
        settings = ctx.identification
        found: list[str] = []
        for index, raw in enumerate(strings(value), 1):
            try:
                number = normalise_caller_id(
                    raw, country_code=settings.country_code,
                    national_prefix=settings.national_prefix,
                    international_prefix=settings.international_prefix)
            except ValueError as exc:
                raise Invalid(str(exc), f"{field_name}[{index}]") from None
            if len(number) > 32:
                raise Invalid("has more than 32 digits", f"{field_name}[{index}]")
            if number not in found:
                found.append(number)
        return tuple(found)
    return check


# --- fields several sections have ------------------------------------------------------

NAME = text(64, name=True)
SECRET = text(128)
DESCRIPTION = Field("description", text(255, empty=True), default="")
