"""Declarative provisioning from a TOML file: what ``vpop import FILE`` runs.

The file holds arrays of tables, one per section ([[nas]], [[isp]], [[profile]],
[[subscriber]], [[lease]]), each section one module of this package with its fields,
checks and writer. ``parse`` checks the whole file without a database and reports
every problem at once; ``apply`` checks the plan against the database, then writes,
and never commits. Records missing from the file are left alone. The format is in
docs/provisioning.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from vpop.config import IdentificationSettings
from vpop.errors import ConfigError
from vpop.progress import Progress, silent
from vpop.provisioning import isp, lease, nas, profile, subscriber
from vpop.provisioning.fields import Context, ProvisioningError
from vpop.provisioning.hashing import PBKDF2_ITERATIONS, Hashing, pbkdf2_runner
from vpop.provisioning.locator import Locator
from vpop.provisioning.records import check_references
from vpop.provisioning.sections import (Counts, Entry, Plan, Section, Values, all_claims,
                                        check_table, root_field)
from vpop.store.generation import record_change

# In the order they are written: a section may refer to names of the sections before it.
SECTIONS: tuple[Section, ...] = (nas.SECTION, isp.SECTION, profile.SECTION,
                                 subscriber.SECTION, lease.SECTION)
SECTION_NAMED = {section.name: section for section in SECTIONS}
# Sections the workers hold as a whole (subscribers inherit profiles): a change of one
# of them makes them load everything again; subscribers are loaded one by one.
SERVED_WHOLE = ("nas", "isp", "profile")
BATCH_TABLES = 2_000  # top-level tables parsed at a time


@dataclass(frozen=True, slots=True, kw_only=True)
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
    context = Context(env=os.environ if env is None else env, identification=identification,
                       replies=replies)
    locator = Locator(text)
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


def _check_tables(batches: Iterable[dict[str, Any]], context: Context, locator: Locator,
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
            if name not in SECTION_NAMED:
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


def _toml_batches(text: str, locator: Locator, path: str) -> Iterator[dict[str, Any]]:
    """The file's TOML values, a batch of whole top-level [[tables]] at a time.

    Batches are cut only before a top-level ``[[name]]`` header, so each holds whole
    tables and its arrays are pieces of the file's arrays. What a cut could change is
    left to a parse of the whole file (_Unbatchable, perhaps after some batches): keys
    before the first header, a name that is not an array of tables, a batch that is not
    valid TOML (the whole file's parse names the error as it stands in the file)."""
    cuts = locator.cuts(BATCH_TABLES)
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
        problems.extend(check_references(session, plan, section))
    _raise_if(problems)
    with pbkdf2_runner(subscriber.pbkdf2_count(plan), processes) as run:
        hashing = Hashing(salt=salt, iterations=iterations, run=run, progress=progress)
        counts = {section.name: section.write(session, plan, hashing) for section in SECTIONS}
    session.flush()
    summary = Summary(counts=counts)
    if not summary.changed:
        return summary
    everything = any(counts[name].created or counts[name].updated
                     for name in SERVED_WHOLE if name in counts)
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


def _validate(section: Section, index: int, table: dict[str, Any], context: Context,
              locator: Locator, path: str, problems: list[ConfigError]) -> Entry | None:
    """check_table, its problems placed in the file."""
    header = locator.entry_line(section.name, index)
    values, found = check_table(section, table, context)
    for where, reason in found:
        root = root_field(where)
        line = locator.field_line(section.name, index, root) if root in table else None
        problems.append(ConfigError(reason, file=path, line=line or header,
                                    field=f"{section.name}[{index}].{where}"))
    if values is None:
        return None
    return Entry(section=section.name, index=index, key=values[section.key],
                 values=Values(values), line=header, locator=locator)


def _file_unique(section: Section, plan: Plan) -> Iterator[ConfigError]:
    """Names, and values such as caller IDs, may appear only once in the file."""
    seen: dict[Any, Entry] = {}
    for entry in plan[section.name]:
        for claim in all_claims(section, entry):
            first = seen.setdefault((claim.what, claim.value), entry)
            if first is not entry:
                yield plan.problem(entry, claim.field,
                                   f"{claim.what} {claim.shown} is also in "
                                   f"{section.name}[{first.index}] ({first.key!r})")
