"""[[subscriber]]: subscribers with their credentials, caller IDs, lines, fixed
address, overrides of their profile and chosen ISP.

Credentials are stored only in the forms the methods need; PAP-only passwords as
PBKDF2 hashes, made over the cores for a large file (vpop.provisioning.hashing).
Subscribers are written in chunks of WRITE_CHUNK, so a large file's rows are never all
in the session at once.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, selectinload

from vpop.aaa.credentials import PBKDF2_SCHEME, nt_hash
from vpop.aaa.subscribers import LINE_KINDS, METHODS
from vpop.errors import ConfigError
from vpop.provisioning.fields import (KEEP, NAME, Context, Field, Invalid, boolean,
                                      checked_text, fold_env, from_env, ip_address, numbers,
                                      strings, text, utc_datetime)
from vpop.provisioning.hashing import SALT_BYTES, Hashing, hash_job, verify_job
from vpop.provisioning.isp import ISP_REFERENCE
from vpop.provisioning.profile import SERVICE_FIELDS
from vpop.provisioning.records import (assign, columns, forget, held_elsewhere,
                                       reference_columns, rows_by_keys)
from vpop.provisioning.sections import Claim, Counts, Entry, Plan, Section
from vpop.store.models import Profile, Subscriber, SubscriberCallerId, SubscriberLine

WRITE_CHUNK = 1_000  # subscribers written at a time


# --- field checks ------------------------------------------------------------------

def _password(value: Any, ctx: Context) -> str:
    value = checked_text(value, 128)
    if len(value.encode("utf-8")) > 128:
        raise Invalid("is longer than 128 octets in UTF-8 (RFC 2865 §5.2)")
    return value


def _methods(value: Any, ctx: Context) -> tuple[str, ...]:
    names = strings(value)
    for name in names:
        if name not in METHODS:
            raise Invalid(f"unknown method {name!r}: use {', '.join(METHODS)}")
    return tuple(m for m in METHODS if m in names)


def _lines(value: Any, ctx: Context) -> tuple[tuple[str, str], ...]:
    kinds = ", ".join(LINE_KINDS)
    if not isinstance(value, list):
        raise Invalid(f"must be a list of tables, each with one of: {kinds}")
    lines: list[tuple[str, str]] = []
    for index, item in enumerate(value, 1):
        where = f"lines[{index}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise Invalid(f"must be a table with exactly one of: {kinds}", where)
        ((kind, given),) = item.items()
        if kind not in LINE_KINDS:
            raise Invalid(f"unknown line kind {kind!r}: use {kinds}", where)
        try:
            given = checked_text(given, 253)
        except Invalid as exc:
            raise Invalid(exc.reason, f"{where}.{kind}") from None
        if (kind, given) not in lines:
            lines.append((kind, given))
    return tuple(lines)


def _pbkdf2_hash(value: Any, ctx: Context) -> str:
    hashed = checked_text(value, 160)
    parts = hashed.split("$")
    try:
        valid = (len(parts) == 4 and parts[0] == PBKDF2_SCHEME and int(parts[1]) >= 1
                 and bool(base64.b64decode(parts[2], validate=True))
                 and bool(base64.b64decode(parts[3], validate=True)))
    except (ValueError, binascii.Error):
        valid = False
    if not valid:
        raise Invalid(f"must be {PBKDF2_SCHEME}$<iterations>$<base64 salt>$<base64 hash>")
    return hashed


def _hex_nt_hash(value: Any, ctx: Context) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9A-Fa-f]{32}", value):
        raise Invalid("must be 32 hexadecimal digits (16 octets)")
    return value.lower()


# --- checks across fields, the file and the database ---------------------------------

def _finish(values: dict[str, Any]) -> Iterator[tuple[str, str]]:
    if reason := fold_env(values, "password", "password_env"):
        yield "password_env", reason
    password = values["password"]
    precomputed = [k for k in ("password_hash", "nt_hash") if values[k] is not None]
    if password is not None and precomputed:
        yield precomputed[0], "give either a password or precomputed hashes, not both"
        return
    methods = values["methods"]
    if password is None:
        for method in ("chap", "eap-md5"):
            if method in methods:
                yield "password", f"is required for {method}, which needs the cleartext password"
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


def _claims(entry: Entry) -> Iterator[Claim]:
    for number in entry.values["caller_ids"]:
        yield Claim(what="caller ID", value=number, shown=number, field="caller_ids")
    for kind, value in entry.values["lines"]:
        yield Claim(what="line", value=(kind, value), shown=f"{kind} {value!r}",
                     field="lines")
    if entry.values["framed_ip"] is not None:
        ip = entry.values["framed_ip"]
        yield Claim(what="framed IP", value=ip, shown=ip, field="framed_ip")


def _check_file(plan: Plan) -> Iterator[ConfigError]:
    profiles = {e.key: e for e in plan["profile"]}
    for entry in plan["subscriber"]:
        profile = profiles.get(entry.values["profile"])
        if profile is not None:
            reason = _login_problem(entry, profile.key, profile.values["caller_id_login"])
            if reason:
                yield plan.problem(entry, "methods", reason)


def _check_db(session: Session, plan: Plan) -> Iterator[ConfigError]:
    entries = plan["subscriber"]
    if not entries:
        return
    in_file = {e.key for e in plan["profile"]}
    stored = dict(rows_by_keys(session, select(Profile.name, Profile.caller_id_login),
                               Profile.name, {e.values["profile"] for e in entries} - in_file))
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
    claims = [(entry, claim) for entry in entries for claim in _claims(entry)]
    owners: dict[tuple[str, Any], str] = {}
    wanted = {what: [c.value for _, c in claims if c.what == what]
              for what in ("caller ID", "line", "framed IP")}
    for number, owner in rows_by_keys(
            session, select(SubscriberCallerId.number, Subscriber.username).join(
                SubscriberCallerId.subscriber), SubscriberCallerId.number, wanted["caller ID"]):
        owners["caller ID", number] = owner
    for kind, value, owner in rows_by_keys(
            session, select(SubscriberLine.kind, SubscriberLine.value,
                            Subscriber.username).join(SubscriberLine.subscriber),
            SubscriberLine.value, (v for _, v in wanted["line"])):
        owners["line", (kind, value)] = owner
    for ip, owner in rows_by_keys(session, select(Subscriber.framed_ip, Subscriber.username),
                                  Subscriber.framed_ip, wanted["framed IP"]):
        owners["framed IP", ip] = owner
    yield from held_elsewhere(plan, entries, claims, owners, "subscriber")


def _stored_credentials(values: Mapping[str, Any], pbkdf2: str | None) -> dict[str, str | None]:
    """Only the forms the methods need: CHAP and EAP-MD5 the cleartext, MS-CHAP the NT
    hash, PAP the PBKDF2 hash unless the cleartext or the NT hash is kept anyway (PAP is
    then checked against that). `pbkdf2` is the hash made for a PAP-only password."""
    methods = set(values["methods"])
    chap, pap = bool(methods & {"chap", "eap-md5"}), "pap" in methods
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


def _pbkdf2_hashes(entries: Sequence[Entry], existing: Mapping[str, Subscriber],
                   hashing: Hashing) -> dict[str, str]:
    """The PBKDF2 hash to store for each PAP-only password of `entries`: the stored one
    if it already matches (re-importing the same file changes nothing), else a new one
    with a fresh salt. Both kinds of work run through hashing.run (over the cores)."""
    wanted = [(e.key, e.values["password"]) for e in entries if _needs_pbkdf2(e.values)]
    stored = [(key, password, existing[key].password_hash) for key, password in wanted
              if key in existing and existing[key].password_hash is not None]
    matches = hashing.run(verify_job, [(password, current) for _, password, current in stored])
    kept = {key: current for (key, _, current), ok in zip(stored, matches) if ok}
    new = [(key, password) for key, password in wanted if key not in kept]
    made = hashing.run(hash_job, [(password, hashing.salt(SALT_BYTES), hashing.iterations)
                                  for _, password in new])
    return {**kept, **dict(zip((key for key, _ in new), made))}


def pbkdf2_count(plan: Plan) -> int:
    """The PBKDF2 hashes writing the plan's subscribers may make."""
    return sum(1 for e in plan["subscriber"] if _needs_pbkdf2(e.values))


def _existing_subscribers(session: Session, entries: Sequence[Entry]) -> dict[str, Subscriber]:
    return {row.username: row for (row,) in rows_by_keys(
        session, select(Subscriber).options(selectinload(Subscriber.caller_ids),
                                            selectinload(Subscriber.lines)),
        Subscriber.username, (e.key for e in entries))}


def _chunks(entries: Sequence[Entry]) -> Iterator[Sequence[Entry]]:
    size = WRITE_CHUNK  # read at each call, so it can be changed
    for start in range(0, len(entries), size):
        yield entries[start:start + size]


def _write(session: Session, plan: Plan, hashing: Hashing) -> Counts:
    """In chunks of WRITE_CHUNK subscribers: new ones inserted in bulk, stored ones
    compared and updated, each chunk's rows let go once flushed."""
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
            kept, kept_lines = set(entry.values["caller_ids"]), set(entry.values["lines"])
            for gone in [c for c in row.caller_ids if c.number not in kept]:
                row.caller_ids.remove(gone)
                changed.add(entry.key)
            for gone in [li for li in row.lines if (li.kind, li.value) not in kept_lines]:
                row.lines.remove(gone)
                changed.add(entry.key)
        session.flush()
        forget(session, existing.values())
        bar.step(len(chunk))
    profiles = dict(rows_by_keys(session, select(Profile.name, Profile.id), Profile.name,
                                 (e.values["profile"] for e in entries)))
    references = reference_columns(session, plan, SECTION)
    for chunk in _chunks(entries):
        existing = _existing_subscribers(session, chunk)
        hashes = _pbkdf2_hashes(chunk, existing, hashing)
        new: list[tuple[Entry, dict[str, Any]]] = []
        for entry in chunk:
            values = entry.values
            wanted = {**columns(SECTION, entry), **references(entry),
                      "auth_methods": ",".join(values["methods"]),
                      "profile_id": profiles[values["profile"]],
                      **_stored_credentials(values, hashes.get(entry.key))}
            row = existing.get(entry.key)
            if row is None:
                new.append((entry, wanted))
                continue
            if assign(row, wanted):
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
        forget(session, existing.values())
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
        [wanted for _, wanted in new]).all())
    caller_ids = [{"subscriber_id": ids[entry.key], "number": number}
                  for entry, _ in new for number in entry.values["caller_ids"]]
    lines = [{"subscriber_id": ids[entry.key], "kind": kind, "value": value}
             for entry, _ in new for kind, value in entry.values["lines"]]
    if caller_ids:
        session.execute(insert(SubscriberCallerId), caller_ids)
    if lines:
        session.execute(insert(SubscriberLine), lines)


# --- the section -------------------------------------------------------------------

def _isp_choice(value: Any, ctx: Context) -> str | None:
    return None if value == "" else NAME(value, ctx)


SECTION = Section(
    name="subscriber", key="username",
    fields=(
        Field("username", text(128, name=True), required=True),
        Field("profile", NAME, required=True, column=None),
        Field("enabled", boolean, default=True),
        Field("expires_at", utc_datetime),
        Field("methods", _methods, default=("pap",), column=None),
        Field("password", _password, column=None),
        Field("password_env", from_env(_password), column=None),
        Field("password_hash", _pbkdf2_hash, column=None),
        Field("nt_hash", _hex_nt_hash, column=None),
        Field("caller_ids", numbers("caller_ids"), default=(), column=None),
        Field("lines", _lines, default=(), column=None),
        Field("framed_ip", ip_address),
        *SERVICE_FIELDS,
        # The ISP the subscriber chose, also in the portal: left out of the file it is
        # kept, and isp = "" clears it.
        Field("isp", _isp_choice, default=KEEP, column=None),
    ),
    finish=_finish, claims=_claims, check_file=_check_file, check_db=_check_db,
    references=(ISP_REFERENCE,), write=_write,
)
