"""[[isp]] import: bad input names field and line and writes nothing; good input round-trips
through the store into the pipeline's values, idempotently. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import random
import textwrap
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from vpop import provisioning
from vpop.aaa.reply import ReplyRenderer
from vpop.config import IdentificationSettings
from vpop.errors import ConfigError
from vpop.isp.model import TunnelEndpoint, UpstreamServer, Window
from vpop.radius.dictionary import Dictionary, shipped_dictionary
from vpop.store.isp_models import IspRecord, IspNumber, IspRealm, IspServer, IspTunnel, IspWindow
from vpop.store.isp_snapshot import check_stored_isps, load_isps
from vpop.store.models import Profile, Subscriber
from vpop.store.snapshot import load_subscribers

IDENT = IdentificationSettings(country_code="49")
ENV = {"ISP_SECRET": "from-env", "LNS_PASSWORD": "lns-from-env"}
MODELS = (IspRecord, IspRealm, IspNumber, IspServer, IspTunnel, IspWindow, Profile, Subscriber)
DICT = Dictionary(shipped_dictionary())

BASE = """\
[[isp]]
name = "a"
realms = ["@a.example"]
numbers = ["+49 30 100"]
servers = [{ name = "a-1", address = "192.0.2.1", secret = "s" }]
"""


@pytest.fixture
def templates(tmp_path):
    """An extra reply template directory with good and bad ISP templates."""
    directory = tmp_path / "templates"
    (directory / "isp").mkdir(parents=True)
    (directory / "isp" / "pool.j2").write_text(
        '{% if account %}Framed-Pool = "{{ isp.name }}-{{ profile.name }}"\n'
        '{% else %}Framed-Pool = "{{ isp.name }}"\n{% endif %}'
        '{% if nas_type == "cisco" %}Cisco-AVPair = "ip:vrf-id={{ isp.name }}"\n{% endif %}')
    (directory / "isp" / "syntax.j2").write_text("{% if %}\n")
    (directory / "isp" / "unknown.j2").write_text("No-Such-Attribute = 1\n")
    (directory / "isp" / "bad-value.j2").write_text("Session-Timeout = soon\n")
    (directory / "isp" / "needs-account.j2").write_text(
        'Class = "{{ account.username }}"\n')
    return ReplyRenderer(DICT, str(directory))


def write(tmp_path, body, name="import.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def do_import(session, path, replies=None):
    return provisioning.import_file(session, path, identification=IDENT, env=ENV,
                                    salt=random.Random(0).randbytes, iterations=1000,
                                    replies=replies)


def row_counts(session):
    return {m.__tablename__: session.scalar(select(func.count()).select_from(m))
            for m in MODELS}


def server(extra=""):
    return f'servers = [{{ address = "192.0.2.9", secret = "s"{extra} }}]\n'


def isp(name="b", body=server()):
    return f'[[isp]]\nname = "{name}"\n{body}'


BAD = [
    # (what the file adds to BASE, field, line within what it adds, words in the message)
    (isp(body='mode = "relay"\n' + server()), "isp[2].mode", 3, "proxy, tunnel, local"),
    (isp(body=""), "isp[2].servers", 1, "is required in proxy mode"),
    (isp(body='mode = "tunnel"\n'), "isp[2].tunnels", 1, "is required in tunnel mode"),
    (isp(body='balance = "random"\n' + server()), "isp[2].balance", 3,
     "failover, weighted, keyed"),
    (isp(body='status = "maybe"\n' + server()), "isp[2].status", 3, "active, down, disabled"),
    (isp(body='realms = ["@b.example", "b"]\n' + server()), "isp[2].realms[2]", 3,
     "write '@realm' for a suffix"),
    (isp(body='realms = ["~(b"]\n' + server()), "isp[2].realms[1]", 3,
     "not a valid regular expression"),
    (isp(body='realms = ["~.*%b"]\n' + server()), "isp[2].realms[1]", 3,
     "no named group 'user'"),
    (isp(body='realms = ["@A.example"]\n' + server()), "isp[2].realms", 3,
     "realm @a.example is also in isp[1] ('a')"),
    (isp(body='numbers = ["030 100"]\n' + server()), "isp[2].numbers", 3,
     "dialled number 4930100 is also in isp[1] ('a')"),
    (isp(body='numbers = ["+49 30 200", "none"]\n' + server()), "isp[2].numbers[2]", 3,
     "no digits"),
    (isp(body='rewrite = "{user}@{realm}"\n' + server()), "isp[2].rewrite", 3,
     "unknown field {realm}"),
    (isp(body='servers = [{ address = "192.0.2.9" }]\n'), "isp[2].servers[1].secret", 3,
     "is required (or secret_env"),
    (isp(body=server(', secret_env = "ISP_SECRET"')), "isp[2].servers[1].secret_env", 3,
     "not both"),
    (isp(body='servers = [{ address = "192.0.2.9", secret_env = "UNSET" }]\n'),
     "isp[2].servers[1].secret_env", 3, "UNSET is not set"),
    (isp(body=server(", port = 1812")), "isp[2].servers[1].port", 3, "unknown field"),
    (isp(body='servers = [{ address = "radius.b.example", secret = "s" }]\n'),
     "isp[2].servers[1].address", 3, "not an IPv4 or IPv6 address"),
    (isp(body=server(", auth_port = 70000")), "isp[2].servers[1].auth_port", 3,
     "from 1 to 65535"),
    (isp(body=server(", weight = 0")), "isp[2].servers[1].weight", 3, "must be from 1"),
    (isp(body='servers = [{ address = "192.0.2.9", secret = "s" },\n'
              '           { address = "192.0.2.9", secret = "t", auth_port = 1645 }]\n'),
     "isp[2].servers[2].name", 3, "'b/192.0.2.9' is also servers[1]'s"),
    (isp(body='servers = [{ name = "a-1", address = "192.0.2.9", secret = "s" }]\n'),
     "isp[2].servers", 3, "server name 'a-1' is also in isp[1] ('a')"),
    (isp(body='mode = "tunnel"\ntunnels = [{ address = "2001:db8::1", medium = "IPv4" }]\n'),
     "isp[2].tunnels[1].medium", 4, "is IPv4, but the address 2001:db8::1 is IPv6"),
    (isp(body='mode = "tunnel"\ntunnels = [{ address = "lns_1.example" }]\n'),
     "isp[2].tunnels[1].address", 4, "not an IP address or host name"),
    (isp(body='mode = "tunnel"\ntunnels = [{ address = "192.0.2.7", password = "'
              + "x" * 240 + '" }]\n'),
     "isp[2].tunnels[1].password", 4, "longer than 239"),
    (isp(body='mode = "tunnel"\ntunnels = [{ address = "192.0.2.7", preference = 16777216 }]\n'),
     "isp[2].tunnels[1].preference", 4, "from 0 to 16777215"),
    (isp(body='mode = "tunnel"\ntunnels = [{ address = "192.0.2.7", password = "x", '
              'password_env = "LNS_PASSWORD" }]\n'),
     "isp[2].tunnels[1].password_env", 4, "not both"),
    (isp(body='mode = "tunnel"\ntunnels = [' + ", ".join(
        f'{{ address = "192.0.2.{i}" }}' for i in range(32)) + "]\n"),
     "isp[2].tunnels", 4, "RFC 2868 tags allow 31"),
    (isp(body='price_per_minute = -1\n' + server()), "isp[2].price_per_minute", 3,
     "from 0"),
    (isp(body='price_per_gb = "0.0000001"\n' + server()), "isp[2].price_per_gb", 3,
     "more than 6 decimal places"),
    (isp(body='price_per_gb = "cheap"\n' + server()), "isp[2].price_per_gb", 3,
     "is not a number"),
    (isp(body='price_per_gb = true\n' + server()), "isp[2].price_per_gb", 3,
     "must be a number"),
    (isp(body='schedule = [{ days = "mon-funday" }]\n' + server()),
     "isp[2].schedule[1].days", 3, "unknown day 'mon-funday'"),
    (isp(body='schedule = [{ days = "mon", from = "25:00" }]\n' + server()),
     "isp[2].schedule[1].from", 3, '"00:00" to "24:00"'),
    (isp(body='schedule = [{ from = "08:00" }]\n' + server()),
     "isp[2].schedule[1].days", 3, "is required"),
    (isp(body='schedule = [{ days = "mon", to = 8 }]\n' + server()),
     "isp[2].schedule[1].to", 3, "must be a time of day"),
    (isp(body='template = "isp/missing.j2"\n' + server()), "isp[2].template", 3,
     "no reply template 'isp/missing.j2'"),
    (isp(body='template = "isp/syntax.j2"\n' + server()), "isp[2].template", 3,
     "Expected an expression"),
    (isp(body='template = "isp/unknown.j2"\n' + server()), "isp[2].template", 3,
     "unknown attribute No-Such-Attribute"),
    (isp(body='template = "isp/bad-value.j2"\n' + server()), "isp[2].template", 3,
     "template isp/bad-value.j2 for generic"),
    (isp(body='template = "isp/needs-account.j2"\n' + server()), "isp[2].template", 3,
     "'None' has no attribute 'username'"),
    (isp(body='dynauth_clients = [{ address = "192.0.2.300", secret = "c" }]\n' + server()),
     "isp[2].dynauth_clients[1].address", 3, "is not an IP address or network"),
    (isp(body='dynauth_clients = [{ address = "192.0.2.1/24", secret = "c" }]\n' + server()),
     "isp[2].dynauth_clients[1].address", 3, "has host bits set"),
    (isp(body='dynauth_clients = [{ address = "192.0.2.10" }]\n' + server()),
     "isp[2].dynauth_clients[1].secret", 3, "is required (or secret_env"),
    (isp(body='dynauth_clients = [{ address = "192.0.2.10", secret = "c", '
              'secret_env = "ISP_SECRET" }]\n' + server()),
     "isp[2].dynauth_clients[1].secret_env", 3, "not both"),
    (isp(body='dynauth_clients = [{ address = "192.0.2.10", secret = "c", port = 3799 }]\n'
              + server()), "isp[2].dynauth_clients[1].port", 3, "unknown field"),
    (isp(body='dynauth_clients = [{ address = "192.0.2.10", secret = "c" },\n'
              '                   { address = "192.0.2.10/32", secret = "d" }]\n' + server()),
     "isp[2].dynauth_clients[2].address", 3, "192.0.2.10/32 is also dynauth_clients[1]'s"),
    (isp(body='dynauth_clients = [{ address = "192.0.2.10", secret = "c" }]\n' + server())
     + "\n" + isp("c", 'dynauth_clients = [{ address = "192.0.2.10", secret = "d" }]\n'
                   + server()), "isp[3].dynauth_clients", 8,
     "dynamic-authorization client 192.0.2.10 is also in isp[2] ('b')"),
    # sub-tables: the line of the first [[isp.servers]]
    (isp(body='[[isp.servers]]\naddress = "192.0.2.9"\n'), "isp[2].servers[1].secret", 3,
     "is required"),
    ('[[profile]]\nname = "p"\nisp_failover = "yes"\n', "profile[1].isp_failover", 3,
     "true or false"),
    ('[[profile]]\nname = "p"\nisp = " a"\n', "profile[1].isp", 3, "spaces at either end"),
]


@pytest.mark.parametrize("extra, field, line, words", BAD, ids=[b[1] + ":" + b[3] for b in BAD])
def test_bad_input(session, tmp_path, templates, extra, field, line, words):
    path = write(tmp_path, BASE + "\n" + extra)
    line += BASE.count("\n") + 1
    with pytest.raises(ConfigError) as caught:
        do_import(session, path, replies=templates)
    error = caught.value
    assert (error.file, error.field, error.line) == (str(path), field, line), str(error)
    assert words in error.message, error.message
    assert not (session.new or session.dirty or session.deleted)
    assert set(row_counts(session).values()) == {0}


DB_BAD = [
    (isp("c", 'realms = ["@a.example"]\n' + server()), "isp[1].realms", 3,
     "realm @a.example belongs to ISP 'a', which is not in this file"),
    (isp("c", 'numbers = ["+49 30 100"]\n' + server()), "isp[1].numbers", 3,
     "dialled number 4930100 belongs to ISP 'a'"),
    (isp("c", 'servers = [{ name = "a-1", address = "192.0.2.5", secret = "s" }]\n'),
     "isp[1].servers", 3, "server name 'a-1' belongs to ISP 'a'"),
    (isp("c", 'dynauth_clients = [{ address = "198.51.100.7/32", secret = "c" }]\n'
     + server()), "isp[1].dynauth_clients", 3,
     "dynamic-authorization client 198.51.100.7/32 belongs to ISP 'a'"),
    ('[[profile]]\nname = "p"\nisp = "nowhere"\n', "profile[1].isp", 3,
     "no isp 'nowhere' in this file or the database"),
    ('[[profile]]\nname = "p"\n\n[[subscriber]]\nusername = "u"\npassword = "x"\n'
     'profile = "p"\nisp = "nowhere"\n', "subscriber[1].isp", 8, "no isp 'nowhere'"),
]


@pytest.mark.parametrize("body, field, line, words", DB_BAD, ids=[b[3] for b in DB_BAD])
def test_conflicts_with_the_database(session, tmp_path, body, field, line, words):
    seed = BASE + 'dynauth_clients = [{ address = "198.51.100.7", secret = "c" }]\n'
    do_import(session, write(tmp_path, seed, "seed.toml"))
    session.commit()
    before = row_counts(session)
    with pytest.raises(ConfigError) as caught:
        do_import(session, write(tmp_path, body))
    assert (caught.value.field, caught.value.line) == (field, line), str(caught.value)
    assert words in caught.value.message
    assert not (session.new or session.dirty or session.deleted)
    assert row_counts(session) == before


def test_a_stored_isp_may_be_named_by_profiles_and_subscribers(session, tmp_path):
    do_import(session, write(tmp_path, BASE, "seed.toml"))
    session.commit()
    do_import(session, write(tmp_path, '[[profile]]\nname = "p"\nisp = "a"\n'))
    session.commit()
    assert session.scalars(select(Profile)).one().isp.name == "a"


FULL = """\
[[isp]]
name = "acme"
description = "Acme Online, wholesale"
realms = ["@Acme.example", "acme/", '~(?P<user>[^%]+)%acme']
numbers = ["+49 30 1000", "0800 123"]
rewrite = "{user}@wholesale.acme.example"
balance = "weighted"
price_per_minute = "0.012"
price_per_gb = 0.5
template = "isp/pool.j2"
schedule = [
  { days = "mon-fri", from = "06:00", to = "22:00" },
  { days = ["sat", "sun"] },
]

[[isp.servers]]
name = "acme-1"
address = "192.0.2.10"
secret_env = "ISP_SECRET"
weight = 3

[[isp.servers]]
name = "acme-2"
address = "2001:db8::10"
auth_port = 11812
acct_port = 0
secret = "two"
weight = 1
require_message_authenticator = false

[[isp]]
name = "lns-co"
mode = "tunnel"
status = "down"
ranked = false
timeout_reject = false
tunnels = [
  { address = "198.51.100.1", password_env = "LNS_PASSWORD", assignment_id = "vpop", client_auth_id = "lac-1", client_endpoint = "203.0.113.1" },
  { address = "lns2.example", medium = "IPv6", preference = 2 },
]
schedule = [{ days = "fri", from = "22:00", to = "06:00" }]

[[isp]]
name = "local"
mode = "local"

[[profile]]
name = "wholesale"
isp = "acme"
isp_failover = true

[[profile]]
name = "plain"

[[subscriber]]
username = "chooser"
password = "x"
profile = "wholesale"
isp = "lns-co"

[[subscriber]]
username = "follower"
password = "x"
profile = "wholesale"

[[subscriber]]
username = "nobody"
password = "x"
profile = "plain"
"""


def test_full_example_round_trips(session, tmp_path, templates):
    path = write(tmp_path, FULL)
    summary = do_import(session, path, replies=templates)
    session.commit()
    assert summary["isp"] == provisioning.Counts(created=3)
    again = do_import(session, path, replies=templates)
    assert not again.changed, str(again)
    assert not (session.new or session.dirty or session.deleted)

    acme, lns, local = load_isps(session)
    assert acme.name == "acme" and acme.mode == "proxy"
    assert [(r.kind, r.pattern) for r in acme.realms] == [
        ("suffix", "@acme.example"), ("prefix", "acme/"), ("regex", "(?P<user>[^%]+)%acme")]
    assert acme.realms[2].compiled.fullmatch("joe%acme").group("user") == "joe"
    assert acme.numbers == ("49301000", "49800123")
    assert (acme.rewrite, acme.balance, acme.template) == (
        "{user}@wholesale.acme.example", "weighted", "isp/pool.j2")
    assert (acme.price_per_minute, acme.price_per_gb) == (Decimal("0.012"), Decimal("0.5"))
    assert acme.servers == (
        UpstreamServer(name="acme-1", address="192.0.2.10", secret=b"from-env", weight=3),
        UpstreamServer(name="acme-2", address="2001:db8::10", auth_port=11812, acct_port=0,
                       secret=b"two", require_message_authenticator=False))
    assert acme.schedule == (
        Window(weekdays=frozenset(range(5)), start=dt.time(6), end=dt.time(22)),
        Window(weekdays=frozenset({5, 6}), start=dt.time(0), end=dt.time(0)))
    assert (lns.mode, lns.status, lns.ranked, lns.timeout_reject) == (
        "tunnel", "down", False, False)
    assert lns.tunnels == (
        TunnelEndpoint(address="198.51.100.1", password=b"lns-from-env", assignment_id="vpop",
                       client_auth_id="lac-1", client_endpoint="203.0.113.1"),
        TunnelEndpoint(address="lns2.example", medium="IPv6", preference=2))
    assert lns.schedule == (Window(weekdays=frozenset({4}), start=dt.time(22),
                                   end=dt.time(6)),)
    assert (local.mode, local.servers, local.tunnels) == ("local", (), ())

    snapshot = load_subscribers(session)
    chooser, follower, nobody = (snapshot.by_name(n) for n in ("chooser", "follower", "nobody"))
    assert (chooser.isp, chooser.isp_failover) == ("lns-co", True)
    assert (follower.isp, follower.profile.isp) == ("acme", "acme")
    assert (nobody.isp, nobody.isp_failover) == (None, False)


def test_changes_are_applied_in_place(session, tmp_path, templates):
    do_import(session, write(tmp_path, FULL), replies=templates)
    session.commit()
    changed = (FULL.replace('name = "acme-1"', 'name = "acme-3"')  # renamed: replaced
               .replace('"0800 123"', '"0800 999"')
               .replace('"acme/", ', "")
               .replace('isp = "lns-co"', 'isp = "local"')
               .replace('isp = "acme"\nisp_failover = true', 'isp = "local"'))
    summary = do_import(session, write(tmp_path, changed), replies=templates)
    session.commit()
    assert summary["isp"] == provisioning.Counts(updated=1, unchanged=2)
    assert summary["profile"] == provisioning.Counts(updated=1, unchanged=1)
    assert summary["subscriber"] == provisioning.Counts(updated=1, unchanged=2)
    acme = load_isps(session)[0]
    assert [s.name for s in acme.servers] == ["acme-3", "acme-2"]
    assert acme.numbers == ("49301000", "49800999")
    assert [r.pattern for r in acme.realms] == ["@acme.example", "(?P<user>[^%]+)%acme"]
    assert session.scalar(select(func.count()).select_from(IspServer)) == 2
    snapshot = load_subscribers(session)
    assert snapshot.by_name("chooser").isp == "local"
    assert snapshot.by_name("follower").isp == "local"
    assert snapshot.by_name("follower").isp_failover is False


def test_a_subscriber_choice_is_kept_unless_the_file_gives_one(session, tmp_path, templates):
    do_import(session, write(tmp_path, FULL), replies=templates)
    session.commit()
    left_out = FULL.replace('isp = "lns-co"\n', "")
    summary = do_import(session, write(tmp_path, left_out), replies=templates)
    assert summary["subscriber"] == provisioning.Counts(unchanged=3)
    assert load_subscribers(session).by_name("chooser").isp == "lns-co"
    cleared = FULL.replace('isp = "lns-co"', 'isp = ""')
    summary = do_import(session, write(tmp_path, cleared), replies=templates)
    session.commit()
    assert summary["subscriber"] == provisioning.Counts(updated=1, unchanged=2)
    assert load_subscribers(session).by_name("chooser").isp == "acme"  # the profile's


def test_servers_follow_the_file_order(session, tmp_path):
    two = ('servers = [{ name = "x", address = "192.0.2.1", secret = "s" },\n'
           '           { name = "y", address = "192.0.2.2", secret = "s" }]\n')
    do_import(session, write(tmp_path, isp("b", two)))
    session.commit()
    swapped = two.replace('"x", address = "192.0.2.1"', '"T", address = "192.0.2.1"') \
        .replace('"y"', '"x"').replace('"T"', '"y"')
    summary = do_import(session, write(tmp_path, isp("b", swapped)))
    session.commit()
    assert summary["isp"] == provisioning.Counts(updated=1)
    assert [(s.name, s.address) for s in load_isps(session)[0].servers] == [
        ("y", "192.0.2.1"), ("x", "192.0.2.2")]


def test_realms_numbers_and_servers_move_between_isps_of_the_file(session, tmp_path):
    do_import(session, write(tmp_path, BASE + "\n" + isp("b")))
    session.commit()
    moved = ('[[isp]]\nname = "a"\nservers = [{ name = "b-1", address = "192.0.2.9", '
             'secret = "s" }]\n\n[[isp]]\nname = "b"\nrealms = ["@a.example"]\n'
             'numbers = ["+49 30 100"]\nservers = [{ name = "a-1", address = "192.0.2.1", '
             'secret = "s" }]\n')
    summary = do_import(session, write(tmp_path, moved))
    session.commit()
    assert summary["isp"] == provisioning.Counts(updated=2)
    a, b = load_isps(session)
    assert (a.realms, a.numbers, [s.name for s in a.servers]) == ((), (), ["b-1"])
    assert ([r.pattern for r in b.realms], b.numbers, [s.name for s in b.servers]) == (
        ["@a.example"], ("4930100",), ["a-1"])


def test_dynauth_clients_round_trip_and_move_between_isps_of_the_file(session, tmp_path):
    clients = ('dynauth_clients = [{ address = "192.0.2.10", secret = "coa-a" },\n'
               '                   { address = "2001:db8:a::/48", secret_env = "ISP_SECRET" }]\n')
    do_import(session, write(tmp_path, BASE + clients + "\n" + isp("b")))
    session.commit()
    a, b = load_isps(session)
    assert [(c.address, c.secret) for c in a.dynauth_clients] == [
        ("192.0.2.10", b"coa-a"), ("2001:db8:a::/48", b"from-env")]
    assert b.dynauth_clients == ()
    again = do_import(session, write(tmp_path, BASE + clients + "\n" + isp("b")))
    assert again["isp"] == provisioning.Counts(unchanged=2)
    moved = BASE + "\n" + isp("b", 'dynauth_clients = [{ address = "192.0.2.10", '
                                  'secret = "coa-b" }]\n' + server())
    summary = do_import(session, write(tmp_path, moved))
    session.commit()
    assert summary["isp"] == provisioning.Counts(updated=2)
    a, b = load_isps(session)
    assert a.dynauth_clients == ()
    assert [(c.address, c.secret) for c in b.dynauth_clients] == [("192.0.2.10", b"coa-b")]


def test_a_regex_without_user_group_is_fine_when_nothing_is_stripped(session, tmp_path):
    body = 'realms = ["~.*%b"]\nstrip_realm = false\n' + server()
    assert do_import(session, write(tmp_path, isp("b", body)))["isp"] == provisioning.Counts(
        created=1)
    (b,) = load_isps(session)
    assert ([r.pattern for r in b.realms], b.strip_realm) == ([".*%b"], False)
    body = 'realms = ["~.*%b"]\nrewrite = "vpop-{name}"\n' + server()
    assert do_import(session, write(tmp_path, isp("b", body)))["isp"] == provisioning.Counts(
        updated=1)
    (b,) = load_isps(session)
    assert b.rewrite == "vpop-{name}"


def test_deleting_an_isp_clears_the_choices_naming_it(session, tmp_path):
    do_import(session, write(tmp_path, FULL.replace('template = "isp/pool.j2"\n', "")))
    session.commit()
    session.execute(IspRecord.__table__.delete())  # the database's ON DELETE, not the ORM's
    session.commit()
    assert session.scalars(select(Subscriber.isp_id)).all() == [None] * 3
    assert session.scalars(select(Profile.isp_id)).all() == [None] * 2
    assert session.scalar(select(func.count()).select_from(IspServer)) == 0


def test_check_stored_isps(session, tmp_path, templates):
    do_import(session, write(tmp_path, FULL), replies=templates)
    session.commit()
    assert check_stored_isps(session, templates) == []
    # The template directory changed, and someone emptied an ISP by hand.
    session.execute(IspServer.__table__.delete().where(IspServer.name == "acme-2"))
    session.execute(text("DELETE FROM isp_tunnel"))
    session.commit()
    session.expire_all()
    problems = check_stored_isps(session, ReplyRenderer(DICT))
    assert [(p.field, p.message.split(":")[0]) for p in problems] == [
        ("isp acme.template", "no reply template 'isp/pool.j2' (looked in the reply templates)"),
        ("isp lns-co.tunnels", "is required in tunnel mode"),
    ]


def test_upgrade_keeps_existing_profiles_without_failover(blank_db_url):
    from vpop.store import schema
    from vpop.store.engine import make_engine
    schema.upgrade(blank_db_url, "0001")
    engine = make_engine(blank_db_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO profile (name, caller_id_login, description) "
                                    "VALUES ('old', false, '')"))
        schema.upgrade(blank_db_url, "0002")
        with engine.connect() as connection:
            assert connection.execute(text(
                "SELECT name, isp_id, isp_failover FROM profile")).one() == ("old", None, False)
    finally:
        engine.dispose()
