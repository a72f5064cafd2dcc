"""A subscriber's own pages: its connection (profile, ISP, sessions in progress and
recent ones, usage) and its choice of ISP, stored and applied to its live sessions by
dynamic authorization (vpop/server/dynauth.py), with each NAS's answer shown."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, render_template
from flask_login import current_user
from sqlalchemy import func, select

from vpop.errors import ConfigError
from vpop.portal.app import commit, db, now, state
from vpop.portal.audit import audit
from vpop.portal.directory import serving_choices
from vpop.portal.forms import ChooseIspForm
from vpop.portal.security import role_required
from vpop.store.accounting_models import RadAcct
from vpop.store.isp_models import IspRecord
from vpop.store.models import Subscriber
from vpop.store.reports import SessionQuery, session_page
from vpop.store.snapshot import load_subscriber_changes

bp = Blueprint("subscriber", __name__, url_prefix="/me")
RECENT = 20  # sessions listed


def _account():
    return load_subscriber_changes(db(), [current_user.name]).accounts.get(current_user.name)


def _usage(name: str, since: dt.datetime) -> dict:
    """Sessions that started since `since`: count, seconds online and octets (the
    username's index with start_time: no scan)."""
    c = RadAcct.__table__.c
    row = db().execute(select(func.count(), func.coalesce(func.sum(c.session_time), 0),
                              func.coalesce(func.sum(c.input_octets), 0),
                              func.coalesce(func.sum(c.output_octets), 0))
                       .where(c.username == name, c.start_time >= since)).one()
    return {"since": since, "sessions": int(row[0]), "seconds": int(row[1]),
            "input_octets": int(row[2]), "output_octets": int(row[3])}


@bp.route("/")
@role_required("subscriber")
def home():
    name = current_user.name
    at = now()
    live, _ = session_page(db(), SessionQuery(username=name, status="open"), limit=RECENT)
    recent, more = session_page(db(), SessionQuery(username=name), limit=RECENT)
    month = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return render_template("subscriber/home.html", account=_account(), live=live,
                           recent=recent, more=more is not None, usage=_usage(name, month),
                           now=at)


def _choice_form(account) -> tuple[ChooseIspForm, dict[str, str]]:
    isps, unavailable = serving_choices(db(), now())
    form = ChooseIspForm()
    profile_isp = account.profile.isp
    form.isp.choices = [("", f"my profile's ISP ({profile_isp or 'none'})")] + [
        (isp.name, isp.name if isp.name not in unavailable
         else f"{isp.name} (cannot serve now: {unavailable[isp.name]})") for isp in isps]
    if not form.is_submitted():
        chosen = _own_choice(current_user.name)
        form.isp.data = chosen or ""
    return form, unavailable


def _own_choice(name: str) -> str | None:
    return db().scalar(select(IspRecord.name).join(Subscriber, Subscriber.isp_id == IspRecord.id)
                       .where(Subscriber.username == name))


@bp.route("/isp", methods=["GET", "POST"])
@role_required("subscriber")
def choose():
    account = _account()
    form, unavailable = _choice_form(account)
    result = None
    if form.validate_on_submit():
        wanted = form.isp.data or None
        if wanted in unavailable:
            form.isp.errors = [f"{wanted} cannot serve now: {unavailable[wanted]}"]
        else:
            try:
                result = _apply(wanted)
            except ConfigError as exc:
                form.isp.errors = [str(exc)]
            else:
                account = _account()
    return render_template("subscriber/choose.html", form=form, account=account,
                           result=result, choice_rule="choice" in state().settings.isp.chain
                           ), 400 if form.errors else 200


def _apply(isp: str | None):
    """Store the choice and apply it to the live sessions (issue-18's dynamic
    authorization: each request bounded by [dynauth] timeout and retries, so the page
    answers within their budget whatever the NASes do); audited here too."""
    settings = state().settings
    apply = state().apply_choice
    if apply is None:
        from vpop.server.dynauth import apply_subscriber_choice as apply
    # Nothing of this request's own transaction is held while the NASes are asked.
    db().rollback()
    result = apply(state().sessions, settings, actor=current_user.actor,
                   username=current_user.name, isp=isp)
    change = result.change
    isp_id = db().scalar(select(IspRecord.id).where(IspRecord.name == change.after.isp)) \
        if change.after.isp else None
    audit("subscriber.choose_isp", f"subscriber {current_user.name}",
          before={"isp": change.before.chosen_isp, "effective_isp": change.before.isp},
          after={"isp": change.after.chosen_isp, "effective_isp": change.after.isp,
                 "sessions": [{"session": r.session_id, "nas": r.nas, "kind": r.kind,
                               "outcome": r.outcome, "result": r.result.describe()}
                              for r in result.sessions],
                 "unchanged": list(result.unchanged)},
          isp_id=isp_id)
    commit()
    return result
