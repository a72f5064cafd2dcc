"""Helpers for the end-to-end tests: vpop as a subprocess, RADIUS from Python,
radclient and radtest. The fixtures that use them are in conftest.py."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.freeradius import MissingTool, find_tool

from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.radius.crypto import encrypt_user_password
from vpop.radius.dictionary import Dictionary, shipped_dictionary
from vpop.server.ledger import ledger_position

REPO = Path(__file__).resolve().parents[2]
RADCLIENT_DICTIONARY = REPO / "radius-dictionaries" / "radclient"
SECRET = b"testing123"  # the demo NAS clients' secret (vpop/store/demo.toml)
LISTEN = ("127.0.0.1", "::1")
COUNTRY_CODE = "49"

START_TIMEOUT = 30.0  # generous: two cores, imports, a cold disk
STOP_TIMEOUT = 30.0
REPLY_TIMEOUT = 5.0  # waiting for an answer that should come
SILENCE = 1.0  # listening for an answer that must not come, after the drop was counted
METRIC_TIMEOUT = 15.0
CLI_TIMEOUT = 60.0

DICTIONARY = Dictionary(shipped_dictionary())

# A provisioning file with one subscriber who is not in the demo data.
GRACE = """\
[[subscriber]]
username = "grace"
password = "grace-pass"
methods = ["pap", "chap"]
profile = "business-100m"
"""


def required(make):
    """make()'s value; a program it needs that is missing fails the test, with the
    package to install (support.freeradius.MissingTool)."""
    try:
        return make()
    except MissingTool as exc:
        pytest.fail(str(exc), pytrace=False)


# --- running vpop ---------------------------------------------------------------------

def vpop_command() -> list[str]:
    """The installed console script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("vpop")
    return [str(script)] if script.exists() else [sys.executable, "-m", "vpop.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without settings that would point vpop elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VPOP_CONFIG", "VPOP_DATABASE_URL")}
    env.update(extra)
    return env


def run_vpop(config: Path, *args: str, env: dict[str, str] | None = None,
             timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([*vpop_command(), "--config", str(config), *args],
                          capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else clean_env(), cwd=config.parent)


def init_demo(home: Path, *, history: bool = True) -> Path:
    """`vpop init --demo` in `home` (without the demo's generated accounting and ISP
    quality history unless `history`); returns the config file's path."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "vpop.toml"
    result = run_vpop(config, "init", "--demo", "--country-code", COUNTRY_CODE,
                      *(() if history else ("--no-history",)))
    assert result.returncode == 0, f"vpop init --demo failed:\n{result.stdout}{result.stderr}"
    return config


DEMO_ISP_PORTS = "auth_port = 11645, acct_port = 11646"  # isp-proxy's, vpop/store/demo.toml
DEMO_ISP_SECRET = b"isp-proxy-secret"  # the demo vpop's secret at isp-proxy's vpop


def demo_isp_server(home: Path) -> "VpopServer":
    """The demo proxy ISP's own vpop, as `vpop init --demo` in `home` wrote it, moved to
    free ports (its config, and isp-proxy's server in the demo's database), its log in
    a file. Not started."""
    from vpop.store import demo
    config = demo.isp_config_path(home / "vpop.toml")
    auth, acct, coa = reserve_ports(3)
    server = VpopServer(home=config.parent, config=config, log=config.parent / "vpop.log",
                        output=config.parent / "serve.out", auth_port=auth, acct_port=acct,
                        coa_port=coa, metrics_port=0, secret=DEMO_ISP_SECRET)
    text = set_options(config.read_text(), {
        "server": {"auth_port": auth, "acct_port": acct, "coa_port": coa},
        "metrics": {"port": 0}})
    config.write_text(text + f'\n[logging]\nfile = "{server.log}"\n')
    plan = demo.demo_plan_path().read_text()
    assert plan.count(DEMO_ISP_PORTS) == 1, "the demo's isp-proxy server has moved"
    moved = home / "demo-isp-moved.toml"
    moved.write_text(plan.replace(DEMO_ISP_PORTS, f"auth_port = {auth}, acct_port = {acct}"))
    result = run_vpop(home / "vpop.toml", "import", str(moved))
    assert result.returncode == 0, result.stdout + result.stderr
    return server


def set_options(text: str, options: dict[str, dict[str, object]]) -> str:
    """Replace `key = value` lines inside their [section]; every key must be found once."""
    lines = text.splitlines(keepends=True)
    section = None
    found: set[tuple[str, str]] = set()
    for number, line in enumerate(lines):
        header = re.match(r"\s*\[([^\]]+)\]\s*(#.*)?$", line)
        if header:
            section = header.group(1).strip()
            continue
        assignment = re.match(r"\s*([A-Za-z_]+)\s*=", line)
        if section in options and assignment and assignment.group(1) in options[section]:
            key = assignment.group(1)
            assert (section, key) not in found, f"[{section}] {key} is set twice"
            lines[number] = f"{key} = {json.dumps(options[section][key])}\n"
            found.add((section, key))
    wanted = {(s, k) for s, keys in options.items() for k in keys}
    assert found == wanted, f"config template lacks {sorted(wanted - found)}"
    return "".join(lines)


def _below_ephemeral() -> range:
    """Ports the kernel never hands out on its own (bind to port 0, a client's source
    port): a server's port reserved there cannot be taken by another server's or a
    client's socket before the server binds it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(max(1024, low - 12000), low)


def reserve_ports(count: int, hosts=LISTEN) -> list[int]:
    """UDP ports free on every host at once, all different, below the ephemeral range."""
    held: list[socket.socket] = []
    ports: list[int] = []
    candidates = _below_ephemeral()
    try:
        for _ in range(2000):
            if len(ports) == count:
                break
            port = random.choice(candidates)
            if port in ports:
                continue
            group: list[socket.socket] = []
            try:
                for host in hosts:
                    other = socket.socket(family_of(host), socket.SOCK_DGRAM)
                    group.append(other)
                    other.bind((host, port))
            except OSError:  # taken on another address: try the next one
                for sock in group:
                    sock.close()
                continue
            held.extend(group)
            ports.append(port)
        assert len(ports) == count, "could not find free UDP ports on " + ", ".join(hosts)
        return ports
    finally:
        for sock in held:
            sock.close()


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(family_of(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def process_state(pid: int) -> str | None:
    """The kernel's state letter for a live process, None once it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state = stat[stat.rindex(")") + 2]
    return None if state in "ZX" else state


def _live_processes():
    """(pid, the fields of /proc/PID/stat after the command: state, parent, group...) of
    every live process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] not in "ZX":
            yield int(entry.name), fields


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is `pid`."""
    return sorted(child for child, fields in _live_processes() if int(fields[1]) == pid)


def group_members(pgid: int) -> list[int]:
    """The live processes of process group `pgid`."""
    return sorted(member for member, fields in _live_processes() if int(fields[2]) == pgid)


def wait_gone(pids: list[int]) -> None:
    """Until every one of `pids` has exited (as a killed server's workers and ledger do);
    the ones left are killed and the test fails."""
    deadline = time.monotonic() + STOP_TIMEOUT
    while left := [pid for pid in pids if process_state(pid) is not None]:
        if time.monotonic() > deadline:
            for pid in left:  # not to leave them answering beside the next test's server
                os.kill(pid, signal.SIGKILL)
            pytest.fail(f"processes {left} outlived the killed server")
        time.sleep(0.05)


@dataclass
class VpopServer:
    """One `vpop serve` process and what the tests need to reach it."""

    home: Path
    config: Path
    log: Path
    output: Path  # the process's own stdout and stderr
    auth_port: int
    acct_port: int
    coa_port: int
    metrics_port: int
    workers: int = 1
    secret: bytes = SECRET  # the NAS secret its readiness probe (Status-Server) uses
    process: subprocess.Popen | None = None
    exit_status: int | None = None
    _output_file: object = field(default=None, repr=False)

    @classmethod
    def create(cls, home: Path, *, workers: int = 1, ports: tuple[int, int, int] | None = None,
               metrics: bool = True, journal: bool = True,
               portal: bool = False, history: bool = False) -> "VpopServer":
        """A demo installation in `home`, on free ports unless `ports` (auth, acct, CoA);
        without the accounting journal when `journal` is false; with the web portal (on
        a free port) only when `portal` is true, so that no test depends on port 8080
        being free; with the demo's generated history only when `history` is true, so
        that what a test sends is all the accounting there is."""
        config = init_demo(home, history=history)
        auth, acct, coa = ports or reserve_ports(3)
        server = cls(home=home, config=config, log=home / "vpop.log",
                     output=home / "serve.out", auth_port=auth, acct_port=acct,
                     coa_port=coa, metrics_port=free_tcp_port() if metrics else 0,
                     workers=workers)
        config.write_text(set_options(config.read_text(), {
            "server": {"listen": list(LISTEN), "auth_port": auth, "acct_port": acct,
                       "coa_port": coa},
            "metrics": {"listen": "127.0.0.1", "port": server.metrics_port},
            "logging": {"file": str(server.log), "level": "info"},
            "accounting": {"journal": "var/accounting-journal" if journal else ""},
            "portal": {"enabled": portal, "port": free_tcp_port() if portal else 8080},
        }))
        return server

    # --- addresses ---

    def auth(self, host: str = "127.0.0.1") -> tuple[str, int]:
        return host, self.auth_port

    def acct(self, host: str = "127.0.0.1") -> tuple[str, int]:
        return host, self.acct_port

    def coa(self, host: str = "127.0.0.1") -> tuple[str, int]:
        return host, self.coa_port

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.home / 'var' / 'vpop.db'}"

    @property
    def journal_path(self) -> Path:
        return self.home / "var" / "accounting-journal"

    def ledger_pid(self) -> int:
        """The ledger process's pid, from its first log line (waits for it)."""
        deadline = time.monotonic() + START_TIMEOUT
        while not (found := re.findall(r"ledger \(pid (\d+)\)", self.log_text())):
            if time.monotonic() > deadline:
                pytest.fail(f"no ledger started\n{self.diagnostics()}", pytrace=False)
            time.sleep(0.05)
        return int(found[-1])

    def wait_for_ledger(self, timeout: float = METRIC_TIMEOUT) -> None:
        """Until the ledger has applied every acknowledged record to the database."""
        deadline = time.monotonic() + timeout
        while True:
            journaled, applied = ledger_position(str(self.journal_path), self.db_url)
            if applied >= journaled:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"the ledger applied the journal through {applied} of {journaled} "
                            f"within {timeout:.0f} s\n{self.diagnostics()}", pytrace=False)
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    # --- life cycle ---

    def spawn(self) -> None:
        """Run `vpop serve` and return at once."""
        args = ["serve"]
        if self.workers != 1:
            args += ["--workers", str(self.workers)]
        self._output_file = self.output.open("w")
        self.process = subprocess.Popen(
            [*vpop_command(), "--config", str(self.config), *args], cwd=self.home,
            env=clean_env(), stdout=self._output_file, stderr=subprocess.STDOUT)

    def ready_workers(self) -> int:
        return len(re.findall(r"worker \d+ ready", self.log_text()))

    def start(self) -> None:
        """Run `vpop serve` and wait until it answers; fail the test if it does not (the
        server killed: none is left running after the test, whatever failed)."""
        self.spawn()
        try:
            self._wait_answering()
        except BaseException:
            if self.process.poll() is None:
                self.process.kill()
                self.exit_status = self.process.wait()
            raise

    def _wait_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while self.ready_workers() < self.workers:
            self._check_running("while starting")
            if time.monotonic() > deadline:
                self._abort(f"no 'worker N ready' line for {self.workers} worker(s) "
                            f"within {START_TIMEOUT:.0f} s")
            time.sleep(0.05)
        nas = Nas(self.secret)
        while True:
            self._check_running("while starting")
            reply = nas.exchange(nas.status_server(), self.auth(), timeout=0.5)
            if reply is not None and reply.code == codec.ACCESS_ACCEPT:
                return
            if time.monotonic() > deadline:
                self._abort(f"no answer to Status-Server within {START_TIMEOUT:.0f} s")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the server and wait for it; returns its exit status."""
        if self.process is None:
            raise AssertionError("server was never started")
        if self.exit_status is None:
            if self.process.poll() is None:
                self.process.send_signal(sig)
            try:
                self.exit_status = self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._abort(f"did not exit within {STOP_TIMEOUT:.0f} s of signal {sig}")
            finally:
                self._output_file.close()
        return self.exit_status

    def _check_running(self, when: str) -> None:
        if self.process.poll() is not None:
            self.exit_status = self.process.returncode
            self._output_file.close()
            pytest.fail(f"vpop serve exited with status {self.exit_status} {when}\n"
                        f"{self.diagnostics()}", pytrace=False)

    def _abort(self, reason: str) -> None:
        self.process.kill()
        self.exit_status = self.process.wait()
        self._output_file.close()
        pytest.fail(f"vpop serve {reason}; killed it\n{self.diagnostics()}", pytrace=False)

    def reload(self) -> None:
        self.process.send_signal(signal.SIGHUP)

    def import_plan(self, content: str) -> None:
        """`vpop import` into this server's database, while it runs."""
        plan = self.home / "plan.toml"
        plan.write_text(content)
        result = run_vpop(self.config, "import", str(plan))
        assert result.returncode == 0, result.stdout + result.stderr

    # --- what it says ---

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def output_text(self) -> str:
        try:
            return self.output.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def diagnostics(self) -> str:
        return (f"--- {self.log} (last 4000 chars) ---\n{self.log_text()[-4000:]}\n"
                f"--- output ---\n{self.output_text()[-4000:]}")

    def metrics(self) -> dict[tuple[str, frozenset], float]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=REPLY_TIMEOUT) as response:
            text = response.read().decode()
        return {(sample.name, frozenset(sample.labels.items())): sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples}

    def metric(self, name: str, **labels: str) -> float:
        """One sample's value; 0 for a counter that has not been incremented yet."""
        return self.metrics().get((name, frozenset(labels.items())), 0.0)

    def metric_sum(self, name: str) -> float:
        return sum(v for (n, _), v in self.metrics().items() if n == name)

    def wait_for_metric(self, name: str, at_least: float, **labels: str) -> float:
        """Poll until the sample reaches `at_least`: workers publish counters once a second."""
        deadline = time.monotonic() + METRIC_TIMEOUT
        while True:
            value = self.metric(name, **labels)
            if value >= at_least or time.monotonic() > deadline:
                return value
            time.sleep(0.1)


# --- RADIUS from Python ----------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    data: bytes
    authenticator: bytes  # what the reply is signed against
    secret: bytes = SECRET


class Link:
    """A UDP socket connected to one server port: replies from elsewhere are not seen."""

    def __init__(self, addr: tuple[str, int], source: str | None = None):
        while True:
            self.sock = socket.socket(family_of(addr[0]), socket.SOCK_DGRAM)
            if source is not None:
                self.sock.bind((source, 0))
            self.sock.connect(addr)
            # While nobody listens on the server's port (a server restarting), the kernel
            # may give this socket that very port as its own: it would then hear its own
            # request as the answer. Another socket, another port.
            if self.sock.getsockname()[:2] != self.sock.getpeername()[:2]:
                break
            self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.send(data)

    def receive(self, timeout: float = REPLY_TIMEOUT) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65535)
        except socket.timeout:
            return None
        except ConnectionRefusedError:  # ICMP port unreachable: nobody listens there
            return None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Nas:
    """Builds requests as a NAS would and checks the replies' signatures."""

    def __init__(self, secret: bytes = SECRET, rng: random.Random | None = None):
        self.secret = secret
        self.rng = rng or random.Random()

    def access(self, pairs=(), *, password: str | None = None, raw: bytes = b"",
               ma: bool = True, secret: bytes | None = None,
               authenticator: bytes | None = None) -> Request:
        secret = self.secret if secret is None else secret
        auth = authenticator or self.rng.randbytes(16)
        attrs = DICTIONARY.encode_pairs(pairs)
        if password is not None:
            hidden = encrypt_user_password(password.encode(), secret, auth)
            attrs += codec.attribute(A.USER_PASSWORD, hidden)
        data = codec.encode_request(codec.ACCESS_REQUEST, self.rng.randrange(256), attrs + raw,
                                    secret, authenticator=auth, message_authenticator=ma)
        return Request(data, auth, secret)

    def status_server(self, *, ma: bool = True) -> Request:
        auth = self.rng.randbytes(16)
        data = codec.encode_request(codec.STATUS_SERVER, self.rng.randrange(256), b"",
                                    self.secret, authenticator=auth, message_authenticator=ma)
        return Request(data, auth, self.secret)

    def accounting(self, pairs, *, secret: bytes | None = None) -> Request:
        secret = self.secret if secret is None else secret
        data = codec.encode_request(codec.ACCOUNTING_REQUEST, self.rng.randrange(256),
                                    DICTIONARY.encode_pairs(pairs), secret,
                                    message_authenticator=False)
        return Request(data, data[4:20], secret)

    def check(self, request: Request, reply: bytes) -> codec.Packet:
        packet = codec.decode(reply)
        assert packet.ident == request.data[1], "reply to another request"
        assert codec.reply_ok(reply, request.authenticator, request.secret,
                              to_status_server=request.data[0] == codec.STATUS_SERVER), \
            "reply authenticator or Message-Authenticator does not verify"
        return packet

    def exchange(self, request: Request, addr: tuple[str, int], *, source: str | None = None,
                 timeout: float = REPLY_TIMEOUT) -> codec.Packet | None:
        """Send once and wait; None if nothing came back within `timeout`."""
        with Link(addr, source) as link:
            link.send(request.data)
            reply = link.receive(timeout)
        return None if reply is None else self.check(request, reply)

    def ask(self, request: Request, addr: tuple[str, int], **kw) -> codec.Packet:
        reply = self.exchange(request, addr, **kw)
        assert reply is not None, f"no reply from {addr} within {REPLY_TIMEOUT} s"
        return reply

    def login(self, user: str, password: str, addr: tuple[str, int]) -> int:
        """PAP; the reply's code."""
        return self.ask(self.access([("User-Name", user)], password=password), addr).code

    def accepted_in_a_row(self, user: str, password: str, addr: tuple[str, int], *,
                          times: int, timeout: float = 10.0) -> bool:
        """Log in until accepted `times` times running, each from a new source port."""
        deadline = time.monotonic() + timeout
        running = 0
        while running < times:
            if time.monotonic() > deadline:
                return False
            running = running + 1 if self.login(user, password, addr) == codec.ACCESS_ACCEPT else 0
        return True


def reply_message(packet: codec.Packet) -> str:
    return b"".join(packet.attrs.get(A.REPLY_MESSAGE, [])).decode()


# --- FreeRADIUS tools ------------------------------------------------------------------

@dataclass
class ToolResult:
    returncode: int
    stdout: str
    stderr: str
    reply: str | None  # e.g. "Access-Accept"
    attrs: dict[str, list[str]]  # the reply's attributes as radclient prints them

    @property
    def transcript(self) -> str:
        """For assertion messages: what the tool printed."""
        return f"exit status {self.returncode}\n{self.stdout}{self.stderr}"


class FreeRadius:
    """radclient and radtest as subprocesses; a missing tool fails the calling test."""

    def tool(self, name: str) -> str:
        try:
            return find_tool(name)
        except MissingTool as exc:
            pytest.fail(f"{exc}: the end-to-end tests talk to vpop with FreeRADIUS 3.2's "
                        "client tools", pytrace=False)

    @staticmethod
    def target(addr: tuple[str, int]) -> str:
        host, port = addr
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def radclient(self, lines: list[str], addr: tuple[str, int], command: str, *,
                  secret: str = SECRET.decode(), timeout: int = 4, retries: int = 2
                  ) -> ToolResult:
        args = [self.tool("radclient"), "-D", str(RADCLIENT_DICTIONARY), "-x",
                "-t", str(timeout), "-r", str(retries), self.target(addr), command, secret]
        return self._run(args, "\n".join(lines) + "\n")

    def radtest(self, user: str, password: str, addr: tuple[str, int], *,
                method: str = "pap", secret: str = SECRET.decode()) -> ToolResult:
        # ppphint 0, NAS address given: nothing depends on this machine's host name.
        args = [self.tool("radtest"), "-t", method, user, password, self.target(addr), "0",
                secret, "0", "127.0.0.1"]
        return self._run(args, None)

    @staticmethod
    def _run(args: list[str], stdin: str | None) -> ToolResult:
        result = subprocess.run(args, input=stdin, capture_output=True, text=True,
                                timeout=CLI_TIMEOUT)
        received = re.search(r"^Received (\S+) Id", result.stdout, re.M)
        attrs: dict[str, list[str]] = {}
        if received:
            for line in result.stdout[received.end():].splitlines()[1:]:
                pair = re.match(r"\t(\S+) = (.*)$", line)
                if not pair:
                    break
                attrs.setdefault(pair.group(1), []).append(pair.group(2).strip('"'))
        return ToolResult(result.returncode, result.stdout, result.stderr,
                          received.group(1) if received else None, attrs)
