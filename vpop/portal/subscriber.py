"""A subscriber's own pages: its sessions and usage, its ISP, and its choice of ISP."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from vpop.portal.security import role_required

bp = Blueprint("subscriber", __name__, url_prefix="/me")


@bp.route("/")
@role_required("subscriber")
def home():
    return render_template("subscriber/home.html", name=current_user.name)
