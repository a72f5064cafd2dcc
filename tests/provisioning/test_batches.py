"""Large files: parsed in batches of tables, written in chunks, PBKDF2 over processes.
Whatever the batch and chunk sizes, an import finds the same problems and writes the
same rows as one pass over the whole file."""

import random

import pytest
from sqlalchemy import select

from vpop import provisioning
from vpop.aaa.credentials import verify_password_hash
from vpop.config import IdentificationSettings
from vpop.errors import ConfigError
from vpop.provisioning import hashing, steps, subscriber
from vpop.store.models import Subscriber, SubscriberCallerId, SubscriberLine

IDENT = IdentificationSettings(country_code="49")


def plan_text(count: int, *, pap_only: bool = False, start: int = 0) -> str:
    parts = ['[[profile]]\nname = "res"\n\n[[profile]]\nname = "biz"\nrate_down_kbps = 9\n']
    for i in range(start, start + count):
        methods = '["pap"]' if pap_only else '["pap", "chap"]' if i % 2 else '["mschapv2"]'
        parts.append(f'[[subscriber]]\nusername = "u{i}"\npassword = "pw{i}"\n'
                     f'methods = {methods}\nprofile = "{"res" if i % 3 else "biz"}"\n')
        if i % 4 == 0:
            parts.append(f'caller_ids = ["+49 30 {1000 + i}"]\n')
        if i % 5 == 0:
            parts.append(f'[[subscriber.lines]]\ncircuit_id = "c{i}"\n')
    return "\n".join(parts)


def parse(path, **kw):
    return provisioning.parse(path, identification=IDENT, env={}, **kw)


def entries(plan):
    return {name: [(e.index, e.key, dict(e.values), e.line) for e in plan[name]]
            for name in ("profile", "subscriber")}


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(steps, "BATCH_TABLES", 7)
    monkeypatch.setattr(subscriber, "WRITE_CHUNK", 5)


def test_batches_read_the_file_as_a_whole_parse_does(tmp_path, monkeypatch):
    path = tmp_path / "plan.toml"
    path.write_text(plan_text(60))
    whole = entries(parse(path))
    monkeypatch.setattr(steps, "BATCH_TABLES", 7)
    batched = parse(path)
    assert entries(batched) == whole
    lines = plan_text(60).splitlines()
    assert batched["subscriber"][40].line_of("lines") == lines.index('circuit_id = "c40"')


@pytest.mark.parametrize("tail, line, words", [
    # a table that is not valid TOML, in a late batch: the line in the file
    ('[[subscriber]]\nusername = "late"\npassword = \n', 3, "not valid TOML"),
    # [subscriber] after [[subscriber]] blocks of earlier batches
    ('[subscriber]\nusername = "late"\n', 1, "not valid TOML"),
])
def test_a_toml_error_in_a_late_batch_is_reported_as_the_whole_file_has_it(
        tmp_path, small_batches, tail, line, words):
    text = plan_text(40)
    path = tmp_path / "plan.toml"
    path.write_text(text + "\n" + tail)
    with pytest.raises(ConfigError) as caught:
        parse(path)
    assert words in str(caught.value)
    assert caught.value.line == text.count("\n") + 1 + line


def test_problems_of_every_batch_are_listed_with_their_lines(tmp_path, small_batches):
    text = plan_text(30).replace('username = "u3"\n', 'username = "u3"\nbogus = 1\n')
    text = text.replace('password = "pw28"\n', "password = 28\n")
    path = tmp_path / "plan.toml"
    path.write_text(text)
    with pytest.raises(provisioning.ProvisioningError) as caught:
        parse(path)
    lines = text.splitlines()
    found = {(p.field, p.line) for p in caught.value.problems}
    assert found == {("subscriber[4].bogus", lines.index("bogus = 1") + 1),
                     ("subscriber[29].password", lines.index("password = 28") + 1)}


def test_keys_before_the_first_header_parse_the_file_whole(tmp_path, small_batches):
    text = 'subscriber = [{ username = "inline", password = "x", profile = "res" }]\n'
    path = tmp_path / "plan.toml"
    path.write_text(text + plan_text(20))
    with pytest.raises(ConfigError) as caught:  # TOML: an inline array is not extended
        parse(path)
    assert "not valid TOML" in str(caught.value)


def stored(session):
    subscribers = {s.username: (s.auth_methods, s.cleartext_password, s.nt_hash,
                                s.profile.name)
                   for s in session.scalars(select(Subscriber))}
    numbers = {(c.subscriber.username, c.number)
               for c in session.scalars(select(SubscriberCallerId))}
    lines = {(li.subscriber.username, li.value) for li in session.scalars(select(SubscriberLine))}
    return subscribers, numbers, lines


def test_chunks_write_what_one_pass_writes(session, tmp_path, monkeypatch):
    path = tmp_path / "plan.toml"
    path.write_text(plan_text(23))
    first = provisioning.apply(session, parse(path))
    session.flush()
    whole = stored(session)
    session.rollback()
    monkeypatch.setattr(subscriber, "WRITE_CHUNK", 4)
    again = provisioning.apply(session, parse(path))
    session.flush()
    assert stored(session) == whole
    assert (again["subscriber"], again["subscriber"].changed) == (
        first["subscriber"], first["subscriber"].changed)
    assert again["subscriber"].changed == {f"u{i}" for i in range(23)}


def test_values_move_between_subscribers_of_different_chunks(session, tmp_path, monkeypatch):
    monkeypatch.setattr(subscriber, "WRITE_CHUNK", 2)
    path = tmp_path / "plan.toml"
    path.write_text(plan_text(8))
    provisioning.apply(session, parse(path))
    # u0's caller ID and line go to u7, in the last chunk; u0 is in the first.
    moved = plan_text(8).replace('caller_ids = ["+49 30 1000"]\n', "").replace(
        '[[subscriber.lines]]\ncircuit_id = "c0"\n', "").replace(
        'username = "u7"\npassword = "pw7"\nmethods = ["pap", "chap"]\nprofile = "res"\n',
        'username = "u7"\npassword = "pw7"\nmethods = ["pap", "chap"]\nprofile = "res"\n'
        'caller_ids = ["+49 30 1000"]\nlines = [{ circuit_id = "c0" }]\n')
    path.write_text(moved)
    summary = provisioning.apply(session, parse(path))
    session.flush()
    _, numbers, lines = stored(session)
    assert ("u7", "49301000") in numbers and ("u0", "49301000") not in numbers
    assert ("u7", "c0") in lines and ("u0", "c0") not in lines
    assert summary["subscriber"].changed == {"u0", "u7"}


def test_pbkdf2_over_processes_gives_what_one_process_gives(session, tmp_path):
    count = hashing.POOL_MIN_JOBS + 3
    path = tmp_path / "plan.toml"
    path.write_text(plan_text(count, pap_only=True))
    plan = parse(path)

    def hashes(processes):
        provisioning.apply(session, plan, salt=random.Random(7).randbytes, iterations=50,
                           processes=processes)
        session.flush()
        found = dict(session.execute(select(Subscriber.username, Subscriber.password_hash)).all())
        session.rollback()
        return found

    alone, spread = hashes(1), hashes(2)
    assert alone == spread
    assert all(verify_password_hash(f"pw{name[1:]}".encode(), h) for name, h in spread.items())


def test_stored_pbkdf2_hashes_are_checked_over_processes_and_kept(session, tmp_path):
    count = hashing.POOL_MIN_JOBS + 3
    path = tmp_path / "plan.toml"
    path.write_text(plan_text(count, pap_only=True))
    provisioning.apply(session, parse(path), iterations=50, processes=2)
    before = dict(session.execute(select(Subscriber.username, Subscriber.password_hash)).all())
    path.write_text(plan_text(count, pap_only=True).replace('password = "pw3"',
                                                            'password = "new3"'))
    summary = provisioning.apply(session, parse(path), iterations=50, processes=2)
    after = dict(session.execute(select(Subscriber.username, Subscriber.password_hash)).all())
    assert summary["subscriber"].changed == {"u3"}
    assert {name for name in before if before[name] != after[name]} == {"u3"}
    assert verify_password_hash(b"new3", after["u3"])
