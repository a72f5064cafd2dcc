"""The public dynamic-authorization functions against a NAS stand-in on a real UDP
socket, on SQLite and PostgreSQL: what is sent, the answer, the audit, a session's
mark after a Disconnect-ACK and the stop-overdue rule, a subscriber's choice applied."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import select

from support.das_peer import NasStandIn
from vpop.config import DynAuthSettings, Settings
from vpop.dynauth.request import Change
from vpop.provisioning.fields import KEEP
from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.server import dynauth as D
from vpop.server.metrics import DynAuthCounts
from vpop.server.writer import Recorder
from vpop.store import dynauth as store
from vpop.store.accounting_models import RadAcct
from vpop.store.dynauth_models import DynAuthAction
from vpop.store.engine import make_engine, make_sessionmaker
from vpop.store.isp_models import IspRecord
from vpop.store.models import Nas, Profile, Subscriber

SECRET = "das-secret"
T0 = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def nas():
    with NasStandIn(secret=SECRET.encode()) as stand_in:
        yield stand_in


@pytest.fixture
def sessions(db_url, nas):
    engine = make_engine(db_url)
    maker = make_sessionmaker(engine)
    with maker.begin() as session:
        isp_a = IspRecord(name="isp-a", mode="local")
        isp_b = IspRecord(name="isp-b", mode="local")
        session.add_all([isp_a, isp_b])
        session.flush()
        slow = Profile(name="slow", rate_down_kbps=1000, rate_up_kbps=500, isp_id=isp_a.id)
        fast = Profile(name="fast", rate_down_kbps=50000, rate_up_kbps=10000,
                       session_timeout=7200, isp_id=isp_a.id)
        session.add_all([slow, fast, Nas(name="bras", address="127.0.0.1", secret="radius",
                                          nas_type="mikrotik", das_port=nas.port,
                                          das_secret=SECRET)])
        session.flush()
        session.add(Subscriber(username="alice", profile_id=slow.id, auth_methods="pap"))
        for n, (user, isp) in enumerate((("alice", "isp-a"), ("alice", "isp-a"),
                                         ("bob", None)), 1):
            session.add(RadAcct(unique_id=f"u{n}", acct_session_id=f"s{n}", username=user,
                                nas_address="127.0.0.1", framed_ip=f"198.51.100.{n}",
                                isp=isp, start_time=T0, update_time=T0))
    yield maker
    engine.dispose()


SETTINGS = Settings(dynauth=DynAuthSettings(timeout=0.2, retries=1))


def row(maker, radacct_id):
    with maker() as session:
        return session.get(RadAcct, radacct_id)


def actions(maker):
    with maker() as session:
        return session.scalars(select(DynAuthAction).order_by(DynAuthAction.id)).all()


def test_disconnect_ack_marks_the_session_and_is_audited(sessions, nas):
    (result,) = D.disconnect_session(sessions, SETTINGS, actor="cli:root", session_id=3,
                                     reason="abuse")
    assert (result.outcome, result.session_id, result.nas) == ("ack", 3, "bras")
    assert result.describe() == "session 3 (bob at bras): Disconnect: ACK"
    (received,) = nas.requests
    assert received.authenticator_ok and received.message_authenticator_ok
    assert received.packet.code == codec.DISCONNECT_REQUEST
    assert received.values(A.USER_NAME) == [b"bob"]
    assert received.values(A.FRAMED_IP_ADDRESS) == [bytes([198, 51, 100, 3])]
    assert len(received.values(A.EVENT_TIMESTAMP)) == 1
    assert row(sessions, 3).dynauth_state == "disconnect-acked"
    (action,) = actions(sessions)
    assert (action.actor, action.direction, action.kind, action.session_id, action.username,
            action.nas, action.outcome, action.error_cause, action.reason) == (
        "cli:root", "originated", "disconnect", 3, "bob", "bras", "ack", None, "abuse")
    assert "Framed-IP-Address = 198.51.100.3" in action.sent


def test_a_nak_is_reported_with_its_error_cause_and_leaves_the_session_unmarked(sessions,
                                                                                nas):
    nas.script(("nak", 503))
    (result,) = D.disconnect_session(sessions, SETTINGS, actor="portal:op", session_id=3)
    assert (result.outcome, result.error_cause, result.error_words) == (
        "nak", 503, "Session-Context-Not-Found")
    assert row(sessions, 3).dynauth_state is None
    (action,) = actions(sessions)
    assert (action.outcome, action.error_cause) == ("nak", 503)
    assert action.answer == "Error-Cause = Session-Context-Not-Found"


def test_silence_is_a_timeout_after_the_budget(sessions, nas):
    nas.script("silent")
    (result,) = D.disconnect_session(sessions, SETTINGS, actor="cli:root", session_id=3)
    assert result.outcome == "timeout" and result.result.tries == 2
    assert len(nas.requests) == 2
    assert nas.requests[0].data == nas.requests[1].data  # byte for byte
    assert actions(sessions)[0].outcome == "timeout"


def test_a_badly_signed_answer_is_ignored(sessions, nas):
    nas.script("forged", "ack")
    (result,) = D.disconnect_session(sessions, SETTINGS, actor="cli:root", session_id=3)
    assert result.outcome == "ack" and result.result.tries == 2


def test_every_live_session_of_a_user(sessions, nas):
    results = D.disconnect_session(sessions, SETTINGS, actor="cli:root", username="alice")
    assert [r.session_id for r in results] == [1, 2]


@pytest.mark.parametrize("kw, words", [({"session_id": 99}, "no session 99"),
                                       ({"username": "carol"}, "no live session")])
def test_unknown_sessions(sessions, nas, kw, words):
    with pytest.raises(D.UnknownSession, match=words):
        D.disconnect_session(sessions, SETTINGS, actor="cli:root", **kw)
    assert not nas.requests and not actions(sessions)


def test_coa_with_a_profile_and_an_override(sessions, nas):
    (result,) = D.change_session(sessions, SETTINGS, actor="cli:root", session_id=1,
                                 change=Change(rate_up_kbps=20000), profile="fast")
    assert result.outcome == "ack"
    (received,) = nas.requests
    assert received.packet.code == codec.COA_REQUEST
    assert received.packet.attrs[(14988, 8)] == [b"20000k/50000k"]  # Mikrotik-Rate-Limit
    assert received.values(A.SESSION_TIMEOUT) == [(7200).to_bytes(4, "big")]
    assert row(sessions, 1).dynauth_state is None


def test_no_endpoint_is_an_audited_error(sessions, nas):
    with sessions.begin() as session:
        session.scalars(select(Nas)).one().address = "127.0.0.0/8"
    with sessions.begin() as session:
        session.get(RadAcct, 3).nas_address = "bras-named"
    (result,) = D.disconnect_session(sessions, SETTINGS, actor="cli:root", session_id=3)
    assert result.outcome == "error" and "no NAS client" in result.result.reason
    assert actions(sessions)[0].outcome == "error"


def test_a_causeless_stop_before_the_ack_is_an_admin_reset(sessions, nas):
    """hostapd sends its Stop (with no Acct-Terminate-Cause) before its Disconnect-ACK,
    and the ledger may close the session before the ACK is marked: the session ends
    as Admin-Reset either way; a session closed with a cause keeps its cause."""
    with sessions.begin() as session:
        for radacct_id, cause in ((3, None), (1, "User-Request")):
            closed = session.get(RadAcct, radacct_id)
            closed.status, closed.closed_by, closed.terminate_cause = "closed", "stop", cause
    with sessions.begin() as session:
        assert store.mark_disconnect_acked(session, 3, T0)
        assert not store.mark_disconnect_acked(session, 1, T0)
    assert (row(sessions, 3).terminate_cause, row(sessions, 3).dynauth_state) == \
        ("Admin-Reset", "disconnect-acked")
    assert (row(sessions, 1).terminate_cause, row(sessions, 1).dynauth_state) == \
        ("User-Request", None)


def test_stop_overdue_after_the_wait(sessions, nas):
    D.disconnect_session(sessions, SETTINGS, actor="cli:root", session_id=3)
    acked_at = row(sessions, 3).dynauth_at
    recorder = Recorder(sessions, lambda callback: callback(), stop_wait=30)
    recorder.mark_stop_overdue(acked_at.timestamp() + 10)
    assert row(sessions, 3).dynauth_state == "disconnect-acked"
    recorder.mark_stop_overdue(acked_at.timestamp() + 31)
    assert row(sessions, 3).dynauth_state == "stop-overdue"
    assert recorder.counts["stop overdue after Disconnect-ACK"] == 1
    recorder.mark_stop_overdue(acked_at.timestamp() + 60)  # marked once
    assert recorder.counts["stop overdue after Disconnect-ACK"] == 1


def test_a_new_isp_disconnects_a_new_profile_changes_in_place(sessions, nas):
    moved = D.apply_subscriber_choice(sessions, SETTINGS, actor="cli:root", username="alice",
                                      isp="isp-b")
    assert [r.kind for r in moved.sessions] == ["disconnect", "disconnect"]
    assert moved.change.after.isp == "isp-b" and moved.change.generation > 0
    with sessions.begin() as session:
        for radacct_id in (1, 2):
            session.get(RadAcct, radacct_id).isp = "isp-b"
    nas.requests.clear()
    changed = D.apply_subscriber_choice(sessions, SETTINGS, actor="cli:root",
                                        username="alice", isp=KEEP, profile="fast")
    assert [(r.kind, r.outcome) for r in changed.sessions] == [("coa", "ack")] * 2
    assert nas.requests[0].packet.attrs[(14988, 8)] == [b"10000k/50000k"]
    same = D.apply_subscriber_choice(sessions, SETTINGS, actor="cli:root", username="alice",
                                     profile="fast")
    assert same.sessions == () and same.unchanged == (1, 2) and same.change.generation == 0
    with sessions() as session:
        assert session.scalars(select(Subscriber)).one().profile.name == "fast"


def test_a_choice_disconnects_where_the_nas_refuses_the_coa(sessions, nas):
    """hostapd is sent the new session timeout by CoA and NAKs it (401): the session
    gets a Disconnect, so that its next login has the new profile; both audited."""
    with sessions.begin() as session:
        session.scalars(select(Nas)).one().nas_type = "hostapd"
    nas.script(("nak", 401), "ack", ("nak", 401), "ack")  # two sessions
    changed = D.apply_subscriber_choice(sessions, SETTINGS, actor="cli:root",
                                        username="alice", profile="fast")
    assert [(r.kind, r.outcome) for r in changed.sessions] == [("disconnect", "ack")] * 2
    assert "the NAS refused the CoA (NAK, Error-Cause 401 (Unsupported-Attribute))" \
        in changed.sessions[0].why
    assert [(a.kind, a.outcome, a.error_cause) for a in actions(sessions)] == \
        [("coa", "nak", 401), ("disconnect", "ack", None)] * 2
    assert [r.packet.code for r in nas.requests] == \
        [codec.COA_REQUEST, codec.DISCONNECT_REQUEST] * 2
    assert row(sessions, 1).dynauth_state == "disconnect-acked"


def test_bad_choices_write_nothing(sessions, nas):
    from vpop.errors import ConfigError
    for kw, words in (({"isp": "nope"}, "no ISP 'nope'"),
                      ({"profile": "nope"}, "no profile 'nope'")):
        with pytest.raises(ConfigError, match=words):
            D.apply_subscriber_choice(sessions, SETTINGS, actor="cli:root", username="alice",
                                      **kw)
    with pytest.raises(ConfigError, match="no subscriber"):
        D.apply_subscriber_choice(sessions, SETTINGS, actor="cli:root", username="zed",
                                  isp=None)
    assert not nas.requests


def test_the_metrics_count_the_audit(sessions, nas, db_url):
    D.disconnect_session(sessions, SETTINGS, actor="cli:root", session_id=3)
    nas.script(("nak", 503))
    D.disconnect_session(sessions, SETTINGS, actor="cli:root", username="alice")
    assert DynAuthCounts(db_url)() == [("bras", "originated", "ack", 1),
                                       ("bras", "originated", "nak", 2)]
