"""Who is logged in and what they may see: the extensions that guard every request
(sessions, CSRF, the login rate limit, security headers), the three kinds of user, the
role decorator and the tenant check. docs/portal.md, "Security".

A view states its audience with ``@role_required(...)``; an operator's queries filter
by ``own_isp_id()``, and an object of another ISP is answered by ``abort(404)`` through
``check_tenant``, never hidden by leaving out a link.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect

login_manager = LoginManager()
csrf = CSRFProtect()
# One process, so the counts live in its memory (docs/portal.md): a restart forgets them.
limiter = Limiter(key_func=get_remote_address, storage_uri="memory://", default_limits=[])
talisman = Talisman()

ROLES = ("admin", "operator", "subscriber")
_hasher = PasswordHasher()  # argon2id with the library's current defaults


# --- passwords of admins and operators ----------------------------------------------

def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(stored: str | None, password: str) -> bool:
    """argon2 verification; an unknown user is checked against a dummy hash, so that
    the answer costs the same whether the name exists or not."""
    try:
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("not anyone's password")


# --- the logged-in user -------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class PortalPrincipal:
    """The user of a request, as Flask-Login keeps it. `stamp` is derived from the
    stored credential, so a changed password or a disabled account ends every session
    made before (the loader compares it on each request)."""

    role: str  # admin | operator | subscriber
    name: str
    stamp: str
    user_id: int | None = None  # portal_user.id of admins and operators
    isp_id: int | None = None  # an operator's ISP
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False

    def get_id(self) -> str:
        return f"{self.role}\x1f{self.name}\x1f{self.stamp}"

    @property
    def actor(self) -> str:
        """How the audit names this user: "admin:admin", "operator:isp-local-operator",
        "subscriber:alice"."""
        return f"{self.role}:{self.name}"


def credential_stamp(secret_key: str, *parts: object) -> str:
    """A short keyed digest of what a session depends on (the stored password hash, the
    role, the ISP): the session cookie carries it, never the hash itself."""
    text = "\x1f".join("" if part is None else str(part) for part in parts)
    return hmac.new(secret_key.encode(), text.encode(), hashlib.sha256).hexdigest()[:16]


def parse_id(user_id: str) -> tuple[str, str, str] | None:
    parts = user_id.split("\x1f")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and parts[0] in ROLES else None


def role_required(*roles: str):
    """The view answers these roles only: a visitor not logged in is sent to the login
    page, a user of another role gets 403."""
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"roles must be among {ROLES}")

    def decorate(view):
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)
        guarded.portal_roles = frozenset(roles)  # read by the route tests
        return guarded
    return decorate


def own_isp_id() -> int | None:
    """The ISP whose data the user may see: an operator's own; None for an admin (every
    ISP). Subscribers have no ISP scope: their views filter by their own name."""
    if current_user.role == "operator":
        return current_user.isp_id
    if current_user.role == "admin":
        return None
    abort(403)


def check_tenant(isp_id: int | None) -> None:
    """404 for an object of another ISP than the operator's (as if it did not exist)."""
    if current_user.role == "operator" and isp_id != current_user.isp_id:
        abort(404)


def login_limit() -> str:
    """The login rate limit as Flask-Limiter reads it, from [portal]."""
    portal = current_app.config["VPOP_SETTINGS"].portal
    return f"{portal.login_attempts} per {portal.login_window} second"


def client_address() -> str:
    return request.remote_addr or ""
