"""The `vpop` command as an operator meets it: exit statuses and messages that name
the file, line and field, and no half-done work after a refusal."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import text

from e2e_support import GRACE, clean_env, init_demo, run_vpop, set_options
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
