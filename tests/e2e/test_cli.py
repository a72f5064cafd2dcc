"""The `vpop` command as an operator meets it: exit statuses and messages that name
the file, line and field, and no half-done work after a refusal."""

from __future__ import annotations

import dataclasses
import shutil
import socket

import pytest
from sqlalchemy import text

from e2e_support import (GRACE, Nas, VpopServer, clean_env, family_of, init_demo, run_vpop,
                         set_options)
from vpop.radius import codec
from vpop.store.engine import make_engine

pytestmark = pytest.mark.e2e

EXIT_USAGE = 2
TABLES = ("nas", "profile", "subscriber", "subscriber_caller_id", "subscriber_line")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A directory made by `vpop init --demo`, copied by each test that changes it."""
    return init_demo(tmp_path_factory.mktemp("demo")).parent


@pytest.fixture
def config(demo, tmp_path):
    """The demo config and database, this test's own copy."""
    home = tmp_path / "home"
    shutil.copytree(demo, home)
    return home / "vpop.toml"


def line_of(content: str, wanted: str) -> int:
    return content.splitlines().index(wanted) + 1


def row_counts(config) -> dict[str, int]:
    engine = make_engine(f"sqlite:///{config.parent / 'var' / 'vpop.db'}")
    try:
        with engine.connect() as connection:
            return {t: connection.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                    for t in TABLES}
    finally:
        engine.dispose()


def test_check_config_accepts_the_generated_config(config):
    result = run_vpop(config, "check-config")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


# (what to change, the line that is then wrong, the field named)
BAD_CONFIGS = {
    "unknown option": ("[server]", "[server]\nbogus_option = 1", "bogus_option = 1",
                       "server.bogus_option"),
    "string for a port": ("auth_port = 1812", 'auth_port = "1812"', 'auth_port = "1812"',
                          "server.auth_port"),
    "string for a flag": ("requests = true", 'requests = "yes"', 'requests = "yes"',
                          "logging.requests"),
    "unknown section": ("[metrics]", "[metric]", "[metric]", "metric"),
}


@pytest.mark.parametrize("command", [["check-config"], ["serve"]])
@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_is_refused_naming_file_line_and_field(config, command, case):
    old, new, bad_line, field = BAD_CONFIGS[case]
    content = config.read_text()
    assert content.count(old) == 1
    content = content.replace(old, new)
    config.write_text(content)
    result = run_vpop(config, *command)
    assert result.returncode == EXIT_USAGE, result.stdout + result.stderr
    assert f"{config}:{line_of(content, bad_line)}" in result.stderr
    assert field in result.stderr
    assert "Traceback" not in result.stderr


# (file content after grace, who is fine, the line that is wrong, the field named)
BAD_IMPORTS = {
    "unknown method": ('[[subscriber]]\nusername = "heidi"\npassword = "heidi-pass"\n'
                       'methods = ["pap", "telnet"]\nprofile = "business-100m"\n',
                       'methods = ["pap", "telnet"]', "subscriber[2].methods"),
    "unknown profile": ('[[subscriber]]\nusername = "heidi"\npassword = "heidi-pass"\n'
                        'profile = "no-such-profile"\n',
                        'profile = "no-such-profile"', "subscriber[2].profile"),
    "caller ID taken": ('[[subscriber]]\nusername = "heidi"\npassword = "heidi-pass"\n'
                        'profile = "business-100m"\ncaller_ids = ["030 1234567"]\n',
                        'caller_ids = ["030 1234567"]', "subscriber[2].caller_ids"),
    "bad NAS address": ('[[nas]]\nname = "bras9"\naddress = "192.0.2.300"\n'
                        'secret = "s3cret-s3cret"\n', 'address = "192.0.2.300"',
                        "nas[1].address"),
}


@pytest.mark.parametrize("case", list(BAD_IMPORTS))
def test_bad_import_is_refused_and_changes_nothing(config, case):
    tail, bad_line, field = BAD_IMPORTS[case]
    plan = config.parent / "plan.toml"
    content = GRACE + "\n" + tail
    plan.write_text(content)
    before = row_counts(config)
    result = run_vpop(config, "import", str(plan))
    assert result.returncode == EXIT_USAGE, result.stdout + result.stderr
    assert f"{plan}:{line_of(content, bad_line)}" in result.stderr
    assert field in result.stderr
    assert "Traceback" not in result.stderr
    assert row_counts(config) == before  # grace, who was fine, was not written either


def test_import_dry_run_writes_nothing(config):
    plan = config.parent / "plan.toml"
    plan.write_text(GRACE)
    before = row_counts(config)
    result = run_vpop(config, "import", "--dry-run", str(plan))
    assert result.returncode == 0, result.stderr
    assert row_counts(config) == before
    result = run_vpop(config, "import", str(plan))
    assert result.returncode == 0, result.stderr
    assert row_counts(config)["subscriber"] == before["subscriber"] + 1


UNREACHABLE = "postgresql://nobody:pw-s3cret@127.0.0.1:1/vpop"  # nothing listens on port 1


@pytest.mark.parametrize("command", [["serve"], ["db", "upgrade"], ["import", "plan.toml"]])
def test_unreachable_database_is_named_without_a_traceback(config, command):
    (config.parent / "plan.toml").write_text(GRACE)
    result = run_vpop(config, *command, env=clean_env(VPOP_DATABASE_URL=UNREACHABLE))
    assert result.returncode != 0
    assert "database" in result.stderr
    assert "127.0.0.1:1/vpop" in result.stderr
    assert "pw-s3cret" not in result.stderr + result.stdout  # the password stays hidden
    assert "Traceback" not in result.stderr


def test_an_unusable_journal_stops_serve_with_its_path(config):
    blocker = config.parent / "not-a-directory"
    blocker.write_text("a file where the journal's directory should be\n")
    config.write_text(set_options(config.read_text(), {
        "accounting": {"journal": "not-a-directory/accounting-journal"}}))
    result = run_vpop(config, "serve", "--auth-port", "0", "--acct-port", "0",
                      "--coa-port", "0", "--metrics-port", "0")
    assert result.returncode == 2, result.stderr  # a config error: file and option named
    assert str(config) in result.stderr and "accounting.journal" in result.stderr
    assert "not-a-directory/accounting-journal" in result.stderr
    assert "Traceback" not in result.stderr


# `vpop serve` on ports the kernel picks, as every test here that starts one.
SERVE = ("serve", "--auth-port", "0", "--acct-port", "0", "--coa-port", "0",
         "--metrics-port", "0")


def tree(home) -> dict[str, int]:
    """Every file and directory under `home`, with its size (0 for directories)."""
    return {str(p.relative_to(home)): p.stat().st_size if p.is_file() else 0
            for p in sorted(home.rglob("*"))}


# The settings that once passed check-config and then crashed serve, left it deaf, or were
# accepted without a word: (option, value, the option named in the refusal).
UNWORKABLE = {
    "unknown ISP rule": ({"isp": {"chain": ["realm", "coin-toss"]}}, "isp.chain"),
    "negative weight": ({"isp": {"weight_price": -0.3}}, "isp.weight_price"),
    "no batch": ({"server": {"max_batch": 0}}, "server.max_batch"),
    "bad address": ({"server": {"listen": ["0.0.0.300"]}}, "server.listen"),
    "no templates": ({"radius": {"templates": "no-such-templates"}}, "radius.templates"),
    "no dictionary": ({"radius": {"dictionary": "no-such-dictionary"}}, "radius.dictionary"),
    "unknown default ISP": ({"isp": {"default_isp": "no-such-isp"}}, "isp.default_isp"),
    "negative buffer": ({"server": {"recv_buffer": -1}}, "server.recv_buffer"),
    "unsupported database": ({"database": {"url": "mysql://vpop@db.example/vpop"}},
                             "database.url"),
    "log in a missing directory": ({"logging": {"file": "no-such-dir/vpop.log"}},
                                   "logging.file"),
}


@pytest.mark.parametrize("command", [["check-config"], ["serve"]])
@pytest.mark.parametrize("case", list(UNWORKABLE))
def test_what_serve_cannot_work_with_is_refused_first_and_nothing_is_made(config, command,
                                                                            case):
    options, field = UNWORKABLE[case]
    content = set_options(config.read_text(), options)
    config.write_text(content)
    before = tree(config.parent)
    result = run_vpop(config, *(SERVE if command == ["serve"] else command))
    assert result.returncode == EXIT_USAGE, result.stdout + result.stderr
    section, key = field.split(".")
    wrong = next(line for line in content.splitlines() if line.startswith(f"{key} = "))
    assert f"{config}:{line_of(content, wrong)}" in result.stderr
    assert f"field '{field}'" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree(config.parent) == before  # no journal, no log, no database file


def test_a_missing_database_is_named_and_not_made(config):
    content = set_options(config.read_text(), {"database": {"url": "sqlite:///data/vpop.db"}})
    config.write_text(content)
    before = tree(config.parent)
    for command in (["check-config"], SERVE):
        result = run_vpop(config, *command)
        assert result.returncode == 1, result.stderr
        assert "data/vpop.db does not exist" in result.stderr and "vpop db upgrade" in result.stderr
        assert "Traceback" not in result.stderr
    assert tree(config.parent) == before  # no data/ directory either


def test_a_database_of_another_schema_is_named(config):
    engine = make_engine(f"sqlite:///{config.parent / 'var' / 'vpop.db'}")
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    engine.dispose()
    for command in (["check-config"], SERVE):
        result = run_vpop(config, *command)
        assert result.returncode == 1, result.stderr
        assert "schema revision 0001" in result.stderr and "vpop db upgrade" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("option,value,words", [
    ("--auth-port", "70000", "field 'server.auth_port (--auth-port)'"),
    ("--listen", "localhost", "field 'server.listen (--listen)'"),
    ("--workers", "0", "field 'server.workers (--workers)'"),
])
def test_command_line_options_are_checked_like_the_file(config, option, value, words):
    before = tree(config.parent)
    result = run_vpop(config, "serve", option, value)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert tree(config.parent) == before


def held_udp(host: str) -> socket.socket:
    sock = socket.socket(family_of(host), socket.SOCK_DGRAM)
    sock.bind((host, 0))
    return sock


@pytest.mark.parametrize("case", ["auth port in use", "acct port in use",
                                  "address not on this host"])
def test_a_port_that_cannot_be_bound_is_named_and_nothing_is_made(config, case):
    before = tree(config.parent)
    ports = {"--auth-port": "0", "--acct-port": "0", "--coa-port": "0", "--metrics-port": "0"}
    listen, held = "127.0.0.1", None
    if case == "address not on this host":
        listen = "192.0.2.1"  # TEST-NET-1 (RFC 5737)
        wanted = "192.0.2.1:0/udp"
    else:
        held = held_udp("::1")
        port = held.getsockname()[1]
        listen = "::1"
        ports["--auth-port" if case.startswith("auth") else "--acct-port"] = str(port)
        wanted = f"[::1]:{port}/udp"
    try:
        result = run_vpop(config, "serve", "--listen", listen,
                          *[part for item in ports.items() for part in item])
    finally:
        if held is not None:
            held.close()
    assert result.returncode == EXIT_USAGE, result.stderr
    assert f"cannot listen on {wanted}" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree(config.parent) == before  # the journal is made only once the ports are bound


def test_a_metrics_port_in_use_is_named(config):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = run_vpop(config, "serve", "--listen", "127.0.0.1", "--auth-port", "0",
                          "--acct-port", "0", "--coa-port", "0", "--metrics-port", str(port))
    assert result.returncode == EXIT_USAGE, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}/tcp (metrics.port)" in result.stderr
    assert "Traceback" not in result.stderr


def mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_a_server_s_files_are_its_own_and_its_first_line_says_what_runs(tmp_path):
    server = VpopServer.create(tmp_path / "home")
    server.start()
    try:
        nas = Nas()
        reply = nas.ask(nas.accounting([("Acct-Status-Type", "Start"),
                                        ("Acct-Session-Id", "modes-1"), ("User-Name", "alice"),
                                        ("NAS-IP-Address", "192.0.2.77")]), server.acct())
        assert reply.code == codec.ACCOUNTING_RESPONSE
        started = next(line for line in server.log_text().splitlines() if " started: " in line)
        assert f"started: pid {server.pid}, 1 worker(s); " in started
        for kind, port in (("auth", server.auth_port), ("acct", server.acct_port),
                           ("coa", server.coa_port)):
            assert f"{kind} 127.0.0.1:{port} [::1]:{port}" in started
        assert f"metrics http://127.0.0.1:{server.metrics_port}/metrics" in started
        assert "wire primitives compiled (vpop.radius._wire)" in started
        home = server.home
        files = [home / "vpop.toml", server.log, *sorted((home / "var").rglob("*"))]
        assert any(p.name.endswith("-wal") for p in files) and server.journal_path in files
        wrong = {str(p.relative_to(home)): oct(mode(p)) for p in files
                 if mode(p) != (0o700 if p.is_dir() else 0o600)}
        assert mode(home / "var") == 0o700 and not wrong
    finally:
        assert server.stop() == 0
    again = dataclasses.replace(server, process=None, exit_status=None, _output_file=None)
    again.start()  # after a clean stop, nothing to recover
    assert again.stop() == 0
    assert "did not stop cleanly" not in again.log_text()
