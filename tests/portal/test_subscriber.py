"""A subscriber's choice of ISP: stored, applied to its live session through dynamic
authorization to a NAS stand-in on a real UDP port, each answer shown in words, the
change audited; an ISP that cannot serve is refused with a field message."""

from __future__ import annotations

import dataclasses
import time

import pytest
from sqlalchemy import select, update

from conftest import NOW, log_in, portal_settings, post_form
from support.das_peer import NasStandIn
from vpop.accounting.records import AcctRecord
from vpop.accounting.routing import Routing
from vpop.config import DynAuthSettings
from vpop.portal.app import create_app
from vpop.store import accounting as accounting_store
from vpop.store.engine import make_engine, make_sessionmaker
from vpop.store.isp_models import IspRecord
from vpop.store.models import Nas, Subscriber
from vpop.store.portal_models import PortalAudit


def prepare(url: str, das_port: int) -> None:
    """alice online on the demo NAS localhost, routed to isp-local; the NAS's DAS port
    is the stand-in's."""
    engine = make_engine(url)
    now = int(NOW.timestamp())
    try:
        with make_sessionmaker(engine).begin() as session:
            session.execute(update(Nas).values(das_address="127.0.0.1", das_port=das_port))
        with make_sessionmaker(engine).begin() as session:  # the ledger's lock comes first
            accounting_store.apply_batch(session, [AcctRecord(
                status="start", unique_id="portal-test-alice", session_id="T1", username="alice",
                nas_address="127.0.0.1", nas_port="3", nas_port_number=3,
                calling_station_id=None, framed_ip=None, event_time=now, arrival=now,
                session_time=0, input_octets=0, output_octets=0, terminate_cause=None,
                routing=Routing(isp="isp-local", mode="local", reason="realm"),
                event_stamp=now)], now=now)
    finally:
        engine.dispose()


@pytest.fixture
def choice_client(demo_db_url):
    with NasStandIn(secret=b"testing123") as nas:
        prepare(demo_db_url, nas.port)
        settings = dataclasses.replace(portal_settings(demo_db_url),
                                       dynauth=DynAuthSettings(timeout=0.2, retries=1))
        app = create_app(settings, clock=lambda: NOW)
        client = app.test_client()
        assert log_in(client, "subscriber").status_code == 302
        yield client, nas, app


@pytest.mark.parametrize("step,shown", [
    ("ack", "ACK: done"),
    (("nak", 503), "NAK: the NAS refused: Session-Context-Not-Found (Error-Cause 503)"),
    ("silent", "timeout: the NAS did not answer after 2 tries"),
])
def test_the_choice_is_applied_and_each_answer_shown(choice_client, step, shown):
    client, nas, app = choice_client
    nas.script(step)
    started = time.monotonic()
    reply = post_form(client, "/me/isp", {"isp": "isp-tunnel"})
    assert time.monotonic() - started < 10  # bounded by [dynauth] timeout and retries
    page = reply.get_data(as_text=True)
    assert reply.status_code == 200, page
    assert shown in " ".join(page.split()), page
    assert "Your ISP is now isp-tunnel" in page
    with app.app_context():
        with app.extensions["vpop"].sessions() as session:
            chosen = session.scalar(select(IspRecord.name).join(
                Subscriber, Subscriber.isp_id == IspRecord.id).where(
                Subscriber.username == "alice"))
            audit = session.scalars(select(PortalAudit)).all()
    assert chosen == "isp-tunnel"
    assert [(a.actor, a.action, a.object) for a in audit] == [
        ("subscriber:alice", "subscriber.choose_isp", "subscriber alice")]
    assert audit[0].before["isp"] is None and audit[0].after["isp"] == "isp-tunnel"
    assert audit[0].after["sessions"][0]["outcome"] == {"ack": "ack", "silent": "timeout"}.get(
        step, "nak")


def test_an_isp_that_cannot_serve_is_refused_and_nothing_changes(choice_client):
    client, nas, app = choice_client
    with app.app_context():
        with app.extensions["vpop"].sessions.begin() as session:
            session.execute(update(IspRecord).where(IspRecord.name == "isp-tunnel")
                            .values(status="down"))
    reply = post_form(client, "/me/isp", {"isp": "isp-tunnel"})
    assert reply.status_code == 400
    assert "isp-tunnel cannot serve now: marked down" in reply.get_data(as_text=True)
    assert nas.requests == []
    reply = post_form(client, "/me/isp", {"isp": "no-such-isp"})
    assert reply.status_code == 400 and nas.requests == []
