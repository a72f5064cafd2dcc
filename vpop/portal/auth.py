"""Logging in and out. Admins and ISP operators log in with their portal account
(argon2); subscribers with their RADIUS user name and password, checked as RADIUS checks
PAP (vpop/aaa/authenticate.py). Every failure looks the same: one message, one status,
one slow hash whether the name exists or not."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from vpop.aaa import credentials
from vpop.aaa.authenticate import pap_password_ok
from vpop.aaa.identify import refusal
from vpop.portal import app as portal
from vpop.portal.forms import LoginForm
from vpop.portal.security import (PortalPrincipal, credential_stamp, limiter, login_limit,
                                  login_manager, parse_id, password_matches)
from vpop.store import portal as accounts
from vpop.store.snapshot import load_subscriber_changes

bp = Blueprint("auth", __name__)
WRONG = "Wrong user name or password."
# What an unknown subscriber's password is checked against: one PBKDF2 run, as for a
# subscriber whose password only a PBKDF2 hash keeps (vpop/provisioning/hashing.py).
_DUMMY_PBKDF2 = credentials.hash_password("not anyone's password", salt=b"vpop-portal-dummy")


@bp.route("/")
def index():
    if current_user.is_authenticated:
        return redirect(url_for(portal.home_endpoint()))
    return redirect(url_for("auth.login"))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(login_limit, methods=["POST"])
def login():
    form = LoginForm()
    failed = False
    if form.validate_on_submit():
        principal = authenticate(form.kind.data, form.name.data, form.password.data)
        if principal is not None:
            session.clear()  # nothing from before the login is carried into it
            login_user(principal)
            session.permanent = True  # expires after [portal] session_lifetime
            portal.commit()
            flash(f"Logged in as {principal.name}.")
            return redirect(_safe_next() or url_for(portal.home_endpoint(principal.role)))
        failed = True
    elif request.method == "POST":
        failed = True
    return render_template("auth/login.html", form=form,
                           error=WRONG if failed else None), 401 if failed else 200


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    session.clear()
    flash("Logged out.")
    return redirect(url_for("auth.login"))


def _safe_next() -> str | None:
    """?next= only to a path of this site (no scheme, no other host)."""
    target = request.args.get("next", "")
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def authenticate(kind: str, name: str, password: str) -> PortalPrincipal | None:
    if kind == "staff":
        return _staff_login(name, password)
    return _subscriber_login(name, password)


def _staff_login(name: str, password: str) -> PortalPrincipal | None:
    user = accounts.user_by_name(portal.db(), name)
    ok = password_matches(user.password_hash if user else None, password)
    if not ok or user is None or not user.enabled:
        return None
    user.last_login = portal.now()
    return _staff_principal(user)


def _staff_principal(user) -> PortalPrincipal:
    return PortalPrincipal(role=user.role, name=user.name, user_id=user.id, isp_id=user.isp_id,
                           stamp=_stamp(user.password_hash, user.role, user.isp_id,
                                        user.enabled))


def _subscriber_login(name: str, password: str) -> PortalPrincipal | None:
    account = _account(name)
    secret = password.encode("utf-8")
    slow = account is not None and account.cleartext is None and account.nt_hash is None \
        and account.password_hash is not None
    ok = account is not None and pap_password_ok(account, secret)
    if not slow:  # the one PBKDF2 run every failure costs
        credentials.verify_password_hash(secret, _DUMMY_PBKDF2)
    if not ok or "pap" not in account.methods or refusal(account, portal.now().timestamp()):
        return None
    return _subscriber_principal(account)


def _account(name: str):
    if not name or len(name) > 128:
        return None
    return load_subscriber_changes(portal.db(), [name]).accounts.get(name)


def _subscriber_principal(account) -> PortalPrincipal:
    credential = account.password_hash or (account.nt_hash or b"").hex() or \
        (account.cleartext or b"").decode("utf-8", "replace")
    return PortalPrincipal(role="subscriber", name=account.username,
                           stamp=_stamp(credential, account.enabled, sorted(account.methods)))


def _stamp(*parts) -> str:
    return credential_stamp(current_app.config["SECRET_KEY"], *parts)


@login_manager.user_loader
def load_user(user_id: str) -> PortalPrincipal | None:
    """The principal of a session, if its account still stands as it was at the login:
    a changed password, role or ISP, or a disabled account, ends the session."""
    parsed = parse_id(user_id)
    if parsed is None:
        return None
    role, name, stamp = parsed
    if role == "subscriber":
        account = _account(name)
        if account is None or refusal(account, portal.now().timestamp()):
            return None
        principal = _subscriber_principal(account)
    else:
        user = accounts.user_by_name(portal.db(), name)
        if user is None or not user.enabled:
            return None
        principal = _staff_principal(user)
    return principal if principal.role == role and principal.stamp == stamp else None
