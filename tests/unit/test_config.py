"""Config values that cannot work are refused when the file is read, naming the file,
the line and the option; the command line's overrides are held to the same rules."""

from __future__ import annotations

import pytest

from vpop import config
from vpop.errors import ConfigError

# (section, option line, the option named, words of the reason)
BAD = {
    "unknown ISP rule": ("isp", 'chain = ["realm", "coin-toss"]', "isp.chain", "coin-toss"),
    "ISP rule twice": ("isp", 'chain = ["realm", "realm"]', "isp.chain", "at most once"),
    "negative weight": ("isp", "weight_price = -0.3", "isp.weight_price", "negative"),
    "no positive weight": ("isp", "weight_quality = 0\nweight_price = 0\nweight_availability = 0",
                           "isp.weight_quality", "positive"),
    "no batch": ("server", "max_batch = 0", "server.max_batch", "at least 1"),
    "negative buffer": ("server", "recv_buffer = -1", "server.recv_buffer", "positive"),
    "no buffer": ("server", "recv_buffer = 0", "server.recv_buffer", "positive"),
    "bad address": ("server", 'listen = ["0.0.0.300"]', "server.listen", "0.0.0.300"),
    "host name": ("server", 'listen = ["localhost"]', "server.listen", "not an IPv4 or IPv6"),
    "address twice": ("server", 'listen = ["127.0.0.1", "127.0.0.1"]', "server.listen",
                      "twice"),
    "wildcard and one address": ("server", 'listen = ["0.0.0.0", "127.0.0.1"]',
                                 "server.listen", "list it alone"),
    "no address": ("server", "listen = []", "server.listen", "at least one"),
    "port out of range": ("server", "auth_port = 65536", "server.auth_port", "0-65535"),
    "negative port": ("server", "coa_port = -1", "server.coa_port", "0-65535"),
    "one port twice": ("server", "auth_port = 1812\nacct_port = 1812", "server.acct_port",
                       "server.auth_port"),
    "no workers": ("server", "workers = 0", "server.workers", "at least 1"),
    "negative dedup window": ("server", "dedup_window = -1", "server.dedup_window", "negative"),
    "unsupported database": ("database", 'url = "mysql://db.example/vpop"', "database.url",
                             "mysql://"),
    "database without scheme": ("database", 'url = "var/vpop.db"', "database.url",
                                "no scheme"),
    "unknown identification": ("identification", 'order = ["line", "ouija"]',
                               "identification.order", "caller_id"),
    "empty realm delimiter": ("identification", 'realm_delimiter = ""',
                              "identification.realm_delimiter", "empty"),
    "letters in a prefix": ("identification", 'national_prefix = "O"',
                            "identification.national_prefix", "digits"),
    "unknown log level": ("logging", 'level = "verbose"', "logging.level", "debug"),
    "metrics host name": ("metrics", 'listen = "localhost"', "metrics.listen", "address"),
    "metrics port out of range": ("metrics", "port = 70000", "metrics.port", "port"),
    "zero response window": ("isp", "response_window = 0", "isp.response_window", "positive"),
    "no revive probes": ("isp", "revive_probes = 0", "isp.revive_probes", "at least 1"),
    "source port taken by auth": ("isp", "accounting_source_port = 1812",
                                  "isp.accounting_source_port", "server.auth_port"),
    "source port out of range": ("isp", "accounting_source_port = 65536",
                                 "isp.accounting_source_port", "0-65535"),
    "negative resend window": ("isp", "accounting_resend_window = -1",
                               "isp.accounting_resend_window", "negative"),
    "zero interim interval": ("accounting", "interim_interval = 0",
                              "accounting.interim_interval", "at least 1"),
    "zero ledger batch": ("accounting", "max_batch = 0", "accounting.max_batch", "at least 1"),
    "niceness out of range": ("accounting", "ledger_niceness = 20",
                              "accounting.ledger_niceness", "0 to 19"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_value_that_cannot_work_is_refused_with_file_line_and_option(tmp_path, case):
    section, lines, option, words = BAD[case]
    path = tmp_path / "vpop.toml"
    text = f"# vpop\n\n[{section}]\n{lines}\n"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        config.load(path, env={})
    error = caught.value
    assert error.field == option
    assert error.file == str(path)
    key = option.split(".")[1]
    assert error.line == next(n for n, line in enumerate(text.splitlines(), 1)
                              if line.startswith(f"{key} ="))
    assert words in error.message


def test_the_defaults_are_valid():
    assert config.from_dict({}) == config.Settings()


def test_a_database_url_from_the_environment_is_checked_too(tmp_path):
    path = tmp_path / "vpop.toml"
    path.write_text("")
    with pytest.raises(ConfigError, match="VPOP_DATABASE_URL") as caught:
        config.load(path, env={"VPOP_DATABASE_URL": "oracle://db.example/vpop"})
    assert caught.value.field == "database.url"
    for url in ("sqlite:///var/vpop.db", "postgresql://vpop@db.example/vpop",
                "postgres://vpop@db.example/vpop", "postgresql+psycopg2://db.example/vpop"):
        assert config.load(path, env={"VPOP_DATABASE_URL": url}).database.url == url


def test_the_password_of_a_database_url_is_not_repeated(tmp_path):
    path = tmp_path / "vpop.toml"
    path.write_text('[database]\nurl = "mysql://vpop:pw-s3cret@db.example/vpop"\n')
    with pytest.raises(ConfigError) as caught:
        config.load(path, env={})
    assert "pw-s3cret" not in str(caught.value)


def test_command_line_overrides_are_held_to_the_same_rules(tmp_path):
    path = tmp_path / "vpop.toml"
    path.write_text("[server]\nacct_port = 11813\n")
    settings = config.load(path, env={})
    names = {"server.auth_port": "--auth-port", "server.listen": "--listen"}
    changed = config.override(settings, {"server": {"auth_port": 11812}}, names)
    assert changed.server.auth_port == 11812
    with pytest.raises(ConfigError, match="0-65535") as caught:
        config.override(settings, {"server": {"auth_port": 70000}}, names)
    assert caught.value.field == "server.auth_port (--auth-port)"
    with pytest.raises(ConfigError, match="not an IPv4") as caught:
        config.override(settings, {"server": {"listen": ("localhost",)}}, names)
    assert caught.value.field == "server.listen (--listen)"
    # A clash with a value from the file names the file's option and its line.
    with pytest.raises(ConfigError, match="server.auth_port") as caught:
        config.override(settings, {"server": {"auth_port": 11813}}, names)
    assert (caught.value.file, caught.value.line, caught.value.field) == (
        str(path), 2, "server.acct_port")


def test_an_error_found_after_loading_names_the_options_line(tmp_path):
    path = tmp_path / "vpop.toml"
    path.write_text('[server]\nworkers = 2\n\n[isp]\n# the fallback\ndefault_isp = "acme"\n')
    settings = config.load(path, env={})
    error = config.field_error(settings, "no ISP 'acme'", "isp", "default_isp")
    assert (error.file, error.line, error.field) == (str(path), 6, "isp.default_isp")
