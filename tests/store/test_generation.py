"""The data generation: provisioning bumps it and lists the subscribers it changed; a
worker follows it from the generation it holds; workers report what they serve."""

import datetime as dt

from sqlalchemy import func, select

from vpop import provisioning
from vpop.config import IdentificationSettings
from vpop.server.generation import GenerationFollower
from vpop.store import generation as generations
from vpop.store.demo import demo_plan_path
from vpop.store.engine import make_sessionmaker
from vpop.store.snapshot import load_subscribers

IDENT = IdentificationSettings(country_code="49")
T0 = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.timezone.utc)

BASE = """\
[[nas]]
name = "bras1"
address = "192.0.2.1"
secret = "s3cret"

[[profile]]
name = "res"
rate_down_kbps = 10000

[[subscriber]]
username = "alice"
password = "alice-pass"
methods = ["pap", "chap"]
profile = "res"
caller_ids = ["+49 30 1234567"]
"""

BOB = """
[[subscriber]]
username = "bob"
password = "bob-pass"
methods = ["pap", "chap"]
profile = "res"
"""


def imported(session, tmp_path, text):
    path = tmp_path / "import.toml"
    path.write_text(text)
    plan = provisioning.parse(path, identification=IDENT, env={})
    summary = provisioning.apply(session, plan, iterations=10, now=T0)
    session.commit()
    return summary


def test_a_change_makes_a_generation_and_no_change_none(session, tmp_path):
    assert generations.current(session).generation == 0
    first = imported(session, tmp_path, BASE)
    assert first.generation == 1
    # NAS clients and profiles changed: a worker behind must load everything.
    assert generations.current(session).needs_everything(0)
    again = imported(session, tmp_path, BASE)
    assert again.generation is None
    assert generations.current(session).generation == 1


def test_subscriber_changes_are_listed_for_the_workers(session, tmp_path):
    imported(session, tmp_path, BASE)
    summary = imported(session, tmp_path, BASE + BOB)
    assert summary.generation == 2
    state = generations.current(session)
    assert not state.needs_everything(1)
    assert generations.changed_subscribers(session, 1, 2) == {"bob"}
    # alice's caller ID moves to bob: both changed.
    moved = BASE.replace('caller_ids = ["+49 30 1234567"]\n', "") + BOB.replace(
        'profile = "res"\n', 'profile = "res"\ncaller_ids = ["030 1234567"]\n')
    assert imported(session, tmp_path, moved).generation == 3
    assert generations.changed_subscribers(session, 2, 3) == {"alice", "bob"}
    assert generations.changed_subscribers(session, 1, 3) == {"alice", "bob"}


def test_a_dry_run_leaves_the_generation(session, tmp_path):
    imported(session, tmp_path, BASE)
    path = tmp_path / "dry.toml"
    path.write_text(BASE + BOB)
    provisioning.apply(session, provisioning.parse(path, identification=IDENT, env={}),
                       iterations=10)
    session.rollback()
    assert generations.current(session).generation == 1


def test_many_changes_or_old_ones_mean_loading_everything(session, monkeypatch):
    monkeypatch.setattr(generations, "LISTED_MAX", 2)
    monkeypatch.setattr(generations, "KEPT_GENERATIONS", 3)
    assert generations.record_change(session, subscribers={"a", "b"}, now=T0) == 1
    assert not generations.current(session).needs_everything(0)
    assert generations.record_change(session, subscribers={"a", "b", "c"}, now=T0) == 2
    assert generations.current(session).needs_everything(1)
    for _ in range(3):
        generations.record_change(session, subscribers={"d"}, now=T0)
    state = generations.current(session)
    assert (state.generation, state.pruned_through) == (5, 2)
    assert state.needs_everything(1) and not state.needs_everything(2)
    assert generations.changed_subscribers(session, 2, 5) == {"d"}
    count = session.scalar(select(func.count()).select_from(generations.ProvisioningChange))
    assert count == 3  # generation 1's rows are gone


def test_workers_report_what_they_serve(session):
    generations.report_serving(session, host="h", pid=1, worker=0, generation=3, now=T0)
    generations.report_serving(session, host="h", pid=2, worker=1, generation=2, now=T0)
    later = T0 + dt.timedelta(seconds=30)
    generations.report_serving(session, host="h", pid=1, worker=0, generation=4, now=later)
    seen = generations.serving(session, since=T0 + dt.timedelta(seconds=1))
    assert [(w.pid, w.generation, w.seen_at) for w in seen] == [(1, 4, later)]
    assert len(generations.serving(session, since=T0)) == 2
    generations.forget_serving(session, host="h", pids=[1], before=T0 + dt.timedelta(seconds=1))
    assert generations.serving(session, since=T0 - dt.timedelta(days=1)) == []


def test_a_follower_catches_up_by_subscribers_or_by_everything(engine, session, tmp_path):
    follower = GenerationFollower(make_sessionmaker(engine), worker=0, host="h", pid=1,
                                  now=lambda: T0)
    imported(session, tmp_path, BASE)
    assert follower.look(0).everything
    directory = load_subscribers(session)
    follower.generation = 1
    assert follower.look(1).generation == 1  # nothing new
    moved = BASE.replace('caller_ids = ["+49 30 1234567"]\n', "") + BOB.replace(
        'profile = "res"\n', 'profile = "res"\ncaller_ids = ["030 1234567"]\n')
    imported(session, tmp_path, moved)
    step = follower.look(1)
    assert (step.generation, step.everything) == (2, False)
    assert set(step.changes.accounts) == {"alice", "bob"}
    directory.update(step.changes)
    fresh = load_subscribers(session)
    for name in ("alice", "bob"):
        assert directory.by_name(name) == fresh.by_name(name)
    assert directory.by_caller_id("49301234567").username == "bob"
    assert len(directory) == len(fresh) == 2
    follower.generation = 2
    follower.report()
    assert [w.generation for w in generations.serving(session, since=T0)] == [2]


def test_the_demo_data_loads_as_stored(session):
    provisioning.import_file(session, demo_plan_path(), identification=IDENT, env={},
                             iterations=10)
    session.commit()
    directory = load_subscribers(session)
    alice = directory.by_name("alice")
    assert alice.methods == {"pap", "chap", "mschap", "mschapv2", "eap-md5"}
    assert (alice.cleartext, alice.password_hash) == (b"alice-pass", None)
    assert alice.profile.name == "residential-10m" and alice.profile.rate_down_kbps == 10000
    assert directory.by_caller_id("49301234567") is alice
    assert directory.by_line("circuit_id", "bras1 eth 0/1/2:100").username == "carol"
    bob = directory.by_name("bob")
    assert bob.password_hash.startswith("pbkdf2-sha256$") and bob.framed_ip == "192.0.2.10"
    assert directory.by_name("erin").enabled is False
    assert directory.by_name("frank").expires_at.tzinfo is not None
    # alike profiles are one object
    assert directory.by_name("carol").profile is alice.profile

