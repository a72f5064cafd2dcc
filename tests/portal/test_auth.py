"""Logging in and out, for every kind of user, and how failures look."""

from __future__ import annotations

import pytest

from conftest import LOGINS, csrf_token, log_in


@pytest.mark.parametrize("who", sorted(LOGINS))
def test_each_demo_account_logs_in_and_out(client, who):
    reply = log_in(client, who)
    assert reply.status_code == 302, reply.get_data(as_text=True)
    page = client.get(reply.headers["Location"])
    assert page.status_code == 200
    assert LOGINS[who][1] in page.get_data(as_text=True)
    token = csrf_token(page.get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/isps/").status_code == 302  # to the login page again


def failed_login(client, kind: str, name: str, password: str):
    page = client.get("/login")
    return client.post("/login", data={"csrf_token": csrf_token(page.get_data(as_text=True)),
                                       "kind": kind, "name": name, "password": password})


@pytest.mark.parametrize("kind,name,password", [
    ("staff", "admin", "wrong"),                  # known, wrong password
    ("staff", "nobody", "admin-pass"),            # unknown
    ("subscriber", "alice", "wrong"),             # cleartext kept
    ("subscriber", "bob", "wrong"),               # PBKDF2 only
    ("subscriber", "nobody", "alice-pass"),       # unknown
    ("subscriber", "dave", ""),                   # caller ID only: no password at all
    ("subscriber", "dave", "x"),
    ("subscriber", "erin", "erin-pass"),          # disabled, right password
    ("subscriber", "frank", "frank-pass"),        # expired, right password
    ("subscriber", "admin", "admin-pass"),        # a staff account is no subscriber
    ("staff", "alice", "alice-pass"),             # nor a subscriber staff
])
def test_every_failed_login_is_answered_the_same(client, kind, name, password):
    reference = failed_login(client, kind, "nobody-at-all", password)
    reply = failed_login(client, kind, name, password)
    assert reply.status_code == reference.status_code == 401

    def body(response):  # the page less its CSRF token (one per form) and the name typed
        text = response.get_data(as_text=True)
        return text.replace(csrf_token(text), "").replace('value="nobody-at-all"', "") \
            .replace(f'value="{name}"', "")
    assert body(reply) == body(reference)
    assert "Wrong user name or password." in body(reply)
