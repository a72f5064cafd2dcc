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
import dataclasses
import datetime as dt
import ipaddress
import multiprocessing
import os
import re
import tomllib
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sqlalchemy import Select, insert, select
from sqlalchemy.orm import InstrumentedAttribute, Session, selectinload

from vpop.aaa.caller_id import normalise_caller_id
from vpop.aaa.credentials import PBKDF2_SCHEME, hash_password, nt_hash, verify_password_hash
from vpop.aaa.subscribers import LINE_KINDS, METHODS
from vpop.config import IdentificationSettings
from vpop.errors import ConfigError
from vpop.progress import Progress, silent
from vpop.store.generation import record_change
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
_WRITE_CHUNK = 1_000  # subscribers written at a time
_POOL_MIN_JOBS = 32  # PBKDF2 hashes worth starting processes for (about a second's work)
# Sections the workers hold as a whole (subscribers inherit profiles): a change of one
# of them makes them load everything again; subscribers are loaded one by one.
_SERVED_WHOLE = ("nas", "isp", "profile")
_MAX_SHOWN = 50  # problems listed in the message; all are in .problems


# --- values ------------------------------------------------------------------

class _Values(Mapping[str, Any]):
    """An entry's values, kept compact (a large file has a million entries): one tuple,
    and the field names' positions shared by every entry with the same fields."""

    __slots__ = ("_positions", "_items")
    _layouts: dict[tuple[str, ...], dict[str, int]] = {}

    def __init__(self, values: Mapping[str, Any]):
        names = tuple(values)
        positions = self._layouts.get(names)
        if positions is None:
            positions = self._layouts.setdefault(names, {n: i for i, n in enumerate(names)})
        self._positions = positions
        self._items = tuple(values.values())

    def __getitem__(self, name: str) -> Any:
        return self._items[self._positions[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._positions)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return repr(dict(self))


_NO_LINES: Mapping[str, int] = MappingProxyType({})


@dataclass(**_FROZEN)
class Entry:
    """One validated table of the file, with where it stands for error messages."""

    section: str
    index: int  # 1-based, in file order: subscriber[3] is the third [[subscriber]]
    key: str  # the identifying value: NAS and profile name, username
    values: Mapping[str, Any]  # normalised, every field present (defaults filled in)
    line: int | None = None
    field_lines: Mapping[str, int] = field(default_factory=lambda: _NO_LINES)
    # Finds the lines of fields not in field_lines, when a message needs one.
    locator: _Locator | None = field(default=None, compare=False, repr=False)

    def qualified(self, name: str) -> str:
        return f"{self.section}[{self.index}].{name}"

    def line_of(self, name: str) -> int | None:
        root = re.split(r"[\[.]", name, maxsplit=1)[0]
        if root in self.field_lines:
            return self.field_lines[root]
        if self.locator is not None:
            return self.locator.field_line(self.section, self.index, root) or self.line
        return self.line


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
    # The keys of the records created or updated, where a section lists them (subscribers).
    changed: frozenset[str] = field(default=frozenset(), compare=False, repr=False)


@dataclass(**_FROZEN)
class Summary:
    counts: Mapping[str, Counts]  # section name -> counts
    generation: int | None = None  # the data generation the change made, if it changed any

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
          env: Mapping[str, str] | None = None, replies: Any = None,
          progress: Callable[[str, int], Progress] = silent) -> Plan:
    """Read and check the whole file; ProvisioningError lists every problem found.

    Environment variables named by ``*_env`` fields are read here, and caller IDs
    are normalised with ``identification``. ``replies`` (a vpop.aaa.reply.ReplyRenderer)
    renders the reply templates records name; without it, the shipped templates only.
    ``progress(label, total)`` returns the vpop.progress.Progress to step per table.

    A long file is parsed a few thousand tables at a time, each batch checked and its
    TOML values dropped before the next, so the whole file's values are never in
    memory at once; a TOML error is reported as a parse of the whole file reports it.
    """
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ProvisioningError([ConfigError(f"cannot read: {reason}", file=path)]) from None
    context = _Context(env=os.environ if env is None else env, identification=identification,
                       replies=replies)
    locator = _Locator(text)
    try:
        problems, found = _check_tables(_toml_batches(text, locator, path), context, locator,
                                        path, progress)
    except _Unbatchable:
        problems, found = _check_tables([_toml_whole(text, path)], context, locator, path,
                                        progress)
    plan = Plan(file=path, entries=found, context=context)
    for section in SECTIONS:
        problems.extend(_file_unique(section, plan))
        problems.extend(section.check_file(plan))
    _raise_if(problems)
    return plan


def _check_tables(batches: Iterable[dict[str, Any]], context: _Context, locator: _Locator,
                  path: str, progress: Callable[[str, int], Progress]
                  ) -> tuple[list[ConfigError], dict[str, tuple[Entry, ...]]]:
    """Every table of the file checked: (the problems, the valid entries per section)."""
    problems: list[ConfigError] = []
    reported: set[str] = set()  # top-level names already found wrong
    found: dict[str, list[Entry]] = {}
    counted: dict[str, int] = {}  # tables seen per section, for their index
    bar = progress("checking", locator.table_count())
    for data in batches:
        for name, value in data.items():
            if name in reported:
                continue
            if name not in _BY_NAME:
                problems.append(ConfigError(
                    f"unknown section: use {', '.join(s.name for s in SECTIONS)}",
                    file=path, line=locator.top_line(name), field=name))
                reported.add(name)
            elif not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
                problems.append(ConfigError(
                    f"must be an array of tables: write [[{name}]] blocks",
                    file=path, line=locator.top_line(name), field=name))
                reported.add(name)
        tables = 0
        for section in SECTIONS:
            batch = data.get(section.name)
            if not isinstance(batch, list):
                continue
            entries = found.setdefault(section.name, [])
            for table in batch:
                index = counted[section.name] = counted.get(section.name, 0) + 1
                if isinstance(table, dict):
                    entry = _validate(section, index, table, context, locator, path, problems)
                    if entry is not None:
                        entries.append(entry)
            tables += len(batch)
        bar.step(tables)
    bar.done()
    return problems, {name: tuple(entries) for name, entries in found.items()}


class _Unbatchable(Exception):
    """The file cannot be parsed in batches: parse it whole."""


def _toml_batches(text: str, locator: _Locator, path: str) -> Iterator[dict[str, Any]]:
    """The file's TOML values, a batch of whole top-level [[tables]] at a time.

    Batches are cut only before a top-level ``[[name]]`` header, so each holds whole
    tables and its arrays are pieces of the file's arrays. What a cut could change is
    left to a parse of the whole file (_Unbatchable, perhaps after some batches): keys
    before the first header, a name that is not an array of tables, a batch that is not
    valid TOML (the whole file's parse names the error as it stands in the file)."""
    cuts = locator.cuts(_BATCH_TABLES)
    if len(cuts) < 2 or locator.keys_before_first_header():
        yield _toml_whole(text, path)
        return
    for first, end in zip(cuts, [*cuts[1:], None]):
        try:
            data = tomllib.loads(locator.text_of(first, end))
        except tomllib.TOMLDecodeError:
            raise _Unbatchable from None
        if not all(isinstance(value, list) for value in data.values()):
            raise _Unbatchable
        yield data


def _toml_whole(text: str, path: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))  # tomllib has no lineno attribute
        raise ProvisioningError([ConfigError(
            f"not valid TOML: {exc}", file=path,
            line=int(found.group(1)) if found else None)]) from None


def apply(session: Session, plan: Plan, *, salt: Callable[[int], bytes] = os.urandom,
          iterations: int = PBKDF2_ITERATIONS, processes: int | None = None,
          progress: Callable[[str, int], Progress] = silent,
          now: dt.datetime | None = None) -> Summary:
    """Check the plan against the database, then write it. Never commits.

    ``salt(n)`` returns n random bytes for each new PBKDF2 hash. The hashes of
    PAP-only passwords are made (and stored ones checked) in ``processes`` processes,
    one per core by default, when there are many. ``progress`` as for parse.

    A change makes a new data generation (vpop.store.generation, in the same
    transaction): running workers load it within seconds of the commit.
    Summary.generation is its number.
    """
    problems: list[ConfigError] = []
    for section in SECTIONS:
        problems.extend(section.check_db(session, plan))
        problems.extend(_check_references(session, plan, section))
    _raise_if(problems)
    with _pbkdf2_runner(_pbkdf2_count(plan), processes) as run:
        hashing = _Hashing(salt=salt, iterations=iterations, run=run, progress=progress)
        counts = {section.name: section.write(session, plan, hashing) for section in SECTIONS}
    session.flush()
    summary = Summary(counts=counts)
    if not summary.changed:
        return summary
    everything = any(counts[name].created or counts[name].updated
                     for name in _SERVED_WHOLE if name in counts)
    generation = record_change(session, subscribers=summary["subscriber"].changed,
                               everything=everything,
                               now=now or dt.datetime.now(dt.timezone.utc))
    return dataclasses.replace(summary, generation=generation)


def import_file(session: Session, path: str | os.PathLike[str], *,
                identification: IdentificationSettings, env: Mapping[str, str] | None = None,
                salt: Callable[[int], bytes] = os.urandom,
                iterations: int = PBKDF2_ITERATIONS, replies: Any = None,
                processes: int | None = None) -> Summary:
    """parse, then apply: the caller commits on success and rolls back on ConfigError."""
    plan = parse(path, identification=identification, env=env, replies=replies)
    return apply(session, plan, salt=salt, iterations=iterations, processes=processes)


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
    """What the writers are given beside the session: how to make PBKDF2 hashes, and
    where to show their progress."""

    salt: Callable[[int], bytes]
    iterations: int
    run: Callable[[Callable, Sequence], list] = lambda function, items: list(map(function, items))
    progress: Callable[[str, int], Progress] = silent


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
    before = len(problems)

    def report(where: str, reason: str) -> None:
        root = re.split(r"[\[.]", where, maxsplit=1)[0]
        line = locator.field_line(section.name, index, root) if root in table else None
        problems.append(ConfigError(reason, file=path, line=line or header,
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
    return Entry(section=section.name, index=index, key=values[section.key],
                 values=_Values(values), line=header, locator=locator)


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


def _stored_credentials(values: Mapping[str, Any], pbkdf2: str | None) -> dict[str, str | None]:
    """Only the forms the methods need: CHAP the cleartext, MS-CHAP the NT hash, PAP
    the PBKDF2 hash unless the cleartext or the NT hash is kept anyway (PAP is then
    checked against that). `pbkdf2` is the hash made for a PAP-only password."""
    methods = set(values["methods"])
    chap, pap = "chap" in methods, "pap" in methods
    mschap = bool(methods & {"mschap", "mschapv2"})
    password = values["password"]
    if password is None:  # precomputed: PAP falls back to the NT hash if that is all there is
        pbkdf2 = values["password_hash"] if pap else None
        nt = values["nt_hash"] if mschap or (pap and pbkdf2 is None) else None
        return {"cleartext_password": None, "password_hash": pbkdf2, "nt_hash": nt}
    return {"cleartext_password": password if chap else None,
            "password_hash": pbkdf2 if _needs_pbkdf2(values) else None,
            "nt_hash": nt_hash(password).hex() if mschap else None}


def _needs_pbkdf2(values: Mapping[str, Any]) -> bool:
    """A password for PAP alone: stored as a PBKDF2 hash."""
    return values["password"] is not None and set(values["methods"]) == {"pap"}


def _verifies(password: str, stored: str) -> bool:
    try:
        return verify_password_hash(password.encode("utf-8"), stored)
    except ValueError:  # a corrupt stored hash is replaced
        return False


def _verify_job(job: tuple[str, str]) -> bool:
    return _verifies(*job)


def _hash_job(job: tuple[str, bytes, int]) -> str:
    password, salt, iterations = job
    return hash_password(password, salt=salt, iterations=iterations)


def _pbkdf2_hashes(entries: Sequence[Entry], existing: Mapping[str, Subscriber],
                   hashing: _Hashing) -> dict[str, str]:
    """The PBKDF2 hash to store for each PAP-only password of `entries`: the stored one
    if it already matches (re-importing the same file changes nothing), else a new one
    with a fresh salt. Both kinds of work run through hashing.run (over the cores)."""
    wanted = [(e.key, e.values["password"]) for e in entries if _needs_pbkdf2(e.values)]
    stored = [(key, password, existing[key].password_hash) for key, password in wanted
              if key in existing and existing[key].password_hash is not None]
    matches = hashing.run(_verify_job, [(password, current) for _, password, current in stored])
    kept = {key: current for (key, _, current), ok in zip(stored, matches) if ok}
    new = [(key, password) for key, password in wanted if key not in kept]
    made = hashing.run(_hash_job, [(password, hashing.salt(SALT_BYTES), hashing.iterations)
                                   for _, password in new])
    return {**kept, **dict(zip((key for key, _ in new), made))}


def _pbkdf2_count(plan: Plan) -> int:
    return sum(1 for e in plan["subscriber"] if _needs_pbkdf2(e.values))


@contextmanager
def _pbkdf2_runner(jobs: int, processes: int | None) -> Iterator[Callable]:
    """run(function, jobs) -> results, in order: in this process for a few jobs, else
    spread over `processes` processes (default: one per core). PBKDF2 costs tens of
    milliseconds a hash, so a file of PAP-only subscribers is bound by it."""
    processes = processes or os.cpu_count() or 1
    if processes < 2 or jobs < _POOL_MIN_JOBS:
        yield lambda function, items: list(map(function, items))
        return
    # spawn: the workers start clean, without this process's database connections
    with ProcessPoolExecutor(max_workers=processes,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        def run(function: Callable, items: Sequence) -> list:
            size = max(1, len(items) // (processes * 4))
            return list(pool.map(function, items, chunksize=size))
        yield run


def _existing_subscribers(session: Session, entries: Sequence[Entry]) -> dict[str, Subscriber]:
    return {row.username: row for (row,) in _rows(
        session, select(Subscriber).options(selectinload(Subscriber.caller_ids),
                                            selectinload(Subscriber.lines)),
        Subscriber.username, (e.key for e in entries))}


def _forget(session: Session, rows: Iterable[Any]) -> None:
    """Written rows leave the session, so a large file's rows are not all kept at once."""
    for row in rows:
        session.expunge(row)


def _chunks(entries: Sequence[Entry], size: int = _WRITE_CHUNK) -> Iterator[Sequence[Entry]]:
    for start in range(0, len(entries), size):
        yield entries[start:start + size]


def _write_subscribers(session: Session, plan: Plan, hashing: _Hashing) -> Counts:
    """In chunks of _WRITE_CHUNK subscribers: new ones inserted in bulk, stored ones
    compared and updated, each chunk's rows let go once flushed."""
    section = _BY_NAME["subscriber"]
    entries = plan["subscriber"]
    if not entries:
        return Counts()
    bar = hashing.progress("writing", 2 * len(entries))
    changed: set[str] = set()
    created: set[str] = set()
    # Free caller IDs and lines first: one may move to another subscriber of this file,
    # and a flush inserts before it deletes, which the unique constraints would refuse.
    for chunk in _chunks(entries):
        existing = _existing_subscribers(session, chunk)
        for entry in chunk:
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
        _forget(session, existing.values())
        bar.step(len(chunk))
    profiles = dict(_rows(session, select(Profile.name, Profile.id), Profile.name,
                          (e.values["profile"] for e in entries)))
    references = _resolver(session, plan, section)
    for chunk in _chunks(entries):
        existing = _existing_subscribers(session, chunk)
        hashes = _pbkdf2_hashes(chunk, existing, hashing)
        new: list[tuple[Entry, dict[str, Any]]] = []
        for entry in chunk:
            values = entry.values
            columns = {**_columns(section, entry), **references(entry),
                       "auth_methods": ",".join(values["methods"]),
                       "profile_id": profiles[values["profile"]],
                       **_stored_credentials(values, hashes.get(entry.key))}
            row = existing.get(entry.key)
            if row is None:
                new.append((entry, columns))
                continue
            if _assign(row, columns):
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
        session.flush()
        _insert_subscribers(session, new)
        created.update(entry.key for entry, _ in new)
        _forget(session, existing.values())
        bar.step(len(chunk))
    bar.done()
    updated = len(changed - created)
    return Counts(created=len(created), updated=updated,
                  unchanged=len(entries) - len(created) - updated,
                  changed=frozenset(changed | created))


def _insert_subscribers(session: Session, new: Sequence[tuple[Entry, dict[str, Any]]]) -> None:
    """New subscribers with their caller IDs and lines, a statement per table."""
    if not new:
        return
    ids = dict(session.execute(
        insert(Subscriber).returning(Subscriber.username, Subscriber.id,
                                     sort_by_parameter_order=True),
        [columns for _, columns in new]).all())
    numbers = [{"subscriber_id": ids[entry.key], "number": number}
               for entry, _ in new for number in entry.values["caller_ids"]]
    lines = [{"subscriber_id": ids[entry.key], "kind": kind, "value": value}
             for entry, _ in new for kind, value in entry.values["lines"]]
    if numbers:
        session.execute(insert(SubscriberCallerId), numbers)
    if lines:
        session.execute(insert(SubscriberLine), lines)


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
_BATCH_TABLES = 2_000  # top-level tables parsed at a time


class _Locator:
    """Line numbers of [[section]] headers and of keys inside them.

    Only lines that start outside strings and brackets count, so a multi-line
    string or array that happens to contain "[[subscriber]]" does not confuse it.
    Kept compact (arrays of numbers and the text itself) because a plan holds it for
    the messages of problems found later: a key's line is looked up when needed.
    """

    def __init__(self, text: str):
        self._text = text
        self._starts = array("q")  # offset in the text where each line starts
        self._structural = array("l")  # numbers of the lines that start at the top level
        # every header: its line number, its dotted table name, whether [[an array]]
        self._header_lines = array("l")
        self._header_names: list[str] = []
        self._header_arrays = bytearray()
        names: dict[str, str] = {}  # one string per distinct name
        for number, line in _structural_lines(text, self._starts):
            self._structural.append(number)
            if "[" not in line:
                continue
            match = _HEADER.match(line)
            if match:
                name = re.sub(r"\s*\.\s*", ".", match.group(2)).replace('"', "").replace("'", "")
                self._header_lines.append(number)
                self._header_names.append(names.setdefault(name, name))
                self._header_arrays.append(match.group(1) == "[[")
        self._arrays: dict[str, array] = {}  # array name -> positions of its headers
        for position, name in enumerate(self._header_names):
            if self._header_arrays[position]:
                self._arrays.setdefault(name, array("l")).append(position)

    def entry_line(self, section: str, index: int) -> int | None:
        positions = self._arrays.get(section, ())
        if index <= len(positions):
            return self._header_lines[positions[index - 1]]
        return self.top_line(section)  # e.g. subscriber = [{...}, ...]

    def field_line(self, section: str, index: int, key: str) -> int | None:
        positions = self._arrays.get(section, ())
        if index > len(positions):
            return None
        position = positions[index - 1]
        own_end = None  # the table's own keys end at the next header of any kind
        for later in range(position + 1, len(self._header_names)):
            own_end = own_end or self._header_lines[later]
            name = self._header_names[later]
            if name == f"{section}.{key}":  # [[subscriber.lines]]
                return self._header_lines[later]
            if not name.startswith(section + "."):
                break
        return self._key_in(key, self._header_lines[position], own_end)

    def top_line(self, key: str) -> int | None:
        for number, name in zip(self._header_lines, self._header_names):
            if name == key or name.startswith(key + "."):
                return number
        first_header = self._header_lines[0] if self._header_lines else None
        return self._key_in(key, 0, first_header)

    def table_count(self) -> int:
        """The top-level [[tables]] of the file."""
        return sum(1 for name, is_array in zip(self._header_names, self._header_arrays)
                   if is_array and "." not in name)

    def cuts(self, tables: int) -> list[int]:
        """Line numbers before which to cut the file into batches of `tables` top-level
        [[tables]]; the first is the first header's."""
        cuts, count = [], 0
        for number, name, is_array in zip(self._header_lines, self._header_names,
                                          self._header_arrays):
            if is_array and "." not in name:
                if count % tables == 0:
                    cuts.append(number)
                count += 1
        return cuts

    def keys_before_first_header(self) -> bool:
        """Whether anything but blank lines and comments precedes the first header."""
        first = self._header_lines[0] if self._header_lines else None
        for number in self._structural:
            if first is not None and number >= first:
                break
            line = self._line(number).strip()
            if line and not line.startswith("#"):
                return True
        return False

    def text_of(self, first: int, end: int | None) -> str:
        """Lines `first` up to `end` (not included; None: to the end of the file)."""
        stop = len(self._text) if end is None else self._starts[end - 1]
        return self._text[self._starts[first - 1]:stop]

    def _line(self, number: int) -> str:
        start = self._starts[number - 1]
        stop = self._starts[number] if number < len(self._starts) else len(self._text)
        return self._text[start:stop].rstrip("\r\n")

    def _key_in(self, key: str, start: int, end: int | None) -> int | None:
        """The first line after ``start`` and before ``end`` that assigns ``key``."""
        pattern = re.compile(rf"\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')"
                             r"\s*[=.]")
        for position in range(bisect.bisect_right(self._structural, start),
                              len(self._structural)):
            number = self._structural[position]
            if end is not None and number >= end:
                break
            if pattern.match(self._line(number)):
                return number
        return None


_TOP_LEVEL_SPECIAL = re.compile(r"[#\"'\[\]{}]")
_SIMPLE_STRINGS = re.compile(r'"[^"\\]*"|\'[^\']*\'')
_BASIC_STRING_END = re.compile(r'[\\"]')
_MULTILINE_BASIC_END = re.compile(r'\\|"""')


def _structural_lines(text: str, starts: array | None = None) -> Iterator[tuple[int, str]]:
    """(number, line) for each line that starts at the top level of the TOML syntax;
    with `starts`, the offset of every line's start is appended to it. Lines end at
    "\\n", as tomllib counts them. Runs of plain characters are skipped by regular
    expression, not looked at one by one."""
    state = ""  # "", '"', "'", '"""' or "'''"
    depth = 0
    position, number, size = 0, 0, len(text)
    while position < size:
        end = text.find("\n", position)
        end = size if end < 0 else end
        line = text[position:end]
        if line.endswith("\r"):
            line = line[:-1]
        number += 1
        if starts is not None:
            starts.append(position)
        position = end + 1
        if not state and depth == 0:
            yield number, line
        # Most lines hold only strings that close on the line, brackets and comments:
        # counted without walking them (a triple quote or an escape takes the long way).
        if not state and '"""' not in line and "'''" not in line:
            bare = _SIMPLE_STRINGS.sub("", line)
            if '"' not in bare and "'" not in bare:
                bare = bare.split("#", 1)[0]
                depth += bare.count("[") + bare.count("{") - bare.count("]") - bare.count("}")
                continue
        i = 0
        while True:
            if not state:
                found = _TOP_LEVEL_SPECIAL.search(line, i)
                if found is None:
                    break
                i, char = found.start(), found.group()
                if char == "#":
                    break
                if line.startswith('"""', i) or line.startswith("'''", i):
                    state, i = line[i:i + 3], i + 3
                    continue
                if char in "\"'":
                    state = char
                elif char in "[{":
                    depth += 1
                else:
                    depth -= 1
                i += 1
            elif state == '"':
                found = _BASIC_STRING_END.search(line, i)
                if found is None:
                    break
                if found.group() == "\\":
                    i = found.start() + 2
                    continue
                state, i = "", found.end()
            elif state == "'":
                found_at = line.find("'", i)
                if found_at < 0:
                    break
                state, i = "", found_at + 1
            else:  # a multi-line string: escapes in basic ones only
                if state == '"""':
                    found = _MULTILINE_BASIC_END.search(line, i)
                    if found is not None and found.group() == "\\":
                        i = found.start() + 2
                        continue
                    found_at = -1 if found is None else found.start()
                else:
                    found_at = line.find("'''", i)
                if found_at < 0:
                    break
                rest = line[found_at:]
                run = len(rest) - len(rest.lstrip(state[0]))
                state, i = "", found_at + run  # up to two quotes may end the content itself
        if len(state) == 1:  # single-line strings end with the line in valid TOML
            state = ""


# --- sections of the other domains -----------------------------------------------------
# Their modules build Sections from the pieces above, so they are imported last. Order
# matters: a section may refer to names of the sections before it.
from vpop.store import provisioning_isp, provisioning_leases  # noqa: E402

SECTIONS = SECTIONS[:1] + provisioning_isp.SECTIONS + SECTIONS[1:] + provisioning_leases.SECTIONS
_BY_NAME = {section.name: section for section in SECTIONS}
