"""The operator's and the admin's pages in a real browser (Debian's chromium driven by
Playwright for Python) against `vpop serve` with the portal beside it, on the demo.

An ISP operator opens its lease: the utilization charts are drawn (canvases with the
expected series, not blank). The admin creates a subscriber through the form, and
radtest authenticates it against the running server, which was not restarted: the
change reached it through the data generation. Screenshots of each main page go to
the test artifacts folder, and no page has a console error (the CSP refused nothing).
"""

from __future__ import annotations

import time

import pytest

from e2e_support import VpopServer, clean_env, free_tcp_port, set_options
from portal.usage_support import add_accounting
from test_portal_browser import browser, shot, wait_for_portal  # noqa: F401
from vpop import config as config_module

pytestmark = pytest.mark.e2e
ACCEPT_WITHIN = 30.0  # seconds a new subscriber may take to reach the workers


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`vpop serve` on the demo with its portal on a free port, and a morning of
    accounting of isp-local and isp-proxy; (server, portal URL)."""
    server = VpopServer.create(tmp_path_factory.mktemp("vpop"))
    port = free_tcp_port()
    server.config.write_text(set_options(server.config.read_text(), {"portal": {"enabled": True, "port": port}}))
    settings = config_module.load(server.config, env=clean_env())
    add_accounting(settings.database_url)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_portal(url, server.process)
        yield server, url
    finally:
        status = server.stop()
        assert status == 0, server.diagnostics()
        assert "Traceback" not in server.log_text() + server.output_text(), server.diagnostics()


def logged_in(browser, url: str, name: str, password: str):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    page.goto(url + "/login")
    page.check("input[name=kind][value=staff]")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page, errors


PAINTED = """canvas => {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) { if (data[i] > 0) painted++; }
  return painted;
}"""


def test_operator_sees_its_lease_utilization_charted(served, browser):  # noqa: F811
    server, url = served
    page, errors = logged_in(browser, url, "isp-local-operator", "isp-local-operator-pass")
    page.wait_for_url(url + "/isp/")
    shot(page, "operator-home")
    page.click("#leases >> text=isp-local-bras1")
    page.wait_for_selector("[data-chart=lease-sessions][data-drawn]")
    page.wait_for_selector("[data-chart=lease-traffic][data-drawn]")
    series = page.get_attribute("[data-chart=lease-sessions]", "data-series").split(",")
    assert series == ["sessions peak", "sessions average", "sessions leased"]
    legend = page.locator("[data-chart=lease-sessions] .u-legend .u-label").all_inner_texts()
    assert legend[-3:] == series
    assert page.locator("[data-chart=lease-sessions] canvas").evaluate(PAINTED) > 1000
    assert page.locator("[data-chart=lease-traffic] canvas").evaluate(PAINTED) > 1000
    shot(page, "operator-lease-utilization")
    page.goto(url + "/usage/sessions")
    isps = page.locator("#sessions tbody tr td:nth-child(3)").all_inner_texts()
    assert len(isps) >= 3 and set(isps) == {"isp-local"}
    shot(page, "operator-sessions")
    page.goto(url + "/usage/reports?by=nas&from=2026-06-15&to=2026-06-16")
    page.wait_for_selector("[data-chart=groups][data-drawn]")
    shot(page, "operator-reports")
    page.goto(url + "/isp/settings")
    shot(page, "operator-settings")
    assert errors == [], errors


def test_admin_creates_a_subscriber_that_logs_in_at_once(served, browser, freeradius):  # noqa: F811
    server, url = served
    assert freeradius.radtest("zoe", "zoe-pass", server.auth()).reply == "Access-Reject"
    page, errors = logged_in(browser, url, "admin", "admin-pass")
    page.wait_for_url(url + "/admin/")
    shot(page, "admin-home")
    page.goto(url + "/admin/records/subscriber/new")
    page.fill("input[name=username]", "zoe")
    page.fill("input[name=profile]", "residential-10m")
    page.fill("input[name=password]", "zoe-pass")
    page.fill("input[name=methods]", "pap")
    page.fill("input[name=framed_ip]", "10.0.0.300")  # refused first, by its field
    page.click("#record button[type=submit]")
    page.wait_for_selector("[data-field=framed_ip]")
    shot(page, "admin-subscriber-refused")
    page.fill("input[name=framed_ip]", "")
    page.fill("input[name=password]", "zoe-pass")
    page.click("#record button[type=submit]")
    page.wait_for_url(url + "/admin/records/subscriber/zoe")
    assert "saved" in page.inner_text(".flash")
    shot(page, "admin-subscriber-saved")
    deadline = time.monotonic() + ACCEPT_WITHIN
    while True:
        answer = freeradius.radtest("zoe", "zoe-pass", server.auth())
        if answer.reply == "Access-Accept" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert answer.reply == "Access-Accept", answer.stdout + answer.stderr
    assert server.process.poll() is None  # the same server, not restarted
    for name, path in (("admin-live-sessions", "/usage/sessions?status=open"),
                       ("admin-reports", "/usage/reports?by=isp&from=2026-06-15&to=2026-06-16"),
                       ("admin-nas-config", "/admin/nas/localhost/config?type=mikrotik"),
                       ("admin-audit", "/usage/audit"), ("admin-tokens", "/usage/tokens")):
        assert page.goto(url + path).status == 200
        shot(page, name)
    assert "subscriber.create" in page.goto(url + "/usage/audit").text()
    # The refused form's answer (422) is the one error the console may show.
    assert [e for e in errors if "status of 422" not in e] == [], errors
