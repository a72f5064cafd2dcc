"""`vpop nas config` against the demo: each vendor's configuration, the exit status and
message of bad input, and hostapd taking the generated configuration as its own in a
network namespace (Debian's hostapd, driver=wired on a veth)."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from e2e_support import init_demo, run_vpop
from support.freeradius import find_tool
from support.hostapd import Daemon, Hostapd
from support.netns import WiredLink

pytestmark = pytest.mark.e2e

EXIT_USAGE = 2
from vpop.store import demo

DEMO_NAS = tomllib.loads(demo.demo_plan_path().read_text())["nas"][0]
SECRET = DEMO_NAS["secret"]
DAS_PORT = DEMO_NAS.get("das_port", 3799)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    return init_demo(tmp_path_factory.mktemp("demo"))


@pytest.mark.parametrize("nas_type, line", [
    ("cisco", "aaa server radius dynamic-author"),
    ("mikrotik", f"/radius incoming set accept=yes port={DAS_PORT}"),
    ("juniper", "set access profile vpop authentication-order radius"),
    ("accel-ppp", "acct-interim-interval=300"),
    ("hostapd", f"radius_das_port={DAS_PORT}"),
])
def test_each_vendor_for_the_demo_nas(config, nas_type, line):
    result = run_vpop(config, "nas", "config", "localhost", "--type", nas_type)
    assert result.returncode == 0, result.stderr
    assert line in result.stdout.splitlines()
    assert SECRET not in result.stdout
    assert (f"<secret of NAS localhost: vpop nas config localhost --type {nas_type} "
            "--show-secrets>") in result.stdout
    assert "isp-tunnel" in result.stdout  # the tunnel-mode ISP, named at least
    shown = run_vpop(config, "nas", "config", "localhost", "--type", nas_type,
                     "--show-secrets")
    assert shown.returncode == 0 and SECRET in shown.stdout


def test_one_tunnel_isp(config):
    result = run_vpop(config, "nas", "config", "localhost", "--type", "cisco",
                      "--isp", "isp-tunnel", "--show-secrets")
    assert result.returncode == 0, result.stderr
    assert "vpdn-group isp-tunnel" in result.stdout
    assert " l2tp tunnel password 0 isp-tunnel-secret" in result.stdout


@pytest.mark.parametrize("args, message", [
    (("nobody", "--type", "cisco"), "vpop: no NAS 'nobody' (NAS clients: localhost, localhost6)"),
    (("localhost",), "vpop: NAS 'localhost' is of type 'generic', which names no vendor: give "
                     "--type, one of cisco, mikrotik, juniper, accel-ppp, hostapd"),
    (("localhost", "--type", "cisco", "--isp", "isp-proxy"),
     "vpop: ISP 'isp-proxy' is in proxy mode: only tunnel-mode ISPs have a part on the NAS "
     "(tunnel-mode ISPs: isp-tunnel)"),
    (("localhost", "--type", "cisco", "--isp", "nope"),
     "vpop: no ISP 'nope' (ISPs: isp-local, isp-proxy, isp-tunnel)"),
    (("localhost", "--type", "cisco", "--vpop-address", "vpop.example"),
     "vpop: --vpop-address 'vpop.example' is not an IPv4 or IPv6 address"),
])
def test_bad_input_is_named_with_exit_status_2(config, args, message):
    result = run_vpop(config, "nas", "config", *args)
    assert result.returncode == EXIT_USAGE
    assert result.stderr.strip() == message
    assert result.stdout == ""


def test_an_unknown_type_is_refused_by_the_option(config):
    result = run_vpop(config, "nas", "config", "localhost", "--type", "ericsson")
    assert result.returncode == EXIT_USAGE
    assert "invalid choice: 'ericsson'" in result.stderr


class GeneratedHostapd(Daemon):
    """hostapd run with the configuration `vpop nas config` printed, unchanged."""

    name = "hostapd"
    ready_text = Hostapd.ready_text

    def __init__(self, namespace, interface: str, directory: Path, text: str):
        super().__init__(namespace, interface, directory)
        self.binary = find_tool("hostapd")
        self.cli_binary = find_tool("hostapd_cli")
        self.config.write_text(text)

    def argv(self) -> list[str]:
        return [self.binary, "-dd", "-t", str(self.config)]

    def cli(self) -> list[str]:
        return [self.cli_binary, "-p", str(self.ctrl), "-i", self.interface]


def test_hostapd_runs_with_the_generated_configuration(config, tmp_path):
    link = WiredLink()
    nas = None
    try:
        link.create()
        directory = tmp_path / "nas"
        result = run_vpop(config, "nas", "config", "localhost", "--type", "hostapd",
                          "--show-secrets", "--interface", link.nas_interface,
                          "--ctrl-interface", str(directory / "hostapd-ctrl"))
        assert result.returncode == 0, result.stderr
        nas = GeneratedHostapd(link.nas, link.nas_interface, directory, result.stdout)
        nas.start()
        log = nas.log()
        assert "Line " not in log, nas.diagnostics()  # hostapd's complaints about the file
        mib = dict(line.partition("=")[::2] for line in nas.command("mib").splitlines())
        assert (mib["radiusAuthServerAddress"], mib["radiusAuthClientServerPortNumber"]) \
            == ("127.0.0.1", "1812"), mib
        assert (mib["radiusAccServerAddress"], mib["radiusAccClientServerPortNumber"]) \
            == ("127.0.0.1", "1813"), mib
        # Its dynamic-authorization server listens where vpop will send Disconnect-Request.
        sockets = subprocess.run(link.nas.command([find_tool("ss"), "-Hlun"]),
                                 capture_output=True, text=True, timeout=30, check=True).stdout
        assert f":{DAS_PORT} " in sockets, sockets
    finally:
        if nas is not None:
            assert nas.stop() is not None
        link.delete()
