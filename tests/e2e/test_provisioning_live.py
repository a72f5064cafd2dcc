"""`vpop import` while `vpop serve` runs: the change is served without SIGHUP, and the
import says when it is in effect (or that no server runs)."""

from __future__ import annotations

import re

import pytest

from e2e_support import init_demo, run_vpop
from vpop.radius import codec

pytestmark = pytest.mark.e2e

WORKERS = 2
ROUNDS = 24  # each from its own source port, so the kernel spreads them over the workers

PROFILE = """\
[[profile]]
name = "live"
rate_down_kbps = 5000
rate_up_kbps = 1000
class = "{klass}"
"""

SUBSCRIBER = """\
[[subscriber]]
username = "{name}"
password = "{name}-pass"
methods = ["pap", "chap"]
profile = "{profile}"
"""


def live_import(server, content: str) -> str:
    """`vpop import` into the running server's database; its standard output."""
    plan = server.home / "live.toml"
    plan.write_text(content)
    result = run_vpop(server.config, "import", str(plan))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def in_effect(output: str, workers: int) -> int:
    """The generation the import reports in effect on every worker of the server."""
    found = re.search(r"in effect on the running server \(generation (\d+); (\d+) workers?",
                      output)
    assert found, output
    assert int(found.group(2)) == workers, output
    return int(found.group(1))


@pytest.fixture(scope="module")
def server(launch):
    return launch()


@pytest.fixture(scope="module")
def workers(launch):
    return launch(workers=WORKERS)


def test_a_new_subscriber_is_served_once_the_import_returns(server, nas, freeradius):
    assert nas.login("heidi", "heidi-pass", server.auth()) == codec.ACCESS_REJECT
    output = live_import(server, SUBSCRIBER.format(name="heidi", profile="residential-10m"))
    first = in_effect(output, 1)
    # No SIGHUP, no waiting: the import returned once the worker served it.
    result = freeradius.radtest("heidi", "heidi-pass", server.auth())
    assert result.reply == "Access-Accept", result.transcript
    assert result.attrs["Framed-Pool"] == ["residential"]
    assert "reloaded" not in server.log_text()  # one subscriber, not everything
    # The same file again changes nothing; the import still says what is served.
    again = live_import(server, SUBSCRIBER.format(name="heidi", profile="residential-10m"))
    assert "subscriber: 0 created, 0 updated, 1 unchanged" in again
    assert in_effect(again, 1) == first


def test_a_changed_profile_reaches_its_subscribers(server, freeradius):
    content = PROFILE.format(klass="live-1") + SUBSCRIBER.format(name="ivan", profile="live")
    live_import(server, content)
    result = freeradius.radtest("ivan", "ivan-pass", server.auth())
    assert "0x" + b"live-1".hex() in result.attrs["Class"], result.transcript
    # A profile is held whole by the workers: they load everything again.
    output = live_import(server, content.replace("live-1", "live-2"))
    in_effect(output, 1)
    result = freeradius.radtest("ivan", "ivan-pass", server.auth())
    assert "0x" + b"live-2".hex() in result.attrs["Class"], result.transcript
    assert "0x" + b"live-1".hex() not in result.attrs["Class"], result.transcript


def test_a_password_change_and_a_caller_id_reach_the_server(server, nas):
    live_import(server, SUBSCRIBER.format(name="judy", profile="residential-10m"))
    assert nas.login("judy", "judy-pass", server.auth()) == codec.ACCESS_ACCEPT
    changed = SUBSCRIBER.format(name="judy", profile="residential-10m").replace(
        '"judy-pass"', '"judy-new"')
    in_effect(live_import(server, changed), 1)
    assert nas.login("judy", "judy-pass", server.auth()) == codec.ACCESS_REJECT
    assert nas.login("judy", "judy-new", server.auth()) == codec.ACCESS_ACCEPT


def test_every_worker_serves_the_change_when_the_import_returns(workers, nas):
    output = live_import(workers, SUBSCRIBER.format(name="kate", profile="business-100m"))
    in_effect(output, WORKERS)
    # At once, many times running, from many source ports: every worker has it.
    assert nas.accepted_in_a_row("kate", "kate-pass", workers.auth(), times=ROUNDS,
                                 timeout=5.0), "not every worker accepts kate"


def test_without_a_running_server_the_import_says_so(tmp_path):
    config = init_demo(tmp_path / "idle")
    plan = tmp_path / "plan.toml"
    plan.write_text(SUBSCRIBER.format(name="lena", profile="residential-10m"))
    result = run_vpop(config, "import", str(plan))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"no running server seen; takes effect at its start \(generation \d+\)",
                     result.stdout), result.stdout
    dry = run_vpop(config, "import", "--dry-run", str(plan))
    assert dry.returncode == 0 and "would import" in dry.stdout
    assert "running server" not in dry.stdout
