"""Leases, utilization, sessions and accounting: an ISP operator sees its own ISP's, an
admin every ISP's, through the same pages (every query scoped by `scope()`)."""

from __future__ import annotations

import json

from flask import (Blueprint, Response, abort, flash, jsonify, redirect, render_template,
                   request, stream_with_context, url_for)
from flask_login import current_user

from vpop.portal import app as portal
from vpop.portal import data
from vpop.portal.audit import audit
from vpop.portal.security import own_isp_id, role_required

bp = Blueprint("usage", __name__, url_prefix="/usage")
STAFF = ("operator", "admin")


def not_found_page(exc: data.NotFound):
    """An object of another ISP is answered as one that does not exist."""
    return render_template("error.html", code=404, title="Not found",
                           text="There is no such page."), 404


bp.register_error_handler(data.NotFound, not_found_page)


def scope() -> data.Scope:
    """The logged-in operator's ISP, or every ISP for an admin."""
    isp_id = own_isp_id()
    if isp_id is None:
        return data.Scope(actor=current_user.actor)
    try:
        return data.isp_scope(portal.db(), isp_id, current_user.actor)
    except data.NotFound:
        abort(403)


def shown_args() -> dict[str, str]:
    """The query's arguments for the page's links and form: an operator's `isp` is not
    its to choose, and is left out."""
    args = request.args.to_dict()
    if current_user.role != "admin":
        args.pop("isp", None)
    return args


def _period() -> tuple[data.Period | None, dict]:
    try:
        return data.period(portal.db(), request.args, now=portal.now()), {}
    except data.Invalid as exc:
        return None, exc.problems


@bp.route("/leases")
@role_required(*STAFF)
def leases():
    return render_template("usage/leases.html", leases=data.leases(portal.db(), scope()))


@bp.route("/leases/<int:lease_id>")
@role_required(*STAFF)
def lease(lease_id: int):
    when, problems = _period()
    found = data.lease(portal.db(), scope(), lease_id)
    usage = data.lease_usage(portal.db(), scope(), lease_id, when, now=portal.now()) \
        if when else None
    return render_template("usage/lease.html", lease=found, usage=usage, problems=problems,
                           args=shown_args(),
                           chart_json=json.dumps(usage["chart"]) if usage else "null")


@bp.route("/leases/<int:lease_id>/usage.json")
@role_required(*STAFF)
def lease_json(lease_id: int):
    when, problems = _period()
    if when is None:
        return jsonify(errors=problems), 400
    usage = data.lease_usage(portal.db(), scope(), lease_id, when, now=portal.now())
    return jsonify(usage)


@bp.route("/leases/<int:lease_id>/usage.csv")
@role_required(*STAFF)
def lease_csv(lease_id: int):
    when, problems = _period()
    if when is None:
        abort(400)
    usage = data.lease_usage(portal.db(), scope(), lease_id, when, now=portal.now())
    from vpop.accounting.reports import UTILIZATION_COLUMNS
    return _csv(data.rows_csv(usage["rows"], UTILIZATION_COLUMNS),
                f"lease-{usage['lease']['name']}.csv")


def _csv(lines, filename: str) -> Response:
    return Response(lines, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{filename}"'})


@bp.route("/reports")
@role_required(*STAFF)
def reports():
    when, problems = _period()
    by = request.args.get("by", "isp")
    report = None
    if when is not None:
        try:
            report = data.utilization(portal.db(), scope(), by, when,
                                      nas=request.args.get("nas") or None)
        except data.Invalid as exc:
            problems = exc.problems
    return render_template("usage/reports.html", report=report, problems=problems,
                           args=shown_args(), by=by, choices=data.BY,
                           chart_json=json.dumps(report["chart"]) if report else "null")


@bp.route("/reports.csv")
@role_required(*STAFF)
def reports_csv():
    when, problems = _period()
    if when is None:
        abort(400)
    try:
        report = data.utilization(portal.db(), scope(), request.args.get("by", "isp"), when,
                                  nas=request.args.get("nas") or None, chart=False)
    except data.Invalid:
        abort(400)
    return _csv(data.rows_csv(report["rows"], report["columns"]),
                f"utilization-by-{report['by']}.csv")


@bp.route("/sessions")
@role_required(*STAFF)
def sessions():
    problems, page = {}, dict(sessions=[], next=None)
    try:
        page = data.sessions(portal.db(), scope(), request.args)
    except data.Invalid as exc:
        problems = exc.problems
    args = shown_args()
    following = None
    if page["next"]:
        following = url_for("usage.sessions", **{**args, "after": page["next"]})
    return render_template("usage/sessions.html", page=page, problems=problems,
                           args=args, following=following,
                           csv_url=url_for("usage.sessions_csv", **{
                               k: v for k, v in args.items() if k != "after"}))


@bp.route("/sessions.csv")
@role_required(*STAFF)
def sessions_csv():
    current = scope()
    try:
        data.session_query(current, request.args)
    except data.Invalid:
        abort(400)
    # Produced page by page as it is sent: the request (and its database session) lasts
    # until the last line.
    return _csv(stream_with_context(data.sessions_csv(portal.db(), current, request.args)),
                "sessions.csv")


@bp.route("/sessions/<int:ident>")
@role_required(*STAFF)
def session(ident: int):
    found = data.session_detail(portal.db(), scope(), ident)
    return render_template("usage/session.html", found=found, result=None)


@bp.route("/sessions/<int:ident>/disconnect", methods=["POST"])
@role_required("admin")
def disconnect(ident: int):
    try:
        outcome = data.disconnect(portal.state().sessions, portal.state().settings, scope(),
                                  ident, reason=request.form.get("reason", "")[:200])
    except data.Invalid as exc:
        for field, problems in exc.problems.items():
            flash(f"{field}: {'; '.join(problems)}")
        return redirect(url_for("usage.session", ident=ident))
    found = data.session_detail(portal.db(), scope(), ident)
    return render_template("usage/session.html", found=found, result=outcome)


# --- API tokens and the audit, each user's own scope -------------------------------------

@bp.route("/tokens", methods=["GET", "POST"])
@role_required(*STAFF)
def tokens():
    from vpop.store import api_tokens
    current, made, problems = scope(), None, {}
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        isp = current.isp if not current.admin else (request.form.get("isp") or None)
        if not name or len(name) > 128:
            problems["name"] = ["must be 1 to 128 characters"]
        else:
            try:
                row, made = api_tokens.create(portal.db(), isp=isp, name=name,
                                              created_by=current.actor, now=portal.now())
            except ValueError as exc:
                problems["isp"] = [str(exc)]
            else:
                audit("token.create", f"token {row.id}",
                      after=dict(name=name, scope=row.scope, isp=isp), isp_id=row.isp_id)
                portal.commit()
    listed = api_tokens.listed(portal.db(), isp_id=current.isp_id)
    return render_template("usage/tokens.html", tokens=listed, made=made, problems=problems,
                           isps=_isp_names() if current.admin else [])


@bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@role_required(*STAFF)
def revoke_token(token_id: int):
    from vpop.store import api_tokens
    current = scope()
    row = api_tokens.revoke(portal.db(), token_id, now=portal.now(), isp_id=current.isp_id)
    if row is None:
        abort(404)
    audit("token.revoke", f"token {row.id}", after=dict(revoked=True), isp_id=row.isp_id)
    portal.commit()
    flash(f"Token {row.id} ({row.name}) revoked.")
    return redirect(url_for("usage.tokens"))


def _isp_names() -> list[str]:
    return [row["name"] for row in data.isps(portal.db(), data.Scope(), now=portal.now())]


@bp.route("/audit")
@role_required(*STAFF)
def audit_log():
    before = request.args.get("before", type=int)
    log = data.audit_log(portal.db(), scope(), before_id=before)
    return render_template("usage/audit.html", log=log)


@bp.route("/audit/<int:audit_id>/rollback", methods=["POST"])
@role_required(*STAFF)
def rollback(audit_id: int):
    try:
        data.rollback_isp_settings(portal.db(), scope(), audit_id, context=context(),
                                   now=portal.now(), audit=audit)
    except data.Invalid as exc:
        for field, problems in exc.problems.items():
            flash(f"Not rolled back: {field}: {'; '.join(problems)}")
        return redirect(url_for("usage.audit_log"))
    portal.commit()
    flash(f"Change {audit_id} rolled back: the servers and LNS are as before it.")
    return redirect(url_for("usage.audit_log"))


def context():
    """What provisioning checks need: the caller ID settings, the reply templates the
    server renders (so a template an ISP names is checked where the server looks)."""
    from vpop.provisioning.fields import Context
    settings = portal.state().settings
    return Context(env={}, identification=settings.identification, replies=_replies(settings))


def _replies(settings):
    from vpop.aaa.reply import ReplyRenderer
    from vpop.server.wiring import load_dictionary
    return ReplyRenderer(load_dictionary(settings), settings.relative(settings.radius.templates))
