"""hostapd as a wired IEEE 802.1X NAS and wpa_supplicant as its client, each inside a
network namespace of a WiredLink (support.netns), for integration tests.

    nas = Hostapd(link.nas, link.nas_interface, directory, auth=(host, port),
                  acct=(host, port), secret="testing123", das_port=3799)
    nas.start()
    peer = WiredSupplicant(link.supplicant, link.supplicant_interface, directory,
                           identity="eve@eap.example", password="...", ca_cert=ca)
    peer.start()
    ...
    peer.command("LOGOFF"); nas.mib()["radiusAccClientResponses"]
    peer.stop(); nas.stop()

hostapd authenticates the port by RADIUS (EAP relayed to the server: PEAP/MSCHAPv2,
or EAP-MD5 with method="MD5"), sends Accounting-On when it starts and Start, Interim-Update and Stop for each
session, and answers Disconnect-Requests on `das_port` (RFC 5176). Both programs run
in the foreground with debug output to a log file in `directory`, under the caller's
user; each is stopped by its own PID. A missing program raises MissingTool.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from support.eapol import quoted
from support.freeradius import find_tool, stop_process
from support.netns import Namespace

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

HOSTAPD_CONF = """\
# A wired IEEE 802.1X authenticator whose RADIUS server is the one under test.
interface={interface}
driver=wired
ctrl_interface={ctrl}
logger_stdout=-1
logger_stdout_level=0
ieee8021x=1
eapol_version=2
eap_reauth_period=0
use_pae_group_addr=1
own_ip_addr={own_ip}
nas_identifier={nas_identifier}
auth_server_addr={auth_host}
auth_server_port={auth_port}
auth_server_shared_secret={secret}
acct_server_addr={acct_host}
acct_server_port={acct_port}
acct_server_shared_secret={secret}
radius_acct_interim_interval={interim}
radius_das_port={das_port}
radius_das_client={das_client} {secret}
"""

SUPPLICANT_CONF = """\
ctrl_interface={ctrl}
ap_scan=0
network={{
	key_mgmt=IEEE8021X
	eap={method}
	identity={identity}
	password={password}
{inner}	eapol_flags=0
}}
"""
PEAP_LINES = """\
	ca_cert={ca_cert}
	phase1="peapver=0"
	phase2="auth=MSCHAPV2"
"""


class Daemon:
    """One program in the foreground inside a namespace, its output in a log file."""

    name = "daemon"
    ready_text = ""

    def __init__(self, namespace: Namespace, interface: str, directory: Path):
        self.namespace = namespace
        self.interface = interface
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ctrl = self.directory / f"{self.name}-ctrl"
        self.config = self.directory / f"{self.name}.conf"
        self.log_path = self.directory / f"{self.name}.log"
        self.process: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def cli(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start and wait for `ready_text` in the log; RuntimeError with the log if not."""
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(self.namespace.command(self.argv()), stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, cwd=self.directory)
        if not self.wait_for_log(self.ready_text, timeout):
            self.stop()
            raise RuntimeError(f"{self.name} did not start within {timeout:g} s\n"
                               f"{self.diagnostics()}")

    def wait_for_log(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.process is None or self.process.poll() is not None:
                return False
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def command(self, *words: str) -> str:
        """One control-interface command (hostapd_cli / wpa_cli); its answer."""
        result = subprocess.run([*self.cli(), *words], capture_output=True, text=True,
                                timeout=30)
        if result.returncode:
            raise RuntimeError(f"{' '.join(words)}: exit status {result.returncode}\n"
                               f"{result.stdout}{result.stderr}")
        return result.stdout

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM to its PID, SIGKILL after `timeout`; the exit status (None if never run)."""
        return stop_process(self.process, timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def diagnostics(self, limit: int = 6000) -> str:
        return f"--- {self.log_path} (last {limit} chars) ---\n{self.log()[-limit:]}"


class Hostapd(Daemon):
    """hostapd with driver=wired: IEEE 802.1X on `interface`, RADIUS to `auth`/`acct`."""

    name = "hostapd"
    ready_text = "interface state UNINITIALIZED->ENABLED"

    def __init__(self, namespace: Namespace, interface: str, directory: Path, *,
                 auth: tuple[str, int], acct: tuple[str, int], secret: str,
                 das_port: int, das_client: str = "127.0.0.1", interim: int = 60,
                 own_ip: str = "127.0.0.1", nas_identifier: str = "hostapd-wired"):
        super().__init__(namespace, interface, directory)
        self.binary = find_tool("hostapd")
        self.cli_binary = find_tool("hostapd_cli")
        self.das_port = das_port
        self.config.write_text(HOSTAPD_CONF.format(
            interface=interface, ctrl=self.ctrl, own_ip=own_ip, nas_identifier=nas_identifier,
            auth_host=auth[0], auth_port=auth[1], acct_host=acct[0], acct_port=acct[1],
            secret=secret, interim=interim, das_port=das_port, das_client=das_client))

    def argv(self) -> list[str]:
        return [self.binary, "-d", "-t", str(self.config)]

    def cli(self) -> list[str]:
        return [self.cli_binary, "-p", str(self.ctrl), "-i", self.interface]

    def mib(self) -> dict[str, str]:
        """`hostapd_cli mib`: the RADIUS client's counters (RFC 2618, 2620) among them."""
        pairs = (line.partition("=") for line in self.command("mib").splitlines())
        return {name: value for name, sep, value in pairs if sep}

    def wait_for_mib(self, condition, timeout: float) -> dict[str, str]:
        """The MIB once `condition(mib)` holds, or as it is after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not condition(mib := self.mib()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return mib


class ConfiguredHostapd(Hostapd):
    """hostapd run with a configuration given as text (`vpop nas config`'s), unchanged;
    its control interface must be `directory`/hostapd-ctrl (`ctrl` here), where
    hostapd_cli looks for it."""

    def __init__(self, namespace: Namespace, interface: str, directory: Path, text: str, *,
                 das_port: int = 3799):
        Daemon.__init__(self, namespace, interface, directory)
        self.binary = find_tool("hostapd")
        self.cli_binary = find_tool("hostapd_cli")
        self.das_port = das_port
        if f"ctrl_interface={self.ctrl}\n" not in text:
            raise ValueError(f"the configuration's ctrl_interface is not {self.ctrl}")
        self.config.write_text(text)


class WiredSupplicant(Daemon):
    """wpa_supplicant -D wired: PEAP/MSCHAPv2 (or EAP-MD5, method="MD5", which takes no
    CA certificate) as `identity` on `interface`."""

    name = "wpa_supplicant"
    ready_text = "Successfully initialized wpa_supplicant"

    def __init__(self, namespace: Namespace, interface: str, directory: Path, *,
                 identity: str, password: str, ca_cert: Path | None = None,
                 method: str = "PEAP"):
        super().__init__(namespace, interface, directory)
        self.binary = find_tool("wpa_supplicant")
        self.cli_binary = find_tool("wpa_cli")
        inner = PEAP_LINES.format(ca_cert=quoted(str(ca_cert))) if method == "PEAP" else ""
        self.config.write_text(SUPPLICANT_CONF.format(
            ctrl=self.ctrl, method=method, identity=quoted(identity),
            password=quoted(password), inner=inner))

    def argv(self) -> list[str]:
        return [self.binary, "-D", "wired", "-i", self.interface, "-c", str(self.config),
                "-d", "-t"]

    def cli(self) -> list[str]:
        return [self.cli_binary, "-p", str(self.ctrl), "-i", self.interface]
