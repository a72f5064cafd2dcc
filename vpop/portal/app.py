"""The portal's application factory: settings in, a Flask app out, with one database
session per request and the blueprints of every area (docs/portal.md)."""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, g, render_template
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.middleware.proxy_fix import ProxyFix

import vpop
from vpop.config import Settings
from vpop.errors import ConfigError
from vpop.portal import security
from vpop.store.engine import make_engine, make_sessionmaker
from vpop.store.files import kept_secret

log = logging.getLogger(__name__)

# One module per area, each with a Blueprint named `bp`, registered in this order.
# A module may instead have `register(app)`, which registers its blueprint itself (the
# JSON API registers through flask-smorest, for its OpenAPI document).
BLUEPRINTS = ("vpop.portal.auth", "vpop.portal.directory", "vpop.portal.subscriber",
              "vpop.portal.usage", "vpop.portal.operator", "vpop.portal.admin",
              "vpop.portal.api")
# Where each role lands after logging in: the first endpoint the app has.
HOMES = {"admin": ("admin.index", "directory.index"),
         "operator": ("operator.index", "directory.index"),
         "subscriber": ("subscriber.home", "directory.index")}
# The navigation bar: (endpoint, label, roles); an endpoint the app lacks is left out.
NAV = (("subscriber.home", "My connection", {"subscriber"}),
       ("directory.index", "ISP directory", {"subscriber", "operator", "admin"}),
       ("operator.index", "My ISP", {"operator"}),
       ("admin.index", "Administration", {"admin"}))
UTC = dt.timezone.utc


@dataclass(slots=True, kw_only=True)
class PortalState:
    """What the app holds for its life (app.extensions["vpop"])."""

    settings: Settings
    sessions: sessionmaker[Session]
    clock: Callable[[], dt.datetime]
    # Issue-18's dynamic authorization, called by the ISP choice; None: the server's.
    apply_choice: Callable[..., Any] | None = None


def web_root() -> Path:
    """web/ beside the package (a source checkout or an editable install), else where
    `pip install` put it: <prefix>/share/vpop/web (setup.cfg, data_files)."""
    candidates = (Path(__file__).resolve().parents[2] / "web",
                  Path(sys.prefix) / "share" / "vpop" / "web")
    for candidate in candidates:
        if (candidate / "templates" / "base.html").is_file():
            return candidate
    raise ConfigError("the portal's templates and static files are missing: looked in "
                      + " and ".join(str(c) for c in candidates))


def create_app(settings: Settings, *, flask_config: dict[str, Any] | None = None,
               clock: Callable[[], dt.datetime] | None = None,
               apply_choice: Callable[..., Any] | None = None) -> Flask:
    """The portal for these settings. `flask_config` overrides Flask's settings (tests);
    `clock` gives the time (UTC-aware) to views and the audit; `apply_choice` stands in
    for the server's dynamic authorization."""
    root = web_root()
    app = Flask(__name__, template_folder=str(root / "templates"),
                static_folder=str(root / "static"))
    portal = settings.portal
    app.config.update(
        SECRET_KEY=secret_key(settings),
        VPOP_SETTINGS=settings,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(seconds=portal.session_lifetime),
        SESSION_COOKIE_NAME="vpop_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=portal.behind_tls_proxy,
        WTF_CSRF_TIME_LIMIT=portal.session_lifetime,
        MAX_CONTENT_LENGTH=1024 * 1024,
        RATELIMIT_HEADERS_ENABLED=True,
    )
    app.config.update(flask_config or {})
    if portal.behind_tls_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]
    engine = make_engine(settings.database_url, create=False)
    app.extensions["vpop"] = PortalState(
        settings=settings, sessions=make_sessionmaker(engine),
        clock=clock or (lambda: dt.datetime.now(UTC)), apply_choice=apply_choice)
    _guard(app, secure=portal.behind_tls_proxy)
    app.teardown_appcontext(_close_db)
    for name in BLUEPRINTS:
        module = importlib.import_module(name)
        if hasattr(module, "register"):
            module.register(app)
        else:
            app.register_blueprint(module.bp)
    _error_pages(app)
    app.jinja_env.filters.update(utc_time=utc_time, duration=duration)
    app.jinja_env.globals.update(home_endpoint=home_endpoint, nav_links=NAV,
                                 view_endpoints=app.view_functions, vpop_version=vpop.__version__)
    return app


def _guard(app: Flask, *, secure: bool) -> None:
    security.login_manager.init_app(app)
    security.login_manager.login_view = "auth.login"
    security.login_manager.login_message = "Please log in."
    security.login_manager.session_protection = "basic"
    security.csrf.init_app(app)
    security.limiter.init_app(app)
    # CSP 'self' for everything: no inline scripts or styles, no CDN. HSTS only where a
    # proxy ends TLS (Talisman sends it on HTTPS requests only).
    security.talisman.init_app(
        app, force_https=False, content_security_policy={"default-src": "'self'",
                                                         "img-src": ["'self'", "data:"],
                                                         "frame-ancestors": "'none'",
                                                         "form-action": "'self'",
                                                         "base-uri": "'self'"},
        session_cookie_secure=secure, session_cookie_http_only=True,
        frame_options="DENY", referrer_policy="same-origin",
        strict_transport_security=secure)


def _error_pages(app: Flask) -> None:
    def page(code: int, title: str, text: str):
        return render_template("error.html", code=code, title=title, text=text), code

    app.register_error_handler(403, lambda e: page(
        403, "Forbidden", "This page is not for your account."))
    app.register_error_handler(404, lambda e: page(404, "Not found", "There is no such page."))
    app.register_error_handler(429, lambda e: page(
        429, "Too many attempts", "Too many login attempts from your address: wait a minute "
        "and try again."))
    app.register_error_handler(CSRFError, lambda e: page(
        400, "Form expired", "The form was not accepted (its security token is missing or "
        "expired). Reload the page and try again."))


def home_endpoint(role: str | None = None) -> str:
    """The page a role lands on: the first of its HOMES the app serves."""
    from flask import current_app
    role = role or (current_user.role if current_user.is_authenticated else "subscriber")
    for endpoint in HOMES[role]:
        if endpoint in current_app.view_functions:
            return endpoint
    return "directory.index"


def utc_time(value: int | float | dt.datetime | None) -> str:
    """Epoch seconds or a datetime as "2026-06-15 12:00 UTC"; "-" for None."""
    if value is None:
        return "-"
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: int | float | None) -> str:
    """1 h 02 min, 5 min 07 s."""
    seconds = int(seconds or 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


# --- per request -------------------------------------------------------------------

def state() -> PortalState:
    from flask import current_app
    return current_app.extensions["vpop"]


def db() -> Session:
    """The request's database session, opened on first use and closed after the
    response; a view that changes something calls ``commit()``."""
    if "db" not in g:
        g.db = state().sessions()
    return g.db


def commit() -> None:
    db().commit()


def now() -> dt.datetime:
    return state().clock()


def _close_db(_exc) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.rollback()  # what a view did not commit is not kept
        session.close()


# --- the secret key ------------------------------------------------------------------

def secret_key(settings: Settings) -> str:
    """[portal] secret_key, else the key in secret_key_file, made (random, owner-only)
    at the first start."""
    if settings.portal.secret_key:
        return settings.portal.secret_key
    path = Path(settings.relative(settings.portal.secret_key_file))
    try:
        return kept_secret(path, lambda: secrets.token_urlsafe(48))
    except OSError as exc:
        raise ConfigError(f"cannot read or create {path}: {exc.strerror}",
                          file=settings.path or None, field="portal.secret_key_file") from None
