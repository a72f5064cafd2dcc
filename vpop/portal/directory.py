"""The ISP directory: every ISP with its measured quality, price and status."""

from __future__ import annotations

from flask import Blueprint, render_template

from vpop.portal.security import role_required

bp = Blueprint("directory", __name__, url_prefix="/isps")


@bp.route("/")
@role_required("subscriber", "operator", "admin")
def index():
    return render_template("directory/index.html", rows=[])
