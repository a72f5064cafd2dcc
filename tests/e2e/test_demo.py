"""`make run`: the demo server with its web portal and, beside it, the demo proxy ISP's
own vpop; Ctrl-C (SIGINT to make's process group, as a terminal sends it) stops every
process of both.

The demo is made first with `vpop init --demo`, as `make run` would, then moved to free
ports (the ISP's vpop in its config, the demo server's by make's variables), so the
test does not need the default ports.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from e2e_support import (REPO, START_TIMEOUT, STOP_TIMEOUT, Nas, clean_env, demo_isp_server,
                         free_tcp_port, group_members, init_demo, reserve_ports, set_options)
from vpop.radius import codec

pytestmark = pytest.mark.e2e


def answering(nas: Nas, addr: tuple[str, int], deadline: float, make) -> None:
    while True:
        reply = nas.exchange(nas.status_server(), addr, timeout=0.5)
        if reply is not None and reply.code == codec.ACCESS_ACCEPT:
            return
        assert make.poll() is None, f"make run exited with status {make.returncode}"
        assert time.monotonic() < deadline, f"nothing answers on {addr}"
        time.sleep(0.1)


def portal_page(port: int, deadline: float, make) -> int:
    """The status of the portal's login page, once it answers."""
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as reply:
                return reply.status
        except OSError:
            assert make.poll() is None, f"make run exited with status {make.returncode}"
            assert time.monotonic() < deadline, f"no portal on port {port}"
            time.sleep(0.1)


def test_make_run_serves_the_demo_and_its_proxy_isp_until_interrupted(tmp_path):
    home = tmp_path / "demo"
    config = init_demo(home)
    auth, acct, coa = reserve_ports(3)
    portal = free_tcp_port()
    config.write_text(set_options(config.read_text(), {
        "server": {"listen": ["127.0.0.1"]}, "metrics": {"port": free_tcp_port()},
        "portal": {"port": portal}}))
    isp = demo_isp_server(home)
    venv = Path(sys.executable).parent.parent
    output = (tmp_path / "make.out").open("w")
    make = subprocess.Popen(
        ["make", "-o", f"{venv}/bin/vpop", "run", f"VENV={venv}", f"CONFIG={config}",
         f"AUTH_PORT={auth}", f"ACCT_PORT={acct}", f"COA_PORT={coa}"],
        cwd=REPO, env=clean_env(), stdout=output, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        answering(Nas(isp.secret), isp.auth(), deadline, make)
        nas = Nas()
        answering(nas, ("127.0.0.1", auth), deadline, make)
        assert nas.login("joe@isp-proxy.example", "joe-pass", ("127.0.0.1", auth)) == \
            codec.ACCESS_ACCEPT  # proxied to the ISP's vpop
        assert nas.login("alice@isp-local.example", "alice-pass", ("127.0.0.1", auth)) == \
            codec.ACCESS_ACCEPT
        assert portal_page(portal, deadline, make) == 200  # the portal, beside RADIUS
        # Up and running, ledgers included (the Ctrl-C of someone who tried the demo).
        for text in (lambda: (tmp_path / "make.out").read_text(), isp.log_text):
            while "ledger (pid" not in text():
                assert time.monotonic() < deadline, text()
                time.sleep(0.05)
        os.killpg(make.pid, signal.SIGINT)
        make.wait(STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while left := group_members(make.pid):
            assert time.monotonic() < deadline, f"processes {left} outlived make run"
            time.sleep(0.05)
    finally:
        if make.poll() is None or group_members(make.pid):
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
        output.close()
    log = (tmp_path / "make.out").read_text()
    assert "isp-proxy's RADIUS server: vpop pid" in log, log
    assert "worker 0 stopped" in isp.log_text(), isp.diagnostics()
    assert "Traceback" not in log + isp.log_text(), log
