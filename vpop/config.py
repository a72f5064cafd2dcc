"""Settings: frozen dataclasses, read once from one TOML file and passed down.

Every option has a default here and a line in docs/configuration.md. A string
value written as "env:NAME" is read from the environment variable NAME, so
secrets need not sit in the file.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vpop.errors import ConfigError

_FROZEN = dict(frozen=True, slots=True, kw_only=True)


@dataclass(**_FROZEN)
class ServerSettings:
    listen: tuple[str, ...] = ("0.0.0.0", "::")
    auth_port: int = 1812
    acct_port: int = 1813
    coa_port: int = 3799
    workers: int = 1
    recv_buffer: int = 8 * 1024 * 1024
    dedup_window: float = 30.0  # RFC 5080 §2.2.2: keep replies for retransmissions
    max_batch: int = 256  # datagrams read per wake-up before yielding to the loop


@dataclass(**_FROZEN)
class DatabaseSettings:
    url: str = "sqlite:///var/vpop.db"


@dataclass(**_FROZEN)
class IdentificationSettings:
    # Tried in this order; the first that finds a subscriber wins.
    order: tuple[str, ...] = ("line", "caller_id", "user_name")
    country_code: str = ""  # e.g. "49": national numbers are given this prefix
    national_prefix: str = "0"
    international_prefix: str = "00"
    realm_delimiter: str = "@"
    strip_realm: bool = True


@dataclass(**_FROZEN)
class LoggingSettings:
    level: str = "info"
    requests: bool = True  # one line per request
    file: str = ""  # empty: standard error


@dataclass(**_FROZEN)
class MetricsSettings:
    listen: str = "127.0.0.1"
    port: int = 9812  # 0 disables the Prometheus endpoint


@dataclass(**_FROZEN)
class RadiusSettings:
    dictionary: str = ""  # empty: the dictionaries shipped with vpop
    templates: str = ""  # extra directory searched before the shipped reply templates
    # The key that signs EAP-MD5's State (vpop/aaa/eap.py), made owner-only at the first
    # start (relative to the config file), shared by the workers.
    eap_key_file: str = "var/eap-key"


# The ISP selection rules (vpop/isp/selection.py), in their default order.
ISP_RULES = ("realm", "choice", "number", "score", "default")


@dataclass(**_FROZEN)
class AccountingSettings:
    """[accounting]: how often NASes report, when a silent session is stale, the journal
    and the ledger."""
    # Seconds between the Interim-Updates the NASes send (Acct-Interim-Interval). Also how
    # long a 5-minute bucket waits for late interims before an over_bandwidth event ends.
    interim_interval: int = 300
    # A session without a record for this many intervals of its NAS's event time is
    # closed by the reaper as of its last record (Stale-Session); 0 turns the reaper off.
    stale_intervals: float = 3.0
    # Seconds between looks at event time passing while no records come (the reaper, the
    # utilization events); every batch applied looks too.
    tick: float = 1.0
    # Records committed in one transaction at most.
    max_batch: int = 1000
    # The journal directory (relative to the config file): records are acknowledged once
    # stored there, and the ledger process applies them to the database. Empty: no
    # journal; each worker applies records to the database before acknowledging them.
    journal: str = "accounting-journal"
    # How much the ledger process yields the CPU to the workers (nice(2), 0-19): under
    # load, acknowledgements come first and the ledger catches up when load falls.
    ledger_niceness: int = 10
    # While records reach the journal faster than this (records/s), the ledger does not
    # apply them: it could not keep up anyway, and the CPU it takes slows the workers
    # that acknowledge them. It catches up once the burst is over, or as soon as its
    # backlog reaches ledger_defer_backlog. 0: the ledger never waits.
    ledger_defer_rate: int = 4000
    ledger_defer_backlog: int = 500_000

    def stale_after(self) -> int | None:
        """Seconds of silence after which a session is stale; None: never."""
        if self.stale_intervals <= 0:
            return None
        return int(self.stale_intervals * self.interim_interval)

    def problems(self) -> list[tuple[str, str]]:
        """(option, reason) for each value that cannot work."""
        found = []
        if self.interim_interval < 1:
            found.append(("interim_interval", "must be at least 1 second"))
        if self.stale_intervals < 0:
            found.append(("stale_intervals", "must not be negative (0 turns the reaper off)"))
        if self.tick <= 0:
            found.append(("tick", "must be more than 0"))
        if self.max_batch < 1:
            found.append(("max_batch", "must be at least 1"))
        if not 0 <= self.ledger_niceness <= 19:
            found.append(("ledger_niceness", "must be from 0 to 19"))
        if self.ledger_defer_rate < 0:
            found.append(("ledger_defer_rate", "must not be negative (0: the ledger never waits)"))
        if self.ledger_defer_backlog < 0:
            found.append(("ledger_defer_backlog", "must not be negative"))
        return found


@dataclass(**_FROZEN)
class IspSettings:
    # Selection chain, tried in order (vpop/isp/selection.py).
    chain: tuple[str, ...] = ISP_RULES
    default_isp: str = ""  # empty: sessions no rule routes are authenticated locally
    weight_quality: float = 0.5  # of the ranked choice's score
    weight_price: float = 0.3
    weight_availability: float = 0.2
    # Upstream servers (vpop/isp/pool.py): FreeRADIUS calls these response_window,
    # zombie_period and revive_interval; vpop probes zombies with Status-Server at once.
    response_window: float = 2.0
    zombie_period: float = 10.0
    probe_interval: float = 1.0
    revive_probes: int = 3
    budget: float = 5.0  # a proxied request's whole time, retries included
    # Accounting forwarded to proxy-mode ISPs (vpop/isp/acct_forward.py): the source
    # port (0: the one used last, kept in the database) and how long a record is
    # resent byte for byte, so that the ISP can recognise the retransmission.
    accounting_source_port: int = 0
    accounting_resend_window: float = 30.0


@dataclass(**_FROZEN)
class PortalSettings:
    """[portal]: the web portal (docs/portal.md), run by `vpop web` or beside the RADIUS
    server by `vpop serve`."""
    enabled: bool = False  # `vpop serve` runs the portal beside the RADIUS server
    listen: str = "127.0.0.1"
    port: int = 8080
    # Signs the session cookies. Empty: a random key kept in secret_key_file.
    secret_key: str = ""
    secret_key_file: str = "var/portal-secret"  # relative to the config file
    session_lifetime: int = 28800  # seconds a login lasts
    # Behind a reverse proxy that ends TLS: cookies are sent Secure only, and the
    # proxy's X-Forwarded-For/-Proto are believed (one proxy).
    behind_tls_proxy: bool = False
    # Login attempts allowed from one address within login_window seconds.
    login_attempts: int = 10
    login_window: int = 60
    threads: int = 8  # the WSGI server's threads

    def problems(self) -> list[tuple[str, str]]:
        """(option, reason) for each value that cannot work."""
        found = []
        if _listen_problem((self.listen,)):
            found.append(("listen", "must be an IPv4 or IPv6 address"))
        if not 0 <= self.port <= 65535:
            found.append(("port", "must be a port number 0-65535 (0: any free port)"))
        if self.secret_key and len(self.secret_key) < 16:
            found.append(("secret_key", "must be at least 16 characters (empty: generated)"))
        if not self.secret_key and not self.secret_key_file:
            found.append(("secret_key_file", "must name a file when secret_key is empty"))
        for key in ("session_lifetime", "login_attempts", "login_window", "threads"):
            if getattr(self, key) < 1:
                found.append((key, "must be at least 1"))
        return found


@dataclass(**_FROZEN)
class DynAuthSettings:
    """[dynauth]: CoA and Disconnect requests vpop sends to NASes (docs/dynauth.md)."""
    timeout: float = 3.0  # seconds a try waits for the NAS's answer
    retries: int = 2  # tries after the first, each the same datagram (RFC 5080 §2.2.1)
    # Seconds after a Disconnect-ACK within which the session's Stop is expected; then
    # the session is marked stop-overdue ("ACKed but still online").
    stop_wait: float = 30.0

    def problems(self) -> list[tuple[str, str]]:
        """(option, reason) for each value that cannot work."""
        found = []
        if self.timeout <= 0:
            found.append(("timeout", "must be more than 0"))
        if not 0 <= self.retries <= 10:
            found.append(("retries", "must be from 0 to 10"))
        if self.stop_wait <= 0:
            found.append(("stop_wait", "must be more than 0"))
        return found


# The PAP checks a directory offers, the ways it finds a subscriber's groups, and what
# an access attribute may say (docs/ldap.md).
DIRECTORY_PAP = ("hash", "bind")
DIRECTORY_GROUPS = ("", "attribute", "search")
DIRECTORY_URL = re.compile(r"^ldaps?://[^/?#\s]+/?$")


@dataclass(**_FROZEN)
class DirectoryGroup:
    """[[directory.group]]: members of `group` (a DN, or a group's cn) get `profile`
    and/or `isp`; the first matching rule wins."""
    group: str
    profile: str = ""
    isp: str = ""


@dataclass(**_FROZEN)
class DirectorySettings:
    """[directory]: subscribers looked up in an LDAP directory (docs/ldap.md)."""
    servers: tuple[str, ...] = ()  # ldap:// or ldaps:// URLs, tried in order; none: off
    start_tls: bool = False  # StartTLS on ldap:// URLs
    ca_file: str = ""  # CA certificates (PEM) the server's certificate must chain to
    bind_dn: str = ""  # the service account; empty: anonymous
    bind_password: str = ""  # write "env:NAME"
    base_dn: str = ""
    pool_size: int = 4  # connections per worker, kept open
    connect_timeout: float = 2.0
    timeout: float = 3.0  # one operation's answer
    health_interval: float = 10.0  # checks of idle connections and of servers down
    user_filter: str = "(&(objectClass=inetOrgPerson)(uid={user}))"
    caller_id_filter: str = ""
    circuit_id_filter: str = ""
    remote_id_filter: str = ""
    nas_port_id_filter: str = ""
    username_attribute: str = "uid"
    access_attribute: str = ""
    expiry_attribute: str = ""
    profile_attribute: str = ""
    default_profile: str = ""
    rate_down_attribute: str = ""
    rate_up_attribute: str = ""
    session_timeout_attribute: str = ""
    framed_ip_attribute: str = ""
    isp_attribute: str = ""
    methods: tuple[str, ...] = ("pap", "chap", "mschap", "mschapv2")
    pap: str = "hash"  # hash | bind
    password_attribute: str = "userPassword"
    nt_password_attribute: str = "sambaNTPassword"
    groups: str = ""  # "" | attribute | search
    group_attribute: str = "memberOf"
    group_filter: str = "(&(objectClass=groupOfNames)(member={dn}))"
    group_base_dn: str = ""
    group: tuple[DirectoryGroup, ...] = ()
    cache_ttl: float = 30.0
    negative_ttl: float = 5.0
    outage_grace: float = 3600.0
    cache_size: int = 100_000
    isp: tuple[IspDirectory, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.servers)

    def problems(self) -> list[tuple[str, str]]:
        """(option, reason) for each value that cannot work."""
        found = []
        for url in self.servers:
            if not DIRECTORY_URL.match(url):
                found.append(("servers", f"{url!r} is not an ldap:// or ldaps:// URL "
                                         "(scheme, host and optional port)"))
        if self.servers and not self.base_dn:
            found.append(("base_dn", "must be set when servers are"))
        if self.bind_password and not self.bind_dn:
            found.append(("bind_password", "needs bind_dn"))
        for key in ("pool_size", "cache_size"):
            if getattr(self, key) < 1:
                found.append((key, "must be at least 1"))
        for key in ("connect_timeout", "timeout", "health_interval"):
            if getattr(self, key) <= 0:
                found.append((key, "must be more than 0"))
        for key in ("cache_ttl", "negative_ttl", "outage_grace"):
            if getattr(self, key) < 0:
                found.append((key, "must not be negative"))
        if self.pap not in DIRECTORY_PAP:
            found.append(("pap", "must be hash or bind"))
        if self.groups not in DIRECTORY_GROUPS:
            found.append(("groups", 'must be "", "attribute" or "search"'))
        unknown = sorted(set(self.methods) - {"pap", "chap", "mschap", "mschapv2", "eap-md5"})
        if unknown:
            found.append(("methods", f"unknown method {unknown[0]!r}: the methods are pap, "
                                     "chap, mschap, mschapv2, eap-md5"))
        if self.servers and not self.user_filter:
            found.append(("user_filter", "must be set when servers are"))
        return found


@dataclass(**_FROZEN)
class IspDirectory:
    """[[directory.isp]]: the directory of one ISP's subscribers, asked for the user
    names in that ISP's realms; options not given are [directory]'s."""
    name: str
    settings: DirectorySettings


@dataclass(**_FROZEN)
class Settings:
    path: str = ""
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    identification: IdentificationSettings = field(default_factory=IdentificationSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    radius: RadiusSettings = field(default_factory=RadiusSettings)
    isp: IspSettings = field(default_factory=IspSettings)
    accounting: AccountingSettings = field(default_factory=AccountingSettings)
    dynauth: DynAuthSettings = field(default_factory=DynAuthSettings)
    portal: PortalSettings = field(default_factory=PortalSettings)
    directory: DirectorySettings = field(default_factory=DirectorySettings)

    def relative(self, value: str) -> str:
        """Resolve a path option relative to the config file's directory."""
        if not value or os.path.isabs(value) or not self.path:
            return value
        return str(Path(self.path).parent / value)

    @property
    def database_url(self) -> str:
        url = self.database.url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rest = url[len("sqlite:///"):]
            if rest and rest != ":memory:":
                return "sqlite:///" + self.relative(rest)
        return url


_SECTIONS: dict[str, type] = {
    "server": ServerSettings, "database": DatabaseSettings,
    "identification": IdentificationSettings, "logging": LoggingSettings,
    "metrics": MetricsSettings, "radius": RadiusSettings, "isp": IspSettings,
    "accounting": AccountingSettings, "dynauth": DynAuthSettings, "portal": PortalSettings,
    "directory": DirectorySettings,
}
_IDENT_METHODS = {"line", "caller_id", "user_name"}


def load(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> Settings:
    """Read and validate the config file; raise ConfigError naming file, line and field."""
    env = os.environ if env is None else env
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", file=path) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        raise ConfigError(f"not valid TOML: {exc}", file=path, line=line) from None
    settings = from_dict(data, path=path, text=text, env=env)
    if "VPOP_DATABASE_URL" in env:
        settings = dataclasses.replace(
            settings, database=DatabaseSettings(url=env["VPOP_DATABASE_URL"]))
        problem = _database_url_problem(settings.database.url)
        if problem:
            raise ConfigError(f"{problem} (from VPOP_DATABASE_URL)", file=path,
                              field="database.url")
    return settings


def override(settings: Settings, options: dict[str, dict[str, Any]],
             names: dict[str, str]) -> Settings:
    """`settings` with options replaced (from the command line), validated as the file's
    are; `names` gives the command-line spelling of each option for the message."""
    sections = {section: dataclasses.replace(getattr(settings, section), **values)
                for section, values in options.items() if values}
    changed = dataclasses.replace(settings, **sections)

    def fail(message: str, section: str, key: str | None = None) -> ConfigError:
        name = f"{section}.{key}" if key else section
        if name in names:
            return ConfigError(message, field=f"{name} ({names[name]})")
        return _error(settings.path, _read(settings.path), message, section, key)
    _validate(changed, fail)
    return changed


def field_error(settings: Settings, message: str, section: str,
                key: str | None = None) -> ConfigError:
    """A ConfigError naming the config file, the option's line and the option, for a
    value found wrong after loading (e.g. against the database)."""
    return _error(settings.path, _read(settings.path), message, section, key)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8") if path else ""
    except OSError:
        return ""


def _error(path: str, text: str, message: str, section: str,
           key: str | None = None) -> ConfigError:
    name = f"{section}.{key}" if key else section
    return ConfigError(message, file=path or None, line=_line_of(text, section, key),
                       field=name)


def from_dict(data: dict[str, Any], *, path: str = "", text: str = "",
              env: dict[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env

    def fail(message: str, section: str, key: str | None = None) -> ConfigError:
        return _error(path, text, message, section, key)

    sections: dict[str, Any] = {}
    for section, values in data.items():
        cls = _SECTIONS.get(section)
        if cls is None:
            raise fail("unknown section", section)
        if not isinstance(values, dict):
            raise fail("must be a table", section)
        if cls is DirectorySettings:
            sections[section] = _directory(values, env, text, path)
            continue
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in values.items():
            if key not in known:
                raise fail("unknown option", section, key)
            default = known[key].default
            kwargs[key] = _coerce(value, default, env, lambda m: fail(m, section, key))
        try:
            sections[section] = cls(**kwargs)
        except TypeError as exc:
            raise fail(str(exc), section) from None
    settings = Settings(path=path, **sections)
    _validate(settings, fail)
    return settings


def _directory(values: dict[str, Any], env: dict[str, str], text: str, path: str,
               base: DirectorySettings | None = None, where: str = "directory",
               table: tuple[str, int] | None = None) -> DirectorySettings:
    """[directory], or one [[directory.isp]] table over `base` (its options given)."""
    def fail(message: str, key: str | None = None) -> ConfigError:
        name = f"{where}.{key}" if key else where
        line = (_line_of_array_table(text, *table, key) if table
                else _line_of(text, "directory", key))
        return ConfigError(message, file=path or None, line=line, field=name)

    known = {f.name: f for f in dataclasses.fields(DirectorySettings)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known or (base is not None and key in ("isp", "name")):
            if not (base is not None and key == "name"):
                raise fail("unknown option", key)
            continue
        if key == "group":
            kwargs[key] = _directory_groups(value, lambda m, k=None: fail(m, k))
        elif key == "isp":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise fail("must be [[directory.isp]] tables", key)
            kwargs[key] = ()  # after the others: each inherits them
        else:
            kwargs[key] = _coerce(value, known[key].default, env, lambda m: fail(m, key))
    settings = dataclasses.replace(base or DirectorySettings(), **kwargs)
    for key, reason in settings.problems():
        raise fail(reason, key)
    if base is None and values.get("isp"):
        isps, names = [], set()
        for number, table_values in enumerate(values["isp"]):
            here = f"directory.isp[{number}]"
            name = table_values.get("name")
            if not isinstance(name, str) or not name:
                raise ConfigError("needs the ISP's name", file=path or None,
                                  line=_line_of_array_table(text, "directory.isp", number),
                                  field=f"{here}.name")
            if name in names:
                raise ConfigError(f"ISP {name!r} has two directories", file=path or None,
                                  line=_line_of_array_table(text, "directory.isp", number),
                                  field=f"{here}.name")
            names.add(name)
            own = _directory(table_values, env, text, path, base=settings, where=here,
                             table=("directory.isp", number))
            if not own.servers:
                raise ConfigError("needs servers", file=path or None,
                                  line=_line_of_array_table(text, "directory.isp", number),
                                  field=f"{here}.servers")
            isps.append(IspDirectory(name=name, settings=own))
        settings = dataclasses.replace(settings, isp=tuple(isps))
    return settings


def _directory_groups(value: Any, fail) -> tuple[DirectoryGroup, ...]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise fail("must be [[directory.group]] tables", "group")
    rules = []
    for number, rule in enumerate(value):
        unknown = sorted(set(rule) - {"group", "profile", "isp"})
        if unknown:
            raise fail(f"unknown option {unknown[0]!r}", f"group[{number}]")
        if not all(isinstance(v, str) for v in rule.values()):
            raise fail("group, profile and isp must be strings", f"group[{number}]")
        if not rule.get("group") or not (rule.get("profile") or rule.get("isp")):
            raise fail("needs group, and profile or isp", f"group[{number}]")
        rules.append(DirectoryGroup(**rule))
    return tuple(rules)


def _line_of_array_table(text: str, name: str, number: int, key: str | None = None
                         ) -> int | None:
    """The line of the number-th [[name]] table (from 0), or of key inside it."""
    seen = -1
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if re.match(rf"\s*\[\[\s*{re.escape(name)}\s*\]\]", line):
            seen += 1
            if seen == number:
                if key:
                    for later in range(index + 1, len(lines)):
                        if re.match(r"\s*\[", lines[later]):
                            break
                        if re.match(rf"\s*{re.escape(key)}\s*=", lines[later]):
                            return later + 1
                return index + 1
    return None


def _coerce(value: Any, default: Any, env: dict[str, str], fail) -> Any:
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in env:
            raise fail(f"environment variable {name} is not set")
        value = env[name]
        if isinstance(default, bool):
            value = value.lower() in ("1", "true", "yes", "on")
        elif isinstance(default, (int, float)):
            try:
                value = type(default)(value)
            except ValueError:
                raise fail(f"environment variable {name} is not a number") from None
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail("must be a list of strings")
        return tuple(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise fail("must be true or false")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not type(default):
        kind = {int: "an integer", float: "a number", str: "a string"}[type(default)]
        raise fail(f"must be {kind}")
    return value


def _validate(s: Settings, fail) -> None:
    """Every value that cannot work, found before anything starts: `vpop check-config`
    and `vpop serve` refuse the same settings."""
    ports = {}
    for key in ("auth_port", "acct_port", "coa_port"):
        port = getattr(s.server, key)
        if not 0 <= port <= 65535:
            raise fail("must be a port number 0-65535 (0: any free port)", "server", key)
        if port and port in ports:
            raise fail(f"must differ from server.{ports[port]} ({port})", "server", key)
        ports.setdefault(port, key)
    if s.server.workers < 1:
        raise fail("must be at least 1", "server", "workers")
    if s.server.dedup_window < 0:
        raise fail("must not be negative", "server", "dedup_window")
    if s.server.recv_buffer < 1:
        raise fail("must be a positive number of bytes", "server", "recv_buffer")
    if s.server.max_batch < 1:
        raise fail("must be at least 1", "server", "max_batch")
    if not s.server.listen:
        raise fail("needs at least one address", "server", "listen")
    problem = _listen_problem(s.server.listen)
    if problem:
        raise fail(problem, "server", "listen")
    problem = _database_url_problem(s.database.url)
    if problem:
        raise fail(problem, "database", "url")
    bad = set(s.identification.order) - _IDENT_METHODS
    if bad or not s.identification.order:
        raise fail(f"must be a list of {sorted(_IDENT_METHODS)}", "identification", "order")
    for key in ("country_code", "national_prefix", "international_prefix"):
        if not getattr(s.identification, key).isdigit() and getattr(s.identification, key):
            raise fail("must be digits", "identification", key)
    if not s.identification.realm_delimiter:
        raise fail("must not be empty", "identification", "realm_delimiter")
    if s.logging.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise fail("must be debug, info, warning or error", "logging", "level")
    unknown = [rule for rule in s.isp.chain if rule not in ISP_RULES]
    if unknown:
        raise fail(f"unknown rule {unknown[0]!r}: the rules are {', '.join(ISP_RULES)}",
                   "isp", "chain")
    if len(set(s.isp.chain)) != len(s.isp.chain):
        raise fail("must name each rule at most once", "isp", "chain")
    weights = ("weight_quality", "weight_price", "weight_availability")
    for key in weights:
        if getattr(s.isp, key) < 0:
            raise fail("must not be negative", "isp", key)
    if not sum(getattr(s.isp, key) for key in weights) > 0:
        raise fail("one of weight_quality, weight_price and weight_availability must be "
                   "positive", "isp", weights[0])
    for key in ("response_window", "zombie_period", "probe_interval", "budget"):
        if getattr(s.isp, key) <= 0:
            raise fail("must be positive", "isp", key)
    if s.isp.revive_probes < 1:
        raise fail("must be at least 1", "isp", "revive_probes")
    if not 0 <= s.isp.accounting_source_port <= 65535:
        raise fail("must be a port number 0-65535 (0: the one used last)", "isp",
                   "accounting_source_port")
    if s.isp.accounting_source_port in ports and s.isp.accounting_source_port:
        raise fail(f"must differ from server.{ports[s.isp.accounting_source_port]}", "isp",
                   "accounting_source_port")
    if s.isp.accounting_resend_window < 0:
        raise fail("must not be negative", "isp", "accounting_resend_window")
    if not s.radius.eap_key_file:
        raise fail("must name a file (EAP-MD5's State key)", "radius", "eap_key_file")
    for key, reason in s.accounting.problems():
        raise fail(reason, "accounting", key)
    for key, reason in s.dynauth.problems():
        raise fail(reason, "dynauth", key)
    for key, reason in s.portal.problems():
        raise fail(reason, "portal", key)
    if s.portal.port and s.portal.port == s.metrics.port:
        raise fail(f"must differ from metrics.port ({s.metrics.port})", "portal", "port")
    if not 0 <= s.metrics.port <= 65535:
        raise fail("must be a port number (0 disables)", "metrics", "port")
    if _listen_problem((s.metrics.listen,)):
        raise fail("must be an IPv4 or IPv6 address", "metrics", "listen")


def _listen_problem(addresses) -> str | None:
    """Why these addresses cannot all be bound on one port, or None."""
    parsed = []
    for address in addresses:
        try:
            parsed.append(ipaddress.ip_address(address))
        except ValueError:
            return f"{address!r} is not an IPv4 or IPv6 address"
    for ip in parsed:
        if parsed.count(ip) > 1:
            return f"{ip} is listed twice"
        # The wildcard takes the port on every address of its family.
        if ip.is_unspecified and any(other.version == ip.version for other in parsed
                                     if other != ip):
            return f"{ip} covers every address of its family: list it alone"
    return None


DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg2", "postgres")


def _database_url_problem(url: str) -> str | None:
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme not in DATABASE_SCHEMES:
        given = f"not {scheme}://" if scheme else "no scheme given"
        return f"must start with sqlite:/// or postgresql:// ({given})"
    return None


def _line_of(text: str, section: str, key: str | None) -> int | None:
    """Best-effort line number of [section] or of key inside it, for error messages."""
    if not text:
        return None
    lines = text.splitlines()
    start = None
    for number, line in enumerate(lines, 1):
        if re.match(rf"\s*\[{re.escape(section)}\]\s*(#.*)?$", line):
            start = number
            break
    if start is None or key is None:
        return start
    for number in range(start, len(lines)):
        line = lines[number]
        if re.match(r"\s*\[", line):
            break
        if re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number + 1
    return start
