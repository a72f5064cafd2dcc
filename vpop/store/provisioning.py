"""Declarative provisioning from a TOML file: what ``vpop import FILE`` runs.

The file holds arrays of tables, one per section ([[nas]], [[profile]],
[[subscriber]]). Each section is one entry of SECTIONS: its field table, its
checks and its writer, so ISPs or leases become one more entry. ``parse`` checks
the whole file without a database and reports every problem at once; ``apply``
checks the plan against the database, then writes, and never commits. Records
missing from the file are left alone. The format is in docs/provisioning.md.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime as dt
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import InstrumentedAttribute, Session, selectinload

from vpop.aaa.caller_id import normalise_caller_id
from vpop.aaa.credentials import PBKDF2_SCHEME, hash_password, nt_hash, verify_password_hash
from vpop.aaa.subscribers import LINE_KINDS, METHODS
from vpop.config import IdentificationSettings
from vpop.errors import ConfigError
from vpop.store.isp_models import Isp as IspRecord
from vpop.store.models import Nas, Profile, Subscriber, SubscriberCallerId, SubscriberLine

_FROZEN = dict(frozen=True, slots=True, kw_only=True)


class _Keep:
    """A field's default that leaves the stored value as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()

PBKDF2_ITERATIONS = 200_000
SALT_BYTES = 16
NAS_TYPES = ("generic", "cisco", "mikrotik", "juniper")
MESSAGE_AUTHENTICATOR = ("yes", "no", "auto")
_INT_MAX = 2**31 - 1  # INTEGER columns on PostgreSQL
_CHUNK = 500  # keeps IN (...) lists under SQLite's bound-parameter limit
_MAX_SHOWN = 50  # problems listed in the message; all are in .problems


# --- values ------------------------------------------------------------------

@dataclass(**_FROZEN)
class Entry:
    """One validated table of the file, with where it stands for error messages."""

    section: str
    index: int  # 1-based, in file order: subscriber[3] is the third [[subscriber]]
    key: str  # the identifying value: NAS and profile name, username
    values: Mapping[str, Any]  # normalised, every field present (defaults filled in)
    line: int | None = None
    field_lines: Mapping[str, int] = field(default_factory=dict)

    def qualified(self, name: str) -> str:
        return f"{self.section}[{self.index}].{name}"

    def line_of(self, name: str) -> int | None:
        return self.field_lines.get(re.split(r"[\[.]", name, maxsplit=1)[0], self.line)


@dataclass(**_FROZEN)
class Plan:
    file: str
    entries: Mapping[str, tuple[Entry, ...]]  # section name -> entries, file order
    context: _Context | None = None  # what parse was given (environment, settings, templates)

    def __getitem__(self, section: str) -> tuple[Entry, ...]:
        return self.entries.get(section, ())

    def problem(self, entry: Entry, name: str, reason: str) -> ConfigError:
        return ConfigError(reason, file=self.file, line=entry.line_of(name),
                           field=entry.qualified(name))


@dataclass(**_FROZEN)
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(**_FROZEN)
class Summary:
    counts: Mapping[str, Counts]  # section name -> counts

    def __getitem__(self, section: str) -> Counts:
        return self.counts.get(section, Counts())

    @property
    def changed(self) -> bool:
        return any(c.created or c.updated for c in self.counts.values())

    def __str__(self) -> str:
        return "; ".join(f"{name}: {c.created} created, {c.updated} updated, "
                         f"{c.unchanged} unchanged" for name, c in self.counts.items())


class ProvisioningError(ConfigError):
    """Every problem found, one per line; file, line and field are the first one's."""

    def __init__(self, problems: Sequence[ConfigError]):
        first = problems[0]
        super().__init__(first.message, file=first.file, line=first.line, field=first.field)
        self.problems = tuple(problems)

    def __str__(self) -> str:
        shown = [ConfigError.__str__(p) for p in self.problems[:_MAX_SHOWN]]
        if len(self.problems) > _MAX_SHOWN:
            shown.append(f"... and {len(self.problems) - _MAX_SHOWN} more problems")
        return "\n".join(shown)


# --- the two steps -----------------------------------------------------------

def parse(path: str | os.PathLike[str], *, identification: IdentificationSettings,
          env: Mapping[str, str] | None = None, replies: Any = None) -> Plan:
    """Read and check the whole file; ProvisioningError lists every problem found.

    Environment variables named by ``*_env`` fields are read here, and caller IDs
    are normalised with ``identification``. ``replies`` (a vpop.aaa.reply.ReplyRenderer)
    renders the reply templates records name; without it, the shipped templates only.
    """
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ProvisioningError([ConfigError(f"cannot read: {reason}", file=path)]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))  # tomllib has no lineno attribute
        raise ProvisioningError([ConfigError(
            f"not valid TOML: {exc}", file=path,
            line=int(found.group(1)) if found else None)]) from None
    context = _Context(env=os.environ if env is None else env, identification=identification,
                       replies=replies)
    locator = _Locator(text)
    problems: list[ConfigError] = []
    for name, value in data.items():
        if name not in _BY_NAME:
            problems.append(ConfigError(
                f"unknown section: use {', '.join(s.name for s in SECTIONS)}",
                file=path, line=locator.top_line(name), field=name))
        elif not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            problems.append(ConfigError(f"must be an array of tables: write [[{name}]] blocks",
                                        file=path, line=locator.top_line(name), field=name))
    entries: dict[str, tuple[Entry, ...]] = {}
    for section in SECTIONS:
        tables = data.get(section.name)
        if not isinstance(tables, list):
            continue
        found = []
        for index, table in enumerate(tables, 1):
            if isinstance(table, dict):
                entry = _validate(section, index, table, context, locator, path, problems)
                if entry is not None:
                    found.append(entry)
        entries[section.name] = tuple(found)
    plan = Plan(file=path, entries=entries, context=context)
    for section in SECTIONS:
        problems.extend(_file_unique(section, plan))
        problems.extend(section.check_file(plan))
    _raise_if(problems)
    return plan


def apply(session: Session, plan: Plan, *, salt: Callable[[int], bytes] = os.urandom,
          iterations: int = PBKDF2_ITERATIONS) -> Summary:
    """Check the plan against the database, then write it. Never commits.

    ``salt(n)`` returns n random bytes for each new PBKDF2 hash.
    """
    problems: list[ConfigError] = []
    for section in SECTIONS:
        problems.extend(section.check_db(session, plan))
        problems.extend(_check_references(session, plan, section))
    _raise_if(problems)
    hashing = _Hashing(salt=salt, iterations=iterations)
    counts = {section.name: section.write(session, plan, hashing) for section in SECTIONS}
    session.flush()
    return Summary(counts=counts)


def import_file(session: Session, path: str | os.PathLike[str], *,
                identification: IdentificationSettings, env: Mapping[str, str] | None = None,
                salt: Callable[[int], bytes] = os.urandom,
                iterations: int = PBKDF2_ITERATIONS, replies: Any = None) -> Summary:
    """parse, then apply: the caller commits on success and rolls back on ConfigError."""
    plan = parse(path, identification=identification, env=env, replies=replies)
    return apply(session, plan, salt=salt, iterations=iterations)


def _raise_if(problems: list[ConfigError]) -> None:
    if problems:
        problems.sort(key=lambda p: (p.line is not None, p.line or 0))
        raise ProvisioningError(problems)


# --- field checks: each takes the TOML value and returns it normalised ---------

@dataclass(**_FROZEN)
class _Context:
    env: Mapping[str, str]
    identification: IdentificationSettings
    replies: Any = None  # vpop.aaa.reply.ReplyRenderer, or None: the shipped templates


class _Invalid(Exception):
    """One value is wrong; ``where`` narrows the field, e.g. to caller_ids[2]."""

    def __init__(self, reason: str, where: str | None = None):
        super().__init__(reason)
        self.reason, self.where = reason, where


Check = Callable[[Any, _Context], Any]


def _checked_text(value: Any, max_len: int, *, name: bool = False, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _Invalid("must be a string")
    if not value and not empty:
        raise _Invalid("must not be empty")
    if len(value) > max_len:
        raise _Invalid(f"is longer than {max_len} characters")
    if "\x00" in value:  # PostgreSQL cannot store NUL in text
        raise _Invalid("must not contain NUL characters")
    if name:
        if value != value.strip():
            raise _Invalid("has spaces at either end")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise _Invalid("must not contain control characters")
    return value


def _text(max_len: int, *, name: bool = False, empty: bool = False) -> Check:
    return lambda value, ctx: _checked_text(value, max_len, name=name, empty=empty)


def _password(value: Any, ctx: _Context) -> str:
    value = _checked_text(value, 128)
    if len(value.encode("utf-8")) > 128:
        raise _Invalid("is longer than 128 octets in UTF-8 (RFC 2865 §5.2)")
    return value


def _from_env(check: Check) -> Check:
    """The value names an environment variable holding what ``check`` accepts."""
    def read(value: Any, ctx: _Context) -> Any:
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise _Invalid("must be the name of an environment variable")
        if value not in ctx.env:
            raise _Invalid(f"environment variable {value} is not set")
        try:
            return check(ctx.env[value], ctx)
        except _Invalid as exc:
            raise _Invalid(f"environment variable {value} {exc.reason}") from None
    return read


def _integer(minimum: int, *, zero_is_none: bool = False) -> Check:
    def check(value: Any, ctx: _Context) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid("must be an integer")
        if not minimum <= value <= _INT_MAX:
            raise _Invalid(f"must be from {minimum} to {_INT_MAX}")
        return None if zero_is_none and value == 0 else value
    return check


def _boolean(value: Any, ctx: _Context) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("must be true or false")
    return value


def _choice(options: tuple[str, ...]) -> Check:
    def check(value: Any, ctx: _Context) -> str:
        if not isinstance(value, str) or value not in options:
            raise _Invalid(f"must be one of: {', '.join(options)}")
        return value
    return check


def _address_or_network(value: Any, ctx: _Context) -> str:
    """An address stays an address, a network a network, both in canonical spelling."""
    if not isinstance(value, str):
        raise _Invalid("must be a string")
    try:
        if "/" in value:
            return str(ipaddress.ip_network(value, strict=True))
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise _Invalid(f"is not an IP address or network ({exc})") from None


def _ip_address(value: Any, ctx: _Context) -> str:
    if not isinstance(value, str):
        raise _Invalid("must be a string")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise _Invalid("is not an IPv4 or IPv6 address") from None


def _utc_datetime(value: Any, ctx: _Context) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.utcoffset() is None:
            raise _Invalid("needs a UTC offset, e.g. 2030-01-01T00:00:00Z")
        return value.astimezone(dt.timezone.utc)
    if isinstance(value, dt.date):  # a bare date is midnight UTC at its start
        return dt.datetime.combine(value, dt.time(), dt.timezone.utc)
    raise _Invalid("must be a date or a date and time with offset")


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Invalid("must be a list of strings")
    return value


def _methods(value: Any, ctx: _Context) -> tuple[str, ...]:
    names = _strings(value)
    for name in names:
        if name not in METHODS:
            raise _Invalid(f"unknown method {name!r}: use {', '.join(METHODS)}")
    return tuple(m for m in METHODS if m in names)


def _numbers(field_name: str) -> Check:
    """Telephone numbers (caller IDs, dialled numbers), normalised, duplicates dropped."""
    def check(value: Any, ctx: _Context) -> tuple[str, ...]:
        settings = ctx.identification
        numbers: list[str] = []
        for index, raw in enumerate(_strings(value), 1):
            try:
                number = normalise_caller_id(
                    raw, country_code=settings.country_code,
                    national_prefix=settings.national_prefix,
                    international_prefix=settings.international_prefix)
            except ValueError as exc:
                raise _Invalid(str(exc), f"{field_name}[{index}]") from None
            if len(number) > 32:
                raise _Invalid("has more than 32 digits", f"{field_name}[{index}]")
            if number not in numbers:
                numbers.append(number)
        return tuple(numbers)
    return check


_caller_ids = _numbers("caller_ids")


def _lines(value: Any, ctx: _Context) -> tuple[tuple[str, str], ...]:
    kinds = ", ".join(LINE_KINDS)
    if not isinstance(value, list):
        raise _Invalid(f"must be a list of tables, each with one of: {kinds}")
    lines: list[tuple[str, str]] = []
    for index, item in enumerate(value, 1):
        where = f"lines[{index}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise _Invalid(f"must be a table with exactly one of: {kinds}", where)
        ((kind, text),) = item.items()
        if kind not in LINE_KINDS:
            raise _Invalid(f"unknown line kind {kind!r}: use {kinds}", where)
        try:
            text = _checked_text(text, 253)
        except _Invalid as exc:
            raise _Invalid(exc.reason, f"{where}.{kind}") from None
        if (kind, text) not in lines:
            lines.append((kind, text))
    return tuple(lines)


def _pbkdf2_hash(value: Any, ctx: _Context) -> str:
    text = _checked_text(value, 160)
    parts = text.split("$")
    try:
        valid = (len(parts) == 4 and parts[0] == PBKDF2_SCHEME and int(parts[1]) >= 1
                 and bool(base64.b64decode(parts[2], validate=True))
                 and bool(base64.b64decode(parts[3], validate=True)))
    except (ValueError, binascii.Error):
        valid = False
    if not valid:
        raise _Invalid(f"must be {PBKDF2_SCHEME}$<iterations>$<base64 salt>$<base64 hash>")
    return text


def _hex_nt_hash(value: Any, ctx: _Context) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9A-Fa-f]{32}", value):
        raise _Invalid("must be 32 hexadecimal digits (16 octets)")
    return value.lower()


# --- section tables ------------------------------------------------------------

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


@dataclass(frozen=True, slots=True)
class _Claim:
    """A value at most one entry of a section may hold, like a caller ID."""

    what: str  # "caller ID"
    value: Any  # compared
    shown: str  # in messages
    field: str  # where the entry holds it


@dataclass(**_FROZEN)
class _Hashing:
    salt: Callable[[int], bytes]
    iterations: int


def _nothing(*args) -> tuple:
    return ()


@dataclass(frozen=True, slots=True)
class Reference:
    """A field naming a record of an earlier section (a profile's ISP), stored as its id."""

    field: str  # the field holding the name
    section: str  # the section such records are provisioned in
    model: type  # their model
    key: str  # the model's name attribute
    column: str  # the referring model's foreign key column


@dataclass(**_FROZEN)
class Section:
    name: str
    key: str  # the field that identifies a record
    fields: tuple[Field, ...]
    # Checks within one table; may rewrite values (e.g. fold secret_env into secret).
    finish: Callable[[dict[str, Any]], Iterable[tuple[str, str]]] = _nothing
    claims: Callable[[Entry], Iterable[_Claim]] = _nothing
    check_file: Callable[[Plan], Iterable[ConfigError]] = _nothing  # across sections
    check_db: Callable[[Session, Plan], Iterable[ConfigError]] = _nothing
    references: tuple[Reference, ...] = ()
    write: Callable[[Session, Plan, _Hashing], Counts]


def _validate(section: Section, index: int, table: dict[str, Any], context: _Context,
              locator: _Locator, path: str, problems: list[ConfigError]) -> Entry | None:
    header = locator.entry_line(section.name, index)
    lines = {key: locator.field_line(section.name, index, key) or header for key in table}
    before = len(problems)

    def report(where: str, reason: str) -> None:
        root = re.split(r"[\[.]", where, maxsplit=1)[0]
        problems.append(ConfigError(reason, file=path, line=lines.get(root, header),
                                    field=f"{section.name}[{index}].{where}"))

    known = {f.name: f for f in section.fields}
    for key in table:
        if key not in known:
            report(key, f"unknown field: use {', '.join(known)}")
    values: dict[str, Any] = {}
    for spec in section.fields:
        if spec.name not in table:
            if spec.required:
                report(spec.name, "is required")
            values[spec.name] = spec.default
            continue
        try:
            values[spec.name] = spec.check(table[spec.name], context)
        except _Invalid as exc:
            report(exc.where or spec.name, exc.reason)
            values[spec.name] = spec.default
    if len(problems) > before:
        return None  # cross-field checks on broken values would only add noise
    for where, reason in section.finish(values):
        report(where, reason)
    if len(problems) > before:
        return None
    return Entry(section=section.name, index=index, key=values[section.key], values=values,
                 line=header, field_lines={k: v for k, v in lines.items() if v is not None})


def _file_unique(section: Section, plan: Plan) -> Iterator[ConfigError]:
    """Names, and values such as caller IDs, may appear only once in the file."""
    seen: dict[Any, Entry] = {}
    for entry in plan[section.name]:
        claims = [_Claim(what=section.key, value=entry.key, shown=repr(entry.key),
                         field=section.key), *section.claims(entry)]
        for claim in claims:
            first = seen.setdefault((claim.what, claim.value), entry)
            if first is not entry:
                yield plan.problem(entry, claim.field,
                                   f"{claim.what} {claim.shown} is also in "
                                   f"{section.name}[{first.index}] ({first.key!r})")


def _columns(section: Section, entry: Entry) -> dict[str, Any]:
    return {f.attribute: entry.values[f.name] for f in section.fields if f.attribute}


def _assign(row: Any, columns: Mapping[str, Any]) -> bool:
    changed = False
    for attribute, value in columns.items():
        if getattr(row, attribute) != value:
            setattr(row, attribute, value)
            changed = True
    return changed


def _named(value: Any) -> bool:
    return value is not None and value is not KEEP


def _check_references(session: Session, plan: Plan, section: Section) -> Iterator[ConfigError]:
    for ref in section.references:
        entries = [e for e in plan[section.name] if _named(e.values[ref.field])]
        in_file = {e.key for e in plan[ref.section]}
        key = getattr(ref.model, ref.key)
        stored = {name for (name,) in _rows(session, select(key), key,
                                            {e.values[ref.field] for e in entries} - in_file)}
        for entry in entries:
            name = entry.values[ref.field]
            if name not in in_file and name not in stored:
                yield plan.problem(entry, ref.field,
                                   f"no {ref.section} {name!r} in this file or the database")


def _resolver(session: Session, plan: Plan, section: Section
              ) -> Callable[[Entry], dict[str, Any]]:
    """Foreign key columns for an entry's references. Earlier sections are written by
    now: the query flushes them, so new records have their ids."""
    ids: dict[str, dict[str, int]] = {}
    for ref in section.references:
        key = getattr(ref.model, ref.key)
        names = {e.values[ref.field] for e in plan[section.name]
                 if _named(e.values[ref.field])}
        ids[ref.field] = dict(_rows(session, select(key, ref.model.id), key, names))

    def columns(entry: Entry) -> dict[str, Any]:
        return {ref.column: ids[ref.field].get(entry.values[ref.field])
                for ref in section.references if entry.values[ref.field] is not KEEP}
    return columns


def _rows(session: Session, statement: Select, column: InstrumentedAttribute,
          keys: Iterable[Any]) -> Iterator[Any]:
    keys = sorted(set(keys))
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        yield from session.execute(statement.where(column.in_(chunk))).all()


def _write_by_key(section_name: str, model: type, key: InstrumentedAttribute) -> Callable:
    """The writer for a section whose fields map one to one onto model columns."""
    def write(session: Session, plan: Plan, hashing: _Hashing) -> Counts:
        section = _BY_NAME[section_name]
        entries = plan[section.name]
        existing = {getattr(row, key.key): row for (row,) in _rows(
            session, select(model), key, (e.key for e in entries))}
        references = _resolver(session, plan, section)
        created = updated = 0
        for entry in entries:
            columns = {**_columns(section, entry), **references(entry)}
            row = existing.get(entry.key)
            if row is None:
                session.add(model(**columns))
                created += 1
            elif _assign(row, columns):
                updated += 1
        return Counts(created=created, updated=updated,
                      unchanged=len(entries) - created - updated)
    return write


# --- nas ---------------------------------------------------------------------------

def _finish_nas(values: dict[str, Any]) -> Iterator[tuple[str, str]]:
    from_env = values.pop("secret_env")
    if from_env is not None:
        if values["secret"] is not None:
            yield "secret_env", "give secret or secret_env, not both"
        values["secret"] = from_env
    elif values["secret"] is None:
        yield "secret", "is required (or secret_env naming an environment variable)"


def _network(address: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """192.0.2.1 and 192.0.2.1/32 are the same client."""
    try:
        return ipaddress.ip_network(address, strict=False)
    except ValueError:
        return None


def _nas_claims(entry: Entry) -> Iterator[_Claim]:
    address = entry.values["address"]
    yield _Claim(what="address", value=_network(address), shown=address, field="address")


def _check_nas_db(session: Session, plan: Plan) -> Iterator[ConfigError]:
    entries = plan["nas"]
    if not entries:
        return
    names = {e.key for e in entries}
    owners = {_network(address): name for name, address in
              session.execute(select(Nas.name, Nas.address)) if name not in names}
    for entry in entries:
        owner = owners.get(_network(entry.values["address"]))
        if owner is not None:
            yield plan.problem(entry, "address", f"address {entry.values['address']} belongs "
                               f"to NAS {owner!r}, which is not in this file")


# --- subscriber --------------------------------------------------------------------

def _finish_subscriber(values: dict[str, Any]) -> Iterator[tuple[str, str]]:
    from_env = values.pop("password_env")
    if from_env is not None:
        if values["password"] is not None:
            yield "password_env", "give password or password_env, not both"
        values["password"] = from_env
    password = values["password"]
    precomputed = [k for k in ("password_hash", "nt_hash") if values[k] is not None]
    if password is not None and precomputed:
        yield precomputed[0], "give either a password or precomputed hashes, not both"
        return
    methods = values["methods"]
    if password is None:
        if "chap" in methods:
            yield "password", "is required for chap, which needs the cleartext password"
        ms = [m for m in methods if m.startswith("mschap")]
        if ms and values["nt_hash"] is None:
            yield ("nt_hash" if precomputed else "password",
                   f"is required for {' and '.join(ms)}")
        if "pap" in methods and not precomputed:
            yield "password", "is required for pap (or password_hash or nt_hash)"
    if not methods and not values["caller_ids"]:
        yield "caller_ids", ("must not be empty when methods is empty: the subscriber "
                             "would have no way to log in")


def _login_problem(entry: Entry, profile: str, caller_id_login: bool) -> str | None:
    if entry.values["methods"] or caller_id_login:
        return None
    return (f"is empty, but profile {profile!r} has no caller_id_login: give a method, "
            "or use a profile with caller_id_login = true")


def _subscriber_claims(entry: Entry) -> Iterator[_Claim]:
    for number in entry.values["caller_ids"]:
        yield _Claim(what="caller ID", value=number, shown=number, field="caller_ids")
    for kind, value in entry.values["lines"]:
        yield _Claim(what="line", value=(kind, value), shown=f"{kind} {value!r}",
                     field="lines")
    if entry.values["framed_ip"] is not None:
        ip = entry.values["framed_ip"]
        yield _Claim(what="framed IP", value=ip, shown=ip, field="framed_ip")


def _check_subscribers_file(plan: Plan) -> Iterator[ConfigError]:
    profiles = {e.key: e for e in plan["profile"]}
    for entry in plan["subscriber"]:
        profile = profiles.get(entry.values["profile"])
        if profile is not None:
            reason = _login_problem(entry, profile.key, profile.values["caller_id_login"])
            if reason:
                yield plan.problem(entry, "methods", reason)


def _check_subscribers_db(session: Session, plan: Plan) -> Iterator[ConfigError]:
    entries = plan["subscriber"]
    if not entries:
        return
    in_file = {e.key for e in plan["profile"]}
    stored = dict(_rows(session, select(Profile.name, Profile.caller_id_login), Profile.name,
                        {e.values["profile"] for e in entries} - in_file))
    for entry in entries:
        name = entry.values["profile"]
        if name in in_file:
            continue  # checked by parse
        if name not in stored:
            yield plan.problem(entry, "profile",
                               f"no profile {name!r} in this file or the database")
        elif reason := _login_problem(entry, name, stored[name]):
            yield plan.problem(entry, "methods", reason)
    # Values held by subscribers outside the file cannot move to one in it.
    claims = [(entry, claim) for entry in entries for claim in _subscriber_claims(entry)]
    owners: dict[tuple[str, Any], str] = {}
    wanted = {what: [c.value for _, c in claims if c.what == what]
              for what in ("caller ID", "line", "framed IP")}
    for number, owner in _rows(
            session, select(SubscriberCallerId.number, Subscriber.username).join(
                SubscriberCallerId.subscriber), SubscriberCallerId.number, wanted["caller ID"]):
        owners["caller ID", number] = owner
    for kind, value, owner in _rows(
            session, select(SubscriberLine.kind, SubscriberLine.value,
                            Subscriber.username).join(SubscriberLine.subscriber),
            SubscriberLine.value, (v for _, v in wanted["line"])):
        owners["line", (kind, value)] = owner
    for ip, owner in _rows(session, select(Subscriber.framed_ip, Subscriber.username),
                           Subscriber.framed_ip, wanted["framed IP"]):
        owners["framed IP", ip] = owner
    yield from _held_elsewhere(plan, entries, claims, owners, "subscriber")


def _held_elsewhere(plan: Plan, entries: Sequence[Entry], claims: Iterable[tuple[Entry, _Claim]],
                    owners: Mapping[tuple[str, Any], str], kind: str) -> Iterator[ConfigError]:
    """Claimed values held by records not in the file: they cannot move (``owners``:
    (what, value) -> the holder's key)."""
    keys = {e.key for e in entries}
    for entry, claim in claims:
        owner = owners.get((claim.what, claim.value))
        if owner is not None and owner not in keys:
            yield plan.problem(entry, claim.field, f"{claim.what} {claim.shown} belongs to "
                               f"{kind} {owner!r}, which is not in this file")


def _stored_credentials(values: Mapping[str, Any], current_hash: str | None,
                        hashing: _Hashing) -> dict[str, str | None]:
    """Only the forms the methods need: CHAP the cleartext, MS-CHAP the NT hash, PAP
    the PBKDF2 hash unless the cleartext or the NT hash is kept anyway (PAP is then
    checked against that)."""
    methods = set(values["methods"])
    chap, pap = "chap" in methods, "pap" in methods
    mschap = bool(methods & {"mschap", "mschapv2"})
    password = values["password"]
    if password is None:  # precomputed: PAP falls back to the NT hash if that is all there is
        pbkdf2 = values["password_hash"] if pap else None
        nt = values["nt_hash"] if mschap or (pap and pbkdf2 is None) else None
        return {"cleartext_password": None, "password_hash": pbkdf2, "nt_hash": nt}
    pbkdf2 = None
    if pap and not chap and not mschap:
        # Keep a hash that already matches: re-importing the same file changes nothing.
        if current_hash is not None and _verifies(password, current_hash):
            pbkdf2 = current_hash
        else:
            pbkdf2 = hash_password(password, salt=hashing.salt(SALT_BYTES),
                                   iterations=hashing.iterations)
    return {"cleartext_password": password if chap else None, "password_hash": pbkdf2,
            "nt_hash": nt_hash(password).hex() if mschap else None}


def _verifies(password: str, stored: str) -> bool:
    try:
        return verify_password_hash(password.encode("utf-8"), stored)
    except ValueError:  # a corrupt stored hash is replaced
        return False


def _write_subscribers(session: Session, plan: Plan, hashing: _Hashing) -> Counts:
    section = _BY_NAME["subscriber"]
    entries = plan["subscriber"]
    if not entries:
        return Counts()
    existing = {row.username: row for (row,) in _rows(
        session, select(Subscriber).options(selectinload(Subscriber.caller_ids),
                                            selectinload(Subscriber.lines)),
        Subscriber.username, (e.key for e in entries))}
    changed: set[str] = set()
    # Free caller IDs and lines first: one may move to another subscriber of this file,
    # and a flush inserts before it deletes, which the unique constraints would refuse.
    for entry in entries:
        row = existing.get(entry.key)
        if row is None:
            continue
        numbers, lines = set(entry.values["caller_ids"]), set(entry.values["lines"])
        for gone in [c for c in row.caller_ids if c.number not in numbers]:
            row.caller_ids.remove(gone)
            changed.add(entry.key)
        for gone in [li for li in row.lines if (li.kind, li.value) not in lines]:
            row.lines.remove(gone)
            changed.add(entry.key)
    session.flush()
    profiles = {row.name: row for (row,) in _rows(
        session, select(Profile), Profile.name, (e.values["profile"] for e in entries))}
    references = _resolver(session, plan, section)
    created = 0
    for entry in entries:
        values = entry.values
        row = existing.get(entry.key)
        columns = {**_columns(section, entry), **references(entry),
                   "auth_methods": ",".join(values["methods"]),
                   **_stored_credentials(values, row.password_hash if row else None, hashing)}
        profile = profiles[values["profile"]]
        if row is None:
            row = Subscriber(profile=profile, **columns)
            session.add(row)
            created += 1
        else:
            if _assign(row, columns):
                changed.add(entry.key)
            if row.profile is not profile:
                row.profile = profile
                changed.add(entry.key)
        have = {c.number for c in row.caller_ids}
        for number in values["caller_ids"]:
            if number not in have:
                row.caller_ids.append(SubscriberCallerId(number=number))
                changed.add(entry.key)
        have_lines = {(li.kind, li.value) for li in row.lines}
        for kind, value in values["lines"]:
            if (kind, value) not in have_lines:
                row.lines.append(SubscriberLine(kind=kind, value=value))
                changed.add(entry.key)
    updated = len(changed - {e.key for e in entries if e.key not in existing})
    return Counts(created=created, updated=updated,
                  unchanged=len(entries) - created - updated)


# --- the sections, in the order they are written (profiles before subscribers) -------

_NAME = _text(64, name=True)
_DESCRIPTION = Field("description", _text(255, empty=True), default="")
_OVERRIDES = (
    Field("rate_down_kbps", _integer(1)),
    Field("rate_up_kbps", _integer(1)),
    Field("address_pool", _text(64, name=True)),
    # 0 is "no limit" and stored as NULL, so no attribute is sent
    Field("session_timeout", _integer(0, zero_is_none=True)),
    Field("idle_timeout", _integer(0, zero_is_none=True)),
)
_SECRET = _text(128)
# The ISP a profile gives its subscribers, or a subscriber chose ([[isp]] or the database).
_ISP = Field("isp", _NAME, column=None)
# A subscriber's choice is also made in the portal: left out of the file it is kept,
# and isp = "" clears it.
def _isp_choice(value: Any, ctx: _Context) -> str | None:
    return None if value == "" else _NAME(value, ctx)


_CHOSEN_ISP = Field("isp", _isp_choice, default=KEEP, column=None)
_ISP_REFERENCE = Reference(field="isp", section="isp", model=IspRecord, key="name",
                           column="isp_id")

SECTIONS: tuple[Section, ...] = (
    Section(
        name="nas", key="name",
        fields=(
            Field("name", _NAME, required=True),
            Field("address", _address_or_network, required=True),
            Field("secret", _SECRET),
            Field("secret_env", _from_env(_SECRET), column=None),
            Field("nas_type", _choice(NAS_TYPES), default="generic"),
            Field("require_message_authenticator", _choice(MESSAGE_AUTHENTICATOR),
                  default="yes"),
            _DESCRIPTION,
        ),
        finish=_finish_nas, claims=_nas_claims, check_db=_check_nas_db,
        write=_write_by_key("nas", Nas, Nas.name),
    ),
    Section(
        name="profile", key="name",
        fields=(
            Field("name", _NAME, required=True),
            *_OVERRIDES,
            Field("class", _text(64), column="class_"),
            Field("caller_id_login", _boolean, default=False),
            _DESCRIPTION,
            _ISP,
            Field("isp_failover", _boolean, default=False),
        ),
        references=(_ISP_REFERENCE,),
        write=_write_by_key("profile", Profile, Profile.name),
    ),
    Section(
        name="subscriber", key="username",
        fields=(
            Field("username", _text(128, name=True), required=True),
            Field("profile", _NAME, required=True, column=None),
            Field("enabled", _boolean, default=True),
            Field("expires_at", _utc_datetime),
            Field("methods", _methods, default=("pap",), column=None),
            Field("password", _password, column=None),
            Field("password_env", _from_env(_password), column=None),
            Field("password_hash", _pbkdf2_hash, column=None),
            Field("nt_hash", _hex_nt_hash, column=None),
            Field("caller_ids", _caller_ids, default=(), column=None),
            Field("lines", _lines, default=(), column=None),
            Field("framed_ip", _ip_address),
            *_OVERRIDES,
            _CHOSEN_ISP,
        ),
        finish=_finish_subscriber, claims=_subscriber_claims,
        check_file=_check_subscribers_file, check_db=_check_subscribers_db,
        references=(_ISP_REFERENCE,), write=_write_subscribers,
    ),
)
_BY_NAME = {section.name: section for section in SECTIONS}


# --- where things are in the file (tomllib reports no positions) -------------------

_HEADER = re.compile(r"\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")


class _Locator:
    """Line numbers of [[section]] headers and of keys inside them.

    Only lines that start outside strings and brackets count, so a multi-line
    string or array that happens to contain "[[subscriber]]" does not confuse it.
    """

    def __init__(self, text: str):
        self._structural: list[tuple[int, str]] = list(_structural_lines(text))
        self._numbers = [number for number, _ in self._structural]
        # (line number, dotted table name, is an array of tables) for every header
        self._headers: list[tuple[int, str, bool]] = []
        for number, line in self._structural:
            match = _HEADER.match(line)
            if match:
                name = re.sub(r"\s*\.\s*", ".", match.group(2)).replace('"', "").replace("'", "")
                self._headers.append((number, name, match.group(1) == "[["))
        self._arrays: dict[str, list[int]] = {}
        for position, (number, name, is_array) in enumerate(self._headers):
            if is_array:
                self._arrays.setdefault(name, []).append(position)

    def entry_line(self, section: str, index: int) -> int | None:
        positions = self._arrays.get(section, [])
        if index <= len(positions):
            return self._headers[positions[index - 1]][0]
        return self.top_line(section)  # e.g. subscriber = [{...}, ...]

    def field_line(self, section: str, index: int, key: str) -> int | None:
        positions = self._arrays.get(section, [])
        if index > len(positions):
            return None
        position = positions[index - 1]
        own_end = None  # the table's own keys end at the next header of any kind
        for later in range(position + 1, len(self._headers)):  # no copy of the rest
            number, name, _ = self._headers[later]
            own_end = own_end or number
            if name == f"{section}.{key}":  # [[subscriber.lines]]
                return number
            if not name.startswith(section + "."):
                break
        return self._key_in(key, self._headers[position][0], own_end)

    def top_line(self, key: str) -> int | None:
        for number, name, _ in self._headers:
            if name == key or name.startswith(key + "."):
                return number
        first_header = self._headers[0][0] if self._headers else None
        return self._key_in(key, 0, first_header)

    def _key_in(self, key: str, start: int, end: int | None) -> int | None:
        """The first line after ``start`` and before ``end`` that assigns ``key``."""
        pattern = re.compile(rf"\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')"
                             r"\s*[=.]")
        for position in range(bisect.bisect_right(self._numbers, start), len(self._numbers)):
            number, line = self._structural[position]
            if end is not None and number >= end:
                break
            if pattern.match(line):
                return number
        return None


def _structural_lines(text: str) -> Iterator[tuple[int, str]]:
    """(number, line) for each line that starts at the top level of the TOML syntax."""
    state = ""  # "", '"', "'", '"""' or "'''"
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not state and depth == 0:
            yield number, line
        i = 0
        while i < len(line):
            char = line[i]
            if not state:
                if char == "#":
                    break
                if line.startswith('"""', i) or line.startswith("'''", i):
                    state, i = line[i:i + 3], i + 3
                    continue
                if char in "\"'":
                    state = char
                elif char in "[{":
                    depth += 1
                elif char in "]}":
                    depth -= 1
            elif char == "\\" and state in ('"', '"""'):
                i += 2
                continue
            elif len(state) == 3 and line.startswith(state, i):
                run = len(line[i:]) - len(line[i:].lstrip(state[0]))
                state, i = "", i + run  # up to two quotes may end the content itself
                continue
            elif char == state:
                state = ""
            i += 1
        if len(state) == 1:  # single-line strings end with the line in valid TOML
            state = ""


# --- sections of the other domains -----------------------------------------------------
# Their modules build Sections from the pieces above, so they are imported last. Order
# matters: a section may refer to names of the sections before it.
from vpop.store import provisioning_isp, provisioning_leases  # noqa: E402

SECTIONS = SECTIONS[:1] + provisioning_isp.SECTIONS + SECTIONS[1:] + provisioning_leases.SECTIONS
_BY_NAME = {section.name: section for section in SECTIONS}
