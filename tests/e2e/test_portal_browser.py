"""The portal in a real browser: Debian's chromium, driven by Playwright for Python,
against `vpop web` on a free loopback port with the demo made by `vpop init --demo`.

A subscriber logs in, sorts the ISP directory, opens an ISP's quality chart, and
switches ISP: its live session's NAS (a stand-in on a UDP port, answering as the test
scripts it: tests/support/das_peer.py) gets the Disconnect-Request, and the page shows
its answer. Screenshots of each page go to the test artifacts folder
($VPOP_TEST_ARTIFACTS, else tests/artifacts/), for a person to look at.

Playwright's own browser download cannot work offline: the test uses the chromium of
the Debian package (`apt-get install chromium`, in `make test-deps` and .ci/run) and
fails, saying so, when it is missing.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import update

from e2e_support import (REPO, START_TIMEOUT, STOP_TIMEOUT, clean_env, free_tcp_port, init_demo,
                         set_options, vpop_command)
from support.das_peer import NasStandIn
from vpop import config as config_module
from vpop.accounting.records import AcctRecord
from vpop.accounting.routing import Routing
from vpop.radius import codec
from vpop.store import accounting as accounting_store
from vpop.store.engine import make_engine, make_sessionmaker
from vpop.store.models import Nas

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("VPOP_TEST_ARTIFACTS", REPO / "tests" / "artifacts")) / "portal"


def chromium_path() -> str:
    path = shutil.which("chromium") or (CHROMIUM if os.path.exists(CHROMIUM) else None)
    if path is None:
        pytest.fail("chromium is not installed: the portal's browser tests drive Debian's "
                    "chromium (apt-get install chromium; `make test-deps` installs it)",
                    pytrace=False)
    return path


def live_session(config: Path, username: str, isp: str) -> None:
    """A session of `username` in progress on the demo NAS localhost (127.0.0.1), stored
    by the accounting ledger's own function, as an Accounting-Start would be."""
    settings = config_module.load(config, env=clean_env())
    now = int(time.time())
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            accounting_store.apply_batch(session, [AcctRecord(
                status="start", unique_id=f"portal-browser-{username}", session_id="B0001",
                username=username, nas_address="127.0.0.1", nas_port="7", nas_port_number=7,
                calling_station_id="4930123456", framed_ip="192.0.2.77", event_time=now,
                arrival=now, session_time=0, input_octets=0, output_octets=0,
                terminate_cause=None, routing=Routing(isp=isp, mode="local", reason="realm"),
                event_stamp=now)], now=now)
    finally:
        engine.dispose()


def point_das_at(config: Path, port: int) -> None:
    """The demo NAS clients' dynamic-authorization port: the stand-in's."""
    settings = config_module.load(config, env=clean_env())
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            session.execute(update(Nas).values(das_address="127.0.0.1", das_port=port))
    finally:
        engine.dispose()


def wait_for_portal(url: str, web: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(url + "/login", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        assert web.poll() is None, f"vpop web exited with status {web.returncode}"
        assert time.monotonic() < deadline, f"nothing answers on {url}"
        time.sleep(0.1)


@pytest.fixture
def portal(tmp_path):
    """`vpop web` on the demo, the demo NAS's DAS port on a stand-in; (url, stand-in)."""
    home = tmp_path / "demo"
    config = init_demo(home)
    port = free_tcp_port()
    config.write_text(set_options(config.read_text(), {"portal": {"port": port}}))
    with NasStandIn(secret=b"testing123") as nas:
        point_das_at(config, nas.port)
        live_session(config, "alice", "isp-local")
        log = (tmp_path / "web.log").open("w")
        web = subprocess.Popen([*vpop_command(), "--config", str(config), "web"], cwd=home,
                               env=clean_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_portal(url, web)
            yield url, nas
        finally:
            web.terminate()
            try:
                assert web.wait(STOP_TIMEOUT) == 0, (tmp_path / "web.log").read_text()
            finally:
                if web.poll() is None:
                    web.kill()
                log.close()
        text = (tmp_path / "web.log").read_text()
        assert "Traceback" not in text, text


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright
    path = chromium_path()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        # --no-sandbox: the tests may run as root (CI), where chromium's sandbox refuses.
        launched = playwright.chromium.launch(executable_path=path, headless=True,
                                              args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_a_subscriber_sorts_the_directory_and_switches_isp(portal, browser):
    url, nas = portal
    nas.script("ack")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    refused: list[str] = []  # what the Content-Security-Policy would have blocked
    page.on("console", lambda message: refused.append(message.text)
            if message.type == "error" else None)

    page.goto(url + "/login")
    shot(page, "login")
    page.check("input[name=kind][value=subscriber]")
    page.fill("input[name=name]", "alice")
    page.fill("input[name=password]", "alice-pass")
    page.click("button[type=submit]")
    page.wait_for_url(url + "/me/")
    assert "alice" in page.inner_text("h1")
    assert page.locator("tr[data-session]").count() >= 1  # the session in progress
    shot(page, "subscriber-home")

    page.click("nav >> text=ISP directory")
    page.wait_for_url(url + "/isps/")
    names = page.locator("#isps tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.isp)")
    assert names == sorted(names) and len(names) == 3
    page.click("th >> a[data-sort=name]")  # sorted by name already: now descending
    page.wait_for_url("**/isps/?sort=name&order=desc*")
    descending = page.locator("#isps tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.isp)")
    assert descending == sorted(names, reverse=True)
    page.click("th >> a[data-sort=price]")  # cheapest first
    page.wait_for_url("**/isps/?sort=price&order=asc*")
    prices = page.locator("#isps tbody tr td:nth-child(4)").all_inner_texts()
    assert [float(p) for p in prices] == sorted(float(p) for p in prices)
    shot(page, "isp-directory")

    page.click("#isps >> text=isp-proxy")
    page.wait_for_selector("[data-chart=rates][data-drawn]")
    shot(page, "isp-page")

    page.goto(url + "/me/isp")
    page.check("input[name=isp][value=isp-tunnel]")
    started = time.monotonic()
    page.click("#choose-isp button[type=submit]")
    page.wait_for_selector("#dynauth-results")
    answer = page.inner_text("#dynauth-results")
    assert "ACK" in answer, answer
    assert time.monotonic() - started < 60  # a bounded wait, not a hung page
    shot(page, "choose-isp-ack")
    assert "isp-tunnel" in page.inner_text("#choice-result h2")
    sent = [r for r in nas.requests if r.packet.code == codec.DISCONNECT_REQUEST]
    assert sent and sent[0].authenticator_ok and sent[0].message_authenticator_ok

    nas.script("silent")  # a NAS that does not answer: a clear timeout, not a hung page
    live_session_again = page.goto(url + "/me/")
    assert live_session_again.status == 200
    assert refused == [], refused
