"""The JSON API under /api/v1: the data and actions of the operator's and admin's
pages, for programs (docs/api.md). Authenticated by a token (``Authorization: Bearer
TOKEN``; vpop/store/api_tokens.py), never by the portal's cookie, so no CSRF token is
needed or accepted in its place. A token of an ISP sees and changes only that ISP's
data: another ISP's objects answer 404, admin-only calls 403. Described by an OpenAPI
document at /api/v1/openapi.json (flask-smorest, marshmallow schemas).
"""

from __future__ import annotations

from flask import Flask, Response, g, request, stream_with_context
from flask import abort as flask_abort
from flask.views import MethodView
from flask_smorest import Api, Blueprint, abort
from marshmallow import Schema, fields, validate

from vpop.portal import app as portal
from vpop.portal import data
from vpop.portal.audit import audit, masked
from vpop.portal.security import csrf
from vpop.portal.usage import context
from vpop.store import api_tokens

PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=PREFIX,
               description="Leases, utilization, sessions, ISP servers, provisioning "
                           "records, tokens and the audit, scoped by the token")
csrf.exempt(bp)
OPENAPI = {"API_TITLE": "vpop", "API_VERSION": "v1", "OPENAPI_VERSION": "3.0.3",
           "OPENAPI_URL_PREFIX": PREFIX, "OPENAPI_JSON_PATH": "openapi.json",
           "API_SPEC_OPTIONS": {
               "components": {"securitySchemes": {
                   "bearer": {"type": "http", "scheme": "bearer",
                              "description": "an API token (vpop token create, or the "
                                             "portal's API tokens page)"}}},
               "security": [{"bearer": []}]}}


def register(app: Flask) -> None:
    """The API and its OpenAPI document on the app (create_app calls this)."""
    for key, value in OPENAPI.items():
        app.config.setdefault(key, value)
    Api(app).register_blueprint(bp)


# --- authentication ----------------------------------------------------------------------

@bp.before_request
def _authenticate() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    found = None
    if scheme.lower() == "bearer" and token.strip():
        found = api_tokens.scope_of(portal.db(), token.strip(), now=portal.now())
    if found is None:
        response = Response('{"code": 401, "status": "Unauthorized", "message": "a valid '
                            'token is required: Authorization: Bearer TOKEN"}\n', 401,
                            mimetype="application/json",
                            headers={"WWW-Authenticate": 'Bearer realm="vpop"'})
        flask_abort(response)
    portal.commit()  # the token's last use
    actor = f"token:{found.token_id}:{found.name}"
    g.api_scope = data.Scope(isp=found.isp, isp_id=found.isp_id, actor=actor)


def scope() -> data.Scope:
    return g.api_scope


def admin_only() -> None:
    if not scope().admin:
        abort(403, message="this call needs an admin token")


def _api_audit(action, obj, **kw):
    return audit(action, obj, actor=scope().actor, **kw)


@bp.errorhandler(data.Invalid)
def _invalid(exc: data.Invalid):
    """422 with each problem by its field (in the query of a GET, else the body);
    nothing was changed."""
    where = "query" if request.method == "GET" else "json"
    return {"code": 422, "status": "Unprocessable Entity", "errors": {where: exc.problems},
            "message": "invalid values: nothing was changed"}, 422


@bp.errorhandler(data.NotFound)
def _not_found(exc: data.NotFound):
    """Another ISP's object is answered as one that does not exist."""
    return {"code": 404, "status": "Not Found", "message": "no such object"}, 404


# --- schemas (the OpenAPI document's, and the checks of query arguments) ---------------

class PeriodArgs(Schema):
    from_ = fields.String(data_key="from", metadata={"description": "start: 2026-06-14 or "
                                                     "2026-06-14T10:00 (UTC unless an offset)"})
    to = fields.String(metadata={"description": "end, exclusive (default: the newest "
                                                "accounting)"})
    grain = fields.String(validate=validate.OneOf(("5min", "hour", "day")))


class UtilizationArgs(PeriodArgs):
    by = fields.String(load_default="isp", validate=validate.OneOf(data.BY))
    nas = fields.String(metadata={"description": "only this NAS"})


class SessionArgs(Schema):
    isp = fields.String(metadata={"description": "admin tokens only; an ISP token sees its own"})
    lease = fields.Integer()
    nas = fields.String()
    user = fields.String()
    status = fields.String(validate=validate.OneOf(("open", "closed")))
    from_ = fields.String(data_key="from", metadata={"description": "started from"})
    to = fields.String(metadata={"description": "started before"})
    after = fields.String(metadata={"description": "the `next` of the page before"})
    limit = fields.Integer(load_default=50, validate=validate.Range(1, data.MAX_PAGE))
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv")))


class DisconnectIn(Schema):
    reason = fields.String(load_default="", validate=validate.Length(max=200))


class ServersIn(Schema):
    servers = fields.List(fields.Dict(), metadata={"description": "[[isp]] servers, in full"})
    tunnels = fields.List(fields.Dict(), metadata={"description": "[[isp]] tunnels, in full"})


class TokenIn(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 128))
    isp = fields.String(metadata={"description": "admin tokens only: the ISP the new token "
                                                 "is scoped to (none: an admin token)"})


class AuditArgs(Schema):
    before = fields.Integer(metadata={"description": "the `next` of the page before"})


def _args(given: dict) -> dict[str, str]:
    """Parsed query arguments back as the text the data functions read."""
    out = {("from" if k == "from_" else k): str(v) for k, v in given.items() if v is not None}
    return out


# --- ISPs and their servers ---------------------------------------------------------------

@bp.route("/isps")
def isps():
    """ISPs with price, status and measured quality (an ISP token: its own)."""
    return {"isps": data.isps(portal.db(), scope(), now=portal.now())}


@bp.route("/isps/<name>")
def isp(name: str):
    """One ISP with its quality."""
    for found in data.isps(portal.db(), scope(), now=portal.now()):
        if found["name"] == name:
            return found
    raise data.NotFound(f"ISP {name}")


@bp.route("/isps/<name>/servers")
class IspServers(MethodView):
    def get(self, name: str):
        """The ISP's RADIUS servers and LNS endpoints (secrets shown as ***)."""
        return masked(data.isp_settings(portal.db(), scope(), name))

    @bp.arguments(ServersIn)
    def put(self, given, name: str):
        """Replace the servers and/or LNS endpoints, checked as `vpop import` checks
        them; a secret given as "" or "***" keeps the stored one of the same server name
        (LNS address). Audited; in effect on the running server within seconds."""
        result = data.change_isp_settings(portal.db(), scope(), name, given,
                                          context=context(), now=portal.now(),
                                          audit=_api_audit)
        portal.commit()
        return masked(result)


@bp.route("/audit/<int:audit_id>/rollback", methods=["POST"])
def rollback(audit_id: int):
    """Put back the servers and LNS endpoints an audited change replaced."""
    result = data.rollback_isp_settings(portal.db(), scope(), audit_id, context=context(),
                                        now=portal.now(), audit=_api_audit)
    portal.commit()
    return masked(result)


# --- leases and utilization ------------------------------------------------------------

@bp.route("/leases")
def leases():
    """The leases (an ISP token: its own) with the sessions online on each now."""
    return {"leases": data.leases(portal.db(), scope())}


@bp.route("/leases/<int:lease_id>")
def lease(lease_id: int):
    return data.lease(portal.db(), scope(), lease_id)


def _period(given: dict) -> data.Period:
    return data.period(portal.db(), _args(given), now=portal.now())


@bp.route("/leases/<int:lease_id>/utilization")
@bp.arguments(PeriodArgs, location="query")
def lease_utilization(given, lease_id: int):
    """Sessions online (peak, average, in-progress sessions included) and traffic per
    bucket against the lease, and the under- and over-utilization events."""
    when = _period(given)
    return data.lease_usage(portal.db(), scope(), lease_id, when, now=portal.now())


@bp.route("/utilization")
@bp.arguments(UtilizationArgs, location="query")
def utilization(given):
    """Per bucket and ISP, lease or NAS: sessions, average and peak online, octets."""
    when = _period(given)
    return data.utilization(portal.db(), scope(), given["by"], when,
                            nas=given.get("nas"), chart=False)


# --- sessions ---------------------------------------------------------------------------

@bp.route("/sessions")
@bp.arguments(SessionArgs, location="query")
def sessions(given):
    """Sessions newest first, a page at a time (`next`: the position of the next page);
    format=csv streams every session of the filters as CSV."""
    args = _args(given)
    if given["format"] == "csv":
        data.session_query(scope(), args)
        return Response(stream_with_context(data.sessions_csv(portal.db(), scope(), args)),
                        mimetype="text/csv")
    return data.sessions(portal.db(), scope(), args)


@bp.route("/sessions/<int:ident>")
def session(ident: int):
    """One session with its accounting records."""
    return data.session_detail(portal.db(), scope(), ident)


@bp.route("/sessions/<int:ident>/disconnect", methods=["POST"])
@bp.arguments(DisconnectIn)
def disconnect(given, ident: int):
    """Disconnect a live session (admin tokens): the NAS's answer, ACK, NAK with its
    Error-Cause in words, or timeout."""
    admin_only()
    return data.disconnect(portal.state().sessions, portal.state().settings, scope(),
                           ident, reason=given["reason"])


# --- provisioning records (admin) -------------------------------------------------------

def _section(section: str) -> str:
    if section not in data.SECTIONS:
        abort(404, message=f"no section {section}: use {', '.join(data.SECTIONS)}")
    return section


@bp.route("/records/<section>")
class Records(MethodView):
    def get(self, section: str):
        """The keys of a section's records (nas, isp, profile, subscriber, lease)."""
        admin_only()
        return {section: data.records(portal.db(), _section(section))}

    @bp.arguments(Schema.from_dict({}, name="RecordIn")(unknown="include"))
    def post(self, given, section: str):
        """Create a record from its table as `vpop import` reads it (JSON for TOML)."""
        admin_only()
        return _put(section, None, given), 201


@bp.route("/records/<section>/<path:key>")
class Record(MethodView):
    def get(self, section: str, key: str):
        """A record as an import table (secrets shown as ***)."""
        admin_only()
        return masked(data.jsonable(data.record(portal.db(), _section(section), key)))

    @bp.arguments(Schema.from_dict({}, name="RecordChange")(unknown="include"))
    def put(self, given, section: str, key: str):
        """Change a record: the fields given replace the stored ones, the others stay; a
        secret given as "***" keeps the stored one."""
        admin_only()
        stored = data.record(portal.db(), _section(section), key)
        table = {**stored, **{k: v for k, v in given.items() if v != data.MASK}}
        if "password" in given and given["password"] != data.MASK:
            table.pop("password_hash", None)
            table.pop("nt_hash", None)
        return _put(section, key, table)


def _put(section: str, key: str | None, table: dict) -> dict:
    result = data.put_record(portal.db(), _section(section), table, key=key,
                             context=context(), now=portal.now(), audit=_api_audit)
    portal.commit()
    return masked(result)


# --- tokens and the audit --------------------------------------------------------------

@bp.route("/tokens")
class Tokens(MethodView):
    def get(self):
        """The tokens (an ISP token: its ISP's), without their values."""
        return {"tokens": [{**t, **{k: t[k].isoformat() if t[k] else None
                                    for k in ("created", "last_used", "revoked")}}
                           for t in api_tokens.listed(portal.db(), isp_id=scope().isp_id)]}

    @bp.arguments(TokenIn)
    def post(self, given):
        """Make a token (shown once). An ISP token makes tokens of its own ISP only."""
        current = scope()
        isp = current.isp if not current.admin else given.get("isp")
        try:
            row, token = api_tokens.create(portal.db(), isp=isp, name=given["name"],
                                           created_by=current.actor, now=portal.now())
        except ValueError as exc:
            abort(422, errors={"json": {"isp": [str(exc)]}}, message="nothing was changed")
        _api_audit("token.create", f"token {row.id}",
                   after=dict(name=row.name, scope=row.scope, isp=isp), isp_id=row.isp_id)
        portal.commit()
        return {"id": row.id, "name": row.name, "scope": row.scope, "isp": isp,
                "token": token}, 201


@bp.route("/tokens/<int:token_id>", methods=["DELETE"])
def revoke_token(token_id: int):
    """Revoke a token (an ISP token: one of its ISP's)."""
    row = api_tokens.revoke(portal.db(), token_id, now=portal.now(), isp_id=scope().isp_id)
    if row is None:
        abort(404, message=f"no token {token_id}")
    _api_audit("token.revoke", f"token {row.id}", after=dict(revoked=True), isp_id=row.isp_id)
    portal.commit()
    return {"id": row.id, "revoked": row.revoked.isoformat()}


@bp.route("/audit")
@bp.arguments(AuditArgs, location="query")
def audit_log(given):
    """Changes made through the portal and the API (an ISP token: its ISP's), and the
    dynamic-authorization requests."""
    return data.jsonable(data.audit_log(portal.db(), scope(), before_id=given.get("before")))
