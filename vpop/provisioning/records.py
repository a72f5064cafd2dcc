"""What the sections share for checking a plan against the stored records and writing
it: reading rows by key in chunks, comparing and assigning columns, resolving
references to ids. Nothing here commits."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from vpop.errors import ConfigError
from vpop.provisioning.fields import KEEP, is_named
from vpop.provisioning.sections import Claim, Counts, Entry, Plan, Section

CHUNK = 500  # keeps IN (...) lists under SQLite's bound-parameter limit


def rows_by_keys(session: Session, statement: Select, column: InstrumentedAttribute,
                 keys: Iterable[Any]) -> Iterator[Any]:
    """The rows of `statement` whose `column` is one of `keys`, asked for in chunks."""
    keys = sorted(set(keys))
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start:start + CHUNK]
        yield from session.execute(statement.where(column.in_(chunk))).all()


def columns(section: Section, entry: Entry) -> dict[str, Any]:
    """The entry's values of the fields that are columns, by model attribute."""
    return {f.attribute: entry.values[f.name] for f in section.fields if f.attribute}


def assign(row: Any, values: Mapping[str, Any]) -> bool:
    """Set the row's attributes that differ; whether any did."""
    changed = False
    for attribute, value in values.items():
        if getattr(row, attribute) != value:
            setattr(row, attribute, value)
            changed = True
    return changed


def forget(session: Session, rows: Iterable[Any]) -> None:
    """Written rows leave the session, so a large file's rows are not all kept at once."""
    for row in rows:
        session.expunge(row)


def check_references(session: Session, plan: Plan, section: Section) -> Iterator[ConfigError]:
    """Names in reference fields that are neither in the file nor stored."""
    for ref in section.references:
        entries = [e for e in plan[section.name] if is_named(e.values[ref.field])]
        in_file = {e.key for e in plan[ref.section]}
        key = getattr(ref.model, ref.key)
        stored = {name for (name,) in rows_by_keys(
            session, select(key), key, {e.values[ref.field] for e in entries} - in_file)}
        for entry in entries:
            name = entry.values[ref.field]
            if name not in in_file and name not in stored:
                yield plan.problem(entry, ref.field,
                                   f"no {ref.section} {name!r} in this file or the database")


def reference_columns(session: Session, plan: Plan, section: Section
                      ) -> Callable[[Entry], dict[str, Any]]:
    """Foreign key columns for an entry's references. Earlier sections are written by
    now: the query flushes them, so new records have their ids."""
    ids: dict[str, dict[str, int]] = {}
    for ref in section.references:
        key = getattr(ref.model, ref.key)
        names = {e.values[ref.field] for e in plan[section.name]
                 if is_named(e.values[ref.field])}
        ids[ref.field] = dict(rows_by_keys(session, select(key, ref.model.id), key, names))

    def resolve(entry: Entry) -> dict[str, Any]:
        return {ref.column: ids[ref.field].get(entry.values[ref.field])
                for ref in section.references if entry.values[ref.field] is not KEEP}
    return resolve


def held_elsewhere(plan: Plan, entries: Sequence[Entry], claims: Iterable[tuple[Entry, Claim]],
                   owners: Mapping[tuple[str, Any], str], kind: str) -> Iterator[ConfigError]:
    """Claimed values held by records not in the file: they cannot move (``owners``:
    (what, value) -> the holder's key)."""
    keys = {e.key for e in entries}
    for entry, claim in claims:
        owner = owners.get((claim.what, claim.value))
        if owner is not None and owner not in keys:
            yield plan.problem(entry, claim.field, f"{claim.what} {claim.shown} belongs to "
                               f"{kind} {owner!r}, which is not in this file")


def write_by_key(session: Session, plan: Plan, section: Section, model: type,
                 key: InstrumentedAttribute) -> Counts:
    """The writer of a section whose fields map one to one onto model columns."""
    entries = plan[section.name]
    existing = {getattr(row, key.key): row for (row,) in rows_by_keys(
        session, select(model), key, (e.key for e in entries))}
    references = reference_columns(session, plan, section)
    created = updated = 0
    for entry in entries:
        values = {**columns(section, entry), **references(entry)}
        row = existing.get(entry.key)
        if row is None:
            session.add(model(**values))
            created += 1
        elif assign(row, values):
            updated += 1
    return Counts(created=created, updated=updated, unchanged=len(entries) - created - updated)
