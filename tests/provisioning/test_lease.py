"""[[lease]] in `vpop import`: checks, overlaps, idempotent writes (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import textwrap
from decimal import Decimal

import pytest
from sqlalchemy import select

from vpop import provisioning
from vpop.config import IdentificationSettings
from vpop.provisioning import ProvisioningError
from vpop.store.accounting import leases_revision, load_leases
from vpop.store.accounting_models import Lease

ISPS = """\
[[isp]]
name = "isp-a"
mode = "local"

[[isp]]
name = "isp-b"
mode = "local"
"""

LEASES = """\
[[lease]]
name = "a-berlin"
isp = "isp-a"
nas = ["192.0.2.1", "bras-2", "2001:0db8::0001"]
ports = [{ nas = "192.0.2.9", first = 100, last = 199 }]
sessions = 100
bandwidth_mbps = 2.5
volume_gb = 1.5
starts = 2026-01-01
ends = 2027-01-01T00:00:00Z
price = 1200.50
currency = "eur"
policy = "reject"
reject_message = "Lease full"
under_percent = 20
under_window = 7200
description = "Berlin, racks 1-4"

[[lease]]
name = "b-berlin"
isp = "isp-b"
nas = ["192.0.2.1"]
sessions = 10
starts = 2026-01-01
"""


def do_import(session, tmp_path, text, name="leases.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return provisioning.import_file(session, path, identification=IdentificationSettings())


def test_import_and_reimport(session, tmp_path):
    summary = do_import(session, tmp_path, ISPS + LEASES)
    assert (summary["lease"].created, summary["lease"].updated) == (2, 0)
    session.commit()
    lease = load_leases(session).match("isp-a", "192.0.2.9", 150,
                                       dt.datetime(2026, 6, 1).timestamp())
    assert lease.name == "a-berlin"
    assert lease.nas == frozenset({"192.0.2.1", "bras-2", "2001:db8::1"})
    assert (lease.sessions, lease.bandwidth_kbps, lease.volume_bytes) == (
        100, 2500, 1_500_000_000)
    assert (lease.price, lease.policy, lease.reject_message) == (
        Decimal("1200.50"), "reject", "Lease full")
    assert (lease.under_percent, lease.under_window) == (20, 7200)
    assert lease.ends == int(dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc).timestamp())
    row = session.scalars(select(Lease).where(Lease.name == "a-berlin")).one()
    assert (row.currency, row.description, row.revision) == ("EUR", "Berlin, racks 1-4", 1)
    revision = leases_revision(session)
    again = do_import(session, tmp_path, ISPS + LEASES)
    assert (again["lease"].created, again["lease"].updated, again["lease"].unchanged) == (0, 0, 2)
    assert leases_revision(session) == revision


def test_a_change_bumps_the_revision_servers_watch(session, tmp_path):
    do_import(session, tmp_path, ISPS + LEASES)
    session.commit()
    revision = leases_revision(session)
    changed = LEASES.replace('nas = ["192.0.2.1"]\nsessions = 10', 'nas = ["192.0.2.7"]\nsessions = 10')
    assert do_import(session, tmp_path, ISPS + changed)["lease"].updated == 1
    session.commit()
    assert leases_revision(session) != revision
    assert load_leases(session).match("isp-b", "192.0.2.7", None, 1_780_000_000).name == "b-berlin"


BAD = [
    # (a [[lease]] table, field, words in the message)
    ('name = "x"\nisp = "isp-a"\nsessions = 1\nstarts = 2026-01-01\n', "lease[1].nas",
     "give the leased NASes"),
    ('name = "x"\nisp = "isp-a"\nnas = ["n"]\nstarts = 2026-01-01\n', "lease[1].sessions",
     "give what is leased"),
    ('name = "x"\nisp = "isp-a"\nnas = ["n"]\nsessions = 1\n', "lease[1].starts", "is required"),
    ('name = "x"\nisp = "isp-a"\nnas = ["n"]\nsessions = 1\nstarts = 2026-01-01\n'
     'ends = 2025-01-01\n', "lease[1].ends", "after starts"),
    ('name = "x"\nisp = "isp-a"\nnas = ["n"]\nvolume_gb = 1\nstarts = 2026-01-01\n'
     'policy = "reject"\n', "lease[1].policy", "needs sessions"),
    ('name = "x"\nisp = "isp-a"\nnas = ["n"]\nsessions = 1\nstarts = 2026-01-01\n'
     'policy = "drop"\n', "lease[1].policy", "one of: admit, reject"),
    ('name = "x"\nisp = "isp-a"\nnas = ["n"]\nsessions = 1\nstarts = 2026-01-01\n'
     'under_percent = 101\n', "lease[1].under_percent", "0 to 100"),
    ('name = "x"\nisp = "isp-a"\nports = [{ nas = "n", first = 9, last = 1 }]\nsessions = 1\n'
     'starts = 2026-01-01\n', "lease[1].ports[1]", "first must not be above last"),
    ('name = "x"\nisp = "isp-a"\nports = [{ nas = "n", first = 1 }]\nsessions = 1\n'
     'starts = 2026-01-01\n', "lease[1].ports[1]", "must be a list of tables"),
    ('name = "x"\nisp = "isp-a"\nnas = ["n"]\nbandwidth_mbps = 0\nstarts = 2026-01-01\n',
     "lease[1].bandwidth_mbps", "above 0"),
    ('name = "x"\nisp = "isp-a"\nnas = ["n"]\nsessions = 1\nstarts = 2026-01-01\n'
     'price = 1.005\n', "lease[1].price", "at most 2 decimals"),
    ('name = "x"\nisp = "isp-a"\nnas = ["n"]\nsessions = 1\nstarts = 2026-01-01T00:00:00\n',
     "lease[1].starts", "needs a UTC offset"),
    ('name = "x"\nisp = "isp-a"\nnas = ["n"]\nsessions = 1\nstarts = 2026-01-01\nspeed = 1\n',
     "lease[1].speed", "unknown field"),
    ('name = "x"\nisp = "nobody"\nnas = ["n"]\nsessions = 1\nstarts = 2026-01-01\n',
     "lease[1].isp", "no isp 'nobody'"),
]


@pytest.mark.parametrize("table, field, words", BAD)
def test_bad_leases_name_the_field_and_write_nothing(session, tmp_path, table, field, words):
    with pytest.raises(ProvisioningError) as caught:
        do_import(session, tmp_path, ISPS + "\n[[lease]]\n" + table)
    problem = caught.value.problems[0]
    assert problem.field == field and words in problem.message, str(caught.value)
    session.rollback()
    assert session.scalars(select(Lease)).all() == []


OVERLAP = """\
[[lease]]
name = "a-more"
isp = "isp-a"
ports = [{ nas = "192.0.2.1", first = 1, last = 9 }]
sessions = 1
starts = 2026-06-01
"""


def test_one_nas_cannot_be_leased_twice_to_one_isp_at_once(session, tmp_path):
    with pytest.raises(ProvisioningError, match=r"lease\[3\].nas.*192.0.2.1 is leased to isp-a "
                                                r"by lease\[1\] \('a-berlin'\)"):
        do_import(session, tmp_path, ISPS + LEASES + "\n" + OVERLAP)
    session.rollback()
    # After the first lease ends, or for another ISP, it may.
    later = OVERLAP.replace("2026-06-01", "2027-01-01")
    assert do_import(session, tmp_path, ISPS + LEASES + "\n" + later)["lease"].created == 3
    session.commit()
    # Against a lease already stored and not in the file, too.
    with pytest.raises(ProvisioningError, match="lease 'a-berlin', which is not in this file"):
        do_import(session, tmp_path, ISPS + OVERLAP.replace("a-more", "a-other"), "more.toml")
