"""Administration: NAS clients, ISPs, profiles, subscribers and leases created, changed
and disabled through forms checked by the provisioning package (the checks of `vpop
import`, with each problem by its field); the generated NAS configuration. Live
sessions, reports, tokens and the audit are the pages of vpop/portal/usage.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tomllib
from typing import Any

from flask import (Blueprint, Response, abort, flash, redirect, render_template, request,
                   url_for)

from vpop.errors import ConfigError
from vpop.portal import app as portal
from vpop.portal import data
from vpop.portal.audit import audit
from vpop.portal.security import role_required
from vpop.portal.usage import context, not_found_page
from vpop.provisioning.steps import SECTION_NAMED
from vpop.store.gauges import levels

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.register_error_handler(data.NotFound, not_found_page)

TITLES = {"nas": "NAS clients", "isp": "ISPs", "profile": "Profiles",
          "subscriber": "Subscribers", "lease": "Leases"}
# How a form shows and reads a field: text as typed; lists of text comma-separated;
# anything else (numbers, true/false, dates, lists of tables) as a TOML value.
TEXT = frozenset({"name", "username", "secret", "password", "description", "address", "class",
                  "address_pool", "template", "rewrite", "reject_message", "currency",
                  "framed_ip", "isp", "profile", "nas_type", "mode", "balance", "status",
                  "policy", "require_message_authenticator", "password_hash", "nt_hash",
                  "das_address", "das_secret"})
TEXT_LISTS = frozenset({"realms", "numbers", "caller_ids", "methods", "nas"})
SECRETS = frozenset({"secret", "password", "das_secret", "password_hash", "nt_hash"})
# Fields a form leaves out: read from the environment by `vpop import` only.
FROM_ENV = frozenset({"secret_env", "password_env"})
# How a record is disabled, where its section has a way: the field and its value.
DISABLE = {"subscriber": ("enabled", False), "isp": ("status", "disabled"),
           "lease": ("ends", None)}


def _section(section: str):
    if section not in TITLES:
        abort(404)
    return SECTION_NAMED[section]


@bp.route("/")
@role_required("admin")
def index():
    session = portal.db()
    counts = {section: len(data.records(session, section)) for section in TITLES}
    online = sum(levels(session.connection(), "nas").values())
    return render_template("admin/index.html", counts=counts, titles=TITLES, online=online)


@bp.route("/records/<section>")
@role_required("admin")
def records(section: str):
    _section(section)
    return render_template("admin/records.html", section=section, title=TITLES[section],
                           keys=data.records(portal.db(), section),
                           disable=section in DISABLE)


def form_text(name: str, value: Any) -> str:
    """A stored value as its form field shows it."""
    if value is None:
        return ""
    if name in TEXT:
        return str(value)
    if name in TEXT_LISTS:
        return ", ".join(str(v) for v in value)
    return toml_value(value)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _key(name: str) -> str:
    return name if name.replace("_", "").isalnum() else json.dumps(name)


def form_value(name: str, text: str) -> Any:
    """A form field's text as the import file would give the value; text that is no
    TOML value stays text, for the field's check to name what is wrong."""
    if name in TEXT:
        return text
    if name in TEXT_LISTS:
        return [part.strip() for part in text.split(",") if part.strip()]
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def table_from_form(section: str, form, stored: dict | None) -> dict:
    """The record's table: the stored one (if any) with the form's fields over it; a
    secret left empty keeps the stored one; an optional field emptied is left out."""
    table = dict(stored or {})
    new_password = False
    for spec in SECTION_NAMED[section].fields:
        if spec.name in FROM_ENV or spec.name not in form:
            continue
        text = form.get(spec.name, "").strip() if spec.name not in SECRETS else \
            form.get(spec.name, "")
        if spec.name in SECRETS and text == "":
            continue  # kept as stored
        if text == "":
            table.pop(spec.name, None)
            continue
        table[spec.name] = form_value(spec.name, text)
        new_password = new_password or spec.name == "password"
    if new_password:  # a new password replaces the stored forms of the old one
        table.pop("password_hash", None)
        table.pop("nt_hash", None)
    return table


def _fields(section: str) -> list:
    return [f for f in SECTION_NAMED[section].fields if f.name not in FROM_ENV]


def _render_form(section: str, key: str | None, shown: dict, problems: dict, status: int = 200):
    return render_template("admin/record.html", section=section, title=TITLES[section],
                           key=key, fields=_fields(section), shown=shown, problems=problems,
                           secrets=SECRETS, form_text=form_text,
                           disable=section in DISABLE), status


@bp.route("/records/<section>/new", methods=["GET", "POST"])
@role_required("admin")
def create(section: str):
    return _edit(section, None)


@bp.route("/records/<section>/<path:key>", methods=["GET", "POST"])
@role_required("admin")
def edit(section: str, key: str):
    return _edit(section, key)


def _edit(section: str, key: str | None):
    spec = _section(section)
    session = portal.db()
    stored = None
    if key is not None:
        stored = data.record(session, section, key)
    if request.method == "GET":
        return _render_form(section, key, stored or {}, {})
    table = table_from_form(section, request.form, stored)
    if key is not None:
        table[spec.key] = key
    try:
        data.put_record(session, section, table, key=key, context=context(),
                        now=portal.now(), audit=audit, isp_id=_isp_id_of(section, table))
    except data.Invalid as exc:
        shown = {**(stored or {}), **table}
        return _render_form(section, key, shown, exc.problems, 422)
    portal.commit()
    flash(f"{TITLES[section][:-1] if section != 'nas' else 'NAS client'} {table[spec.key]} "
          "saved: the running server uses it within seconds.")
    return redirect(url_for("admin.edit", section=section, key=table[spec.key]))


def _isp_id_of(section: str, table: dict) -> int | None:
    """The ISP a record belongs to, so that its operators see the change in their audit."""
    from sqlalchemy import select
    from vpop.store.isp_models import IspRecord
    name = table.get("name") if section == "isp" else table.get("isp") if section == "lease" \
        else None
    if not isinstance(name, str):
        return None
    return portal.db().scalar(select(IspRecord.id).where(IspRecord.name == name))


@bp.route("/records/<section>/<path:key>/disable", methods=["POST"])
@role_required("admin")
def disable(section: str, key: str):
    _section(section)
    if section not in DISABLE:
        abort(404)
    session = portal.db()
    table = data.record(session, section, key)
    field, value = DISABLE[section]
    table[field] = portal.now().replace(microsecond=0) if section == "lease" else value
    try:
        data.put_record(session, section, table, key=key, context=context(), now=portal.now(),
                        audit=audit, isp_id=_isp_id_of(section, table))
    except data.Invalid as exc:
        flash("Not disabled: " + "; ".join(f"{f}: {', '.join(p)}" for f, p in exc.problems.items()))
        return redirect(url_for("admin.edit", section=section, key=key))
    portal.commit()
    flash(f"{key} disabled.")
    return redirect(url_for("admin.edit", section=section, key=key))


# --- the generated NAS configuration ---------------------------------------------------

@bp.route("/nas/<name>/config")
@role_required("admin")
def nas_config(name: str):
    """`vpop nas config NAME` in the browser: viewed, or downloaded (?download=1)."""
    from vpop.provisioning import nasconfig
    from vpop.store.isp_snapshot import load_isps
    from vpop.store.dynauth import nas_entries
    entries = {entry.name: entry for entry in nas_entries(portal.db())}
    if name not in entries:
        abort(404)
    nas = nasconfig.NasEntry(**{f.name: getattr(entries[name], f.name)
                                for f in dataclasses.fields(nasconfig.NasEntry)})
    settings = portal.state().settings
    nas_type = request.args.get("type") or nas.nas_type
    show_secrets = request.args.get("show_secrets") == "1"
    text, problem = "", None
    if nas_type not in nasconfig.CONFIG_TYPES:
        problem = (f"NAS {name!r} is of type {nas_type!r}, which names no vendor: choose "
                   "one of the types below")
    else:
        try:
            setup = nasconfig.setup(
                nas, nas_type=nas_type, listen=settings.server.listen,
                auth_port=settings.server.auth_port, acct_port=settings.server.acct_port,
                interim_interval=settings.accounting.interim_interval,
                isps=nasconfig.tunnel_isps(load_isps(portal.db()), None),
                show_secrets=show_secrets, show_command=f"vpop nas config {name}",
                servers=(), own_address=None, interface="", ctrl_interface="")
            text = nasconfig.render(setup, settings.relative(settings.radius.templates))
        except ConfigError as exc:
            problem = str(exc)
    if request.args.get("download") == "1" and text:
        return Response(text, mimetype="text/plain", headers={
            "Content-Disposition": f'attachment; filename="{name}-{nas_type}.conf"'})
    return render_template("admin/nasconfig.html", name=name, nas_type=nas_type, text=text,
                           problem=problem, types=nasconfig.CONFIG_TYPES,
                           show_secrets=show_secrets), 200 if not problem else 422
