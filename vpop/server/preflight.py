"""The checks before anything starts: what `vpop check-config` reports and `vpop serve`
refuses to start on, beyond the config file's own values (vpop/config.py).

Paths the config names, the dictionary and reply templates, the database (there, of
this vpop's schema, holding the default ISP) and the accounting journal: each refused
with the config file, the option's line and the option. Nothing is created here, so a
server that is refused leaves nothing behind (no database file, no journal directory,
no var/). Binding the ports is left to `vpop serve`: a running server holds them while
`vpop check-config` looks at its next config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from vpop import config as config_module
from vpop.aaa.reply import ReplyRenderer
from vpop.aaa.subscribers import Account, ServiceProfile
from vpop.config import Settings
from vpop.errors import ConfigError, StoreUnavailable
from vpop.isp.tunnel import TunnelTemplates
from vpop.radius.clients import NAS_TYPES
from vpop.server.ldap_directory import check_directories, configured
from vpop.server.ledger import journal_path
from vpop.server.wiring import load_dictionary
from vpop.store.engine import check_connection, make_engine, make_sessionmaker, safe_url
from vpop.store.files import readable_by_others
from vpop.store.isp_snapshot import check_stored_isps, load_isps
from vpop.store.journal import JournalError, check_usable, journal_files


@dataclass(slots=True)
class Findings:
    """What does not stop the server: the stored ISPs' problems (`vpop check-config`
    fails on them) and warnings (files others may read)."""
    problems: list[ConfigError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check(settings: Settings, *, serving: bool) -> Findings:
    """Raise ConfigError (file, line, option) or StoreUnavailable for what would stop
    or break the server. `serving`: for `vpop serve`, which also needs the journal free
    of another writer."""
    _check_paths(settings)
    replies = ReplyRenderer(load_dictionary(settings), settings.relative(settings.radius.templates))
    sample = Account(username="check", profile=ServiceProfile(
        name="check", rate_down_kbps=10000, rate_up_kbps=2000, address_pool="pool",
        session_timeout=3600, idle_timeout=600, class_="check"), methods=frozenset({"pap"}))
    for nas_type in NAS_TYPES:
        replies.encoded(sample, nas_type)
    findings = Findings()
    findings.problems = _check_database(settings, replies)
    if configured(settings):
        findings.problems += check_directories(settings, connect=not serving)
    if settings.accounting.journal:
        for path in journal_files(journal_path(settings), settings.server.workers):
            try:
                check_usable(path, free=serving)
            except JournalError as exc:
                raise config_module.field_error(settings, str(exc), "accounting",
                                                "journal") from None
    findings.warnings = _open_to_others(settings)
    return findings


def _check_paths(settings: Settings) -> None:
    fail = config_module.field_error
    dictionary = settings.relative(settings.radius.dictionary)
    if dictionary and not os.path.isfile(dictionary):
        raise fail(settings, f"{dictionary}: no such file", "radius", "dictionary")
    templates = settings.relative(settings.radius.templates)
    if templates and not os.path.isdir(templates):
        raise fail(settings, f"{templates}: no such directory", "radius", "templates")
    log_file = settings.relative(settings.logging.file)
    if log_file:
        if os.path.isdir(log_file):
            raise fail(settings, f"{log_file}: is a directory", "logging", "file")
        if os.path.exists(log_file):
            writable = os.access(log_file, os.W_OK)
        else:
            parent = os.path.dirname(os.path.abspath(log_file))
            if not os.path.isdir(parent):
                raise fail(settings, f"{parent}: no such directory", "logging", "file")
            writable = os.access(parent, os.W_OK | os.X_OK)
        if not writable:
            raise fail(settings, f"{log_file}: not writable", "logging", "file")


def _check_database(settings: Settings, replies: ReplyRenderer) -> list[ConfigError]:
    """The database is there (a SQLite file is not made here), at this vpop's schema,
    and holds the default ISP; the stored ISPs' problems."""
    from vpop.store.schema import current_revision, head_revision
    url = settings.database_url
    engine = make_engine(url, create=False)
    try:
        check_connection(engine)
        revision, head = current_revision(url), head_revision()
        if revision != head:
            raise StoreUnavailable(
                f"database {safe_url(url)} is at schema revision {revision or 'none (empty)'}, "
                f"this vpop needs {head}: run `vpop db upgrade`")
        with make_sessionmaker(engine)() as session:
            problems = check_stored_isps(session, replies,
                                         TunnelTemplates(replies.dictionary, replies.extra_dir))
            try:
                names = {isp.name for isp in load_isps(session)}
            except ValueError:  # a stored realm that does not compile: among the problems
                names = None
    finally:
        engine.dispose()
    default = settings.isp.default_isp
    if default and names is not None and default not in names:
        known = ", ".join(sorted(names)) or "none"
        raise config_module.field_error(
            settings, f"no ISP {default!r} in the database (ISPs: {known})", "isp", "default_isp")
    return problems


def _open_to_others(settings: Settings) -> list[str]:
    """Files of vpop's that any user may read (made by an earlier vpop, or by hand)."""
    paths = [settings.path] if settings.path else []
    url = settings.database_url
    if url.startswith("sqlite:///"):
        paths.append(url[len("sqlite:///"):])
    if settings.accounting.journal:
        paths.append(journal_path(settings))
    return [f"{path} is open to every user (mode {os.stat(path).st_mode & 0o777:o}): "
            f"chmod o-rwx {path}" for path in paths if readable_by_others(path)]
