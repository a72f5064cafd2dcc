"""`vpop account`: portal accounts made, changed and disabled from the command line take
effect in the portal's own login, and each change is audited without its password."""

from __future__ import annotations

import pytest

from vpop.cli.commands import main
from vpop.store import portal as accounts
from vpop.store.engine import make_engine, make_sessionmaker

from conftest import csrf_token


@pytest.fixture
def config(demo_db_url, tmp_path, monkeypatch):
    path = tmp_path / "vpop.toml"
    path.write_text(f'[database]\nurl = "{demo_db_url}"\n')
    monkeypatch.setenv("ACCOUNT_PASSWORD", "night-shift-9")
    return str(path)


def staff_login(client, name, password):
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"csrf_token": csrf_token(page), "kind": "staff",
                                       "name": name, "password": password})


def audit_rows(url):
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            return [(e.action, e.object, e.before, e.after)
                    for e in reversed(accounts.audit_entries(session))
                    if e.action.startswith("account.")]
    finally:
        engine.dispose()


def test_an_operator_added_logs_in_and_a_disabled_one_cannot(config, make_app, demo_db_url,
                                                             capsys):
    assert main(["--config", config, "account", "add", "night", "--role", "operator",
                 "--isp", "isp-tunnel", "--password-env", "ACCOUNT_PASSWORD"]) == 0
    assert "account night: add done (operator of isp-tunnel, enabled)" in capsys.readouterr().out
    client = make_app(demo_db_url).test_client()
    assert staff_login(client, "night", "night-shift-9").status_code == 302

    assert main(["--config", config, "account", "disable", "night"]) == 0
    client = make_app(demo_db_url).test_client()
    assert staff_login(client, "night", "night-shift-9").status_code == 401

    assert main(["--config", config, "account", "list"]) == 0
    assert "night\toperator\tisp-tunnel\tdisabled" in capsys.readouterr().out
    rows = audit_rows(demo_db_url)
    assert [r[0] for r in rows] == ["account.add", "account.disable"]
    assert rows[1][2]["enabled"] is True and rows[1][3]["enabled"] is False
    assert all("password" not in str(r) for r in rows)


def test_a_new_password_replaces_the_old(config, make_app, demo_db_url):
    assert main(["--config", config, "account", "passwd", "admin",
                 "--password-env", "ACCOUNT_PASSWORD"]) == 0
    client = make_app(demo_db_url).test_client()
    assert staff_login(client, "admin", "admin-pass").status_code == 401
    assert staff_login(client, "admin", "night-shift-9").status_code == 302


@pytest.mark.parametrize("argv, message", [
    (["add", "x", "--role", "operator", "--password-env", "ACCOUNT_PASSWORD"],
     "--isp: an operator belongs to an ISP"),
    (["add", "x", "--role", "operator", "--isp", "nowhere", "--password-env",
      "ACCOUNT_PASSWORD"], "--isp: no ISP 'nowhere'"),
    (["add", "x", "--role", "admin", "--password-env", "UNSET_VARIABLE"],
     "--password-env: UNSET_VARIABLE is not set"),
    (["add", "x", "--role", "admin", "--password-env", "SHORT"],
     "password: at least 8 characters"),
    (["disable", "nobody"], "no account 'nobody'"),
])
def test_bad_requests_are_named_and_change_nothing(config, demo_db_url, monkeypatch, capsys,
                                                   argv, message):
    monkeypatch.setenv("SHORT", "short")
    assert main(["--config", config, "account", *argv]) == 2
    assert message in capsys.readouterr().err
    assert audit_rows(demo_db_url) == []
