"""OpenLDAP's slapd as a subscriber directory on loopback, for integration tests.

Each instance gets a configuration directory of its own, made with slapadd from a
generated cn=config (core, cosine, inetorgperson and nis schemas from the slapd
package, a minimal Samba schema for sambaNTPassword and vpop's example schema of
docs/ldap.md), never the system's; TLS with a throw-away CA made by openssl. It is
seeded offline (slapadd) with subscribers and groups, started in the foreground
(`-d 0`) on free ports, and stopped by its PID: nothing else is touched.

    with Slapd(tmp_path, subscribers=1000) as ldap:
        ...  # ldap.url, ldap.ldaps_url, ldap.certs.ca, ldap.stop(), ldap.start()
"""

from __future__ import annotations

import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from support.freeradius import find_tool

from vpop.aaa import credentials, schemes

HERE = Path(__file__).resolve().parent / "ldap"
SCHEMAS = Path("/etc/ldap/schema")
MODULES = Path("/usr/lib/ldap")
SUFFIX = "dc=example,dc=net"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-pass"
SERVICE_DN = f"cn=vpop,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "service-pass"
ISP_BASE = f"ou=isp-local,{SUFFIX}"
ISP_SERVICE_DN = f"cn=isp-local,ou=services,{SUFFIX}"
ISP_SERVICE_PASSWORD = "isp-local-pass"
GROUPS = f"ou=groups,{SUFFIX}"
SUBSCRIBERS = f"ou=subscribers,{SUFFIX}"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
# The schemes the seeded subscribers' userPassword values use, in turn.
PASSWORD_SCHEMES = ("SSHA", "SSHA256", "SSHA512", "CRYPT", "PBKDF2-SHA256", "")


class SlapdError(RuntimeError):
    """slapd did not start, or a set-up step failed; the message carries its output."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class LdapCertificates:
    ca: Path  # signed the server's certificate
    wrong_ca: Path  # a CA that did not
    server_cert: Path
    server_key: Path


def make_certificates(directory: Path) -> LdapCertificates:
    """A CA, a server certificate for 127.0.0.1 and localhost signed by it, and a
    second CA that signed nothing here."""
    openssl = find_tool("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    certs = LdapCertificates(ca=directory / "ca.pem", wrong_ca=directory / "wrong-ca.pem",
                             server_cert=directory / "server.pem",
                             server_key=directory / "server.key")
    ext = directory / "server.ext"
    ext.write_text("basicConstraints = CA:FALSE\nkeyUsage = digitalSignature, keyEncipherment\n"
                   "extendedKeyUsage = serverAuth\n"
                   "subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    steps = [
        [openssl, "req", "-x509", *ec, "-keyout", directory / "ca.key", "-out", certs.ca,
         "-days", "30", "-subj", "/O=vpop tests/CN=vpop test LDAP CA", *ca_ext],
        [openssl, "req", "-x509", *ec, "-keyout", directory / "wrong-ca.key", "-out",
         certs.wrong_ca, "-days", "30", "-subj", "/O=vpop tests/CN=another CA", *ca_ext],
        [openssl, "req", "-new", *ec, "-keyout", certs.server_key, "-out",
         directory / "server.csr", "-subj", "/O=vpop tests/CN=127.0.0.1"],
        [openssl, "x509", "-req", "-in", directory / "server.csr", "-CA", certs.ca, "-CAkey",
         directory / "ca.key", "-CAcreateserial", "-out", certs.server_cert, "-days", "30",
         "-extfile", ext],
    ]
    for step in steps:
        _run([str(a) for a in step])
    certs.server_key.chmod(0o600)
    return certs


def _run(command: list[str], stdin: str | None = None) -> None:
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120)
    if result.returncode:
        raise SlapdError(f"{' '.join(command[:4])} failed ({result.returncode}):\n"
                         f"{result.stdout}{result.stderr}")


# --- the seeded directory ------------------------------------------------------------------

def password_of(number: int) -> str:
    return f"pass-{number:04d}"


def username_of(number: int) -> str:
    return f"user{number:04d}"


def caller_id_of(number: int) -> str:
    return f"4930{1000000 + number}"


def circuit_of(number: int) -> str:
    return f"circuit-{number:04d}"


def stored_password(number: int) -> str:
    """The userPassword of subscriber `number`, in its turn's scheme."""
    scheme = PASSWORD_SCHEMES[number % len(PASSWORD_SCHEMES)]
    password = password_of(number).encode()
    salt = f"salt{number:04d}".encode()
    if scheme == "CRYPT":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        return "{CRYPT}" + crypt.crypt(password.decode(), f"$6$rounds=5000${salt.decode()}")
    if scheme:
        return schemes.make(scheme, password, salt=salt, iterations=1000)
    return password.decode()


def group_of(number: int) -> str | None:
    """business for every tenth subscriber, none for the others."""
    return "business" if number % 10 == 0 else None


def seed_ldif(subscribers: int) -> str:
    """The tree: services, groups, the subscribers, the special cases the tests use,
    and the subtree of isp-local's own directory."""
    out = [f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\n"
           "o: example\n"]
    for ou in ("services", "groups", "subscribers", "isp-local"):
        out.append(f"dn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}\n")
    for dn, password in ((SERVICE_DN, SERVICE_PASSWORD), (ISP_SERVICE_DN, ISP_SERVICE_PASSWORD)):
        out.append(f"dn: {dn}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
                   f"cn: {dn.split(',')[0][3:]}\nuserPassword: {schemes.make('SSHA', password.encode(), salt=b'svc')}\n")
    members = [n for n in range(1, subscribers + 1) if group_of(n)]
    out.append(f"dn: cn=business,{GROUPS}\nobjectClass: groupOfNames\ncn: business\n"
               + "".join(f"member: uid={username_of(n)},{SUBSCRIBERS}\n" for n in members))
    for number in range(1, subscribers + 1):
        out.append(_subscriber(number))
    # The special cases (docs/ldap.md: entries that cannot be served are refused).
    out.append(_entry("disabled", "disabled-pass", access="disabled"))
    out.append(_entry("expired", "expired-pass", access="expired"))
    out.append(_entry("strange-access", "strange-pass", access="maybe"))
    out.append(_entry("broken-ip", "broken-pass", extra="vpopFramedIP: 10.0.0.300\n"))
    out.append(_entry("static", "static-pass", extra="vpopFramedIP: 10.9.0.8\n"
                                                     "vpopRateDown: 55555\n"))
    out.append(_entry("nowhere", "nowhere-pass", extra="vpopProfile: no-such-profile\n"))
    out.append(_entry("bound", "bound-pass", stored=""))  # no userPassword readable: bind
    out.append(_entry("*", "star-pass"))  # a uid that is a filter's wildcard
    out.append(f"dn: uid=hosted,{ISP_BASE}\nobjectClass: inetOrgPerson\n"
               f"objectClass: vpopSubscriber\nuid: hosted\ncn: hosted\nsn: hosted\n"
               f"vpopProfile: business-100m\n"
               f"userPassword: {schemes.make('SSHA', b'hosted-pass', salt=b'hosted')}\n")
    return "\n".join(out)


def _subscriber(number: int) -> str:
    name = username_of(number)
    group = group_of(number)
    nt = credentials.nt_hash(password_of(number)).hex().upper()
    return (f"dn: uid={name},{SUBSCRIBERS}\nobjectClass: inetOrgPerson\n"
            f"objectClass: vpopSubscriber\nobjectClass: sambaSamAccount\n"
            f"uid: {name}\ncn: {name}\nsn: {name}\nsambaSID: S-1-5-21-1-2-3-{1000 + number}\n"
            f"userPassword: {stored_password(number)}\nsambaNTPassword: {nt}\n"
            f"vpopCallerId: {caller_id_of(number)}\nvpopCircuitId: {circuit_of(number)}\n"
            + (f"vpopGroup: cn={group},{GROUPS}\n" if group else ""))


def _entry(uid: str, password: str, *, access: str = "", extra: str = "",
           stored: str | None = None) -> str:
    stored = schemes.make("SSHA", password.encode(), salt=b"special") if stored is None else stored
    rdn = "uid=\\2A" if uid == "*" else f"uid={uid}"
    return (f"dn: {rdn},{SUBSCRIBERS}\nobjectClass: inetOrgPerson\nobjectClass: vpopSubscriber\n"
            f"uid: {uid}\ncn: {uid}\nsn: {uid}\n"
            + (f"userPassword: {stored}\n" if stored else "")
            + (f"vpopAccess: {access}\n" if access else "") + extra)


# slapd's memberof overlay: it keeps memberOf on the entries a groupOfNames names, as
# groups change online (slapadd seeds around overlays: a group it adds sets nothing).
MEMBEROF_OVERLAY = """
dn: olcOverlay={0}memberof,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOfConfig
olcOverlay: {0}memberof
olcMemberOfRefInt: TRUE
"""


def config_ldif(directory: Path, certs: LdapCertificates, *, memberof: bool = False) -> str:
    admin = schemes.make("SSHA", ADMIN_PASSWORD.encode(), salt=b"admin")
    modules = "olcModuleLoad: back_mdb" + ("\nolcModuleLoad: memberof" if memberof else "")
    includes = "".join(f"include: file://{SCHEMAS / name}.ldif\n"
                       for name in ("core", "cosine", "inetorgperson", "nis"))
    includes += "".join(f"include: file://{HERE / name}\n"
                        for name in ("samba-minimal.ldif", "vpop-schema.ldif"))
    return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {directory}/slapd.pid
olcTLSCACertificateFile: {certs.ca}
olcTLSCertificateFile: {certs.server_cert}
olcTLSCertificateKeyFile: {certs.server_key}

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {MODULES}
{modules}

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{includes}
dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: 5000

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcDbDirectory: {directory}/data
olcSuffix: {SUFFIX}
olcRootDN: {ADMIN_DN}
olcRootPW: {admin}
olcDbMaxSize: 268435456
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcDbIndex: member eq
olcDbIndex: vpopCallerId eq
olcDbIndex: vpopCircuitId eq
olcAccess: {{0}}to dn.subtree="{ISP_BASE}" by dn.exact="{ISP_SERVICE_DN}" read by anonymous auth by * none
olcAccess: {{1}}to attrs=userPassword,sambaNTPassword by dn.exact="{SERVICE_DN}" read by anonymous auth by self read by * none
olcAccess: {{2}}to * by dn.exact="{SERVICE_DN}" read by dn.exact="{ISP_SERVICE_DN}" read by anonymous auth by users read by * none
{MEMBEROF_OVERLAY if memberof else ""}"""


class Slapd:
    """One slapd with its own cn=config and data, on loopback ports of its own."""

    def __init__(self, home: Path, *, subscribers: int = 1000, memberof: bool = False):
        self.home = home
        self.memberof = memberof  # the memberof overlay (MEMBEROF_OVERLAY) on the data
        self.config_dir = home / "slapd.d"
        self.data_dir = home / "data"
        self.port = free_port()
        self.ldaps_port = free_port()
        self.certs = make_certificates(home / "certs")
        self.process: subprocess.Popen | None = None
        self.log_path = home / "slapd.log"
        self._setup(subscribers)

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    def _setup(self, subscribers: int) -> None:
        slapadd = find_tool("slapadd")
        self.config_dir.mkdir(parents=True)
        self.data_dir.mkdir()
        config = self.home / "config.ldif"
        config.write_text(config_ldif(self.home, self.certs, memberof=self.memberof))
        _run([slapadd, "-n", "0", "-F", str(self.config_dir), "-l", str(config)])
        seed = self.home / "seed.ldif"
        seed.write_text(seed_ldif(subscribers))
        _run([slapadd, "-q", "-n", "1", "-F", str(self.config_dir), "-l", str(seed)])

    def start(self) -> None:
        slapd = find_tool("slapd")
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [slapd, "-F", str(self.config_dir), "-h", f"{self.url}/ {self.ldaps_url}/",
             "-d", "0"], stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise SlapdError(f"slapd exited with {self.process.returncode}:\n"
                                 f"{self.log_path.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5), \
                        socket.create_connection(("127.0.0.1", self.ldaps_port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise SlapdError(f"slapd not listening within {START_TIMEOUT} s:\n"
                                     f"{self.log_path.read_text(errors='replace')}")
                time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._log.close()

    def __enter__(self) -> "Slapd":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
