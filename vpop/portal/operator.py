"""An ISP operator's own ISP: its overview, and its RADIUS servers and L2TP network
servers (with their secrets), changed as `vpop import` changes them and applied to the
running server within seconds. Leases, utilization, sessions, tokens and the audit are
the pages of vpop/portal/usage.py, scoped to the operator's ISP."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from vpop.portal import app as portal
from vpop.portal import data
from vpop.portal.audit import audit
from vpop.portal.security import role_required
from vpop.portal.usage import context, not_found_page, scope

bp = Blueprint("operator", __name__, url_prefix="/isp")
bp.register_error_handler(data.NotFound, not_found_page)

# The columns of each list an operator edits, as the import file names them.
SERVER_FIELDS = ("name", "address", "auth_port", "acct_port", "secret", "priority", "weight",
                 "require_message_authenticator")
TUNNEL_FIELDS = ("address", "password", "medium", "assignment_id", "preference",
                 "client_endpoint", "client_auth_id")
INTEGERS = frozenset({"auth_port", "acct_port", "priority", "weight", "preference"})
BOOLEANS = frozenset({"require_message_authenticator"})
SECRETS = frozenset({"secret", "password"})


@bp.route("/")
@role_required("operator")
def index():
    current = scope()
    return render_template("operator/index.html", isp=current.isp,
                           leases=data.leases(portal.db(), current),
                           settings=data.isp_settings(portal.db(), current, current.isp))


def rows_from_form(form, prefix: str, fields: tuple[str, ...]) -> list[dict]:
    """The rows of a list (servers-0-name, ...) as import tables: empty cells left out
    (the default), numbers as numbers, yes/no as booleans; a row left empty is dropped.
    A value that is not a number stays text, for the check to name it."""
    rows = []
    for index in range(int(form.get(f"{prefix}-count", 0) or 0)):
        row = {}
        for name in fields:
            text = form.get(f"{prefix}-{index}-{name}", "").strip()
            if text == "":
                continue
            if name in INTEGERS and text.lstrip("-").isdigit():
                row[name] = int(text)
            elif name in BOOLEANS and text in ("yes", "no"):
                row[name] = text == "yes"
            else:
                row[name] = text
        if any(k not in SECRETS for k in row):
            rows.append(row)
    return rows


@bp.route("/settings", methods=["GET", "POST"])
@role_required("operator")
def settings():
    current = scope()
    problems: dict[str, list[str]] = {}
    shown = data.isp_settings(portal.db(), current, current.isp)
    if request.method == "POST":
        given = {"servers": rows_from_form(request.form, "servers", SERVER_FIELDS),
                 "tunnels": rows_from_form(request.form, "tunnels", TUNNEL_FIELDS)}
        try:
            result = data.change_isp_settings(portal.db(), current, current.isp, given,
                                              context=context(), now=portal.now(), audit=audit)
        except data.Invalid as exc:
            problems = exc.problems
            shown = {**shown, **given}
        else:
            portal.commit()
            flash("Saved: the running server uses it within seconds." if result["changed"]
                  else "Nothing changed.")
            return redirect(url_for("operator.settings"))
    return render_template("operator/settings.html", isp=current.isp, shown=shown,
                           problems=problems, server_fields=SERVER_FIELDS,
                           tunnel_fields=TUNNEL_FIELDS, secrets=SECRETS)
