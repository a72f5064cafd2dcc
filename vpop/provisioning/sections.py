"""What a section is (its fields, checks and writer) and what checking produces: the
entries of a plan, and the counts of what was written.

``check_table`` checks one table of a section on its own, without a file or a
database: the import runs it for every table of the file, and a form or an API
request can run it for the one record it edits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sqlalchemy.orm import Session

from vpop.errors import ConfigError
from vpop.provisioning.fields import Context, Field, Invalid
from vpop.provisioning.hashing import Hashing
from vpop.provisioning.locator import Locator

_FROZEN = dict(frozen=True, slots=True, kw_only=True)


class Values(Mapping[str, Any]):
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


def root_field(where: str) -> str:
    """The field a place names: caller_ids for caller_ids[2], servers for servers[1].name."""
    return re.split(r"[\[.]", where, maxsplit=1)[0]


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
    locator: Locator | None = field(default=None, compare=False, repr=False)

    def qualified(self, name: str) -> str:
        return f"{self.section}[{self.index}].{name}"

    def line_of(self, name: str) -> int | None:
        root = root_field(name)
        if root in self.field_lines:
            return self.field_lines[root]
        if self.locator is not None:
            return self.locator.field_line(self.section, self.index, root) or self.line
        return self.line


@dataclass(**_FROZEN)
class Plan:
    file: str
    entries: Mapping[str, tuple[Entry, ...]]  # section name -> entries, file order
    context: Context | None = None  # what parse was given (environment, settings, templates)

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


@dataclass(frozen=True, slots=True)
class Claim:
    """A value at most one entry of a section may hold, like a caller ID."""

    what: str  # "caller ID"
    value: Any  # compared
    shown: str  # in messages
    field: str  # where the entry holds it


@dataclass(frozen=True, slots=True)
class Reference:
    """A field naming a record of an earlier section (a profile's ISP), stored as its id."""

    field: str  # the field holding the name
    section: str  # the section such records are provisioned in
    model: type  # their model
    key: str  # the model's name attribute
    column: str  # the referring model's foreign key column


def _nothing(*args) -> tuple:
    return ()


@dataclass(**_FROZEN)
class Section:
    name: str
    key: str  # the field that identifies a record
    fields: tuple[Field, ...]
    # Checks within one table; may rewrite values (e.g. fold secret_env into secret).
    finish: Callable[[dict[str, Any]], Iterable[tuple[str, str]]] = _nothing
    claims: Callable[[Entry], Iterable[Claim]] = _nothing
    check_file: Callable[[Plan], Iterable[ConfigError]] = _nothing  # across sections
    check_db: Callable[[Session, Plan], Iterable[ConfigError]] = _nothing
    references: tuple[Reference, ...] = ()
    write: Callable[[Session, Plan, Hashing], Counts]


def check_table(section: Section, table: Mapping[str, Any], context: Context
                ) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """One table of `section` checked on its own: (its values normalised, every field
    present, or None; the problems as (place, reason), e.g. ("caller_ids[2]", "...")).

    Checks that combine fields (section.finish) run only once every field is valid:
    on broken values they would only add noise."""
    problems: list[tuple[str, str]] = []
    known = {f.name: f for f in section.fields}
    for key in table:
        if key not in known:
            problems.append((key, f"unknown field: use {', '.join(known)}"))
    values: dict[str, Any] = {}
    for spec in section.fields:
        if spec.name not in table:
            if spec.required:
                problems.append((spec.name, "is required"))
            values[spec.name] = spec.default
            continue
        try:
            values[spec.name] = spec.check(table[spec.name], context)
        except Invalid as exc:
            problems.append((exc.where or spec.name, exc.reason))
            values[spec.name] = spec.default
    if problems:
        return None, problems
    problems.extend(section.finish(values))
    return (None if problems else values), problems


def all_claims(section: Section, entry: Entry) -> list[Claim]:
    """What the entry holds that no other entry of its section may: its key first."""
    return [Claim(what=section.key, value=entry.key, shown=repr(entry.key), field=section.key),
            *section.claims(entry)]
