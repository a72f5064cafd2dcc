"""FreeRADIUS 3.2 as an ISP's RADIUS server on loopback, for integration tests.

Each instance gets a generated configuration directory, not a copy of the
packaged one: a short radiusd.conf with only the modules an ISP server needs
(pap, chap, mschap, eap with PEAP/MSCHAPv2, files for the users, detail for
accounting), so it starts in a fraction of a second, the same way as root or as
any other user. The process runs in the foreground (`-f`) under the caller's
user and is the only process stopped or killed here, by its PID.

    with FreeRadius("isp-a", users={"alice": "alice-pass"}) as isp:
        ...  # isp.auth_addr, isp.acct_addr, isp.detail_records(), isp.log()

Certificates for PEAP (a CA and a server certificate signed by it) are made with
`openssl` once per process and shared by every instance (`test_certificates`).
"""

from __future__ import annotations

import atexit
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from vpop.radius import codec

DEFAULT_SECRET = "testing123"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
READY_LINE = "Ready to process requests"

# Debian package that ships each program, for the error message.
PACKAGES = {"freeradius": "freeradius", "radiusd": "freeradius", "radclient": "freeradius-utils",
            "radtest": "freeradius-utils", "eapol_test": "eapoltest", "openssl": "openssl",
            "hostapd": "hostapd", "hostapd_cli": "hostapd", "wpa_supplicant": "wpasupplicant",
            "wpa_cli": "wpasupplicant", "ip": "iproute2", "slapd": "slapd", "slapadd": "slapd"}


class MissingTool(RuntimeError):
    """A program the harness runs is not installed."""


class FreeRadiusError(RuntimeError):
    """FreeRADIUS did not start (or not in time); the message carries its own output."""


def find_tool(*names: str) -> str:
    """The path of the first of `names` on PATH (or in /usr/sbin), else MissingTool."""
    for name in names:
        path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
        if path:
            return path
    package = PACKAGES.get(names[0], names[0])
    raise MissingTool(f"{' or '.join(names)} not found on PATH: install it "
                      f"(Debian/Ubuntu: apt-get install {package}; or `make test-deps`)")


def stop_process(process: subprocess.Popen | None, timeout: float) -> int | None:
    """SIGTERM to the process's own PID, SIGKILL after `timeout`; its exit status
    (None if it was never started)."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


# --- ports --------------------------------------------------------------------------------

def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port the kernel reports free on `host` right now."""
    return free_udp_ports(1, host)[0]


def free_udp_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct free UDP ports, held together while they are chosen."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    held = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            held.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


# --- certificates -------------------------------------------------------------------------

@dataclass(frozen=True)
class Certificates:
    directory: Path
    ca: Path  # the CA certificate a supplicant verifies the server against
    server_cert: Path
    server_key: Path


_certificates: Certificates | None = None
_certificates_lock = threading.Lock()


def test_certificates() -> Certificates:
    """A throw-away CA and server certificate (EC P-256: generated in milliseconds).

    Made once per process in a temporary directory removed at exit.
    """
    global _certificates
    with _certificates_lock:
        if _certificates is None:
            directory = Path(tempfile.mkdtemp(prefix="vpop-test-certs-"))
            atexit.register(shutil.rmtree, directory, True)
            _certificates = _make_certificates(directory)
        return _certificates


test_certificates.__test__ = False  # a helper, not a test, despite the name


def _make_certificates(directory: Path) -> Certificates:
    openssl = find_tool("openssl")
    certs = Certificates(directory=directory, ca=directory / "ca.pem",
                         server_cert=directory / "server.pem",
                         server_key=directory / "server.key")
    ca_key = directory / "ca.key"
    csr = directory / "server.csr"
    extensions = directory / "server.ext"
    # wpa_supplicant checks the server certificate's extended key usage when present.
    extensions.write_text("basicConstraints = CA:FALSE\n"
                          "keyUsage = digitalSignature, keyEncipherment\n"
                          "extendedKeyUsage = serverAuth\n"
                          "subjectAltName = DNS:radius.isp.example\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        [openssl, "req", "-x509", *ec, "-keyout", ca_key, "-out", certs.ca, "-days", "30",
         "-subj", "/O=vpop tests/CN=vpop test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", "-new", *ec, "-keyout", certs.server_key, "-out", csr,
         "-subj", "/O=vpop tests/CN=radius.isp.example"],
        [openssl, "x509", "-req", "-in", csr, "-CA", certs.ca, "-CAkey", ca_key,
         "-CAcreateserial", "-out", certs.server_cert, "-days", "30",
         "-extfile", extensions],
    ]
    for step in steps:
        result = subprocess.run([str(a) for a in step], capture_output=True, text=True,
                                timeout=60)
        if result.returncode:
            raise RuntimeError(f"openssl failed ({' '.join(map(str, step[:3]))}):\n"
                               f"{result.stdout}{result.stderr}")
    return certs


# --- the configuration --------------------------------------------------------------------

RADIUSD_CONF = """\
# Generated for a test: one ISP RADIUS server on loopback.
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {home}/log
raddbdir = {home}/raddb
radacctdir = {home}/acct
name = radiusd
confdir = ${{raddbdir}}
modconfdir = ${{confdir}}/mods-config
certdir = {certs}
cadir = {certs}
run_dir = {home}/run
db_dir = {home}/run
libdir = {libdir}
pidfile = ${{run_dir}}/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 16384
hostname_lookups = no

log {{
	destination = files
	colourise = no
	file = ${{logdir}}/radius.log
	syslog_facility = daemon
	stripped_names = no
	auth = {log_auth}
	auth_badpass = no
	auth_goodpass = no
	msg_denied = "You are already logged in - access denied"
}}

checkrad = ${{sbindir}}/checkrad

security {{
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = {reject_delay}
	status_server = {status_server}
}}

proxy_requests = no

thread pool {{
	start_servers = {threads}
	max_servers = {max_threads}
	min_spare_servers = 1
	max_spare_servers = {max_threads}
	max_requests_per_server = 0
	auto_limit_acct = no
}}

{clients}

modules {{
	pap {{
		normalise = yes
	}}
	chap {{
	}}
	mschap {{
	}}
	always ok {{
		rcode = ok
	}}
	files {{
		filename = ${{confdir}}/users
	}}
	detail {{
		filename = {detail}
		escape_filenames = no
		permissions = 0600
		header = "%t"
		locking = no
	}}
{duplicate_modules}
	eap {{
		default_eap_type = peap
		timer_expire = 60
		ignore_unknown_eap_types = no
		cisco_accounting_username_bug = no
		max_sessions = ${{max_requests}}
		tls-config tls-common {{
			private_key_file = {server_key}
			certificate_file = {server_cert}
			ca_file = {ca}
			cipher_list = "DEFAULT"
			cipher_server_preference = no
			tls_min_version = "1.2"
			tls_max_version = "1.2"
			ecdh_curve = "prime256v1"
			cache {{
				enable = no
			}}
			verify {{
			}}
			ocsp {{
				enable = no
			}}
		}}
		peap {{
			tls = tls-common
			default_eap_type = mschapv2
			copy_request_to_tunnel = no
			use_tunneled_reply = no
			virtual_server = "inner-tunnel"
		}}
		mschapv2 {{
			send_error = no
		}}
	}}
}}

instantiate {{
}}

server default {{
	listen {{
		type = auth
		{addr_key} = {host}
		port = {auth_port}
	}}
	listen {{
		type = acct
		{addr_key} = {host}
		port = {acct_port}
	}}
	authorize {{
{sign_status}
{local_realms}
		chap
		mschap
		eap {{
			ok = return
		}}
		files
		pap
	}}
	authenticate {{
		Auth-Type PAP {{
			pap
		}}
		Auth-Type CHAP {{
			chap
		}}
		Auth-Type MS-CHAP {{
			mschap
		}}
		eap
	}}
	preacct {{
	}}
	accounting {{
{accounting}
	}}
	post-auth {{
{sign_accept}
		Post-Auth-Type REJECT {{
{sign_reject}
			eap
		}}
	}}
}}

# PEAP's inner conversation (MSCHAPv2); it has no listener of its own.
server inner-tunnel {{
	authorize {{
{local_realms}
		mschap
		eap {{
			ok = return
		}}
		files
		pap
	}}
	authenticate {{
		Auth-Type PAP {{
			pap
		}}
		Auth-Type MS-CHAP {{
			mschap
		}}
		eap
	}}
	post-auth {{
	}}
}}
"""

# FreeRADIUS 3.2.1 signs only EAP replies (not PAP/CHAP ones, nor its Status-Server replies);
# from 3.2.5 (BlastRADIUS) it signs every Access-Accept/Reject. A Message-Authenticator in the
# reply list gets signed: SIGN_STATUS does so for Status-Server too, as a server whose
# replies a proxy requires to be signed must.
SIGN_REPLY = """\
{indent}update reply {{
{indent}	&Message-Authenticator := 0x00
{indent}}}"""

# A realm the ISP's server takes as its own, as a `suffix` realm marked local does: the
# name without it (Stripped-User-Name) finds the user in `files`; the User-Name, which
# MS-CHAPv2 hashes, stays as it came.
LOCAL_REALM = """\
		if (&User-Name =~ /^(.+)@{pattern}$/i) {{
			update request {{
				&Stripped-User-Name := "%{{1}}"
			}}
		}}"""

SIGN_STATUS = """\
		Autz-Type Status-Server {
			update reply {
				&Message-Authenticator := 0x00
			}
			ok
		}"""

# RFC 5080 §2.2.2's duplicate detection for accounting, which FreeRADIUS 3.2 does only
# while the first copy is still being processed (an Accounting-Request is forgotten once
# answered; cleanup_delay holds other requests only). A repeat is a request with the same
# source address and port and Request Authenticator (a hash over the Identifier and every
# attribute); it is answered and written to the `duplicates` file instead.
DUPLICATE_MODULES = """\
	cache acct_duplicates {{
		driver = "rlm_cache_rbtree"
		key = "%{{Packet-Src-IP-Address}}%{{Packet-Src-IPv6-Address}} %{{Packet-Src-Port}} \
%{{Packet-Authentication-Vector}}"
		ttl = {ttl}
		add_stats = no
		update {{
			&control:Tmp-String-0 := 'seen'
		}}
	}}
	detail duplicates {{
		filename = {path}
		escape_filenames = no
		permissions = 0600
		header = "%t"
		locking = no
	}}"""

ACCOUNTING_WITH_DUPLICATES = """\
		acct_duplicates
		if (updated) {
			detail
		}
		else {
			duplicates
		}"""

CLIENT = """\
client {name} {{
	{addr_key} = {address}
	secret = {secret}
	require_message_authenticator = {require_ma}
	nas_type = other
}}
"""


def _quote(value: object) -> str:
    """A FreeRADIUS single-quoted string: literal, no %{...} expansion."""
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


ReplyPairs = Mapping[str, object] | Iterable[tuple[str, object]]


def users_file(users: Mapping[str, str], replies: Mapping[str, ReplyPairs]) -> str:
    """The `files` module's users: Cleartext-Password check, then the reply items."""
    unknown = set(replies) - set(users)
    if unknown:
        raise ValueError(f"reply attributes for users without a password: {sorted(unknown)}")
    entries = []
    for user, password in users.items():
        pairs = replies.get(user, ())
        pairs = list(pairs.items() if isinstance(pairs, Mapping) else pairs)
        lines = [f"{_quote(user)}\tCleartext-Password := {_quote(password)}"]
        for i, (name, value) in enumerate(pairs):
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", name):
                raise ValueError(f"not an attribute name: {name!r}")
            comma = "," if i < len(pairs) - 1 else ""
            rendered = str(value) if isinstance(value, int) else _quote(value)
            lines.append(f"\t{name} = {rendered}{comma}")
        entries.append("\n".join(lines) + "\n")
    return "\n".join(entries)


def _client_block(index: int, address: str, secret: str, require_ma: bool) -> str:
    if not re.fullmatch(r"[0-9A-Fa-f.:]+(/\d+)?", address):
        raise ValueError(f"not an address or CIDR: {address!r}")
    if not secret or any(c in secret for c in "\"'\\\n"):
        raise ValueError("client secrets here must be non-empty, without quotes or backslashes")
    return CLIENT.format(name=f"client{index}", address=address,
                         addr_key="ipv6addr" if ":" in address else "ipaddr",
                         secret=f'"{secret}"', require_ma="yes" if require_ma else "no")


# --- detail file --------------------------------------------------------------------------

class DetailRecord(dict):
    """One accounting record: attribute name -> first value (quotes removed).

    `header` is the record's timestamp line; `pairs` keeps every (name, value) in
    file order, repeated attributes included.
    """

    def __init__(self, header: str, pairs: list[tuple[str, str]]):
        super().__init__()
        for name, value in pairs:
            self.setdefault(name, value)
        self.header = header
        self.pairs = pairs

    def all(self, name: str) -> tuple[str, ...]:
        return tuple(value for key, value in self.pairs if key == name)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_detail(text: str) -> list[DetailRecord]:
    """Records separated by blank lines: a timestamp line, then tab-indented `Attr = value`."""
    records = []
    for block in re.split(r"\n[ \t]*\n", text):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        pairs = []
        for line in lines[1:]:
            name, sep, value = line.strip().partition(" = ")
            if not sep:
                raise ValueError(f"unexpected line in detail file: {line!r}")
            pairs.append((name, _unquote(value)))
        records.append(DetailRecord(lines[0].strip(), pairs))
    return records


def _read_detail(path: Path) -> list[DetailRecord]:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return parse_detail(text)


# --- the server ---------------------------------------------------------------------------

_running: set[FreeRadius] = set()  # started here and not yet stopped


@atexit.register
def _kill_leftovers() -> None:
    """A test run that ends abnormally must not leave servers behind."""
    for server in list(_running):
        server.kill()


class FreeRadius:
    """One FreeRADIUS process answering as an ISP's RADIUS server."""

    def __init__(self, name: str = "isp", *,
                 users: Mapping[str, str] | None = None,
                 replies: Mapping[str, ReplyPairs] | None = None,
                 clients: Iterable[tuple[str, str]] = (("127.0.0.1/32", DEFAULT_SECRET),),
                 auth_port: int | None = None, acct_port: int | None = None,
                 host: str = "127.0.0.1",
                 require_message_authenticator: bool = False,
                 sign_replies: bool = True,
                 status_server: bool = True,
                 reject_delay: int = 0,
                 threads: int | None = None,
                 log_auth: bool = True,
                 duplicate_window: int = 0,
                 debug: bool = False,
                 local_realms: Iterable[str] = (),
                 directory: Path | None = None):
        """`users`: name -> cleartext password; `replies`: name -> reply attributes
        (a mapping or (name, value) pairs, e.g. {"Framed-IP-Address": "192.0.2.7"}).
        `clients`: (address or CIDR, secret). Ports default to free ones.
        `require_message_authenticator`: drop Access-Requests without one (all clients).
        `sign_replies`: a Message-Authenticator in every Access-Accept/Reject, as a
        FreeRADIUS patched for BlastRADIUS (3.2.5+) sends, and in Status-Server replies;
        False: as 3.2.1 does, only in EAP replies.
        `directory`: where the config, logs and detail file go (default: a new
        temporary directory, removed by `cleanup()` or on leaving the `with` block).
        `log_auth`: a "Login OK/incorrect" line per authentication in the log.
        `threads`: a fixed thread pool (default: FreeRADIUS's 5 growing to 32).
        `duplicate_window`: seconds an Accounting-Request is remembered, so that a
        retransmission (same source, Request Authenticator) is answered without being
        written to the detail file again (see DUPLICATE_MODULES); 0: as FreeRADIUS does.
        `debug`: FreeRADIUS's -xx request tracing into the log (slower).
        `local_realms`: realms (`isp-a.example`) whose users are found in `users` under
        the name without the realm, as an ISP's server strips its own realms."""
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise ValueError(f"server name {name!r}: letters, digits, '.', '_', '-' only")
        self.name = name
        self.host = host
        self.users = dict(users or {})
        self.replies = dict(replies or {})
        self.clients = list(clients)
        self.require_message_authenticator = require_message_authenticator
        self.sign_replies = sign_replies
        self.status_server = status_server
        self.reject_delay = reject_delay
        self.threads = threads
        self.log_auth = log_auth
        self.duplicate_window = duplicate_window
        self.debug = debug
        self.local_realms = tuple(local_realms)
        for realm in self.local_realms:
            if not re.fullmatch(r"[A-Za-z0-9.-]+", realm):
                raise ValueError(f"not a realm: {realm!r}")
        if auth_port is None or acct_port is None:
            ports = free_udp_ports(2, host)
            auth_port = auth_port or ports[0]
            acct_port = acct_port or (ports[1] if ports[1] != auth_port else ports[0])
        self.auth_port = auth_port
        self.acct_port = acct_port
        self._own_directory = directory is None
        self.home = Path(directory) if directory else Path(
            tempfile.mkdtemp(prefix=f"vpop-freeradius-{name}-"))
        self.raddb = self.home / "raddb"
        self.log_path = self.home / "log" / "radius.log"
        self.output_path = self.home / "output.txt"  # the process's stdout and stderr
        self.detail_path = self.home / "acct" / "detail"
        self.duplicates_path = self.home / "acct" / "duplicates"
        self.certificates = test_certificates()
        self.process: subprocess.Popen | None = None
        self._mark = 0  # the log's size when the last start() began
        self._binary = find_tool("freeradius", "radiusd")
        self._write_config()

    # --- addresses ---

    @property
    def auth_addr(self) -> tuple[str, int]:
        return self.host, self.auth_port

    @property
    def acct_addr(self) -> tuple[str, int]:
        return self.host, self.acct_port

    @property
    def ca_cert(self) -> Path:
        """The CA a PEAP client verifies this server's certificate against."""
        return self.certificates.ca

    @property
    def secret(self) -> str:
        """The first client's secret (the usual single-client case)."""
        return self.clients[0][1]

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # --- configuration ---

    def _write_config(self) -> None:
        for sub in ("raddb", "log", "run", "acct"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        certs = self.certificates
        libdir = next((d for d in ("/usr/lib/freeradius", "/usr/lib64/freeradius",
                                   "/usr/local/lib/freeradius") if Path(d).is_dir()),
                      "/usr/lib/freeradius")
        clients = "\n".join(_client_block(i, address, secret, self.require_message_authenticator)
                            for i, (address, secret) in enumerate(self.clients))
        text = RADIUSD_CONF.format(
            home=self.home, certs=certs.directory, libdir=libdir,
            reject_delay=self.reject_delay, log_auth="yes" if self.log_auth else "no",
            status_server="yes" if self.status_server else "no",
            threads=self.threads or 5, max_threads=self.threads or 32,
            clients=clients, detail=self.detail_path, server_key=certs.server_key,
            duplicate_modules=DUPLICATE_MODULES.format(ttl=self.duplicate_window,
                                                       path=self.duplicates_path)
            if self.duplicate_window else "",
            accounting=ACCOUNTING_WITH_DUPLICATES if self.duplicate_window else "\t\tdetail",
            server_cert=certs.server_cert, ca=certs.ca,
            addr_key="ipv6addr" if ":" in self.host else "ipaddr", host=self.host,
            auth_port=self.auth_port, acct_port=self.acct_port,
            sign_accept=SIGN_REPLY.format(indent="\t\t") if self.sign_replies else "",
            sign_reject=SIGN_REPLY.format(indent="\t\t\t") if self.sign_replies else "",
            sign_status=SIGN_STATUS if self.sign_replies else "",
            local_realms="\n".join(LOCAL_REALM.format(pattern=realm.replace(".", "\\."))
                                   for realm in self.local_realms))
        (self.raddb / "radiusd.conf").write_text(text)
        (self.raddb / "users").write_text(users_file(self.users, self.replies))

    def set_users(self, users: Mapping[str, str],
                  replies: Mapping[str, ReplyPairs] | None = None) -> None:
        """Replace the users; takes effect at the next start() or restart()."""
        self.users = dict(users)
        self.replies = dict(replies or {})
        self._write_config()

    # --- life cycle ---

    def command(self) -> list[str]:
        args = [self._binary, "-f", "-d", str(self.raddb), "-l", str(self.log_path)]
        return args + (["-xx"] if self.debug else [])

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start and wait until it answers (Status-Server when enabled, else the log's
        ready line). Raises FreeRadiusError with FreeRADIUS's own output on failure."""
        if self.running:
            raise RuntimeError(f"{self.name}: already running (pid {self.pid})")
        self._mark = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.output_path.open("ab") as out:
            # A session of its own: a Ctrl-C at the terminal does not reach it directly.
            self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            cwd=self.home)
        _running.add(self)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                status = self.process.returncode
                raise FreeRadiusError(f"{self.name}: FreeRADIUS exited with status {status} "
                                      f"while starting\n{self.diagnostics()}")
            if READY_LINE in self._log_since_start():
                if not self.status_server or self.ping(timeout=0.3) is not None:
                    return
            if time.monotonic() > deadline:
                self.kill()
                raise FreeRadiusError(f"{self.name}: not ready within {timeout:g} s; "
                                      f"killed it\n{self.diagnostics()}")
            time.sleep(0.02)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status (None if not run)."""
        status = stop_process(self.process, timeout)
        _running.discard(self)
        return status

    def kill(self) -> int | None:
        """SIGKILL: the server dies at once, as a crashed ISP server would."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
            process.wait()
        _running.discard(self)
        return process.returncode

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        self.stop()
        self.start(timeout)

    def cleanup(self) -> None:
        """Stop, and remove the directory if it was created here."""
        self.stop()
        if self._own_directory:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> FreeRadius:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    # --- talking to it ---

    def ping(self, *, acct: bool = False, timeout: float = 1.0) -> int | None:
        """One Status-Server (RFC 5997); the reply's code if it verifies, else None."""
        secret = self.secret.encode()
        authenticator = random.randbytes(16)
        packet = codec.encode_request(codec.STATUS_SERVER, random.randrange(256), b"", secret,
                                      authenticator=authenticator)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.connect(self.acct_addr if acct else self.auth_addr)
            try:
                sock.send(packet)
                data = sock.recv(4096)
            except OSError:  # timeout, or ICMP port unreachable
                return None
        try:
            answered = codec.reply_ok(data, authenticator, secret, to_status_server=True)
            return data[0] if answered else None
        except Exception:
            return None

    # --- what it wrote ---

    def detail_records(self) -> list[DetailRecord]:
        """The accounting records written so far, oldest first."""
        return _read_detail(self.detail_path)

    def duplicate_records(self) -> list[DetailRecord]:
        """The retransmissions recognised with `duplicate_window`, oldest first."""
        return _read_detail(self.duplicates_path)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def output(self) -> str:
        try:
            return self.output_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _log_since_start(self) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._mark)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def diagnostics(self, limit: int = 6000) -> str:
        return (f"--- {self.log_path} (last {limit} chars) ---\n{self.log()[-limit:]}"
                f"--- output ---\n{self.output()[-limit:]}"
                f"--- command ---\n{' '.join(self.command())}")

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<FreeRadius {self.name} {self.host}:{self.auth_port}/{self.acct_port} {state}>"
